# checks.sh — the counters and checks that the script tests share (sourced,
# not run: tests/scripts/*.sh are the tests, this folder is not globbed).
# Needs $TMP, a scratch folder of the sourcing script.
#   ok NAME / bad NAME          count a passed or failed check and say so
#   check NAME CMD...           CMD succeeds
#   refuse NAME PATTERN CMD...  CMD exits 1 and its stderr matches PATTERN
#   skip_part WHY               a part that cannot run here (counted)
#   checks_done                 prints the counts; exits 1 on a failure,
#                               77 (ctest's skip) when a part was skipped
passed=0 failed=0 skipped=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
refuse() {
    local name=$1 pat=$2 rc; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
    if [[ $rc == 1 ]] && grep -q -- "$pat" "$TMP/err"; then ok "$name"
    else bad "$name: exit $rc, stderr: $(head -c 600 "$TMP/err")"; fi
}
skip_part() { echo "skip $1"; skipped=$((skipped + 1)); }
checks_done() {
    echo "$passed passed, $failed failed, $skipped skipped"
    [[ $failed == 0 ]] || exit 1
    [[ $skipped == 0 ]] || exit 77   # a part that did not run is a skip, not a pass
    exit 0
}

#!/usr/bin/env bash
# lint.sh — two limits of the code style, checked on every C source and
# header under ir/ frontend/ passes/ codegen/ runtime/ cli/ and tests/:
#
#   - no line longer than 100 columns (characters of UTF-8 text, a tab to
#     the next multiple of 8);
#   - no function longer than 80 lines, from its opening brace to its
#     closing one.  Every function of gradc opens with a brace alone in
#     column 0 and closes with one in column 0, which is how it is found.
#
# A violation is printed as FILE:LINE with what to do: wrap the line, or
# split the function into named helpers.  An optional tests/scripts/lint.allow
# ("FILE COUNT" lines) lets a file keep up to COUNT old violations, counts
# that may only go down; today there is none, every file passes.  It also
# checks itself: a made-up
# file with one of each must fail.  scripts/test.sh runs it before the
# build, and ctest as script/lint.
#
# usage: bash tests/scripts/lint.sh [GRADC_BINARY] [SOURCE_ROOT]
set -u
root=${2:-$(cd "$(dirname "$0")/../.." && pwd)}

lint() {
    python3 - "$@" <<'EOF'
import os, sys

MAX_COLS, MAX_FUNC = 100, 80
root, dirs = sys.argv[1], sys.argv[2:]
allow = {}
allow_path = os.path.join(root, "tests", "scripts", "lint.allow")
if os.path.exists(allow_path):
    for line in open(allow_path):
        if line.strip() and not line.startswith("#"):
            name, count = line.split()
            allow[name] = int(count)
found = {}
for d in dirs:
    for dp, dn, fn in os.walk(os.path.join(root, d)):
        dn.sort()
        for f in sorted(fn):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dp, f)
            rel = os.path.relpath(path, root)
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().split("\n")
            start = None
            for i, line in enumerate(lines, 1):
                cols = len(line.expandtabs(8))
                if cols > MAX_COLS:
                    found.setdefault(rel, []).append(
                        f"{rel}:{i}: line of {cols} columns, over {MAX_COLS}: wrap it")
                if line == "{":
                    start = i
                elif line.startswith("}") and start is not None:
                    n = i - start + 1
                    if n > MAX_FUNC:
                        found.setdefault(rel, []).append(
                            f"{rel}:{start}: function of {n} lines, over {MAX_FUNC}: "
                            f"split it into named helpers")
                    start = None
bad = allowed = 0
for rel, msgs in sorted(found.items()):
    if len(msgs) <= allow.get(rel, 0):
        allowed += len(msgs)
        continue
    for m in msgs:
        print(m)
    if rel in allow:
        print(f"{rel}: {len(msgs)} violations, lint.allow allows {allow[rel]}")
    bad += len(msgs)
for rel, n in sorted(allow.items()):
    if len(found.get(rel, [])) < n:
        print(f"note: {rel} has {len(found.get(rel, []))} violations now; lower its count in "
              f"tests/scripts/lint.allow to that")
if bad:
    print(f"lint: {bad} violation(s)")
    sys.exit(1)
print(f"lint: no line over {MAX_COLS} columns, no function over {MAX_FUNC} lines"
      + (f" ({allowed} old ones allowed by tests/scripts/lint.allow)" if allowed else ""))
EOF
}

# The lint must be able to fail: one long line and one long function.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/ir"
{
    printf 'int f(void)\n{\n'
    for _ in $(seq 80); do printf '    x();\n'; done
    printf '}\nint y = %0101d;\n' 0
} > "$tmp/ir/x.c"
out=$(lint "$tmp" ir)
if [[ $? == 0 ]] || ! grep -q 'ir/x.c:2: function of 82 lines' <<< "$out" ||
    ! grep -q 'ir/x.c:84: line of 110 columns' <<< "$out"; then
    echo "FAIL: the lint passed a function of 82 lines and a line of 110 columns:"
    echo "$out"
    exit 1
fi

lint "$root" ir frontend passes codegen runtime cli tests

#!/usr/bin/env bash
# cli_docs.sh — docs/cli.md covers the whole command line: every command of
# `gradc --help` (the table in cli/commands.c) has a section headed
# "## gradc COMMAND", and every flag that `gradc COMMAND --help` lists (the
# rows of the command's flag table, cli/flags.h) is named in that section.
# It then checks that it can fail: a copy of the docs without one section,
# and one without one flag, must each be refused.
#
#   bash tests/scripts/cli_docs.sh GRADC_BINARY SOURCE_ROOT
set -uo pipefail

GRADC=${1:?usage: cli_docs.sh GRADC_BINARY SOURCE_ROOT}
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
DOC=$SRC/docs/cli.md
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

commands() { "$GRADC" --help | awk '/^commands:/ {on = 1; next} /^$/ {on = 0} on {print $1}'; }
# the flags of a command's --help: the first word of every "  -x" line
flags() { "$GRADC" "$1" --help | sed -n 's/^  \(-[-A-Za-z0-9]*\).*/\1/p' | sort -u; }
# the text of "## gradc CMD" up to the next "## " heading
section() { awk -v h="## gradc $2" '$0 == h || index($0, h " ") == 1 {on = 1; next}
                                    /^## / {on = 0} on' "$1"; }

# check DOC: prints what is missing; exit status 0 when nothing is
check() {
    local doc=$1 missing=0 cmd flag n=0
    for cmd in $(commands); do
        n=$((n + 1))
        section "$doc" "$cmd" >"$TMP/section"
        if [[ ! -s $TMP/section ]]; then
            echo "  docs/cli.md has no section '## gradc $cmd'"; missing=1; continue
        fi
        for flag in $(flags "$cmd"); do
            grep -qE -- "(^|[^-A-Za-z0-9])$flag([^-A-Za-z0-9]|$)" "$TMP/section" ||
                { echo "  section 'gradc $cmd' does not name $flag"; missing=1; }
        done
    done
    [[ $n -ge 10 ]] || { echo "  only $n commands in gradc --help"; missing=1; }
    return $missing
}

check "$DOC" || { echo "FAIL: docs/cli.md lags the command line (above)"; exit 1; }
echo "ok   every command has a section and every flag of its --help is in it"

# the check can fail: drop the section of `run`, then one flag of `check`
awk '/^## gradc run/ {skip = 1; next} /^## / {skip = 0} !skip' "$DOC" >"$TMP/nosection.md"
if check "$TMP/nosection.md" >/dev/null; then echo "FAIL: a missing section passed"; exit 1; fi
sed 's/--params//g' "$DOC" >"$TMP/noflag.md"
if check "$TMP/noflag.md" >/dev/null; then echo "FAIL: a missing flag passed"; exit 1; fi
echo "ok   a missing section and a missing flag are refused"

#!/usr/bin/env bash
# layering.sh — the dependencies of the README, checked on every #include.
#
#     cli -> runtime -> codegen -> passes -> ir <- frontend
#
# A file may include headers of its own folder and of the folders below it
# on that line: ir nothing else; frontend ir; passes ir; codegen passes, ir;
# runtime codegen, passes, ir; cli all of them and frontend (only the cli
# loads model files: cli/train_model.c hands the runtime an IrGraph).  The
# LLVM C API (<llvm-c/...>) belongs to codegen alone.  A quoted include is
# resolved as the compiler does: the including file's folder first, then the
# include paths of CMakeLists.txt (the source root and ir/).  tests/ may
# include anything.
#
# It also checks itself: a made-up tree with one crossing must fail.
# scripts/test.sh runs it before the build, and ctest as script/layering.
#
# usage: bash tests/scripts/layering.sh [GRADC_BINARY] [SOURCE_ROOT]
set -u
root=${2:-$(cd "$(dirname "$0")/../.." && pwd)}

check() {
    python3 - "$1" <<'EOF'
import os, re, sys

root = sys.argv[1]
below = {
    "ir": [],
    "frontend": ["ir"],
    "passes": ["ir"],
    "codegen": ["passes", "ir"],
    "runtime": ["codegen", "passes", "ir"],
    "cli": ["runtime", "codegen", "passes", "ir", "frontend"],
}
include = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

def folder_of(path):
    rel = os.path.relpath(path, root)
    return rel.split(os.sep)[0] if os.sep in rel else None

def resolve(src, name):
    for base in (os.path.dirname(src), root, os.path.join(root, "ir")):
        p = os.path.join(base, name)
        if os.path.isfile(p):
            return folder_of(os.path.realpath(p))
    return None

bad = 0
for layer in below:
    d = os.path.join(root, layer)
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not f.endswith((".c", ".h", ".def")):
            continue
        src = os.path.join(d, f)
        with open(src, encoding="utf-8", errors="replace") as fh:
            for ln, line in enumerate(fh, 1):
                m = include.match(line)
                if not m:
                    continue
                kind, name = m.groups()
                if kind == "<":
                    to = "llvm" if name.startswith("llvm-c/") else None
                    ok = to is None or layer == "codegen"
                else:
                    to = resolve(src, name)
                    if to is None:
                        print(f"{layer}/{f}:{ln}: cannot find \"{name}\" (the source root, "
                              f"{layer}/ or ir/)")
                        bad += 1
                        continue
                    ok = to == layer or to in below[layer] or to not in below
                if not ok:
                    allowed = ", ".join(below[layer]) or "nothing"
                    print(f"{layer}/{f}:{ln}: includes {name} ({to}/), but {layer}/ may use "
                          f"only {allowed} (README: cli -> runtime -> codegen -> passes -> ir "
                          f"<- frontend)")
                    bad += 1
if bad:
    print(f"layering: {bad} include(s) cross the layering; move the code to the layer that "
          f"may use it, or pass the data in from above")
    sys.exit(1)
print("layering: every include follows cli -> runtime -> codegen -> passes -> ir <- frontend")
EOF
}

# The check must be able to fail: a runtime file that includes the frontend.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/runtime" "$tmp/frontend" "$tmp/ir"
echo '#include "ir/ir.h"' > "$tmp/frontend/fe.h"
touch "$tmp/ir/ir.h"
printf '#include "ir.h"\n#include "frontend/fe.h"\n' > "$tmp/runtime/rt_x.c"
if out=$(check "$tmp") || ! grep -q 'runtime/rt_x.c:2: includes frontend/fe.h' <<< "$out"; then
    echo "FAIL: the layering check passed a runtime file that includes the frontend:"
    echo "$out"
    exit 1
fi

check "$root"

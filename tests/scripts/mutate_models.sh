#!/usr/bin/env bash
# Mutation robustness: every model in models/ is mutated a few hundred ways
# (bytes deleted, duplicated or replaced, numbers changed, keys renamed,
# lists truncated) with a fixed seed; `gradc check` must exit 0 or 1 on each,
# never die by a signal (exit > 128) or report an internal error (2).
#   usage: mutate_models.sh GRADC SOURCE_ROOT
set -u
gradc=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$root/models" "$tmp" <<'PY'
import json, os, random, sys
src, out = sys.argv[1], sys.argv[2]
rng = random.Random(1234)
def mutate_text(t):
    i = rng.randrange(len(t)); j = min(len(t), i + rng.randrange(1, 40))
    k = rng.randrange(5)
    if k == 0: return t[:i] + t[j:]                       # delete a span
    if k == 1: return t[:i] + t[i:j] + t[i:]              # duplicate a span
    if k == 2: return t[:i] + rng.choice('{}[],:"0-9e.') + t[i + 1:]
    if k == 3: return t[:i] + str(rng.choice([0, -1, 1 << 40, 3.5, 7])) + t[i:]
    return t[:i]                                           # truncate
def mutate_json(d):
    nodes = []
    def walk(x):
        if isinstance(x, dict):
            nodes.append(x); [walk(v) for v in x.values()]
        elif isinstance(x, list):
            nodes.append(x); [walk(v) for v in x]
    walk(d)
    x = rng.choice(nodes)
    if isinstance(x, dict) and x:
        key = rng.choice(list(x))
        r = rng.randrange(4)
        if r == 0: del x[key]
        elif r == 1: x[key + "x"] = x.pop(key)
        elif r == 2: x[key] = rng.choice([0, -3, 1e9, "n_layers", [], {}, "B*T", None, "x+"])
        else: x[key] = [x[key], x[key]]
    elif isinstance(x, list) and x:
        r = rng.randrange(3)
        if r == 0: x.pop(rng.randrange(len(x)))
        elif r == 1: x.append(rng.choice(x))
        else: x.reverse()
    return d
n = 0
for name in sorted(os.listdir(src)):
    if not name.endswith(".json"): continue
    text = open(os.path.join(src, name)).read()
    for i in range(100):
        t = mutate_text(text) if i % 2 else json.dumps(mutate_json(json.loads(text)))
        open(os.path.join(out, f"{name[:-5]}-{i:03d}.json"), "w").write(t)
        n += 1
print(f"generated {n} mutants", file=sys.stderr)
PY
# mutants of models that extend another ("base") find their base next to them
cp "$root"/models/*.json "$tmp"/
fail=0 n=0 ok=0
for f in "$tmp"/*.json; do
  "$gradc" check "$f" >/dev/null 2>"$tmp/err"
  rc=$?
  n=$((n + 1))
  [[ $rc -eq 0 ]] && ok=$((ok + 1))
  if [[ $rc -ne 0 && $rc -ne 1 ]]; then
    echo "FAIL: gradc check $(basename "$f") exited $rc:" >&2
    head -3 "$tmp/err" >&2
    cp "$f" "$root/tests/fuzz/regress/fuzz_frontend-mutant-$(basename "$f")" 2>/dev/null
    fail=1
  elif [[ $rc -eq 1 ]] && ! grep -q "error" "$tmp/err"; then
    echo "FAIL: gradc check $(basename "$f") exited 1 without an error message" >&2
    fail=1
  fi
done
echo "$n mutants: $ok accepted, $((n - ok)) rejected (status: $([[ $fail == 0 ]] && echo clean || echo FAILURES))"
[[ $n -gt 0 ]] || exit 1
exit $fail

#!/usr/bin/python3
"""vs_pytorch.py — gradc against PyTorch eager, train step by train step, in one run.

For every config and every OpenBLAS core type it runs, alternating, R times:

    gradc            gradc bench MODEL --train --batch B --seq T (its default env)
    torch default    bench/torch_gpt.py with the environment as a user has it
    torch tuned      the same with OMP_WAIT_POLICY=PASSIVE, OPENBLAS_THREAD_TIMEOUT=4,
                     GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

each in its own process, with the same thread count on both sides, and
prints per config the median tokens/s of each, the ratios gradc / PyTorch,
GFLOP/s (the same matmul FLOP count for both sides) and peak RSS, and at the
end gradc's compile time per config, cold (first run, empty cache) and
cached (the later runs).  Runs alternate so
that the noise of this shared machine hits every side alike: read ratios,
not absolute figures.

The core types: the environment's (what OpenBLAS picks or OPENBLAS_CORETYPE
says; recorded from both processes) and SkylakeX, set for both sides.

    bench/vs_pytorch.py --quick              # gpt-mini and gpt-char, small: < 3 minutes
    bench/vs_pytorch.py                      # all four configs (about half an hour)
    bench/vs_pytorch.py --configs gpt-mini --reps 5 --json out.json

Exit status: 0, or 1 when a side could not run (gradc without a train step,
say): the table then says MISSING with the reason, and the other side's
numbers are still printed.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"   # Debian's python3-torch

TUNED = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4",
         "GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"}

# name: (model file, --set overrides, B, T, warmup, timed steps)
CONFIGS = {
    "gpt2-124m-b2t256": ("models/gpt2-small.json", ["context_length=256"], 2, 256, 1, 2),
    "gpt2-124m-b4t64": ("models/gpt2-small.json", [], 4, 64, 1, 2),
    "gpt-mini": ("models/gpt-mini.json", [], 8, 128, 1, 3),
    "gpt-char": ("models/gpt-char.json", [], 4, 256, 1, 3),
}
# --quick: the small models at small batches, few steps.
QUICK = {
    "gpt-mini": ("models/gpt-mini.json", [], 2, 64, 1, 2),
    "gpt-char": ("models/gpt-char.json", [], 2, 64, 1, 2),
}
SIDES = ("gradc", "torch default", "torch tuned")


def base_env(coretype):
    """The caller's environment without any tuning, with the core type set
    (None: leave OpenBLAS's own choice or the caller's OPENBLAS_CORETYPE)."""
    env = {k: v for k, v in os.environ.items() if k not in TUNED}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    # gradc would otherwise pick wider OpenBLAS kernels than PyTorch gets
    # (cli/blas.c); both sides run the same core type.
    env["GRADC_BLAS_AUTO"] = "0"
    return env


def run(cmd, env, timeout):
    """(exit code, stdout + stderr, wall seconds)."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                           cwd=ROOT)
        return p.returncode, p.stdout + p.stderr, time.time() - t0
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout} s", time.time() - t0


def grab(pattern, text, cast=float):
    m = re.search(pattern, text, re.M)
    return cast(m.group(1)) if m else None


def gradc_once(args, cfg, env):
    model, sets, B, T, warmup, steps = cfg
    cmd = [args.gradc, "bench", model, "--train", "--batch", str(B), "--seq", str(T),
           "--warmup", str(warmup), "--steps", str(steps), "--threads", str(args.threads)]
    cmd += [f"--set={kv}" for kv in sets]
    code, out, _ = run(cmd, env, args.timeout)
    if code != 0:
        return {"error": out.strip().splitlines()[-3:] if out.strip() else [f"exit {code}"]}
    return {"tokens_per_s": grab(r"^tokens/s: ([\d.]+)", out),
            "own_gflops": grab(r"^GFLOP/s: ([\d.]+)", out),
            "peak_rss_mib": grab(r"^peak RSS: ([\d.]+) MiB", out),
            "compile_ms": grab(r"^compile: ([\d.]+) ms", out),
            "cache_hit": grab(r"^compile: [\d.]+ ms \((cache hit|compiled)\)", out, str) == "cache hit",
            "blas_core": grab(r"OpenBLAS core (\w+)", out, str),
            "top": "\n".join(out[out.find("top kernels"):].splitlines()[:8])}


def torch_once(args, cfg, env):
    model, sets, B, T, warmup, steps = cfg
    cmd = [PY, os.path.join(ROOT, "bench", "torch_gpt.py"), "--model", model, "--batch", str(B),
           "--seq", str(T), "--warmup", str(warmup), "--steps", str(steps),
           "--threads", str(args.threads)] + [f"--set={kv}" for kv in sets]
    code, out, _ = run(cmd, env, args.timeout)
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
    if code != 0 or not line:
        return {"error": out.strip().splitlines()[-3:] or [f"exit {code}"]}
    return json.loads(line)


def measure(args, name, cfg, coretype, cache_dir):
    """R alternating rounds of the three sides; returns {side: [results]}."""
    res = {s: [] for s in SIDES}
    env = base_env(coretype)
    for rep in range(args.reps):
        genv = dict(env, GRADC_CACHE_DIR=cache_dir)
        res["gradc"].append(gradc_once(args, cfg, genv))
        res["torch default"].append(torch_once(args, cfg, env))
        res["torch tuned"].append(torch_once(args, cfg, dict(env, **TUNED)))
        done = ", ".join(f"{s} {fmt_tps(res[s][-1])}" for s in SIDES)
        print(f"  [{name}, core {coretype or 'env'}, round {rep + 1}/{args.reps}] {done}  "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)", flush=True)
    return res


def fmt_tps(r):
    return "MISSING" if "error" in r else f"{r['tokens_per_s']:.1f} tok/s"


def median(rs, key):
    vals = [r[key] for r in rs if "error" not in r and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(name, cfg, res):
    """One row of the table from the rounds of one config."""
    model, sets, B, T = cfg[:4]
    row = {"config": name, "B": B, "T": T}
    for s in SIDES:
        row[s] = median(res[s], "tokens_per_s")
        row[s + " rss"] = max((r["peak_rss_mib"] for r in res[s] if "error" not in r),
                              default=None)
        errs = [r["error"] for r in res[s] if "error" in r]
        row[s + " error"] = errs[0] if errs else None
    g = [r for r in res["gradc"] if "error" not in r]
    row["compiles"] = [(r["compile_ms"], r["cache_hit"]) for r in g]
    row["gradc core"] = g[0]["blas_core"] if g else None
    t = [r for r in res["torch tuned"] + res["torch default"] if "error" not in r]
    row["torch core"] = t[0]["blas_core"] if t else None
    gflop = t[0]["gflop_per_step"] if t else None
    for s in SIDES:
        row[s + " gflops"] = row[s] * gflop / (B * T) if row[s] and gflop else None
    row["gradc top"] = g[-1]["top"] if g else None
    return row


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def num(x, fmt="{:.1f}"):
    return fmt.format(x) if x is not None else "MISSING"


def print_table(rows, coretype):
    print(f"\n== OpenBLAS core type: {coretype or 'environment default'} (gradc: "
          f"{rows[0]['gradc core'] or '?'}, PyTorch: {rows[0]['torch core'] or '?'})")
    hdr = (f"{'config':<18} {'B':>2} {'T':>4} | {'gradc':>8} {'pt dflt':>8} {'pt tuned':>8} | "
           f"{'vs dflt':>7} {'vs tuned':>8} | {'GFLOP/s gradc/pt tuned':>22} | "
           f"{'peak RSS MiB gradc/pt dflt/pt tuned':>35}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        g, d, t = r["gradc"], r["torch default"], r["torch tuned"]
        gf = f"{num(r['gradc gflops'])} / {num(r['torch tuned gflops'])}"
        rss = " / ".join(num(r[s + " rss"], "{:.0f}") for s in SIDES)
        print(f"{r['config']:<18} {r['B']:>2} {r['T']:>4} | {num(g):>8} {num(d):>8} {num(t):>8} | "
              f"{ratio(g, d):>7} {ratio(g, t):>8} | {gf:>22} | {rss:>35}")
    for r in rows:
        for s in SIDES:
            if r[s + " error"]:
                print(f"MISSING {s} on {r['config']}: " + " / ".join(r[s + " error"]))


def print_compiles(out, names):
    """gradc's compile time per config: the first run (empty cache) and the
    median of the later ones (cache hits), over every core type."""
    print("\ngradc compile (cg_program_compile of the train step, ms): cold / cached")
    for n in names:
        runs = [c for rows in out.values() for r in rows if r["config"] == n
                for c in r["compiles"]]
        cold = [ms for ms, hit in runs if not hit]
        hits = [ms for ms, hit in runs if hit]
        print(f"  {n:<18} {num(cold[0] if cold else None, '{:.0f}'):>8} / "
              f"{num(statistics.median(hits) if hits else None, '{:.0f}')}")


def main():
    ap = argparse.ArgumentParser(description="gradc vs PyTorch train-step throughput")
    ap.add_argument("--gradc", default=os.path.join(ROOT, "build", "gradc"))
    ap.add_argument("--quick", action="store_true", help="small configs, one round: < 3 minutes")
    ap.add_argument("--configs", help="comma-separated names (default: all): " + ",".join(CONFIGS))
    ap.add_argument("--reps", type=int, help="alternating rounds per config (default 3, quick 1)")
    ap.add_argument("--coretypes", default="env,SkylakeX",
                    help="OpenBLAS core types, 'env' for the environment's (default env,SkylakeX)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per process")
    ap.add_argument("--kernels", action="store_true", help="print gradc's top kernels per config")
    ap.add_argument("--json", help="also write every measurement here")
    args = ap.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)
    table = QUICK if args.quick else CONFIGS
    names = args.configs.split(",") if args.configs else list(table)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown config {unknown}; known: {', '.join(CONFIGS)}")
    if not os.access(args.gradc, os.X_OK):
        ap.error(f"{args.gradc} is not an executable: build gradc (scripts/build.sh) or pass --gradc")

    cache = tempfile.mkdtemp(prefix="gradc-bench-cache-")
    out, missing, t0 = {}, False, time.time()
    print(f"gradc vs PyTorch eager, train step (AdamW), {args.threads} threads each, "
          f"{args.reps} alternating round(s); median tokens/s")
    try:
        for core in args.coretypes.split(","):
            coretype = None if core == "env" else core
            rows = []
            for n in names:
                cfg = table.get(n, CONFIGS[n])
                rows.append(summarize(n, cfg, measure(args, n, cfg, coretype, cache)))
            print_table(rows, coretype)
            if args.kernels:
                for r in rows:
                    print(f"\n{r['config']} (gradc, core {core}): {r['gradc top']}")
            missing |= any(r[s + " error"] for r in rows for s in SIDES)
            out[core] = rows
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print_compiles(out, names)
    print(f"\ntotal {time.time() - t0:.0f} s.  ratios: gradc tokens/s / PyTorch tokens/s; "
          "GFLOP/s: 3 x matmul FLOPs of the model per token (same count for both sides)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if missing:
        print("some measurements are MISSING (see above): the comparison is incomplete")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

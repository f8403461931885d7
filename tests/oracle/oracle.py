"""oracle.py — gradc against PyTorch on the same weights and the same batch.

Two checks (tests/oracle/README.md has the tolerances and why):

  model     python3 oracle.py --gradc BIN --model models/gpt-mini.json [--set k=v ...]
            Draws weights and a batch (seeded), writes them to a safetensors
            file, runs `gradc oracle-step` (forward, then 3 train steps) and
            the same steps in PyTorch (gpt_torch.py, float32), and compares
            logits, loss, every gradient of step 1, the loss of every step and
            every parameter after the last AdamW step.  A float64 PyTorch run
            gives the noise floor: how far float32 PyTorch itself is from
            exact arithmetic, printed next to gradc's error.
  dropout   python3 oracle.py --gradc BIN --dropout
            gradc's dropout by its statistics (dropout.json): the fraction
            zeroed is p within 5 standard deviations, kept values are scaled
            by exactly 1/(1-p), a step gives the same mask every time and
            another step another mask; PyTorch's dropout is measured the same
            way for comparison.

The error of a tensor a against the reference b is

    err(a, b) = max_i |a_i - b_i| / max(max_i |b_i|, least)

(relative to the tensor's largest magnitude, so that elements near zero do
not dominate, as `gradc verify` does; least is 0, except for gradients:
1e-3 of the largest gradient of the model, see least_of).  A tensor passes when
err(gradc, PyTorch f32) <= TOL[check], or when gradc is as accurate as
PyTorch itself: err(gradc, PyTorch f64) <= 2 err(PyTorch f32, PyTorch f64).
The params after the AdamW steps are judged on their well-conditioned
elements only (see ill_conditioned); the others, whose update follows the
sign of rounding noise, must stay within the most AdamW can move them.
Exit status: 0 every check passed, 1 a check failed, 3 gradc could not run
(a missing feature or a crash, reported as MISSING with gradc's message).
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch  # noqa: E402
import safetensors_io as st  # noqa: E402

# Tolerances on err(gradc, PyTorch float32); README.md explains the choice.
TOL = {"logits": 1e-5, "loss": 1e-5, "grad": 1e-4, "grad norm": 1e-5, "step loss": 1e-5,
       "after": 1e-4}
IGNORE_INDEX = -100
EXIT_MISSING = 3


def err(a, b, least=0.0):
    """max|a - b| / max(max|b|, least); infinite when a has a NaN or Inf
    that b lacks or the shapes differ."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    diff = np.abs(a - b)
    if not np.all(np.isfinite(diff)):
        return math.inf
    scale = max(float(np.max(np.abs(b), initial=0.0)), least)
    return float(np.max(diff, initial=0.0) / scale) if scale > 0 else float(np.max(diff, initial=0.0))


def least_of(tensors):
    """The smallest scale a tensor of a check is judged against: 1e-3 of the
    largest magnitude among all of them.  A gradient that is zero in exact
    arithmetic (the key bias's: softmax ignores a constant added to a row of
    scores) holds only rounding noise, and relative to itself any two
    float32 runs differ by 100%."""
    return 1e-3 * max(float(np.max(np.abs(np.asarray(t, np.float64)), initial=0.0))
                      for t in tensors)


# ---------------------------------------------------------------- weights and batch

def draw_weights(model, rng):
    """Weights with realistic activations rather than the init's near-uniform
    softmaxes: matrices N(0, 1/fan_in), embeddings N(0, 0.3^2), norm scales
    1 + N(0, 0.1^2), shifts and biases N(0, 0.05^2)."""
    w = {}
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.endswith(".scale"):
            v = 1 + 0.1 * rng.standard_normal(shape)
        elif name.endswith((".shift", ".bias")):
            v = 0.05 * rng.standard_normal(shape)
        elif "emb" in name:
            v = 0.3 * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape) / math.sqrt(shape[1])
        w[name] = v.astype(np.float32)
    return w


def draw_batch(cfg, B, T, rng, n_ignored):
    idx = rng.integers(0, cfg["vocab_size"], (B, T)).astype(np.int32)
    targets = rng.integers(0, cfg["vocab_size"], (B, T)).astype(np.int32)
    flat = targets.reshape(-1)
    flat[rng.choice(flat.size, size=n_ignored, replace=False)] = IGNORE_INDEX
    return idx, targets


def lr_schedule(steps, peak, warmup):
    """The book's schedule (appendix D): linear warmup from peak/10 over
    `warmup` steps, then cosine decay to peak/10 over the remaining ones."""
    initial = min_lr = peak / 10
    out = []
    for s in range(steps):
        if s < warmup:
            out.append(initial + s * (peak - initial) / warmup)
        else:
            progress = (s - warmup) / max(1, steps - warmup)
            out.append(min_lr + (peak - min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
    return np.array(out, np.float32)


# ---------------------------------------------------------------- PyTorch

def torch_run(cfg, weights, idx, targets, lrs, clip, wd, dtype):
    """Forward, then len(lrs) AdamW steps on the same batch.  clip None:
    choose it as half the first step's gradient norm, so clipping acts."""
    torch.manual_seed(0)
    model = gpt_torch.GPTModel(cfg).to(dtype)
    model.load_state_dict({k: torch.from_numpy(v).to(dtype) for k, v in weights.items()},
                          strict=False)
    idx_t, tgt_t = torch.from_numpy(idx).long(), torch.from_numpy(targets).long()
    logits = model(idx_t)
    loss = gpt_torch.loss_fn(logits, tgt_t, IGNORE_INDEX)
    loss.backward()
    names = gpt_torch.param_names(model)
    params = dict(model.named_parameters())
    out = {"logits": logits.detach().numpy(), "loss": loss.item(),
           "grad": {n: params[n].grad.detach().numpy().copy() for n in names}}
    norm = math.sqrt(sum(float((params[n].grad.double() ** 2).sum()) for n in names))
    clip = 0.5 * norm if clip is None else clip
    opt = torch.optim.AdamW(model.parameters(), lr=float(lrs[0]), betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=wd)
    losses = []
    for s, lr in enumerate(lrs):
        if s > 0:
            opt.zero_grad()
            loss = gpt_torch.loss_fn(model(idx_t), tgt_t, IGNORE_INDEX)
            loss.backward()
        losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip)
        for g in opt.param_groups:
            g["lr"] = float(lr)
        opt.step()
    out.update(step_losses=losses, grad_norm=norm, clip=clip, lrs=list(lrs),
               after={n: params[n].detach().numpy().copy() for n in names})
    return out


# ---------------------------------------------------------------- gradc

def run_gradc(args, cmd):
    """Runs gradc; returns (ok, output text)."""
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    text = p.stdout + p.stderr
    if args.verbose:
        print(f"$ {' '.join(cmd)}\n{text}(exit {p.returncode}, {time.time() - t0:.1f} s)")
    return p.returncode == 0, text


def missing(text, what):
    print(f"MISSING: gradc could not {what}:")
    for line in text.strip().splitlines()[-6:]:
        print(f"    {line}")
    return EXIT_MISSING


# ---------------------------------------------------------------- the model check

class Table:
    """Collects one row per tensor: err against PyTorch float32 and, with the
    float64 run, the noise floor (PyTorch float32 against float64) and
    gradc's own error against float64.  A tensor passes when err <= TOL, or
    when gradc is as accurate as PyTorch itself: its error against float64
    is at most FLOOR_FACTOR times PyTorch float32's (README.md: AdamW's
    updates of near-zero gradients are ill-conditioned in any float32
    implementation)."""

    FLOOR_FACTOR = 2.0

    def __init__(self):
        self.rows, self.failed = [], []

    def add_after(self, name, res, ref, ref64, ill, bound):
        """A param after the AdamW steps: err over the well-conditioned
        elements (ill False) against TOL; the ill-conditioned ones, whose
        gradient is within ILL_FACTOR of the float32 gradient noise, only
        against the most two AdamW runs can differ by (bound, absolute, from
        gradc's own result to float64's)."""
        res, ref = np.asarray(res, np.float64), np.asarray(ref, np.float64)
        if res.shape != ref.shape or not np.all(np.isfinite(res)):
            e, wild = math.inf, math.inf
        else:
            diff = np.abs(res - ref)
            e = float(np.max(diff[~ill], initial=0.0)) / \
                max(float(np.max(np.abs(ref), initial=0.0)), 1e-30)
            wild = float(np.max(np.abs(res - ref64)[ill], initial=0.0))
        floor = err(ref, ref64)
        e64 = err(res, ref64)
        if e <= TOL["after"] and wild <= bound:
            verdict = "ok" if not ill.any() else f"ok ({100 * ill.mean():.2f}% ill-cond.)"
        else:
            verdict = "FAIL"
            self.failed.append(f"after {name}: err {e:.3g} > {TOL['after']:g} on the "
                               f"well-conditioned elements, or {wild:.3g} > {bound:.3g} on "
                               f"the {int(ill.sum())} ill-conditioned ones")
        self.rows.append(("after", name, e, floor, e64, verdict))

    def add(self, check, name, res, ref, ref64, least=0.0):
        e = err(res, ref, least)
        floor = e64 = None
        if ref64 is not None:
            floor, e64 = err(ref, ref64, least), err(res, ref64, least)
        if e <= TOL[check]:
            verdict = "ok"
        elif e64 is not None and e64 <= self.FLOOR_FACTOR * floor:
            verdict = "ok (floor)"
        else:
            verdict = "FAIL"
            self.failed.append(f"{check} {name}: err {e:.3g} > {TOL[check]:g}")
        self.rows.append((check, name, e, floor, e64, verdict))

    def worst(self, check):
        rows = [r for r in self.rows if r[0] == check]
        return max(rows, key=lambda r: r[2]) if rows else None

    def print(self, verbose):
        print(f"  {'check':<10} {'tensor':<48} {'err':>9} {'floor':>9} {'vs f64':>9}  tol")
        for check in TOL:
            rows = [r for r in self.rows if r[0] == check]
            shown = rows if verbose else [self.worst(check)] if rows else []
            for c, name, e, floor, e64, verdict in shown:
                label = name if verbose or len(rows) == 1 else f"{name} (worst of {len(rows)})"
                fl = "-" if floor is None else f"{floor:.3g}"
                ef = "-" if e64 is None else f"{e64:.3g}"
                print(f"  {c:<10} {label:<48} {e:>9.3g} {fl:>9} {ef:>9}  {TOL[c]:g} {verdict}")


def compare(res, ref, ref64, names, steps):
    """The table of every check whose gradc result is in res (a forward-only
    run has logits only)."""
    t = Table()
    r64 = ref64 or {}
    t.add("logits", "logits", res["logits"], ref["logits"], r64.get("logits"))
    if "loss.1" not in res:
        return t
    t.add("loss", "loss", res["loss.1"], ref["loss"], r64.get("loss"))
    least = least_of(ref["grad"].values())
    for n in names:
        t.add("grad", f"grad.{n}", res[f"grad.{n}"], ref["grad"][n],
              r64["grad"][n] if r64 else None, least)
    if "grad_norm" in res:   # an output of the train step when it clips
        t.add("grad norm", "grad_norm", res["grad_norm"], ref["grad_norm"],
              r64.get("grad_norm"))
    for s in range(steps):
        t.add("step loss", f"loss.{s + 1}", res[f"loss.{s + 1}"], ref["step_losses"][s],
              r64["step_losses"][s] if r64 else None)
    for n in names:
        if not r64:
            t.add("after", f"after.{n}", res[f"after.{n}"], ref["after"][n], None)
            continue
        ill = ill_conditioned(res[f"grad.{n}"], ref["grad"][n], r64["grad"][n])
        t.add_after(f"after.{n}", res[f"after.{n}"], ref["after"][n], r64["after"][n], ill,
                    adam_bound(ref["lrs"]))
    return t


# AdamW's update of an element is lr * m^/(sqrt(v^) + eps), about lr * sign(g)
# where |g| is well above eps; an error d in g moves it by about lr * d / |g|.
# Where |g| >= ILL_FACTOR * (the tensor's float32 gradient noise), the noise
# moves each update by at most lr / ILL_FACTOR: 1.65e-6 over the three
# updates (sum of lr 1.65e-3), far below TOL["after"] of weights of size
# 0.1 and more.  Below it the update's direction is the noise's, in any
# float32 implementation (README.md).
ILL_FACTOR = 1000.0


def ill_conditioned(g_gradc, g32, g64):
    """Elements whose step-1 gradient is within ILL_FACTOR of its float32
    noise: the larger of |g - g64| of PyTorch float32 and of gradc there."""
    g64 = np.asarray(g64, np.float64)
    noise = np.maximum(np.abs(np.asarray(g32, np.float64) - g64),
                       np.abs(np.asarray(g_gradc, np.float64) - g64))
    return np.abs(g64) < ILL_FACTOR * noise


def adam_bound(lrs):
    """The most two AdamW runs can put one element apart after these steps:
    each update's |m^ / sqrt(v^)| is at most sqrt(sum w_i^2 / v_i) (Cauchy-
    Schwarz over the bias-corrected weights w of m and v of v), 1.007 for
    three steps at betas 0.9/0.999, so each side moves at most that times lr
    per step (the weight decay is the same on both sides up to rounding)."""
    b1, b2, s = 0.9, 0.999, len(lrs)
    w = [(1 - b1) * b1 ** (s - 1 - i) / (1 - b1 ** s) for i in range(s)]
    v = [(1 - b2) * b2 ** (s - 1 - i) / (1 - b2 ** s) for i in range(s)]
    ratio = math.sqrt(sum(wi * wi / vi for wi, vi in zip(w, v)))
    return 2 * ratio * float(sum(lrs)) * 1.01


def gradc_step(args, tmp, weights, idx, targets, lrs, clip):
    """gradc's forward and train steps: (results or None, gradc's output,
    whether only the forward ran because the train step is missing)."""
    inp, outp = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
    base = [args.gradc, "oracle-step", args.model, "--in", inp, "--out", outp] + \
        [f"--set={kv}" for kv in args.set]
    st.save(inp, dict(weights, idx=idx, targets=targets, lr=lrs))
    ok, text = run_gradc(args, base + ["--steps", str(args.steps), "--clip", repr(clip),
                                       "--weight-decay", repr(args.weight_decay)])
    if ok:
        return st.load(outp)[0], text, False
    if "needs the autodiff and optimizer passes" not in text:
        return None, text, False
    st.save(inp, dict(weights, idx=idx))   # the forward alone, to check what exists
    ok, fwd_text = run_gradc(args, base)
    return (st.load(outp)[0] if ok else None), (text if ok else fwd_text), True


def model_check(args):
    sets = dict(kv.split("=", 1) for kv in args.set)
    cfg = gpt_torch.load_config(args.model, sets)
    if cfg["drop_rate"] != 0:
        print("oracle: the parity check needs --set drop_rate=0 (dropout is checked by "
              "--dropout)")
        return 1
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(0)
    names = gpt_torch.param_names(gpt_torch.GPTModel(cfg))
    weights = draw_weights(gpt_torch.GPTModel(cfg), rng)
    idx, targets = draw_batch(cfg, args.batch, args.seq, rng, n_ignored=2)
    lrs = lr_schedule(args.steps, args.peak_lr, warmup=max(1, args.steps - 1))
    print(f"oracle: {args.model} {' '.join(args.set)}  B={args.batch} T={args.seq}  "
          f"{sum(v.size for v in weights.values()):,} params  steps={args.steps} "
          f"lr={', '.join(f'{x:.3g}' for x in lrs)}")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    ref = torch_run(cfg, weights, idx, targets, lrs, None, args.weight_decay, torch.float32)
    print(f"pytorch float32: loss {ref['loss']:.6f}, grad norm {ref['grad_norm']:.4g} -> clip "
          f"{ref['clip']:.4g} ({time.time() - t0:.1f} s)")
    ref64 = None
    if not args.no_f64:
        ref64 = torch_run(cfg, {k: v.astype(np.float64) for k, v in weights.items()}, idx,
                          targets, lrs, ref["clip"], args.weight_decay, torch.float64)
    with tempfile.TemporaryDirectory(prefix="gradc-oracle-") as tmp:
        t0 = time.time()
        res, text, forward_only = gradc_step(args, tmp, weights, idx, targets, lrs, ref["clip"])
    if res is None:
        return missing(text, "run the forward and train steps")
    print(f"gradc: {time.time() - t0:.1f} s")
    table = compare(res, ref, ref64, names, args.steps)
    table.print(args.verbose)
    if table.failed:
        print("FAIL: " + "; ".join(table.failed[:8]))
        return 1
    if forward_only:
        print("forward PASS; the train-step checks (loss, gradients, AdamW) did not run:")
        return missing(text, "build the train step")
    print("PASS")
    return 0


# ---------------------------------------------------------------- the dropout check

def dropout_gradc(args, tmp, x, p, step):
    inp, outp = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
    st.save(inp, {"x": x, "step": np.array([step], np.int32)})
    ok, text = run_gradc(args, [args.gradc, "oracle-step", args.dropout_graph, "--set",
                                f"p={p}", "--set", f"n={x.size}", "--in", inp, "--out", outp])
    return st.load(outp)[0]["y"] if ok else text


def dropout_stats(name, x, y, p):
    """Prints and checks one mask: fraction zeroed and the kept scale."""
    n, zero = x.size, (y == 0)
    frac, sd = zero.mean(), math.sqrt(p * (1 - p) / x.size)
    kept = ~zero
    scale = (y[kept].astype(np.float64) / x[kept]) if kept.any() else np.array([0.0])
    scale_err = float(np.max(np.abs(scale * (1 - p) - 1)))
    ok = abs(frac - p) <= 5 * sd and scale_err <= 1e-6
    print(f"  {name:<8} p={p:<5} zeroed {frac:.5f} ({(frac - p) / sd:+.2f} sd of {n:,})  "
          f"kept x (1-p) / x within {scale_err:.2g} of 1  {'ok' if ok else 'FAIL'}")
    return ok


def dropout_check(args):
    rng = np.random.default_rng(args.seed)
    n = 1 << 20
    x = (1 + rng.random(n)).astype(np.float32)   # in [1, 2): never zero
    ok = True
    print(f"dropout statistics over {n:,} elements")
    with tempfile.TemporaryDirectory(prefix="gradc-dropout-") as tmp:
        for p in (0.1, 0.5):
            y1 = dropout_gradc(args, tmp, x, p, 1)
            if isinstance(y1, str):
                return missing(y1, "run the dropout graph")
            ok &= dropout_stats("gradc", x, y1, p)
            yt = torch.nn.functional.dropout(torch.from_numpy(x), p, training=True).numpy()
            dropout_stats("pytorch", x, yt, p)
            again, y2 = dropout_gradc(args, tmp, x, p, 1), dropout_gradc(args, tmp, x, p, 2)
            same, differ = np.array_equal(again, y1), float(np.mean((y1 == 0) != (y2 == 0)))
            expect = 2 * p * (1 - p)
            good = same and abs(differ - expect) <= 5 * math.sqrt(expect * (1 - expect) / n)
            print(f"  gradc    p={p:<5} same step: {'same mask' if same else 'DIFFERENT mask'}; "
                  f"next step: masks differ at {differ:.4f} (expected {expect:.4f})  "
                  f"{'ok' if good else 'FAIL'}")
            ok &= good
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


# PyTorch here runs its matmuls on OpenBLAS's own choice of kernels (it is
# loaded by `import torch`).  gradc would switch a generic choice to wider
# kernels at startup (cli/blas.c), which sum in another order; the oracle
# compares the models, so both sides use the same kernels.
os.environ.setdefault("GRADC_BLAS_AUTO", "0")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gradc", required=True, help="the gradc binary")
    ap.add_argument("--model", help="a gradc model file (the parity check)")
    ap.add_argument("--set", action="append", default=[], help="config override k=v")
    ap.add_argument("--dropout", action="store_true", help="the dropout statistics check")
    ap.add_argument("--dropout-graph", default=os.path.join(here, "dropout.json"))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--peak-lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 noise floor")
    ap.add_argument("-v", "--verbose", action="store_true", help="every tensor, gradc's output")
    args = ap.parse_args()
    if args.dropout:
        return dropout_check(args)
    if not args.model:
        ap.error("give --model FILE or --dropout")
    return model_check(args)


if __name__ == "__main__":
    sys.exit(main())

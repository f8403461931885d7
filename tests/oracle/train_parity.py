"""train_parity.py — `gradc train` against the same training loop in PyTorch.

oracle.py checks one batch: logits, gradients and three AdamW steps on it.
This checks the loop around the train step over many updates: the sliding
windows and batches of the text, the step and lr inputs of every update, the
weights and AdamW moments carried from one update to the next, the linear
warmup, clipping.  A bug in any of them (a stale batch, a moment not written
back, lr off by one step) leaves oracle.py green and shows up here.

How:
  1. gradc writes its initial weights: one update at lr 1e-30 moves no
     weight by more than ~1e-30 (a zero becomes +-1e-30), so the checkpoint
     after it holds the init.
  2. gradc trains N updates with --no-shuffle and drop_rate 0 (batches in
     text order, no randomness): its progress lines give the loss of every
     update, its checkpoint the weights after the last.
  3. PyTorch (tests/oracle/gpt_torch.py) loads the init, cuts the same text
     into the same windows (the text's characters are the ids of gradc's char
     tokenizer, taken from `gradc tokenize`), and runs the same N updates with
     torch.optim.AdamW, the same warmup and clip_grad_norm_.
  4. Every update's loss must agree to 2e-3 (gradc prints 3 decimals), and
     every weight after N updates to 2e-4 of its largest magnitude
     (float32 rounding grows over N updates of Adam; a wrong step is ~1e-1).

usage: train_parity.py --gradc BIN --text FILE [--steps N] [-v]
Exit 0 on agreement, 1 on a mismatch, 3 when gradc could not run.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from gpt_torch import GPTModel, load_config, loss_fn  # noqa: E402
import safetensors_io  # noqa: E402

MODEL = os.path.join(ROOT, "models", "gpt-mini.json")


def gradc(args, *cmd):
    p = subprocess.run([args.gradc, *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"MISSING: gradc {' '.join(cmd[:2])} ... exited {p.returncode}:\n{p.stderr}")
        sys.exit(3)
    return p.stdout


def token_ids(args):
    """The char tokenizer's ids of the whole text, and the vocabulary size."""
    out = gradc(args, "tokenize", "--tokenizer", "char", args.text)
    ids = [int(x) for x in out.split()]
    return ids, max(ids) + 1


def windows(ids, T):
    """The book's loader: for i in range(0, len(ids) - T, T), no shuffle."""
    xs = [ids[i:i + T] for i in range(0, len(ids) - T, T)]
    ys = [ids[i + 1:i + T + 1] for i in range(0, len(ids) - T, T)]
    return torch.tensor(xs), torch.tensor(ys)


def lr_at(step, peak, warmup):
    return peak * (step + 1) / warmup if step < warmup else peak


def train_args(args, vocab, out, steps, lr):
    return ["train", MODEL, *sum((["--set", s] for s in sets(vocab)), []),
            "--tokenizer", "char", "--data", args.text, "--batch", str(args.batch),
            "--seq", str(args.seq), "--steps", str(steps), "--lr", repr(lr),
            "--warmup", str(args.warmup if steps > 1 else 0), "--clip", str(args.clip),
            "--no-shuffle", "--eval-every", "0", "--eval-batches", "1", "--seed", "7",
            "--out", out]


def sets(vocab):
    return [f"vocab_size={vocab}", "n_layers=2", "emb_dim=64", "n_heads=4", "drop_rate=0"]


def torch_run(args, vocab, init, ids):
    cfg = load_config(MODEL, dict(s.split("=") for s in sets(vocab)))
    torch.manual_seed(0)
    model = GPTModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(init[name]))
    cut = int(0.9 * len(ids))   # one char per id: the split by characters
    X, Y = windows(ids[:cut], args.seq)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.1)
    nb = len(X) // args.batch
    losses = []
    for s in range(args.steps):
        b = s % nb
        for g in opt.param_groups:
            g["lr"] = lr_at(s, args.lr, args.warmup)
        opt.zero_grad()
        loss = loss_fn(model(X[b * args.batch:(b + 1) * args.batch]),
                       Y[b * args.batch:(b + 1) * args.batch])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        losses.append(loss.item())
    return losses, {n: p.detach().numpy() for n, p in model.named_parameters()}


# PyTorch here runs its matmuls on OpenBLAS's own choice of kernels (it is
# loaded by `import torch`).  gradc would switch a generic choice to wider
# kernels at startup (cli/blas.c), which sum in another order; the oracle
# compares the models, so both sides use the same kernels.
os.environ.setdefault("GRADC_BLAS_AUTO", "0")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--text", required=True, help="a UTF-8 text file (the training data)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GRADC_CACHE_DIR", os.path.join(tmp, "cache"))
        ids, vocab = token_ids(args)
        gradc(args, *train_args(args, vocab, os.path.join(tmp, "init"), 1, 1e-30), "--quiet")
        init, _ = safetensors_io.load(os.path.join(tmp, "init", "ckpt.safetensors"))
        log = gradc(args, *train_args(args, vocab, os.path.join(tmp, "run"), args.steps, args.lr))
        after, _ = safetensors_io.load(os.path.join(tmp, "run", "ckpt.safetensors"))
    ours = [float(m.group(1)) for m in re.finditer(r"^step +\d+ .*?\| loss ([0-9.]+)", log, re.M)]
    ref, ref_after = torch_run(args, vocab, init, ids)

    bad = []
    if len(ours) != args.steps:
        bad.append(f"gradc printed {len(ours)} losses for {args.steps} updates")
    worst_loss = max((abs(a - b), s) for s, (a, b) in enumerate(zip(ours, ref)))
    if worst_loss[0] > 2e-3:
        bad.append(f"loss of update {worst_loss[1]}: gradc {ours[worst_loss[1]]:.3f}, "
                   f"PyTorch {ref[worst_loss[1]]:.5f}")
    worst_w = (0.0, "")
    for name, b in ref_after.items():
        a = after[name]
        err = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
        worst_w = max(worst_w, (err, name))
        if args.verbose:
            print(f"  {name:44s} {err:.2e}")
    if worst_w[0] > 2e-4:
        bad.append(f"weights after {args.steps} updates: {worst_w[1]} differs by {worst_w[0]:.2e}")
    print(f"train parity: gpt-mini (2 layers, d=64, char vocab {vocab}) on "
          f"{os.path.basename(args.text)}, B={args.batch} T={args.seq}, {args.steps} updates, "
          f"lr {args.lr:g} (warmup {args.warmup}), clip {args.clip:g}")
    print(f"  loss: update 0 {ref[0]:.4f}, update {args.steps - 1} {ref[-1]:.4f} (PyTorch); "
          f"worst |gradc - PyTorch| {worst_loss[0]:.1e} at update {worst_loss[1]} (tol 2e-3)")
    print(f"  weights after the last update: worst error {worst_w[0]:.1e} ({worst_w[1]}) (tol 2e-4)")
    for b in bad:
        print(f"FAIL: {b}")
    if not bad:
        print("PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

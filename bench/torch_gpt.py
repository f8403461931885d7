#!/usr/bin/python3
"""torch_gpt.py — the PyTorch half of bench/vs_pytorch.py: train-step throughput.

Runs the same GPT as gradc (tests/oracle/gpt_torch.py, built from the same
model file and --set overrides) in PyTorch eager mode: W warm-up steps, then
N timed steps of

    forward, cross-entropy loss, backward, clip_grad_norm_(1.0), AdamW step

(AdamW lr 4e-4, weight decay 0.1: the book's settings; dropout at the
model's drop_rate, as gradc's train step) on one random batch of B x T
tokens, and prints one JSON line:

    {"tokens_per_s": ..., "ms_per_step": ..., "gflops": ..., "peak_rss_mib": ...,
     "threads": 2, "blas_core": "SkylakeX", "torch": "1.13.0", ...}

GFLOP/s counts the model's matmul FLOPs (gpt_torch.matmul_flops_per_token,
times 3 for forward + backward), so gradc and PyTorch are measured with the
same yardstick.  Peak RSS is the process's ru_maxrss, PyTorch's import
included.  The environment (OMP_WAIT_POLICY, GLIBC_TUNABLES,
OPENBLAS_CORETYPE, ...) is the caller's: vs_pytorch.py runs this script
under the default and the tuned settings.

    /usr/bin/python3 bench/torch_gpt.py --model models/gpt-mini.json --batch 8 --seq 128
"""
import argparse
import ctypes
import json
import os
import resource
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
import gpt_torch  # noqa: E402


def blas_core():
    """OpenBLAS's kernel family as PyTorch's process loaded it (None if the
    BLAS is not OpenBLAS)."""
    for lib in ("libopenblas.so.0", "libblas.so.3"):
        try:
            f = ctypes.CDLL(lib).openblas_get_corename
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_char_p
        return f().decode()
    return None


def train_step(model, opt, idx, targets):
    opt.zero_grad(set_to_none=True)
    loss = gpt_torch.loss_fn(model(idx), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    return loss


def main():
    ap = argparse.ArgumentParser(description="PyTorch GPT train-step throughput")
    ap.add_argument("--model", required=True)
    ap.add_argument("--set", action="append", default=[], help="config override k=v")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = gpt_torch.load_config(args.model, dict(kv.split("=", 1) for kv in args.set))
    model = gpt_torch.GPTModel(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(cfg["vocab_size"], (args.batch, args.seq), generator=gen)
    targets = torch.randint(cfg["vocab_size"], (args.batch, args.seq), generator=gen)

    for _ in range(args.warmup):
        train_step(model, opt, idx, targets)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step(model, opt, idx, targets)
    wall = time.perf_counter() - t0

    tokens = args.batch * args.seq
    flops = 3 * gpt_torch.matmul_flops_per_token(cfg, args.seq) * tokens
    step_s = wall / args.steps
    print(json.dumps({
        "tokens_per_s": tokens / step_s, "ms_per_step": 1e3 * step_s,
        "gflops": flops / step_s / 1e9, "gflop_per_step": flops / 1e9,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "blas_core": blas_core(),
        "torch": torch.__version__, "loss": float(loss),
        "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()

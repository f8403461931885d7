"""classify_parity.py — `gradc finetune classify` against the book's chapter 6 in PyTorch.

The book ("Build a Large Language Model (From Scratch)", chapter 6) turns a
pretrained GPT into a spam classifier: the output head becomes a
Linear(emb_dim, 2) with bias, the logits of one token of each sequence are
the class scores, and AdamW (lr 5e-5, weight decay 0.1) trains the last
transformer block, the final norm and the head on batches of 8.  This runs
that recipe in PyTorch (tests/oracle/gpt_torch.py, gradc's param names) and
in gradc from the same weights on the same batches, and compares them.

One difference from the book, on purpose: the book reads the logits at
position -1, which is a pad token for every text shorter than the longest;
gradc reads them at the LAST REAL token of each row (the pad tokens after it
cannot reach it through the causal mask, so the result does not depend on
the padding).  The PyTorch side does the same here.

How:
  1. Data: a small synthetic two-class set (ham/spam-like texts drawn from
     two word lists with a fixed seed, lengths varied so that padding and
     the last-token index matter; one val and one test text longer than the
     longest training text, so truncation happens), written as pre-split
     label<TAB>text files.  No download, so the test always runs.
  2. gradc pretrains nothing worth the name: `gradc train` of a 2-layer
     gpt2-small (d=64, GPT-2 BPE vocabulary) for one update writes the
     initial checkpoint that both sides load.
  3. The classifier head's init is gradc's (seeded): one `finetune classify`
     update at lr 1e-30 moves no weight by more than ~1e-30, so its
     checkpoint holds the head gradc starts from (and shows that every other
     param was copied from the initial checkpoint).
  4. gradc fine-tunes with --no-shuffle (batches in file order) and writes
     split/{train,val,test}.tsv, the examples it used; PyTorch reads those,
     tokenizes them with `gradc tokenize` (the same BPE), pads with 50256 to
     the longest training example as the book does, and runs the same loop.
  5. Checks: the loss of every update (log.csv) to 1e-3; train, val and test
     accuracy after each epoch as the same counts of correct examples; every
     trainable weight after the last update to 2e-4 of its largest
     magnitude; every frozen weight unchanged, bit for bit; AdamW moments in
     the checkpoint for the trainable params only.

Two runs: the book's trainable set (the default) and full fine-tuning
(--trainable '*').

usage: classify_parity.py --gradc BIN [--run book|full]... [--epochs N] [-v]
Exit 0 on agreement, 1 on a mismatch, 3 when gradc could not run.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from gpt_torch import GPTModel, load_config  # noqa: E402
import safetensors_io  # noqa: E402

BASE_MODEL = os.path.join(ROOT, "models", "gpt2-small.json")
PAD = 50256                      # <|endoftext|>, the book's pad token
SIZES = ["emb_dim=64", "n_layers=2", "n_heads=4", "context_length=64", "drop_rate=0"]
LOSS_TOL = 1e-3                  # the tolerance on every update's loss
WEIGHT_TOL = 2e-4                # train_parity.py's tolerance on weights after training

# The same OpenBLAS kernels on both sides (see train_parity.py).
os.environ.setdefault("GRADC_BLAS_AUTO", "0")


class GradcFailed(Exception):
    pass


def gradc(args, *cmd):
    p = subprocess.run([args.gradc, *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise GradcFailed(f"gradc {' '.join(cmd[:2])} ... exited {p.returncode}:\n{p.stderr}")
    return p.stdout


# ---- data ------------------------------------------------------------------

HAM = ("hey are you coming to dinner tonight ok see you later call me when you get home "
       "love the game was great sorry i am late meeting moved to tomorrow can you pick up "
       "milk on the way thanks mum said hi what time is the train i will be there soon "
       "did you finish the report lol that was funny good night").split()
SPAM = ("free win winner prize cash claim now urgent txt stop offer award guaranteed "
        "mobile reply won £1000 voucher call 08000930705 ringtone entry draw selected "
        "congratulations bonus credit expires text").split()


def synthetic_rows(rng, n, long_one=False):
    """n (label, text) rows, classes alternating in runs of random length."""
    rows = []
    for i in range(n):
        spam = rng.random() < 0.5
        words = SPAM if spam else HAM
        k = rng.randint(2, 18)
        text = [rng.choice(words) if rng.random() < 0.8 else rng.choice(HAM) for _ in range(k)]
        text[0] = text[0].capitalize()
        if spam and rng.random() < 0.5:
            text[-1] += "!"
        rows.append(("spam" if spam else "ham", " ".join(text)))
    if long_one:   # longer than any training text: truncated to its length
        rows[n // 2] = ("spam", " ".join(rng.choice(SPAM) for _ in range(70)))
    return rows


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for label, text in rows:
            f.write(f"{label}\t{text}\n")


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def unescape(text):
    """A split file's text: \\t \\n \\r \\\\ stand for a tab, a newline, a carriage
    return and a backslash; any other backslash is itself."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def read_tsv(path, split_file=False):
    """(label, text) rows of a TSV; a split file starts with a header line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if split_file:
        if not lines or lines[0] != "label\ttext":
            raise ValueError(f"{path}: the first line is not the header label<TAB>text")
        lines = lines[1:]
    for line in lines:
        label, text = line.split("\t", 1)
        rows.append((label, unescape(text) if split_file else text))
    return rows


def tokenize(args, tmp, texts):
    """GPT-2 BPE ids of each text, from `gradc tokenize` (one file per text)."""
    d = os.path.join(tmp, "tok")
    os.makedirs(d, exist_ok=True)
    files = []
    for i, t in enumerate(texts):
        files.append(os.path.join(d, f"{i:05d}.txt"))
        with open(files[-1], "w", encoding="utf-8") as f:
            f.write(t)
    lines = gradc(args, "tokenize", "--tokenizer", "gpt2", *files).split("\n")
    return [[int(x) for x in line.split()] for line in lines[:len(texts)]]


def encode(ids_list, max_len):
    """The book's SpamDataset: truncate to max_len, pad with 50256; and the
    index of each row's last real token."""
    x = torch.full((len(ids_list), max_len), PAD, dtype=torch.long)
    last = torch.zeros(len(ids_list), dtype=torch.long)
    for i, ids in enumerate(ids_list):
        ids = ids[:max_len]
        x[i, :len(ids)] = torch.tensor(ids)
        last[i] = len(ids) - 1
    return x, last


# ---- the book's chapter 6 ---------------------------------------------------

def classifier(cfg, init, head, n_classes):
    torch.manual_seed(0)
    model = GPTModel(cfg)
    model.out_head = torch.nn.Linear(cfg["emb_dim"], n_classes)
    with torch.no_grad():
        for name, p in model.named_parameters():
            src = head if name.startswith("out_head.") else init
            p.copy_(torch.from_numpy(src[name]))
    return model


def set_trainable(model, run):
    """The book's choice (run 'book') or every param (run 'full')."""
    for p in model.parameters():
        p.requires_grad = run == "full"
    if run == "book":
        for mod in (model.trf_blocks[-1], model.final_norm, model.out_head):
            for p in mod.parameters():
                p.requires_grad = True
    return {n for n, p in model.named_parameters() if p.requires_grad}


def class_logits(model, x, last):
    return model(x)[torch.arange(x.shape[0]), last]        # [B, n_classes]


def evaluate(model, data, batch):
    """The book's calc_loss_loader and calc_accuracy_loader over all batches:
    the mean of the batch losses, and the count of correct predictions."""
    x, last, y = data
    losses, correct = [], 0
    with torch.no_grad():
        for b in range(0, len(y), batch):
            logits = class_logits(model, x[b:b + batch], last[b:b + batch])
            losses.append(torch.nn.functional.cross_entropy(logits, y[b:b + batch]).item())
            correct += int((logits.argmax(-1) == y[b:b + batch]).sum())
    return sum(losses) / len(losses), correct


def torch_run(args, run, cfg, init, head, splits, n_classes):
    model = classifier(cfg, init, head, n_classes)
    trainable = set_trainable(model, run)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    x, last, y = splits["train"]
    nb = len(y) // args.batch                     # the book's train loader drops the last
    losses, evals = [], []
    for _ in range(args.epochs):
        model.train()
        for b in range(nb):
            s = slice(b * args.batch, (b + 1) * args.batch)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(class_logits(model, x[s], last[s]), y[s])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        evals.append({k: evaluate(model, splits[k], args.batch) for k in ("train", "val", "test")})
    return losses, evals, {n: p.detach().numpy() for n, p in model.named_parameters()}, trainable


# ---- gradc's side -------------------------------------------------------------

def finetune_args(args, init_ckpt, files, out, run, extra):
    cmd = ["finetune", "classify", "--init-from", init_ckpt,
           "--train", files["train"], "--val", files["val"], "--test", files["test"],
           "--out", out, "--no-shuffle", "--batch", str(args.batch), "--quiet"]
    if run == "full":
        cmd += ["--trainable", "*"]
    return cmd + extra


def read_log(path):
    """log.csv: the loss of every update, and the eval rows (one per epoch)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [r for r in rows if r.get("loss") not in (None, "")]
    evals = [r for r in rows if r.get("test_acc") not in (None, "")]
    return [float(r["loss"]) for r in steps], evals


# ---- one run ------------------------------------------------------------------

def check_run(args, tmp, run, init_path, files, cfg, bad):
    init, _ = safetensors_io.load(init_path)
    out0 = os.path.join(tmp, run + "-head")
    gradc(args, *finetune_args(args, init_path, files, out0, run,
                               ["--steps", "1", "--lr", "1e-30"]))
    head, _ = safetensors_io.load(os.path.join(out0, "ckpt.safetensors"))
    # Every param but the head comes from the initial checkpoint (an update
    # at lr 1e-30 moves a weight by 1e-30 at most).
    copied = [n for n in init if not n.startswith(("adam.", "out_head."))
              and (n not in head or np.max(np.abs(init[n] - head[n])) > 1e-20)]
    if copied:
        bad.append(f"[{run}] params not copied from the initial checkpoint: {copied[:3]}")

    out = os.path.join(tmp, run)
    gradc(args, *finetune_args(args, init_path, files, out, run,
                               ["--epochs", str(args.epochs), "--lr", repr(args.lr)]))
    ours, our_evals = read_log(os.path.join(out, "log.csv"))
    after, _ = safetensors_io.load(os.path.join(out, "ckpt.safetensors"))

    # The examples gradc used, in its order: the PyTorch batches.
    split_rows = {k: read_tsv(os.path.join(out, "split", f"{k}.tsv"), split_file=True)
                  for k in ("train", "val", "test")}
    for k, rows in split_rows.items():
        if rows != read_tsv(files[k]):
            bad.append(f"[{run}] split/{k}.tsv is not the --{k} file in its order")
    labels = sorted({lab for rows in split_rows.values() for lab, _ in rows})
    texts = [t for k in ("train", "val", "test") for _, t in split_rows[k]]
    ids = tokenize(args, tmp, texts)
    ntr, nva = len(split_rows["train"]), len(split_rows["val"])
    parts = {"train": ids[:ntr], "val": ids[ntr:ntr + nva], "test": ids[ntr + nva:]}
    max_len = min(max(len(i) for i in parts["train"]), cfg["context_length"])
    splits = {}
    for k, rows in split_rows.items():
        x, last = encode(parts[k], max_len)
        splits[k] = (x, last, torch.tensor([labels.index(lab) for lab, _ in rows]))

    ref, ref_evals, ref_after, trainable = torch_run(args, run, cfg, init, head, splits,
                                                     len(labels))
    n = len(ref)
    which = "every param" if run == "full" else "the book's set"
    size = sum(ref_after[t].size for t in trainable)
    print(f"\n[{run}] trainable: {which} ({len(trainable)} tensors, {size} params); "
          f"{ntr} train / {nva} val / {len(split_rows['test'])} test examples, "
          f"padded to {max_len} tokens; {n} updates")
    print("  step   gradc loss   PyTorch loss   |diff|")
    worst = (0.0, -1)
    for s in range(n):
        a = ours[s] if s < len(ours) else float("nan")
        d = abs(a - ref[s])
        worst = max(worst, (d if d == d else float("inf"), s))
        if s < 20 or args.verbose:
            print(f"  {s:4d}   {a:10.6f}   {ref[s]:12.6f}   {d:.1e}")
    print(f"  worst |diff| {worst[0]:.1e} at step {worst[1]} (tolerance {LOSS_TOL:g})")
    if len(ours) != n:
        bad.append(f"[{run}] gradc logged {len(ours)} updates, PyTorch ran {n}")
    if worst[0] > LOSS_TOL:
        bad.append(f"[{run}] loss of step {worst[1]}: gradc {ours[worst[1]]:.6f}, "
                   f"PyTorch {ref[worst[1]]:.6f}")

    print("  epoch  split  examples   gradc correct  PyTorch correct   gradc loss  PyTorch loss")
    if len(our_evals) != len(ref_evals):
        bad.append(f"[{run}] gradc logged {len(our_evals)} evaluations, expected "
                   f"{len(ref_evals)} (one per epoch)")
    for e, (row, refe) in enumerate(zip(our_evals, ref_evals)):
        for k in ("train", "val", "test"):
            m = len(splits[k][2])
            got = round(float(row[f"{k}_acc"]) * m)
            rl, rc = refe[k]
            gl = float(row[f"{k}_loss"])
            print(f"  {e + 1:5d}  {k:5s}  {m:8d}   {got:13d}  {rc:15d}   {gl:10.6f}  {rl:12.6f}")
            if got != rc:
                bad.append(f"[{run}] epoch {e + 1} {k} accuracy: gradc {got}/{m}, "
                           f"PyTorch {rc}/{m}")
            if abs(gl - rl) > LOSS_TOL:
                bad.append(f"[{run}] epoch {e + 1} {k} loss: gradc {gl:.6f}, PyTorch {rl:.6f}")

    worst_w, changed = (0.0, ""), []
    for name, b in ref_after.items():
        a = after.get(name)
        if a is None:
            bad.append(f"[{run}] the checkpoint lacks {name}")
            continue
        if name in trainable:
            err = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
            worst_w = max(worst_w, (err, name))
            if args.verbose:
                print(f"  {name:44s} {err:.2e}")
        elif not np.array_equal(a, b):
            changed.append(name)
    print(f"  trainable weights after the last update: worst error {worst_w[0]:.1e} "
          f"({worst_w[1]}) (tolerance {WEIGHT_TOL:g}); frozen weights changed: {len(changed)}")
    if worst_w[0] > WEIGHT_TOL:
        bad.append(f"[{run}] weights: {worst_w[1]} differs by {worst_w[0]:.2e}")
    if changed:
        bad.append(f"[{run}] frozen params changed: {changed[:3]}")
    moments = {n[len("adam.m."):] for n in after if n.startswith("adam.m.")}
    if moments != trainable:
        bad.append(f"[{run}] AdamW moments for {sorted(moments ^ trainable)[:3]}...: the "
                   f"checkpoint should hold them for the trainable params only")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--run", action="append", choices=("book", "full"),
                    help="book: the book's trainable set; full: every param (default both)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--train-size", type=int, default=80)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    rng = random.Random(15)
    rows = {"train": synthetic_rows(rng, args.train_size),
            "val": synthetic_rows(rng, 20, long_one=True),
            "test": synthetic_rows(rng, 36, long_one=True)}
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {k: os.path.join(tmp, f"{k}.tsv") for k in rows}
        for k, r in rows.items():
            write_tsv(files[k], r)
        pre = os.path.join(tmp, "pretrain.txt")
        with open(pre, "w", encoding="utf-8") as f:
            f.write("\n".join(t for _, t in rows["train"] * 3))
        try:
            gradc(args, "train", BASE_MODEL, *sum((["--set", s] for s in SIZES), []),
                  "--tokenizer", "gpt2", "--data", pre, "--steps", "1", "--batch", "2",
                  "--seq", "32", "--eval-every", "0", "--out", os.path.join(tmp, "init"),
                  "--quiet")
            init_path = os.path.join(tmp, "init", "ckpt.safetensors")
            _, meta = safetensors_io.load(init_path)
            cfg = load_config(BASE_MODEL, json.loads(meta["model.sets"]))
            print(f"classify parity: gpt2-small at d={cfg['emb_dim']}, {cfg['n_layers']} layers, "
                  f"{cfg['n_heads']} heads, vocab {cfg['vocab_size']}; batch {args.batch}, "
                  f"AdamW lr {args.lr:g} wd 0.1, {args.epochs} epochs, no shuffle")
            for run in args.run or ["book", "full"]:
                check_run(args, tmp, run, init_path, files, cfg, bad)
        except GradcFailed as e:
            print(f"MISSING: {e}")
            return 3
    for b in bad:
        print(f"FAIL: {b}")
    if not bad:
        print("PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

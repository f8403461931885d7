"""score_oracle.py — what `gradc score` should print, computed independently.

    score_oracle.py RESPONSES.json                  exact, exact_norm, f1 (JSON)
    score_oracle.py RESPONSES.json --ckpt CKPT --model MODEL.json --set k=v ...
                    --ids IDS.txt                   also loss and ppl

exact / exact_norm / f1: SQuAD v1.1's normalize_answer and f1_score, written
here from their definition (lower case, ASCII punctuation removed, the
articles a/an/the removed as whole words, white space collapsed; F1 over the
multiset of common tokens; both empty: 1), means over the entries.

loss / ppl: the book's GPT in PyTorch (gpt_torch.py) with the checkpoint's
weights; per entry the inputs are the tokens of format_input(e) +
"\n\n### Response:\n" + output (the book's alpaca prompt), the targets those
shifted by one with <|endoftext|> (50256) appended, and the prompt's targets
(the first len(prompt) - 1) ignored, as the book's exercise 7.2 masks them;
loss = the summed cross-entropy over all entries' kept targets / their
count, ppl = exp(loss).  The token ids come from IDS.txt (two lines per
entry: the prompt's ids, then the prompt + response's ids, from `gradc
tokenize`, which bpe_vs_tiktoken.sh checks against tiktoken).
"""
import argparse
import collections
import json
import math
import os
import re
import string
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred, ref):
    p, r = normalize(pred).split(), normalize(ref).split()
    if not p or not r:
        return float(p == r)
    common = sum((collections.Counter(p) & collections.Counter(r)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def format_input(e):
    text = ("Below is an instruction that describes a task. Write a response that "
            "appropriately completes the request."
            "\n\n### Instruction:\n" + e["instruction"])
    return text + ("\n\n### Input:\n" + e["input"] if e.get("input") else "")


def loss_of(args, n):
    import numpy as np
    import torch
    import safetensors_io
    from gpt_torch import GPTModel, load_config
    sets = dict(kv.split("=", 1) for kv in args.set)
    model = GPTModel(load_config(args.model, sets))
    w, _ = safetensors_io.load(args.ckpt)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(w[name], dtype=np.float32)))
    model.eval()
    lines = open(args.ids).read().splitlines()
    assert len(lines) == 2 * n, (len(lines), n)
    total, count = 0.0, 0
    for i in range(n):
        prompt_n = len(lines[2 * i].split())
        ids = [int(t) for t in lines[2 * i + 1].split()]
        x = torch.tensor([ids])
        y = torch.tensor([ids[1:] + [50256]])
        y[0, :prompt_n - 1] = -100
        with torch.no_grad():
            logits = model(x).double()
        ce = torch.nn.functional.cross_entropy(logits[0], y[0], ignore_index=-100,
                                               reduction="sum")
        total += ce.item()
        count += int((y != -100).sum())
    return total / count, count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("responses")
    ap.add_argument("--ckpt")
    ap.add_argument("--model")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--ids")
    ap.add_argument("--prompts", help="write the prompts and prompt+response texts here")
    args = ap.parse_args()
    data = json.load(open(args.responses))
    if args.prompts:   # NUL-separated texts for gradc tokenize
        os.makedirs(args.prompts, exist_ok=True)
        for i, e in enumerate(data):
            p = format_input(e)
            open(f"{args.prompts}/{i}.p", "w").write(p)
            open(f"{args.prompts}/{i}.f", "w").write(p + "\n\n### Response:\n" + e["output"])
        return
    n = len(data)
    out = {
        "exact": sum(e["model_response"].strip() == e["output"].strip() for e in data) / n,
        "exact_norm": sum(normalize(e["model_response"]) == normalize(e["output"])
                          for e in data) / n,
        "f1": sum(f1(e["model_response"], e["output"]) for e in data) / n,
    }
    if args.ckpt:
        out["loss"], out["tokens"] = loss_of(args, n)
        out["ppl"] = math.exp(out["loss"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()

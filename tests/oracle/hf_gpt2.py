"""hf_gpt2.py — GPT-2 written the Hugging Face way, the oracle of `gradc import-gpt2`.

This machine cannot download GPT-2's real weights, so the test draws random
weights and writes them in exactly the layout of Hugging Face's GPT-2
(transformers' GPT2Model state_dict; this file is written from that layout,
not with transformers, which is not installed):

    wte.weight [V,D]   wpe.weight [P,D]   ln_f.weight/bias [D]
    h.N.ln_1.weight/bias, h.N.ln_2.weight/bias                       [D]
    h.N.attn.c_attn.weight [D,3D] (Conv1D: x @ W, q|k|v along the out axis), .bias [3D]
    h.N.attn.c_proj.weight [D,D], .bias;  h.N.mlp.c_fc.weight [D,4D], .bias [4D]
    h.N.mlp.c_proj.weight [4D,D], .bias [D]
    optional: the prefix "transformer." on all; lm_head.weight (= wte.weight);
              the causal-mask buffers h.N.attn.bias, h.N.attn.masked_bias

The model computes as GPT-2 does: LayerNorm eps 1e-5, the tanh GELU
("gelu_new"), the causal mask, 1/sqrt(head_dim) scaling, logits = ln_f(x) @
wte^T (tied head).  It runs in float64 on the weights as stored (an F16 or
BF16 file's values widened exactly), so it is the exact answer that gradc's
float32 logits are compared to:

    err = max|gradc - torch| / max(1, max|torch|)      must be <= 1e-5

  hf_gpt2.py check --gradc GRADC --dir DIR   every case below: write the file,
                                            import it, run the logits, compare
  hf_gpt2.py bad --dir DIR                  the malformed inputs of hf_gpt2.sh
  hf_gpt2.py same-hf A B                    two HF files hold the same values
  hf_gpt2.py lora --gradc GRADC --dir DIR  export-gpt2 of a checkpoint with LoRA
                                            adapters = the adapted model's logits
  hf_gpt2.py loss HF CONFIG IDS B T         the mean cross-entropy of the first
                                            batch `gradc train --no-shuffle`
                                            makes of the token ids in IDS
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402

# ---------------------------------------------------------------- the model


def conv1d(x, w, b):
    """Hugging Face's Conv1D: w is [in, out], so y = x @ w + b."""
    return x @ w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def attention(x, sd, pre, n_head):
    B, T, D = x.shape
    hd = D // n_head
    qkv = conv1d(x, sd[pre + "attn.c_attn.weight"], sd[pre + "attn.c_attn.bias"])
    q, k, v = (t.view(B, T, n_head, hd).transpose(1, 2) for t in qkv.split(D, dim=2))
    w = q @ k.transpose(-1, -2) / math.sqrt(hd)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    w = w.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    a = (w @ v).transpose(1, 2).reshape(B, T, D)
    return conv1d(a, sd[pre + "attn.c_proj.weight"], sd[pre + "attn.c_proj.bias"])


def mlp(x, sd, pre):
    h = gelu_new(conv1d(x, sd[pre + "mlp.c_fc.weight"], sd[pre + "mlp.c_fc.bias"]))
    return conv1d(h, sd[pre + "mlp.c_proj.weight"], sd[pre + "mlp.c_proj.bias"])


def gpt2_logits(sd, cfg, idx, head=None):
    """sd: {HF name without prefix: float64 tensor}; idx [B,T] -> logits [B,T,V],
    with the output head tied to wte unless `head` (an untied lm_head) is given."""
    T = idx.shape[1]
    x = sd["wte.weight"][idx] + sd["wpe.weight"][torch.arange(T)]
    for n in range(cfg["n_layer"]):
        pre = f"h.{n}."
        x = x + attention(layer_norm(x, sd[pre + "ln_1.weight"], sd[pre + "ln_1.bias"]), sd,
                          pre, cfg["n_head"])
        x = x + mlp(layer_norm(x, sd[pre + "ln_2.weight"], sd[pre + "ln_2.bias"]), sd, pre)
    head = sd["wte.weight"] if head is None else head
    return layer_norm(x, sd["ln_f.weight"], sd["ln_f.bias"]) @ head.T


# ---------------------------------------------------------------- weights


def shapes(cfg):
    """{HF name: shape} of a GPT-2 of cfg's sizes, in state_dict order."""
    V, P, D = cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"]
    out = {"wte.weight": (V, D), "wpe.weight": (P, D)}
    for n in range(cfg["n_layer"]):
        for name, shape in (("ln_1.weight", (D,)), ("ln_1.bias", (D,)),
                            ("attn.c_attn.weight", (D, 3 * D)), ("attn.c_attn.bias", (3 * D,)),
                            ("attn.c_proj.weight", (D, D)), ("attn.c_proj.bias", (D,)),
                            ("ln_2.weight", (D,)), ("ln_2.bias", (D,)),
                            ("mlp.c_fc.weight", (D, 4 * D)), ("mlp.c_fc.bias", (4 * D,)),
                            ("mlp.c_proj.weight", (4 * D, D)), ("mlp.c_proj.bias", (D,))):
            out[f"h.{n}.{name}"] = shape
    out["ln_f.weight"] = out["ln_f.bias"] = (D,)
    return out


def draw(cfg, seed):
    """Random float32 weights, in a regime where errors show (as oracle.py):
    matrices N(0, 1/fan_in), embeddings N(0, 0.3^2), norm weights
    1 + N(0, 0.1^2), biases N(0, 0.05^2)."""
    rng = np.random.default_rng(seed)
    sd = {}
    for name, shape in shapes(cfg).items():
        if name.endswith(("wte.weight", "wpe.weight")):
            a = rng.normal(0, 0.3, shape)
        elif "ln_" in name and name.endswith("weight"):
            a = 1 + rng.normal(0, 0.1, shape)
        elif name.endswith("bias"):
            a = rng.normal(0, 0.05, shape)
        else:
            a = rng.normal(0, 1 / math.sqrt(shape[0]), shape)
        sd[name] = a.astype(np.float32)
    return sd


def stored(sd, dtype):
    """The arrays as written to the file ("F32", "F16", "BF16" bits), and the
    values they hold widened exactly to float64."""
    if dtype == "F16":
        raw = {k: v.astype(np.float16) for k, v in sd.items()}
        return raw, {k: v.astype(np.float64) for k, v in raw.items()}
    if dtype == "BF16":
        raw = {k: st.to_bf16(v) for k, v in sd.items()}
        return raw, {k: st.from_bf16(v).astype(np.float64) for k, v in raw.items()}
    return dict(sd), {k: v.astype(np.float64) for k, v in sd.items()}


def hf_file(path, raw, prefix=False, lm_head=False, buffers=False, cfg=None):
    """Writes the HF layout: names with "transformer." when prefix; an
    lm_head.weight equal to wte; the old files' causal-mask buffers."""
    out = {("transformer." if prefix else "") + k: v for k, v in raw.items()}
    if lm_head:
        out["lm_head.weight"] = raw["wte.weight"]
    if buffers:
        P = cfg["n_positions"]
        for n in range(cfg["n_layer"]):
            pre = ("transformer." if prefix else "") + f"h.{n}.attn."
            out[pre + "bias"] = np.tril(np.ones((P, P), np.float32)).reshape(1, 1, P, P)
            out[pre + "masked_bias"] = np.array(-1e4, np.float32)
    st.save(path, out, {"format": "pt"})


def config_json(path, cfg):
    doc = {"model_type": "gpt2", "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-5, "n_inner": None, **cfg}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


# ---------------------------------------------------------------- the cases

# Two sizes: D=96 with 3 heads, which only config.json can give (V=50257, so
# the imported model also takes the GPT-2 tokenizer: `gradc generate`), and
# D=768 with GPT-2 small's 12 heads read from the table (no config.json).
SMALL = {"vocab_size": 50257, "n_positions": 64, "n_embd": 96, "n_layer": 2, "n_head": 3}
WIDE = {"vocab_size": 1000, "n_positions": 64, "n_embd": 768, "n_layer": 1, "n_head": 12}

CASES = [
    # name, cfg, config.json?, dtype, prefix, lm_head, buffers
    ("small-f32", SMALL, True, "F32", False, True, False),
    ("small-bf16-prefix", SMALL, True, "BF16", True, False, True),
    ("wide-f32-prefix", WIDE, False, "F32", True, False, True),
    ("wide-f16", WIDE, False, "F16", False, True, False),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def gradc_logits(gradc, ckpt, idx, work):
    """gradc's logits of an imported checkpoint: its model (metadata
    model.json at model.sets, dropout off) through `gradc oracle-step`, on
    the checkpoint's own tensors and the batch idx."""
    tensors, meta = st.load(ckpt)
    model = os.path.join(work, "model.json")
    with open(model, "w") as f:
        f.write(meta["model.json"])
    sets = dict(json.loads(meta["model.sets"]), drop_rate="0")
    tensors["idx"] = idx.astype(np.int32)
    inp, out = os.path.join(work, "in.safetensors"), os.path.join(work, "out.safetensors")
    st.save(inp, tensors)
    cmd = [gradc, "oracle-step", model, "--in", inp, "--out", out]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    run(cmd)
    return st.load(out)[0]["logits"].astype(np.float64)


def check_case(gradc, work, case, verbose):
    name, cfg, with_cfg, dtype, prefix, lm_head, buffers = case
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    raw, exact = stored(draw(cfg, seed=len(name)), dtype)
    path, ckpt = os.path.join(d, "model.safetensors"), os.path.join(d, "ckpt.safetensors")
    hf_file(path, raw, prefix, lm_head, buffers, cfg)
    cmd = [gradc, "import-gpt2", path, "--out", ckpt]
    if with_cfg:
        config_json(os.path.join(d, "config.json"), cfg)
        cmd += ["--config", os.path.join(d, "config.json")]
    out = run(cmd)
    if verbose:
        print(out, end="")
    idx = np.random.default_rng(7).integers(0, cfg["vocab_size"], (2, 16))
    sd = {k: torch.from_numpy(v) for k, v in exact.items()}
    ref = gpt2_logits(sd, cfg, torch.from_numpy(idx)).numpy()
    got = gradc_logits(gradc, ckpt, idx, d)
    if got.shape != ref.shape:
        print(f"FAIL {name}: gradc logits {got.shape}, torch {ref.shape}")
        return False
    diff, scale = float(np.max(np.abs(got - ref))), float(np.max(np.abs(ref)))
    err = diff / max(1.0, scale)
    good = err <= 1e-5
    print(f"{'ok  ' if good else 'FAIL'} {name}: D={cfg['n_embd']} L={cfg['n_layer']} "
          f"H={cfg['n_head']} V={cfg['vocab_size']} {dtype}{' prefix' if prefix else ''}"
          f"{' lm_head' if lm_head else ''}{' buffers' if buffers else ''}"
          f"{' config.json' if with_cfg else ''}: max|d logits| {diff:.3g}, max|logits| "
          f"{scale:.3g}, err {err:.3g} (<= 1e-5)")
    return good


# ---------------------------------------------------------------- bad inputs

TINY = {"vocab_size": 50, "n_positions": 8, "n_embd": 32, "n_layer": 1, "n_head": 2}


def write_bad(d):
    """The malformed inputs that hf_gpt2.sh feeds to import-gpt2 (each must
    exit 1 naming the file and the tensor or key)."""
    os.makedirs(d, exist_ok=True)
    sd = draw(TINY, seed=1)
    config_json(os.path.join(d, "config.json"), TINY)
    st.save(os.path.join(d, "good.safetensors"), sd)
    st.save(os.path.join(d, "missing.safetensors"),
            {k: v for k, v in sd.items() if k != "h.0.mlp.c_fc.bias"})
    st.save(os.path.join(d, "extra.safetensors"),
            dict(sd, **{"h.0.attn.rotary.weight": np.zeros(4, np.float32)}))
    st.save(os.path.join(d, "misshaped.safetensors"),
            dict(sd, **{"h.0.attn.c_proj.weight": np.zeros((32, 33), np.float32)}))
    st.save(os.path.join(d, "lm_head.safetensors"),
            dict(sd, **{"lm_head.weight": sd["wte.weight"] * 2}))
    st.save(os.path.join(d, "int.safetensors"),
            dict(sd, **{"h.0.ln_2.bias": np.zeros(32, np.int64)}))
    st.save(os.path.join(d, "mixed.safetensors"),
            dict({"transformer." + k: v for k, v in sd.items() if k != "ln_f.bias"},
                 **{"ln_f.bias": sd["ln_f.bias"]}))
    cfg = dict(TINY, activation_function="relu")
    with open(os.path.join(d, "relu.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "nolayer.json"), "w") as f:
        json.dump({k: v for k, v in TINY.items() if k != "n_layer"}, f)


def check_convert(gradc, work):
    """F16 and BF16 are widened exactly: a wte holding every one of the 65536
    F16 bit patterns (zeros, subnormals, infinities, NaNs) and one holding as
    many BF16 patterns must import as numpy's own conversion, bit for bit."""
    cfg = {"vocab_size": 2048, "n_positions": 8, "n_embd": 32, "n_layer": 1, "n_head": 2}
    d = os.path.join(work, "convert")
    os.makedirs(d, exist_ok=True)
    config_json(os.path.join(d, "config.json"), cfg)
    bits = np.arange(65536, dtype=np.uint16).reshape(2048, 32)
    good = True
    for dtype, raw_wte, want in (("F16", bits.view(np.float16), bits.view(np.float16)
                                  .astype(np.float32)),
                                 ("BF16", bits, st.from_bf16(bits))):
        raw, _ = stored(draw(cfg, seed=3), dtype)
        raw["wte.weight"] = raw_wte
        path, ckpt = os.path.join(d, f"{dtype}.safetensors"), os.path.join(d, "ckpt.safetensors")
        hf_file(path, raw)
        run([gradc, "import-gpt2", path, "--config", os.path.join(d, "config.json"),
             "--out", ckpt, "--quiet"])
        got = st.load(ckpt)[0]["tok_emb.weight"]
        nan = np.isnan(want)
        same = (np.array_equal(np.isnan(got), nan)
                and np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32)))
        print(f"{'ok  ' if same else 'FAIL'} {dtype} -> f32 of all 65536 bit patterns "
              f"({int(nan.sum())} NaNs) as numpy converts them")
        good = good and same
    return good


def same_hf(a, b):
    """Whether HF files a and b hold the same tensors (as float32 values)."""
    ta, tb = st.load(a)[0], st.load(b)[0]
    if sorted(ta) != sorted(tb):
        print(f"different names: {sorted(set(ta) ^ set(tb))}")
        return False
    for k in ta:
        if ta[k].shape != tb[k].shape or not np.array_equal(ta[k].astype(np.float32),
                                                            tb[k].astype(np.float32)):
            print(f"tensor {k} differs")
            return False
    return True


# Adapters on three weights of the small case.  A gradc weight W [out, in]
# (matmul tb=1) is adapted as x.W^T + s.(x.A).B with A [in, r], B [r, out];
# in HF's Conv1D layout, where that block of the HF tensor is W^T, it is
# block + s.A.B.  The tied head's adapters (on tok_emb.weight, which the
# head's matmul reads) change the head only, not the embedding lookup: the
# export must hold an untied lm_head.weight = wte + s.(A.B)^T.
# (gradc name, HF name, column block, in, out)
LORA = [("trf_blocks.0.att.W_key.weight", "h.0.attn.c_attn.weight", 1, 96, 96),
        ("trf_blocks.1.ff.layers.2.weight", "h.1.mlp.c_proj.weight", 0, 384, 96),
        ("tok_emb.weight", "lm_head.weight", None, 96, 50257)]


def check_lora(gradc, work):
    """A checkpoint with LoRA adapters (rank 2, alpha 4: s = 2) exported to
    the HF layout: its tensors equal the adapted model's weights computed
    here (to 1e-6 of their scale), and its logits (PyTorch, float64) equal
    the adapted model's (x.W + s.(x.A).B per adapted matmul) to 1e-5."""
    d = os.path.join(work, "small-f32")
    tensors, meta = st.load(os.path.join(d, "ckpt.safetensors"))
    meta = {k: v for k, v in meta.items() if not k.startswith("gradc.")}
    base = {k: torch.from_numpy(v.astype(np.float64)) for k, v in
            st.load(os.path.join(d, "model.safetensors"))[0].items() if k != "lm_head.weight"}
    rng, r, s = np.random.default_rng(11), 2, 2.0
    delta = {}
    for name, hf_name, block, n_in, n_out in LORA:
        A = rng.normal(0, 0.3, (n_in, r)).astype(np.float32)
        B = rng.normal(0, 0.3, (r, n_out)).astype(np.float32)
        tensors[name + ".lora_A"], tensors[name + ".lora_B"] = A, B
        delta[name] = (hf_name, block, n_out, s * (torch.from_numpy(A.astype(np.float64)) @
                                                   torch.from_numpy(B.astype(np.float64))))
    meta["lora"] = json.dumps({"rank": r, "alpha": 4, "scale": s, "scale_mode": "alpha/r",
                               "globs": [], "targets": {n[0]: {"tb": 1} for n in LORA}})
    lora, out = os.path.join(d, "lora.safetensors"), os.path.join(d, "lora-hf.safetensors")
    st.save(lora, tensors, meta)
    run([gradc, "export-gpt2", lora, "--out", out, "--quiet"])
    want = dict(base)
    for hf_name, block, n_out, ab in delta.values():
        if block is None:                       # the tied head, untied by its adapters
            want[hf_name] = base["wte.weight"] + ab.T
        else:
            w = want[hf_name].clone()
            w[:, block * n_out:(block + 1) * n_out] += ab
            want[hf_name] = w
    got = {k: torch.from_numpy(v.astype(np.float64)) for k, v in st.load(out)[0].items()}
    if sorted(got) != sorted(want):
        print(f"FAIL LoRA export: tensors {sorted(set(got) ^ set(want))} differ in presence")
        return False
    werr = max(float((got[k] - want[k]).abs().max() / max(1.0, float(want[k].abs().max())))
               for k in want)
    idx = torch.from_numpy(np.random.default_rng(7).integers(0, SMALL["vocab_size"], (2, 16)))
    ref = adapted_logits(base, delta, idx).numpy()
    lg = gpt2_logits(got, SMALL, idx, head=got["lm_head.weight"]).numpy()
    diff, scale = float(np.max(np.abs(lg - ref))), float(np.max(np.abs(ref)))
    moved = float(np.max(np.abs(ref - gpt2_logits(base, SMALL, idx).numpy())))
    err = diff / max(1.0, scale)
    good = werr <= 1e-6 and err <= 1e-5 and moved > 1e-2
    print(f"{'ok  ' if good else 'FAIL'} LoRA export (tied head untied by its adapters): "
          f"weights err {werr:.3g} (<= 1e-6), logits vs the adapted model: max|d| {diff:.3g}, "
          f"err {err:.3g} (<= 1e-5); the adapters move the logits by {moved:.3g}")
    return good


def adapted_logits(base, delta, idx):
    """The adapted model as the lora pass computes it: every adapted matmul
    x.W plus s.(x.A).B, here as the weight plus the delta of its own use
    (the head's delta on the head, not on the embedding lookup)."""
    sd = dict(base)
    head = base["wte.weight"]
    for hf_name, block, n_out, ab in delta.values():
        if block is None:
            head = head + ab.T
        else:
            w = sd[hf_name].clone()
            w[:, block * n_out:(block + 1) * n_out] += ab
            sd[hf_name] = w
    return gpt2_logits(sd, SMALL, idx, head=head)


def first_batch_loss(hf, config, ids_file, B, T):
    """The loss of `gradc train`'s first batch without shuffling: windows
    w = 0..B-1 of the token ids, inputs ids[wT : wT+T], targets one on (the
    book's GPTDatasetV1 with stride T), on the HF file's weights (float64)."""
    with open(config) as f:
        cfg = json.load(f)
    sd = {k[len("transformer."):] if k.startswith("transformer.") else k:
          torch.from_numpy(v.astype(np.float64)) for k, v in st.load(hf)[0].items()}
    with open(ids_file) as f:
        ids = np.array(f.read().split(), dtype=np.int64)
    x = np.stack([ids[w * T:w * T + T] for w in range(B)])
    y = np.stack([ids[w * T + 1:w * T + T + 1] for w in range(B)])
    logits = gpt2_logits(sd, cfg, torch.from_numpy(x))
    return float(torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                   torch.from_numpy(y).flatten()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["check", "bad", "same-hf", "loss", "lora"])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--gradc")
    ap.add_argument("--dir")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    if a.what == "bad":
        write_bad(a.dir)
        return 0
    if a.what == "same-hf":
        return 0 if same_hf(*a.files) else 1
    if a.what == "lora":
        try:
            return 0 if check_lora(a.gradc, a.dir) else 1
        except RuntimeError as e:
            print(f"FAIL lora: {e}")
            return 1
    if a.what == "loss":
        hf, config, ids, B, T = a.files
        print(f"{first_batch_loss(hf, config, ids, int(B), int(T)):.9f}")
        return 0
    good = True
    for case in CASES:
        try:
            good = check_case(a.gradc, a.dir, case, a.verbose) and good
        except RuntimeError as e:
            print(f"FAIL {case[0]}: {e}")
            good = False
    try:
        good = check_convert(a.gradc, a.dir) and good
    except RuntimeError as e:
        print(f"FAIL convert: {e}")
        good = False
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

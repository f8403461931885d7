"""gpt_torch.py — the chapter-4 GPT of "Build a Large Language Model (From
Scratch)" in PyTorch, written for gradc's oracle test and benchmark.

It is the architecture of models/gpt2-small.json, module for module, so that
state_dict() names are exactly gradc's parameter names:

    tok_emb.weight [V,D]   pos_emb.weight [C,D]
    trf_blocks.N.att.W_query.weight [D,D] (+ .bias with qkv_bias), W_key, W_value
    trf_blocks.N.att.out_proj.weight [D,D], .bias [D]
    trf_blocks.N.norm1.scale/.shift [D], norm2.scale/.shift
    trf_blocks.N.ff.layers.0.weight [4D,D], .bias; ff.layers.2.weight [D,4D], .bias
    final_norm.scale/.shift [D]    out_head.weight [V,D] (tok_emb.weight when tied)

Linear weights are PyTorch's [out, in]; gradc reads the same arrays with
matmul tb=1.  The numerics follow the book and the graph file: LayerNorm
with the biased variance and eps 1e-5, GELU with the tanh approximation,
the causal mask as -inf before scaling by 1/sqrt(head_dim), dropout after
the embeddings, on the attention weights and on both residual branches.

    cfg = load_config("models/gpt-mini.json", {"drop_rate": "0"})
    model = GPTModel(cfg)
    logits = model(idx)          # idx: int64 [B,T] -> [B,T,V]
"""
import json
import math
import os

import torch
from torch import nn

# The config keys the architecture needs; anything else in the file is ignored.
CONFIG_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers",
               "drop_rate", "qkv_bias", "tie_embeddings")


def load_config(path, sets=None):
    """The config of a gradc model file, following `base` files, with
    --set style overrides ({key: "number"}).  Returns a dict of CONFIG_KEYS."""
    chain = []
    while path:
        with open(path) as f:
            doc = json.load(f)
        chain.append(doc.get("config", {}))
        base = doc.get("base")
        path = os.path.join(os.path.dirname(path), base) if base else None
    cfg = {}
    for layer in reversed(chain):   # the base first, the derived file last
        cfg.update(layer)
    for k, v in (sets or {}).items():
        cfg[k] = float(v)
    out = {}
    for k in CONFIG_KEYS:
        v = cfg.get(k)
        if not isinstance(v, (int, float)):
            raise ValueError(f"config key {k} is {v!r}: the oracle needs a number")
        out[k] = float(v) if k == "drop_rate" else int(v)
    if out["emb_dim"] % out["n_heads"]:
        raise ValueError("emb_dim must be a multiple of n_heads")
    return out


class LayerNorm(nn.Module):
    """x -> scale * (x - mean) / sqrt(var + eps) + shift over the last dim,
    with the biased variance (as nn.LayerNorm and the book)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.scale + self.shift


class GELU(nn.Module):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's approximation."""

    def forward(self, x):
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * x * x * x)))


class FeedForward(nn.Module):
    def __init__(self, d):
        super().__init__()
        # Index names 0 and 2 are part of the state_dict contract.
        self.layers = nn.Sequential(nn.Linear(d, 4 * d), GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        return self.layers(x)


class MultiHeadAttention(nn.Module):
    """Causal self-attention with separate Q, K, V projections: [B,T,D] -> [B,T,D]."""

    def __init__(self, d, n_heads, drop_rate, qkv_bias):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d // n_heads
        self.W_query = nn.Linear(d, d, bias=qkv_bias)
        self.W_key = nn.Linear(d, d, bias=qkv_bias)
        self.W_value = nn.Linear(d, d, bias=qkv_bias)
        self.out_proj = nn.Linear(d, d)
        self.dropout = nn.Dropout(drop_rate)

    def _heads(self, x):  # [B,T,D] -> [B,H,T,hd]
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self._heads(self.W_query(x)), self._heads(self.W_key(x)), self._heads(self.W_value(x))
        scores = q @ k.transpose(2, 3)                                  # [B,H,T,T]
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        context = self.dropout(weights) @ v                             # [B,H,T,hd]
        return self.out_proj(context.transpose(1, 2).reshape(B, T, D))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + drop(att(norm1(x))), then + drop(ff(norm2(.)))."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["emb_dim"]
        self.att = MultiHeadAttention(d, cfg["n_heads"], cfg["drop_rate"], bool(cfg["qkv_bias"]))
        self.ff = FeedForward(d)
        self.norm1, self.norm2 = LayerNorm(d), LayerNorm(d)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        V, C, d = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"]
        self.tok_emb = nn.Embedding(V, d)
        self.pos_emb = nn.Embedding(C, d)
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(d)
        self.out_head = nn.Linear(d, V, bias=False)
        if cfg["tie_embeddings"]:
            self.out_head.weight = self.tok_emb.weight

    def forward(self, idx):  # idx [B,T] -> logits [B,T,V]
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop_emb(self.tok_emb(idx) + self.pos_emb(pos))
        return self.out_head(self.final_norm(self.trf_blocks(x)))


def param_names(model):
    """The model's parameter names, one per tensor (a tied weight once, under
    its first name, tok_emb.weight), as gradc names its params."""
    return [n for n, _ in model.named_parameters()]


def loss_fn(logits, targets, ignore_index=-100):
    """Mean cross-entropy over the targets that are not ignore_index."""
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                       ignore_index=ignore_index)


def matmul_flops_per_token(cfg, T):
    """Forward FLOPs per token of the matmuls (2 per multiply-add): the
    weight matmuls plus attention's QK^T and AV over all T keys (as a dense
    implementation computes them).  A train step costs 3x this."""
    d, L, V = cfg["emb_dim"], cfg["n_layers"], cfg["vocab_size"]
    weights = L * (4 * d * d + 8 * d * d) + V * d
    return 2 * weights + L * 2 * 2 * T * d

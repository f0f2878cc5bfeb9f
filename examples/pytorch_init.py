#!/usr/bin/env python3
"""Apply the initialisation that `sigprop init` writes to a PyTorch transformer.

    sigprop init --layers 24 --d-model 512 --heads 8 --d-ff 2048 --scheme dslm -o init.json
    python3 examples/pytorch_init.py init.json

The JSON (format "sigprop-init", documented in docs/TOOL.md) holds, per layer, the standard
deviation of every weight matrix (q, k, v, o, ffn1, ffn2 and, for an encoder-decoder's
decoder, the cross-attention ones), and the residual weights lambda, beta of
y = lambda x + beta F(x). Two ways to use it are shown:

* `ScaledBlock`, a hand-written block whose residual carries lambda and beta: everything the
  scheme sets is applied, and the forward pass below shows the stream variance it gives.
* `apply_to_encoder_layer`, for torch's own nn.TransformerEncoderLayer: the weights only
  (its residual is fixed to x + F(x), so this is right for schemes with lambda = beta = 1:
  bert, xavier, gpt2, tfixup).

sigprop's matrices have no biases; set yours to zero at initialisation, as done here.
"""
import json
import math
import sys

import torch
from torch import nn


class ScaledBlock(nn.Module):
    """One transformer layer as sigprop models it: attention block then FFN block, each
    y = lambda x + beta F(x), with the LayerNorm before the branch (pre) or after the sum
    (post)."""

    def __init__(self, d, heads, d_ff, norm="pre", act="gelu", causal=False):
        super().__init__()
        self.heads, self.norm, self.causal = heads, norm, causal
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.ffn1 = nn.Linear(d, d_ff, bias=False)
        self.ffn2 = nn.Linear(d_ff, d, bias=False)
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.lam, self.beta = 1.0, 1.0

    def attention(self, x):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        if self.causal:
            mask = torch.ones(n, n, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        out = scores.softmax(-1) @ v
        return self.o(out.transpose(1, 2).reshape(b, n, d))

    def ffn(self, x):
        return self.ffn2(self.act(self.ffn1(x)))

    def forward(self, x):
        for ln, branch in ((self.ln1, self.attention), (self.ln2, self.ffn)):
            if self.norm == "pre":
                x = self.lam * x + self.beta * branch(ln(x))
            else:
                x = ln(self.lam * x + self.beta * branch(x))
        return x


def apply_to_block(block, layer, lam, beta):
    """Draws every matrix of `block` from N(0, sigma^2) with the layer's sigmas."""
    with torch.no_grad():
        for name in ("q", "k", "v", "o", "ffn1", "ffn2"):
            nn.init.normal_(getattr(block, name).weight, mean=0.0, std=layer[name])
    block.lam, block.beta = lam, beta


def apply_to_encoder_layer(enc, layer):
    """The same for nn.TransformerEncoderLayer: in_proj_weight stacks q, k, v by rows."""
    d = enc.self_attn.embed_dim
    with torch.no_grad():
        w = enc.self_attn.in_proj_weight
        for i, name in enumerate(("q", "k", "v")):
            nn.init.normal_(w[i * d:(i + 1) * d], std=layer[name])
        nn.init.normal_(enc.self_attn.out_proj.weight, std=layer["o"])
        nn.init.normal_(enc.linear1.weight, std=layer["ffn1"])
        nn.init.normal_(enc.linear2.weight, std=layer["ffn2"])
        for bias in (enc.self_attn.in_proj_bias, enc.self_attn.out_proj.bias, enc.linear1.bias, enc.linear2.bias):
            nn.init.zeros_(bias)


def main(path):
    with open(path) as f:
        init = json.load(f)
    if init.get("format") != "sigprop-init" or init.get("version") != 1:
        sys.exit(f"{path}: not a sigprop-init version 1 document")
    spec = init["spec"]
    d, heads, d_ff, n = spec["d_model"], spec["heads"], spec["d_ff"], spec["seq_len"]
    if spec["arch"] == "encoder-decoder":
        sys.exit("this example builds one stack; apply the decoder's entries (stack 'decoder') the same way")
    torch.manual_seed(0)

    # 1. The hand-written model, with the scheme's residual weights.
    blocks = nn.Sequential(*(ScaledBlock(d, heads, d_ff, spec["norm"], spec["act"], spec["arch"] == "decoder")
                             for _ in init["layers"]))
    for block, layer in zip(blocks, init["layers"]):
        apply_to_block(block, layer, init["lambda"], init["beta"])

    # Unit-variance input with token correlation r: a shared part plus a per-token part.
    x_in = spec.get("input", {"var": 1.0, "corr": 0.0})
    r, batch = x_in["corr"], 16
    x = math.sqrt(x_in["var"]) * (math.sqrt(r) * torch.randn(batch, 1, d) + math.sqrt(1 - r) * torch.randn(batch, n, d))
    print(f"scheme {init['scheme']}: lambda {init['lambda']:.4g}, beta {init['beta']:.4g}, {len(blocks)} layers")
    print("layer  stream variance")
    variances = []
    with torch.no_grad():
        for i, block in enumerate(blocks):
            x = block(x)
            variances.append(x.var().item())
            print(f"{i + 1:5d}  {variances[-1]:.4f}")

    # 2. torch's own encoder layer, weights only.
    enc = nn.TransformerEncoderLayer(d, heads, d_ff, dropout=0.0, batch_first=True, norm_first=spec["norm"] == "pre")
    apply_to_encoder_layer(enc, init["layers"][0])
    got = enc.linear1.weight.std().item()
    print(f"nn.TransformerEncoderLayer: linear1 std {got:.4g} (asked {init['layers'][0]['ffn1']:.4g})")
    return variances, got / init["layers"][0]["ffn1"]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

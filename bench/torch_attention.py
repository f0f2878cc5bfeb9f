#!/usr/bin/env python3
"""The attention experiments of a sigprop-validate grid file, simulated with PyTorch.

The baseline for the validator's speed: the same experiments (same sizes, the same number
of sequences, fresh weights for every sequence, dropout on the attention probabilities,
a backward pass through Q, K and V) and the same estimator, written the way one would in
PyTorch: batched over the sequences of a point, autograd for the backward.

    python3 bench/torch_attention.py GRID.json [--threads N] [--repeat K]
                                     [--device cpu|cuda] [--dtype float64|float32]

prints one JSON line with the number of points and the seconds they took. Without
PyTorch (or, for --device cuda, without a GPU) it says so and exits 0, so that callers
can skip it cleanly. On a GPU, float32 is the precision of sigprop-validate --backend cuda.
"""
import argparse
import itertools
import json
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"skipped": "PyTorch is not installed"}))
    sys.exit(0)


def points(grid_file):
    """Every attention point of the grid file, as dicts of parameters."""
    with open(grid_file) as f:
        spec = json.load(f)
    for g in spec["grids"]:
        if g["component"] != "attention":
            continue
        axes = {k: v if isinstance(v, list) else [v] for k, v in g["axes"].items()}
        names = list(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            p = dict(zip(names, values))
            p["sequences"] = g.get("sequences", 64)
            yield p


def equicorrelated(shape, var, corr, gen, dtype):
    """x[b, i, k] = s (sqrt(r) z0[b, k] + sqrt(1 - r) z[b, i, k]), as the validator samples."""
    b, L, d = shape
    z = torch.randn(shape, generator=gen, dtype=dtype, device=gen.device)
    z0 = torch.randn((b, 1, d), generator=gen, dtype=dtype, device=gen.device)
    return var ** 0.5 * (corr ** 0.5 * z0 + (1 - corr) ** 0.5 * z)


def moments(y):
    """Pooled mean, var and average token-pair covariance (REFERENCE.md section 1)."""
    b, L, d = y.shape
    x = y.permute(1, 0, 2).reshape(L, b * d)
    n = x.shape[1]
    total = x.sum()
    mean = total / (L * n)
    x2 = (x * x).sum()
    var = x2 / (L * n) - mean * mean
    t = x.sum(dim=1)
    s2 = (x.sum(dim=0) ** 2).sum()
    pair = ((s2 - x2) - (total * total - (t * t).sum()) / n) / (n - 1)
    return mean.item(), var.item(), (pair / (L * (L - 1))).item()


def experiment(p, gen, dtype):
    B, L, d_in, d_head = p["sequences"], int(p["L"]), int(p["d_in"]), int(p["d_head"])
    dev = gen.device
    x = equicorrelated((B, L, d_in), p["x_var"], p["x_corr"], gen, dtype).requires_grad_(True)
    wq = torch.randn((B, d_in, d_head), generator=gen, dtype=dtype, device=dev) * p["sigma_qk"]
    wk = torch.randn((B, d_in, d_head), generator=gen, dtype=dtype, device=dev) * p["sigma_qk"]
    wv = torch.randn((B, d_in, d_head), generator=gen, dtype=dtype, device=dev) * p["sigma_v"]
    q, k, v = x @ wq, x @ wk, x @ wv
    prob = torch.softmax(q @ k.transpose(1, 2) / d_head ** 0.5, dim=-1)
    if p["p"] > 0:
        keep = (torch.rand(prob.shape, generator=gen, dtype=dtype, device=dev) > p["p"]).to(prob.dtype)
        prob = prob * keep / (1 - p["p"])
    y = prob @ v
    g = equicorrelated(y.shape, p["g_var"], p["g_corr"], gen, dtype)
    (y * g).sum().backward()
    return moments(y.detach()), moments(x.grad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"skipped": "PyTorch sees no CUDA device"}))
        sys.exit(0)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    pts = list(points(args.grid))
    gen = torch.Generator(device=args.device).manual_seed(1)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    if args.device == "cuda" and pts:
        experiment(pts[0], gen, dtype)  # CUDA context, cuBLAS handles and kernels load here
        sync()
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for p in pts:
            experiment(p, gen, dtype)
        sync()
        best = min(best, time.perf_counter() - t0)
    out = {"points": len(pts), "seconds": best, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "device": args.device, "dtype": args.dtype}
    if args.device == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()

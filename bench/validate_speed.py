#!/usr/bin/env python3
"""Speed and memory of sigprop-validate, measured against PyTorch in the same run.

    python3 bench/validate_speed.py --validate BUILD/validation/sigprop-validate \
        [--grid bench/grids/attention_speed.json] [--threads 2] [--repeat 3]

(a) The attention experiments of the grid file (equal sample counts) with sigprop-validate
    and with bench/torch_attention.py (skipped cleanly when no Python with PyTorch exists);
    best wall time of --repeat runs each, and the ratio.
(b) Peak resident memory of sigprop-validate for sweeps of 8 and 256 points of the same
    experiment: with streamed statistics it does not grow with the number of points.
Prints a Markdown section for docs/PERFORMANCE.md.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    """Runs cmd; returns (wall seconds, user+sys CPU seconds, peak RSS in MiB, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def torch_python():
    """A Python interpreter that has PyTorch, or None."""
    for py in (sys.executable, "python3", "/usr/bin/python3"):
        try:
            if subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0:
                return py
        except OSError:
            pass
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_grid(points):
    """A grid of `points` attention experiments of one shape (L = 300, d_in = 100)."""
    corr = [i / points for i in range(points)]
    return {"name": f"memory-{points}", "grids": [{"component": "attention", "sequences": 8, "axes": {
        "d_in": 100, "d_head": 64, "sigma_qk": 0.05, "sigma_v": 0.1, "p": 0, "x_mean": 0, "x_var": 1,
        "x_corr": corr, "g_var": 1, "g_corr": 0, "L": 300}}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validate", required=True, help="path to sigprop-validate")
    ap.add_argument("--grid", default=os.path.join(HERE, "grids", "attention_speed.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    ours = [run([args.validate, "--grid", args.grid, "--threads", str(args.threads), "--quiet"])
            for _ in range(args.repeat)]
    py = torch_python()
    theirs = None
    if py:
        theirs = [run([py, os.path.join(HERE, "torch_attention.py"), args.grid, "--threads", str(args.threads)])
                  for _ in range(args.repeat)]

    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}.")
    print(f"Command: `python3 bench/validate_speed.py --validate {args.validate} --grid "
          f"{os.path.relpath(args.grid)} --threads {args.threads} --repeat {args.repeat}`\n")
    print("| attention experiments of the grid | best wall s | CPU s of that run |")
    print("| --- | ---: | ---: |")
    best = min(ours, key=lambda r: r[0])
    print(f"| sigprop-validate, {args.threads} threads | {best[0]:.2f} | {best[1]:.2f} |")
    if theirs:
        tb = min(theirs, key=lambda r: r[0])
        info = json.loads(tb[3].strip().splitlines()[-1])
        print(f"| PyTorch {info['torch']} (bench/torch_attention.py), {info['threads']} threads | "
              f"{tb[0]:.2f} | {tb[1]:.2f} |")
        print(f"\nsigprop-validate is **{tb[0] / best[0]:.1f}x** faster (wall) and "
              f"{tb[1] / best[1]:.1f}x (CPU) at equal sample counts.\n")
    else:
        print("\nPyTorch comparison skipped: no Python with PyTorch found.\n")

    print("| sweep of one experiment shape | points | peak RSS MiB |")
    print("| --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (8, 256):
            path = os.path.join(tmp, f"memory-{n}.json")
            with open(path, "w") as f:
                json.dump(memory_grid(n), f)
            _, _, rss, _ = run([args.validate, "--grid", path, "--threads", str(args.threads), "--quiet"])
            print(f"| attention L = 300, d_in = 100, 8 sequences per point | {n} | {rss:.1f} |")


if __name__ == "__main__":
    main()

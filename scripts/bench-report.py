#!/usr/bin/env python3
"""Runs the benchmark program and writes the measured table into docs/PERFORMANCE.md.

Every benchmark's median time per call is reported together with its ratio to a bare
std::exp call of the same scalar type (BM_std_exp<T>, bench/baseline.bench.cpp) measured in
the same run, and the table says which machine, build and command produced it.

    scripts/bench-report.py                    # build build-bench/ (Release), run, update the doc
    scripts/bench-report.py --stdout           # print the section instead of editing the doc
    scripts/bench-report.py --bench PATH       # use an already built benchmark program
    scripts/bench-report.py -- --benchmark_filter=relu   # extra arguments for the program

Python standard library only.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench-report:begin -->"
END = "<!-- bench-report:end -->"
BASELINE = "BM_std_exp"
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
# Benchmarks compared with a baseline of the same arguments measured in the same run:
# (prefix of the measured one, prefix of its baseline, what the ratio means).
PAIRS = [("attention_experiment/", "attention_gemms_only/",
          "one Monte-Carlo attention experiment / the bare Eigen GEMMs it contains"),
         ("predict_small/", "model_mc_small/",
          "predict() of a 12-layer model / one whole-model CPU Monte-Carlo run of it "
          "(one sequence, one weight draw; d_model 64, d_ff 256, 4 heads, L 32)")]


def scalar_type(name):
    """The scalar type a benchmark name mentions: BM_relu<float>, BM_relu_double, ..."""
    if re.search(r"long[ _]?double", name):
        return "long double"
    for t in ("float", "double"):
        if re.search(r"(?<![A-Za-z])" + t + r"(?![A-Za-z])", name):
            return t
    return None


def cpu_model():
    """CPU model name and number of logical cores, from /proc/cpuinfo where there is one."""
    model, cores = None, 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "processor":
                    cores += 1
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), cores or os.cpu_count()


def cmake_cache(binary):
    """Compiler and build type from the CMakeCache.txt of the build that made `binary`."""
    for d in pathlib.Path(binary).resolve().parents:
        cache = d / "CMakeCache.txt"
        if cache.is_file():
            values = {}
            for line in cache.read_text(errors="replace").splitlines():
                m = re.match(r"(CMAKE_CXX_COMPILER|CMAKE_BUILD_TYPE|CMAKE_CXX_FLAGS_RELEASE|"
                             r"CMAKE_CXX_FLAGS):[A-Z]+=(.*)", line)
                if m:
                    values[m.group(1)] = m.group(2)
            return values
    return {}


def compiler_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return path


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + (" with local changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build(build_dir, jobs):
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                    "-DSIGPROP_BUILD_BENCH=ON", "-DSIGPROP_BUILD_TESTS=OFF",
                    "-DSIGPROP_BUILD_EXAMPLES=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "sigprop_bench", "-j",
                    str(jobs)], check=True)
    return build_dir / "bench" / "sigprop_bench"


def per_call_ns(entry):
    """Median time of one call: from items_per_second when the benchmark counts items
    (several calls per iteration), otherwise the CPU time of one iteration."""
    ips = entry.get("items_per_second")
    if ips:
        return 1e9 / ips
    return entry["cpu_time"] * TO_NS[entry.get("time_unit", "ns")]


def fmt(x):
    if x >= 10000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def report(data, command, binary, argv):
    medians, failed = {}, []
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            failed.append(f"{name}: {b.get('error_message', 'error')}")
            continue
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        # Without repetitions there are no aggregates: take the single run.
        medians.setdefault(name, per_call_ns(b))
        if b.get("aggregate_name") == "median":
            medians[name] = per_call_ns(b)

    baseline = {scalar_type(n): t for n, t in medians.items() if n.startswith(BASELINE)}
    model, cores = cpu_model()
    ctx = data.get("context", {})
    cache = cmake_cache(binary)
    compiler = compiler_version(cache["CMAKE_CXX_COMPILER"]) if "CMAKE_CXX_COMPILER" in cache else "unknown"
    flags = " ".join(x for x in (cache.get("CMAKE_CXX_FLAGS", ""),
                                 cache.get("CMAKE_CXX_FLAGS_RELEASE", "")) if x)
    load = ctx.get("load_avg")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    lines = [BEGIN, ""]
    lines.append(f"- Machine: {model}, {cores} logical cores"
                 + (f", {ctx['mhz_per_cpu']} MHz" if "mhz_per_cpu" in ctx else "")
                 + (f"; load average at start {', '.join(f'{x:.2f}' for x in load)}" if load else ""))
    lines.append(f"- Date: {date}; sigprop revision {git_revision()}")
    lines.append(f"- Build: {compiler}, CMAKE_BUILD_TYPE={cache.get('CMAKE_BUILD_TYPE', '?')}"
                 + (f" ({flags})" if flags else "")
                 + f"; Google Benchmark library built as {ctx.get('library_build_type', '?')}")
    lines.append(f"- Command: `{shlex.join(command)}`")
    lines.append(f"  (run by `{shlex.join(['scripts/bench-report.py'] + argv)}`)")
    lines.append("")
    lines.append("| benchmark | scalar | median ns per call | ratio to std::exp |")
    lines.append("| --- | --- | ---: | ---: |")
    for name, ns in medians.items():
        t = scalar_type(name)
        base = baseline.get(t)
        ratio = fmt(ns / base) if base else "n/a"
        lines.append(f"| `{name}` | {t or '?'} | {fmt(ns)} | {ratio} |")
    for prefix, base_prefix, meaning in PAIRS:
        rows = [(n, n.replace(prefix, base_prefix, 1)) for n in medians if n.startswith(prefix)]
        rows = [(n, b) for n, b in rows if b in medians]
        if not rows:
            continue
        lines += ["", f"Ratio {meaning}:", "", "| benchmark | its baseline | ratio |", "| --- | --- | ---: |"]
        for n, b in rows:
            ratio = medians[n] / medians[b]
            lines.append(f"| `{n}` | `{b}` | {ratio:.2f} |" if ratio >= 0.01 else f"| `{n}` | `{b}` | {ratio:.2e} |")
    if failed:
        lines.append("")
        lines.append("Benchmarks that reported an error: " + "; ".join(failed))
    lines += ["", END]
    return "\n".join(lines) + "\n"


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=pathlib.Path, help="benchmark program (default: build it)")
    p.add_argument("--build-dir", type=pathlib.Path, default=ROOT / "build-bench")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("SIGPROP_JOBS", "2")))
    p.add_argument("--output", type=pathlib.Path, default=ROOT / "docs" / "PERFORMANCE.md",
                   help="Markdown file whose bench-report section is replaced")
    p.add_argument("--stdout", action="store_true", help="print the section, edit nothing")
    p.add_argument("--json", type=pathlib.Path, help="also save the raw benchmark JSON here")
    args = p.parse_args(argv)

    binary = args.bench or build(args.build_dir, args.jobs)
    command = [str(binary), "--benchmark_format=json", "--benchmark_repetitions=5",
               "--benchmark_report_aggregates_only=true"] + extra
    run = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.exit(f"bench-report: {shlex.join(command)} exited with {run.returncode}")
    data = json.loads(run.stdout)
    if args.json:
        args.json.write_text(run.stdout)

    shown = [os.path.relpath(command[0], ROOT)] + command[1:]
    section = report(data, shown, binary, argv + (["--"] + extra if extra else []))
    if args.stdout:
        sys.stdout.write(section)
        return
    text = args.output.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"bench-report: {args.output} lacks the markers {BEGIN} ... {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.output.write_text(head + section.rstrip("\n") + tail)
    print(f"bench-report: wrote {len(section.splitlines())} lines into {args.output}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""knead against plain PyTorch on the flows of bench/flows.cpp, in one run.

The same architectures are written here in plain PyTorch, the way the PyTorch flow libraries
(nflows, zuko, normflows) write them: MAF / IAF / RealNVP flows of 5 layers with the order
reversed between layers, conditioners with two ReLU hidden layers, float32. For each row
(config, flow, family, threads) the script times knead's bench_flows on that one benchmark and
the PyTorch version in turns, one repetition each (the side that goes first alternates), so
machine load affects both alike. It prints samples/s for both, the ratio knead / PyTorch and the
issue's target ratio where there is one (issue #4). Not part of CI.

Needs Debian's python3-torch and an OpenBLAS (apt-get install python3-torch libopenblas0); run it
with /usr/bin/python3. Example:
    /usr/bin/python3 bench/compare_torch.py --bench build/bench/bench_flows
    /usr/bin/python3 bench/compare_torch.py --quick

What matches knead (include/knead/nn/made.hpp, bijectors/maf.hpp, bijectors/coupling.hpp,
flows/builder.hpp):
- MADE: input i has degree i + 1 (identity order within a layer; Permute::reverse between layers);
  hidden units get the degrees j mod (D − 1) + 1, sorted ascending; masks [m_hidden ≥ m_in] and
  [m_out > m_hidden] into the 2·D outputs [μ; a]. Weights as nn.Linear, masked.
- Log-scale: α = 5·tanh(a / 5) (LogScaleGuard's default soft clamp).
- MAF: density u = (x − μ)·exp(−α), one MADE pass; sampling by D full MADE passes (what the
  PyTorch libraries do; knead computes each MADE unit once instead). IAF = MAF inverted.
- RealNVP: affine coupling, dimensions [0, D/2) condition [D/2, D) through a dense MLP
  (D/2 → h → h → 2·(D − D/2)) emitting [t; a].
- Train step: zero_grad, mean negative log-likelihood, backward, Adam(lr 1e-4). Density and
  sampling run under torch.no_grad().
- Threads: a row of n threads gives PyTorch n OpenBLAS threads (openblas_set_num_threads; torch
  leaves OpenBLAS's own pool at every core otherwise) and 1 intra-op thread (torch.set_num_threads):
  its fastest way of using two cores here. With 2 of each, the two pools fight over the cores and
  PyTorch ran 1.2-4x slower than on one core; with torch 2 / OpenBLAS 1 it did not scale (MAF train
  step D=64 h512: torch/OpenBLAS threads 1/1 6.0k/s, 2/1 6.1k, 1/2 8.2k, 2/2 2.0k).
  --torch-threads and --blas-threads set them apart.

Kernels: bench_flows reports the kernel path it ran on (KNEAD_KERNEL=avx512|avx2|portable, passed
through the environment; the CPU's best by default), and the script prints and records it.
PyTorch's are chosen by the environment the script starts with (it imports torch itself): e.g.
OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 for AVX2 kernels on both sides:
    OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 KNEAD_KERNEL=avx2 \
        /usr/bin/python3 bench/compare_torch.py --bench build/bench/bench_flows --threads 1

2-thread figures depend on where the host puts the virtual CPUs: with bench_machine built next to
bench_flows, the script measures a cache line's round trip between CPUs 0 and 1 before each
2-thread row and around each scaling measurement, and reports it (see bench/machine.cpp).
"""

import argparse
import ctypes
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

try:
    import torch
    from torch.nn import functional as F
except ImportError:
    sys.exit("compare_torch.py: PyTorch not found; apt-get install python3-torch libopenblas0 and "
             "run this script with /usr/bin/python3 (Debian's interpreter)")

LAYERS = 5
LOG_SCALE_BOUND = 5.0
LEARNING_RATE = 1e-4

# bench/flows.cpp's configs: (D, hidden, train batch, evaluation batch), indexed by its config number
CONFIGS = [(2, 64, 512, 4096), (2, 512, 512, 4096), (64, 512, 256, 1024), (8, 64, 512, 4096)]
FLOWS = ["maf", "iaf", "realnvp"]
FAMILIES = ["density", "train_step", "sample", "sample_and_log_prob"]

# Issue #4's targets, knead / PyTorch, 1 thread and "the same ratios or better at 2 threads"
TARGETS = {
    (0, "maf", "train_step"): 3.0, (0, "maf", "density"): 1.5,
    (1, "maf", "train_step"): 1.2, (1, "maf", "density"): 1.2,
    (2, "maf", "train_step"): 1.7, (2, "maf", "density"): 1.7,
    (2, "maf", "sample"): 20.0, (2, "iaf", "sample"): 1.7,
}
# Issue #4's reference figures for the PyTorch libraries (1 thread), samples/s, for comparison
REFERENCE = {
    (0, "maf", "train_step"): 110e3, (0, "maf", "density"): 830e3,
    (0, "maf", "sample"): 440e3, (0, "iaf", "sample"): 870e3,
    (1, "maf", "train_step"): 8.8e3, (1, "maf", "density"): 30e3,
    (1, "maf", "sample"): 15.5e3, (1, "iaf", "sample"): 30e3,
    (2, "maf", "train_step"): 5.8e3, (2, "maf", "density"): 22e3,
    (2, "maf", "sample"): 340, (2, "iaf", "sample"): 22e3,
}


# ---- the flows in plain PyTorch -------------------------------------------------------------

def soft_clamp(a):
    return LOG_SCALE_BOUND * torch.tanh(a / LOG_SCALE_BOUND)


class MaskedLinear(torch.nn.Linear):
    """nn.Linear computing with W ⊙ M, the mask applied per call as the libraries do."""

    def __init__(self, mask):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask)
        with torch.no_grad():
            self.weight.mul_(mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


def mlp(layers):
    """ReLU between the given linear layers, none after the last."""
    modules = []
    for layer in layers[:-1]:
        modules += [layer, torch.nn.ReLU()]
    return torch.nn.Sequential(*modules, layers[-1])


def made(dim, hidden):
    """MADE with 2·dim outputs [μ; a], degrees and masks as knead's Made (identity order)."""
    input_degrees = torch.arange(1, dim + 1)
    below, layers = input_degrees, []
    for units in hidden:
        degrees = torch.sort(torch.arange(units) % max(dim - 1, 1) + 1).values
        layers.append(MaskedLinear((degrees[:, None] >= below[None, :]).float()))
        below = degrees
    output_degrees = torch.cat([input_degrees, input_degrees])
    layers.append(MaskedLinear((output_degrees[:, None] > below[None, :]).float()))
    return mlp(layers)


class Maf(torch.nn.Module):
    """forward = sampling (D sequential MADE passes), inverse = density (one pass)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.dim = dim
        self.made = made(dim, hidden)

    def shift_and_log_scale(self, x):
        out = self.made(x)
        return out[:, :self.dim], soft_clamp(out[:, self.dim:])

    def forward(self, u):
        # pass k sets the k-th dimension right, the ones before it staying unchanged
        x = torch.zeros_like(u)
        for _ in range(self.dim):
            mu, alpha = self.shift_and_log_scale(x)
            x = u * torch.exp(alpha) + mu
        return x, alpha.sum(1)

    def inverse(self, x):
        mu, alpha = self.shift_and_log_scale(x)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(1)


class Iaf(Maf):
    """MAF with the directions swapped: forward = sampling in one pass, inverse = density."""

    def forward(self, u):
        return Maf.inverse(self, u)

    def inverse(self, x):
        return Maf.forward(self, x)


class AffineCoupling(torch.nn.Module):
    """RealNVP's affine coupling: x_A = u_A, x_B = u_B·exp(s(u_A)) + t(u_A), A = [0, D/2)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.split = dim // 2
        sizes = [self.split, *hidden, 2 * (dim - self.split)]
        self.net = mlp([torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])

    def shift_and_log_scale(self, conditioning):
        out = self.net(conditioning)
        half = out.shape[1] // 2
        return out[:, :half], soft_clamp(out[:, half:])

    def forward(self, u):
        t, s = self.shift_and_log_scale(u[:, :self.split])
        return torch.cat([u[:, :self.split], u[:, self.split:] * torch.exp(s) + t], 1), s.sum(1)

    def inverse(self, x):
        t, s = self.shift_and_log_scale(x[:, :self.split])
        return torch.cat([x[:, :self.split], (x[:, self.split:] - t) * torch.exp(-s)], 1), -s.sum(1)


class Flow(torch.nn.Module):
    """Layers in the forward (noise → data) order, the dimensions reversed between layers; a
    standard normal base."""

    def __init__(self, kind, dim, hidden):
        super().__init__()
        layer = {"maf": Maf, "iaf": Iaf, "realnvp": AffineCoupling}[kind]
        self.dim = dim
        self.layers = torch.nn.ModuleList(layer(dim, hidden) for _ in range(LAYERS))

    def base_log_prob(self, u):
        return -0.5 * (u * u).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x):
        total = 0
        for k, layer in enumerate(reversed(self.layers)):
            if k > 0:
                x = x.flip(1)
            x, log_det = layer.inverse(x)
            total = total + log_det
        return self.base_log_prob(x) + total

    def push_forward(self, u):
        x, total = u, 0
        for k, layer in enumerate(self.layers):
            if k > 0:
                x = x.flip(1)
            x, log_det = layer.forward(x)
            total = total + log_det
        return x, total

    def sample(self, n):
        return self.push_forward(torch.randn(n, self.dim))[0]

    def sample_and_log_prob(self, n):
        u = torch.randn(n, self.dim)
        x, log_det = self.push_forward(u)
        return x, self.base_log_prob(u) - log_det


def torch_job(config, kind, family):
    """(a function doing one call, its batch size)."""
    dim, hidden, train_batch, eval_batch = CONFIGS[config]
    torch.manual_seed(1)
    flow = Flow(kind, dim, [hidden, hidden])
    if family == "train_step":
        x = torch.randn(train_batch, dim)
        adam = torch.optim.Adam(flow.parameters(), lr=LEARNING_RATE)

        def step():
            adam.zero_grad()
            loss = -flow.log_prob(x).mean()
            loss.backward()
            adam.step()
        return step, train_batch
    x = torch.randn(eval_batch, dim)
    call = {"density": lambda: flow.log_prob(x),
            "sample": lambda: flow.sample(eval_batch),
            "sample_and_log_prob": lambda: flow.sample_and_log_prob(eval_batch)}[family]

    def evaluate():
        with torch.no_grad():
            call()
    return evaluate, eval_batch


# ---- measurement ----------------------------------------------------------------------------

def openblas():
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_config.restype = ctypes.c_char_p
        return lib
    except OSError:
        return None


def set_threads(n, blas, blas_threads=None, torch_threads=None):
    """PyTorch's threads for a row of n: OpenBLAS n (or blas_threads), intra-op 1 (or
    torch_threads; n without OpenBLAS found); see the module's docstring."""
    torch.set_num_threads(torch_threads or (1 if blas is not None else n))
    if blas is not None:
        blas.openblas_set_num_threads(blas_threads or n)


class TorchTimer:
    """Times one PyTorch job: warms it up once, then each once() is a repetition running
    >= min_time (wall clock), giving samples/s by wall clock and by process CPU time. allowed()
    repetitions fit in max_time (a D-pass call under load can take a minute): at least one."""

    def __init__(self, call, batch, min_time, warmup_time, max_time):
        self.call, self.batch = call, batch
        start, calls = time.perf_counter(), 0
        while calls == 0 or time.perf_counter() - start < warmup_time:
            call()
            calls += 1
        per_call = (time.perf_counter() - start) / calls
        self.inner = max(1, math.ceil(min_time / per_call))
        self.allowed = max(1, math.floor(max_time / (self.inner * per_call)))

    def once(self):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(self.inner):
            self.call()
        return (self.batch * self.inner / (time.perf_counter() - start),
                self.batch * self.inner / (time.process_time() - start_cpu))


def knead_name(config, kind, family, threads):
    return f"BM_{family}<FlowKind::{kind}>/config:{config}/threads:{threads}/real_time"


# The kernel paths bench_flows reported ("knead_kernel" in its context): one per script run.
KNEAD_KERNELS_SEEN = set()


def knead_medians(bench, names, repetitions, min_time, interleave=False):
    """Runs the bench_flows benchmarks `names` in one process; returns each one's median run (a
    dict of Google Benchmark's JSON). With `interleave`, their repetitions run in random order."""
    command = [bench, f"--benchmark_filter=^({'|'.join(re.escape(n) for n in names)})$",
               "--benchmark_format=json", f"--benchmark_min_time={min_time}",
               f"--benchmark_repetitions={repetitions}",
               "--benchmark_report_aggregates_only=true"]  # each benchmark warms up by itself
    if interleave:
        command.append("--benchmark_enable_random_interleaving=true")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"compare_torch.py: {' '.join(command)} failed:\n{result.stderr}")
    report = json.loads(result.stdout)
    kernel = report.get("context", {}).get("knead_kernel", "unknown")
    if KNEAD_KERNELS_SEEN and kernel not in KNEAD_KERNELS_SEEN:
        raise RuntimeError(f"{bench} ran on the kernel path {kernel}, before on {KNEAD_KERNELS_SEEN}")
    KNEAD_KERNELS_SEEN.add(kernel)
    medians = {run["run_name"]: run for run in report["benchmarks"]
               if run.get("aggregate_name", "median") == "median"}
    if any(n not in medians for n in names):
        raise RuntimeError(f"{bench}: no result for {names}; is it a bench_flows of this version?")
    return medians


def time_knead(bench, name, min_time):
    """One repetition of one bench_flows benchmark: samples/s by wall clock (items_per_second)
    and by CPU time of the main thread."""
    run = knead_medians(bench, [name], 1, min_time)[name]
    rate = run["items_per_second"]  # the benchmarks use real time
    return rate, rate * run["real_time"] / run["cpu_time"]


def time_row(bench, name, torch_timer, repetitions, min_time):
    """knead's and PyTorch's medians (wall clock, CPU time) over repetitions that take turns,
    knead first in even ones, so that both sides meet the same moments of a shared machine's load
    (PyTorch runs fewer where its repetitions would take too long)."""
    runs = ([], [])
    for rep in range(repetitions):
        for side in ((0, 1) if rep % 2 == 0 else (1, 0)):
            if side == 0:
                runs[0].append(time_knead(bench, name, min_time))
            elif len(runs[1]) < torch_timer.allowed:
                runs[1].append(torch_timer.once())
    return [tuple(statistics.median(r[i] for r in side) for i in range(2)) for side in runs]


# A cache line's round trip between CPUs 0 and 1 above this: the host has placed them far apart.
FAR_ROUND_TRIP_NS = 150


def core_round_trip(bench):
    """A cache line's round trip between CPUs 0 and 1 in ns (bench_machine, next to `bench`), or
    None when that probe is not built or cannot pin threads."""
    probe = os.path.join(os.path.dirname(bench), "bench_machine")
    if not os.access(probe, os.X_OK):
        return None
    result = subprocess.run([probe, "--benchmark_filter=^BM_core_round_trip", "--benchmark_format=json",
                             "--benchmark_min_time=0.1"], capture_output=True, text=True)
    runs = json.loads(result.stdout)["benchmarks"] if result.returncode == 0 else []
    times = [run["real_time"] for run in runs if not run.get("error_occurred")]
    return times[0] if times else None


def round_trips_text(values):
    """'55/54 ns' for measured round trips, flagged when one of them shows far-apart CPUs."""
    measured = [v for v in values if v is not None]
    if not measured:
        return "not measured (build bench_machine)"
    text = "/".join(f"{v:.0f}" for v in measured) + " ns"
    return text + (" (FAR APART)" if max(measured) > FAR_ROUND_TRIP_NS else "")


def knead_thread_scaling(bench, config, kind, repetitions, min_time):
    """knead's train step at 2 threads / 1 thread: one bench_flows process runs the repetitions of
    both benchmarks in random order (Google Benchmark's random interleaving), so that both meet
    the same moments of a shared machine's load; the ratio of the medians."""
    names = [knead_name(config, kind, "train_step", n) for n in (1, 2)]
    medians = knead_medians(bench, names, repetitions, min_time, interleave=True)
    return medians[names[1]]["items_per_second"] / medians[names[0]]["items_per_second"]


# ---- report ---------------------------------------------------------------------------------

def label(config):
    dim, hidden = CONFIGS[config][:2]
    return f"D={dim} h{hidden}"


def si(value):
    for scale, suffix in [(1e6, "M"), (1e3, "k")]:
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def table(rows):
    header = ["config", "flow", "family", "thr", "knead/s", "torch/s", "ratio", "target", "",
              "CPU-time ratio", "issue ref torch/s", "CPU 0-1 round trip"]
    lines = [header]
    for r in rows:
        target = TARGETS.get((r["config"], r["flow"], r["family"]))
        reference = REFERENCE.get((r["config"], r["flow"], r["family"])) if r["threads"] == 1 else None
        lines.append([label(r["config"]), r["flow"], r["family"], str(r["threads"]), si(r["knead"]),
                      si(r["torch"]), f"{r['knead'] / r['torch']:.2f}x",
                      f">= {target:g}x" if target else "",
                      ("pass" if r["knead"] / r["torch"] >= target else "FAIL") if target else "",
                      f"{r['knead_cpu'] / r['torch_cpu']:.2f}x" if r["threads"] == 1 else "",
                      si(reference) if reference else "",
                      round_trips_text([r["round_trip_ns"]]) if r["threads"] == 2 else ""])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def other_targets(rows, scaling):
    """Issue #4's targets on knead alone that the measured rows cover; `scaling` maps
    (config, flow) to the interleaved 2-thread / 1-thread train step ratio and the CPUs' round
    trips measured before and after it."""
    knead = {(r["config"], r["flow"], r["family"], r["threads"]): r["knead"] for r in rows}
    lines = []

    def check(text, value, target):
        verdict = f" (target >= {target:g}: {'pass' if value >= target else 'FAIL'})" if target else ""
        lines.append(f"{text}: {value:.2f}{verdict}")

    for n in (1, 2):
        sample, density = knead.get((2, "maf", "sample", n)), knead.get((2, "maf", "density", n))
        if sample and density:
            check(f"knead MAF sampling / MAF density, D=64 h512, {n} thread(s)", sample / density, 0.3)
    for (config, kind), (ratio, round_trips) in scaling.items():
        check(f"knead {kind} train step, {label(config)}, 2 threads / 1 thread (interleaved)", ratio,
              1.6 if kind == "maf" else None)
        lines[-1] += f"; CPU 0-1 round trip {round_trips_text(round_trips)}"
    return lines


def knead_kernel():
    """The kernel path bench_flows ran on."""
    return ", ".join(sorted(KNEAD_KERNELS_SEEN)) or "not run"


def torch_kernels():
    """PyTorch's CPU capability and OpenBLAS core type, as the environment chose them."""
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return (f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(unset)')}"
            + (f" (in use: {capability()})" if capability else "")
            + f", OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")


def load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_list(parser, option, text, allowed):
    """The comma-separated `text` as a list of entries of `allowed` (compared as strings)."""
    by_name = {str(a): a for a in allowed}
    values = [v for v in text.split(",") if v]
    bad = [v for v in values if v not in by_name]
    if bad or not values:
        parser.error(f"{option} {text!r}: expected a comma-separated list of {', '.join(by_name)}")
    return [by_name[v] for v in values]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default="build/bench/bench_flows",
                        help="knead's bench_flows binary (default build/bench/bench_flows)")
    parser.add_argument("--configs", default="0,1,2,3", help="bench/flows.cpp config numbers")
    parser.add_argument("--flows", default=",".join(FLOWS), help="default: all, " + ",".join(FLOWS))
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="default: all, " + ",".join(FAMILIES))
    parser.add_argument("--threads", default=None, help="thread counts (default 1,2; --quick: 1)")
    parser.add_argument("--targets-only", action="store_true", help="only the rows with an issue target")
    parser.add_argument("--repetitions", type=int, default=None, help="per side and row (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per repetition (default 0.2)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="OpenBLAS threads for PyTorch (default: the row's thread count)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch's intra-op threads, torch.set_num_threads (default 1)")
    parser.add_argument("--max-time", type=float, default=60,
                        help="PyTorch: fewer repetitions where they would take longer (default 60 s)")
    parser.add_argument("--warmup-time", type=float, default=None,
                        help="PyTorch's warm-up, seconds (default 0.2; knead's benchmarks make one "
                        "untimed call)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: target rows, 1 thread, 1 short repetition")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    quick = args.quick
    threads = parse_list(parser, "--threads", args.threads or ("1" if quick else "1,2"), [1, 2])
    configs = parse_list(parser, "--configs", args.configs, range(len(CONFIGS)))
    flows = parse_list(parser, "--flows", args.flows, FLOWS)
    families = parse_list(parser, "--families", args.families, FAMILIES)
    repetitions = args.repetitions or (1 if quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.05 if quick else 0.2)
    warmup_time = args.warmup_time if args.warmup_time is not None else (0.05 if quick else 0.2)
    targets_only = args.targets_only or quick
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"compare_torch.py: {args.bench} is not an executable; build the target bench_flows "
                 "(-DKNEAD_BUILD_BENCHMARKS=ON, Release) or pass --bench")

    blas = openblas()
    blas_info = blas.openblas_get_config().decode() if blas else "no OpenBLAS (BLAS threads not set)"
    print(f"PyTorch {torch.__version__}, {blas_info}; a row of n threads: torch.set_num_threads("
          f"{args.torch_threads or ('1' if blas else 'n')}), OpenBLAS threads {args.blas_threads or 'n'}")
    print(f"knead: {args.bench}; per side and row {repetitions} repetition(s) of >= {min_time} s, taking turns, "
          "median, wall clock")
    print(f"load average at start: {load()} ({os.cpu_count()} CPUs)", flush=True)

    rows = []
    for config in configs:
        for n in threads:
            for kind in flows:
                for family in families:
                    if targets_only and (config, kind, family) not in TARGETS:
                        continue
                    name = knead_name(config, kind, family, n)
                    set_threads(n, blas, args.blas_threads, args.torch_threads)
                    call, batch = torch_job(config, kind, family)
                    torch_timer = TorchTimer(call, batch, min_time, warmup_time, args.max_time)
                    round_trip = core_round_trip(args.bench) if n == 2 else None
                    rates = time_row(args.bench, name, torch_timer, repetitions, min_time)
                    rows.append({"config": config, "flow": kind, "family": family, "threads": n,
                                 "knead": rates[0][0], "torch": rates[1][0],
                                 "knead_cpu": rates[0][1], "torch_cpu": rates[1][1],
                                 "round_trip_ns": round_trip, "knead_kernel": knead_kernel(),
                                 "torch_kernels": torch_kernels()})
                    print(f"  {label(config)} {kind} {family} threads {n}: knead {si(rates[0][0])}/s, "
                          f"torch {si(rates[1][0])}/s", file=sys.stderr, flush=True)

    # knead's 2-thread scaling at hidden 512 (issue #4: >= 1.6 on the MAF train step), measured
    # apart from the rows above: their 1- and 2-thread runs are minutes apart
    scaling = {}
    if 2 in threads and "train_step" in families:
        for config in (c for c in (1, 2) if c in configs):
            for kind in flows:
                if targets_only and kind != "maf":
                    continue
                before = core_round_trip(args.bench)
                ratio = knead_thread_scaling(args.bench, config, kind, max(repetitions, 8), min_time)
                scaling[(config, kind)] = (ratio, [before, core_round_trip(args.bench)])
    print(f"load average at end: {load()}")
    print(f"knead kernel path: {knead_kernel()}; PyTorch: {torch_kernels()}")
    print()
    print(table(rows))
    print("ratio = knead / torch samples/s by wall clock; pass/fail against issue #4's target (the\n"
          "same at 2 threads). CPU-time ratio (1-thread rows): from knead's CPU time and torch's\n"
          "process CPU time, less sensitive to load. issue ref: the PyTorch libraries' figures\n"
          "quoted in issue #4 (1 thread). CPU 0-1 round trip (2-thread rows): a cache line's, before\n"
          f"the row; above {FAR_ROUND_TRIP_NS} ns (usually ~55 ns on the reference machine) the host had placed\n"
          "the two vCPUs far apart, which slows threads that share data (bench/machine.cpp).")
    extra = other_targets(rows, scaling)
    if extra:
        print()
        print("\n".join(extra))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The knead tool's speed (bench/README.md, "The knead tool"):

- `knead fit`'s training rows/s against the same flow's train step driven from C++
  (bench_flows' BM_train_step<maf>, config 4: D=8, 5 layers, hidden 128,128, batch 256, the tool's
  defaults). A fit's own cost is taken out as the difference of two fits that differ only in their
  epochs (E_LONG and E_SHORT), so it is the training loop's: every step, the shuffling and the
  gathering of batches, one validation pass per extra epoch.
- `knead log-prob` rows/s on 1,000,000 rows, D=8, for a 4-layer MAF with one hidden layer of 128
  and with two (hidden 128,128, the tool's default), reading .npy and writing .npy, wall clock of
  the whole command (reading, scoring, writing).

One thread everywhere (--threads 1). Needs python3-numpy, a Release build of the tool and of
bench_flows:

  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DKNEAD_BUILD_BENCHMARKS=ON -DKNEAD_BUILD_TESTS=OFF \
    -DKNEAD_BUILD_TOOLS=ON
  cmake --build build-bench --target bench_flows knead_tool
  /usr/bin/python3 bench/tool_speed.py --build build-bench
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DIM = 8
TRAIN_ROWS = 200_000
SCORE_ROWS = 1_000_000
E_SHORT, E_LONG = 1, 3


def timed(cmd):
    """(wall seconds, CPU seconds) of one run of cmd, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def table(rng, rows):
    """A correlated, non-Gaussian table: a Gaussian pushed through tanh and squares."""
    z = rng.standard_normal((rows, DIM))
    mix = rng.standard_normal((DIM, DIM)) / np.sqrt(DIM)
    x = z @ mix
    x[:, ::2] = np.tanh(x[:, ::2]) + 0.1 * z[:, ::2]
    x[:, 1::2] += 0.3 * x[:, ::2] ** 2
    return x.astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build-bench", help="build tree with tools/knead and bench/bench_flows")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    knead = os.path.join(args.build, "tools", "knead")
    bench = os.path.join(args.build, "bench", "bench_flows")
    for path in (knead, bench):
        if not os.access(path, os.X_OK):
            sys.exit(f"tool_speed.py: no executable {path} (build it first, see --help)")

    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rng = np.random.default_rng(20261207)
    with tempfile.TemporaryDirectory() as work:
        train = os.path.join(work, "train.npy")
        score = os.path.join(work, "score.npy")
        np.save(train, table(rng, TRAIN_ROWS))
        np.save(score, table(rng, SCORE_ROWS))

        # fit: the difference of an E_LONG-epoch and an E_SHORT-epoch run, the same otherwise
        def fit(epochs, output):
            return [knead, "fit", train, "-o", output, "--epochs", str(epochs), "--patience", "0",
                    "--val-fraction", "0.01", "--threads", "1", "--seed", "1", "--quiet"]

        rates, cpu_rates = [], []
        for _ in range(args.repetitions):
            short_wall, short_cpu = timed(fit(E_SHORT, os.path.join(work, "short.safetensors")))
            long_wall, long_cpu = timed(fit(E_LONG, os.path.join(work, "long.safetensors")))
            rows = (E_LONG - E_SHORT) * round(TRAIN_ROWS * 0.99)
            rates.append(rows / (long_wall - short_wall))
            cpu_rates.append(rows / (long_cpu - short_cpu))

        out = subprocess.run([bench, "--benchmark_filter=^BM_train_step<FlowKind::maf>/config:4/threads:1/",
                              f"--benchmark_repetitions={args.repetitions}", "--benchmark_format=json"],
                             check=True, capture_output=True, text=True).stdout
        runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
        library = statistics.median(b["items_per_second"] for b in runs)
        library_cpu = statistics.median(b["items_per_second"] * b["real_time"] / b["cpu_time"] for b in runs)
        fit_rate, fit_cpu = statistics.median(rates), statistics.median(cpu_rates)
        print(f"knead fit, training rows/s (D=8, 5 layers, hidden 128,128, batch 256, 1 thread; median of "
              f"{args.repetitions}): {fit_rate:,.0f} wall, {fit_cpu:,.0f} CPU time")
        print(f"the same flow's train step from C++ (bench_flows config 4): {library:,.0f} wall, "
              f"{library_cpu:,.0f} CPU time")
        print(f"fit / C++: {fit_rate / library:.3f} wall, {fit_cpu / library_cpu:.3f} CPU time (target >= 0.95)")

        # log-prob: a 4-layer MAF with one hidden layer of 128 and with two (the tool's default hidden)
        for hidden in ("128", "128,128"):
            model = os.path.join(work, "maf4.safetensors")
            subprocess.run([knead, "fit", train, "-o", model, "--layers", "4", "--hidden", hidden, "--epochs", "1",
                            "--threads", "1", "--quiet"], check=True, stderr=subprocess.DEVNULL)
            walls, cpus = [], []
            for _ in range(args.repetitions):
                wall, cpu = timed([knead, "log-prob", model, score, "-o", os.path.join(work, "lp.npy"),
                                   "--threads", "1"])
                walls.append(wall)
                cpus.append(cpu)
            lp = np.load(os.path.join(work, "lp.npy"))
            if lp.shape[0] != SCORE_ROWS or not np.all(np.isfinite(lp)):
                sys.exit("tool_speed.py: log-prob wrote the wrong rows")
            print(f"knead log-prob, 1,000,000 rows of D=8 (.npy in and out), 4-layer MAF hidden {hidden}, 1 thread "
                  f"(median of {args.repetitions}): {SCORE_ROWS / statistics.median(walls):,.0f} rows/s wall, "
                  f"{SCORE_ROWS / statistics.median(cpus):,.0f} CPU time (target >= 1,000,000)")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

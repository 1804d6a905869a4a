#!/usr/bin/env python3
"""Runs the results of docs/results.md over several seeds and prints each row as mean ± sd.

Each run is one command of examples/train_2d or examples/distill_iaf with --seed S, one thread; the
figures come from the summary.json it writes, the CPU seconds from os.wait4 (less sensitive to other
jobs on the machine than wall time). Usage:

  scripts/results.py --bin build-examples/examples --out out/results [--seeds 0 1 2] [--only moons]

Build the examples first (scripts/demo.sh, or -DKNEAD_BUILD_EXAMPLES=ON). Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

# name, program, arguments (without --seed/--out), what to read from summary.json
MOONS = [(f"moons-{flow}", "train_2d", ["--dataset", "moons", "--flow", flow, "--layers", "4"])
         for flow in ("maf", "iaf", "realnvp", "nice", "mlp")]
DISTILL = [("distill", "distill_iaf", ["--dataset", "moons"])]
SIGGRAPH_CSV = [("siggraph-csv-maf16", "train_2d",
                 ["--dataset", "../shared/data/siggraph.csv", "--scaling", "none", "--flow", "maf", "--layers",
                  "16", "--hidden", "64,64", "--lr", "2e-3", "--steps", "60000"])]
SIGGRAPH = [("siggraph-maf8", "train_2d",
             ["--dataset", "siggraph", "--flow", "maf", "--layers", "8", "--hidden", "128,128", "--lr", "1e-3",
              "--batch", "1024", "--steps", "80000"])]
GROUPS = {"moons": MOONS, "distill": DISTILL, "siggraph-csv": SIGGRAPH_CSV, "siggraph": SIGGRAPH}


def run(binary, args, out):
    """Runs one command; returns its summary.json and the CPU seconds it used."""
    os.makedirs(out, exist_ok=True)
    cmd = [binary, *args, "--threads", "1", "--out", out]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"results.py: {' '.join(cmd)} failed (exit status {os.waitstatus_to_exitcode(status)})")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return json.load(f), usage.ru_utime + usage.ru_stime


def figures(name, summary):
    """The figures of a row: test/train NLL for train_2d, the student's gap and KL for distill_iaf."""
    if name == "distill":
        teacher, student = summary["teacher"], summary["student"]
        return {"teacher test NLL": teacher["test_nll"], "student test NLL": student["test_nll"],
                "gap": student["test_nll"] - teacher["test_nll"],
                "KL(student||teacher)": summary["reverse_kl_estimate"]["value"]}
    return {"test NLL": summary["test_nll"], "train NLL": summary["train_nll"]}


def mean_sd(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="directory holding train_2d and distill_iaf")
    parser.add_argument("--out", default="out/results", help="directory for the runs' outputs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(GROUPS), default=["moons", "distill"])
    o = parser.parse_args()
    for group in o.only:
        for name, program, args in GROUPS[group]:
            rows, cpu = [], []
            for seed in o.seeds:
                summary, seconds = run(os.path.join(o.bin, program), [*args, "--seed", str(seed)],
                                       os.path.join(o.out, f"{name}-seed{seed}"))
                rows.append(figures(name, summary))
                cpu.append(seconds)
            cells = [f"{key} {mean_sd([r[key] for r in rows])} ({', '.join(f'{r[key]:.3f}' for r in rows)})"
                     for key in rows[0]]
            print(f"| {name} | seeds {' '.join(map(str, o.seeds))} | {' | '.join(cells)} | "
                  f"CPU {statistics.mean(cpu):.1f} s per run |", flush=True)


if __name__ == "__main__":
    main()

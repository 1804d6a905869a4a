"""Collects bench/quality/run.sh's runs into WORKDIR/results.md and WORKDIR/results.json.

usage: report.py WORKDIR TABLE...

Per table: the Gaussian's test NLL, the defaults' test NLL, and the sweep configuration (the
defaults included) with the lowest validation NLL (mean over seeds) with its test NLL. All NLLs
are in nats per row, in data units.
"""
import glob
import json
import os
import sys

SOURCES = {
    "faithful": "r-base-core (datasets::faithful)",
    "sonar": "r-cran-mlbench (Sonar)",
    "satellite": "r-cran-mlbench (Satellite)",
    "diamonds": "r-cran-ggplot2 (diamonds)",
    "movielens": "r-cran-dslabs (movielens)",
}


def config_of(tag):
    return tag.rsplit("_s", 1)[0]


def describe(cfg, runs):
    r = runs[0]["training"]
    return f"{r['layers']} layers, hidden {','.join(map(str, r['hidden']))}, lr {r['lr']:g}"


def mean(xs):
    return sum(xs) / len(xs)


def main():
    work = sys.argv[1]
    results, lines = [], []
    lines.append("| table | source | rows × D | Gaussian | defaults | best of sweep (by validation) | "
                 "its test NLL | defaults − best | medians: Gaussian, defaults, best |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for t in sys.argv[2:]:
        info = json.load(open(os.path.join(work, t, "gaussian.json")))
        configs = {}
        for path in sorted(glob.glob(os.path.join(work, t, "runs", "*.json"))):
            tag = os.path.basename(path)[:-5]
            configs.setdefault(config_of(tag), []).append(json.load(open(path)))
        if "defaults" not in configs:
            continue
        summary = {}
        for cfg, runs in configs.items():
            summary[cfg] = {
                "seeds": [r["training"]["seed"] for r in runs],
                "description": describe(cfg, runs),
                "epochs_asked": runs[0]["training"]["epochs_asked"],
                "epochs_run": [r["training"]["epochs_run"] for r in runs],
                "best_epoch": [r["training"]["best_epoch"] for r in runs],
                "validation_nll": mean([r["validation"]["mean_nll"] for r in runs]),
                "test_nll": mean([r["test"]["mean_nll"] for r in runs]),
                "test_se": mean([r["test"]["standard_error"] for r in runs]),
                "test_median_nll": mean([r["test"]["median_nll"] for r in runs]),
                "test_nll_without_worst_row": mean([
                    (r["test"]["mean_nll"] * r["test"]["rows"] - r["test"]["worst_rows"][0]["nll"])
                    / (r["test"]["rows"] - 1) for r in runs]),
                "test_worst_row": [r["test"]["worst_rows"][0] for r in runs],
                "test_nll_per_seed": [r["test"]["mean_nll"] for r in runs],
            }
        best = min(summary, key=lambda c: summary[c]["validation_nll"])
        d, b, g = summary["defaults"], summary[best], info["gaussian"]
        gap = d["test_nll"] - b["test_nll"]
        results.append({"table": t, "source": SOURCES.get(t, ""), "info": info, "configs": summary,
                        "best_by_validation": best, "defaults_minus_best": gap})
        notes = []
        if info["all_integer"]:
            notes.append("integer-valued")
        elif info["integer_valued_columns"]:
            notes.append("integer columns: " + ",".join(info["integer_valued_columns"]))
        if g["ridge"]:
            notes.append("Gaussian with ridge")
        note = f" ({'; '.join(notes)})" if notes else ""
        lines.append(
            f"| {t}{note} | {SOURCES.get(t, '')} | {info['rows']} × {info['columns']} | "
            f"{g['mean_nll']:.3f} ± {g['standard_error']:.3f} | "
            f"{d['test_nll']:.3f} ± {d['test_se']:.3f} | {b['description']} ({len(summary)} configs) | "
            f"{b['test_nll']:.3f} ± {b['test_se']:.3f} | {gap:+.3f} ({100 * gap / abs(b['test_nll']):+.1f} %) | "
            f"{g['median_nll']:.3f}, {d['test_median_nll']:.3f}, {b['test_median_nll']:.3f} |")
    text = "\n".join(lines) + "\n"
    open(os.path.join(work, "results.md"), "w").write(text)
    json.dump(results, open(os.path.join(work, "results.json"), "w"), indent=2)
    print(text)


if __name__ == "__main__":
    main()

"""Splits each extracted table 80/20 into train and test CSVs (fixed seed) and scores the
full-covariance Gaussian fitted to the train rows (maximum-likelihood mean and covariance) on
the test rows, in closed form and double precision.

usage: prepare.py WORKDIR NAME...   (reads WORKDIR/NAME.csv, writes WORKDIR/NAME/{train,test}.csv
                                     and WORKDIR/NAME/gaussian.json)
"""
import json
import os
import sys

import numpy as np

SEED = 20261207


def read_csv(path):
    with open(path) as f:
        names = [n.strip().strip('"') for n in f.readline().split(",")]
    return names, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def write_csv(path, names, x):
    fmt = "%.17g"
    np.savetxt(path, x, delimiter=",", header=",".join(names), comments="", fmt=fmt)


def gaussian_nll(train, test):
    mu = train.mean(axis=0)
    c = np.cov(train, rowvar=False, bias=True)
    c = np.atleast_2d(c)
    d = c.shape[0]
    # singular if the correlation matrix is (so that columns in very different units, such as
    # movielens' timestamp and rating, do not count as singular); the ridge is relative to diag(c)
    ridge = 0.0
    sd = np.sqrt(np.diag(c))
    if np.linalg.eigvalsh(c / np.outer(sd, sd)).min() <= 1e-12:
        ridge = 1e-6
        c = c + ridge * np.diag(np.diag(c))
    chol = np.linalg.cholesky(c)
    z = np.linalg.solve(chol, (test - mu).T).T
    logdet = 2.0 * np.log(np.diag(chol)).sum()
    nll = 0.5 * (z * z).sum(axis=1) + 0.5 * logdet + 0.5 * d * np.log(2.0 * np.pi)
    return {
        "mean_nll": float(nll.mean()),
        "standard_error": float(nll.std(ddof=1) / np.sqrt(len(nll))),
        "median_nll": float(np.median(nll)),
        "worst_row": int(np.argmax(nll)) + 1,
        "mean_nll_without_worst_row": float((nll.sum() - nll.max()) / (len(nll) - 1)),
        "ridge": ridge,
    }


def main():
    work = sys.argv[1]
    for name in sys.argv[2:]:
        names, x = read_csv(os.path.join(work, name + ".csv"))
        rng = np.random.default_rng(SEED)
        perm = rng.permutation(len(x))
        n_test = len(x) // 5
        test, train = x[perm[:n_test]], x[perm[n_test:]]
        # a column constant on the train rows cannot be standardised (nor has a density): dropped
        keep = train.std(axis=0) > 0
        dropped = [n for n, k in zip(names, keep) if not k]
        names = [n for n, k in zip(names, keep) if k]
        train, test = train[:, keep], test[:, keep]
        integer = bool(np.all(x == np.round(x)))
        integer_columns = [n for n, col in zip(names, train.T) if np.all(col == np.round(col))]
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        write_csv(os.path.join(d, "train.csv"), names, train)
        write_csv(os.path.join(d, "test.csv"), names, test)
        g = gaussian_nll(train, test)
        info = {
            "table": name,
            "rows": int(len(x)),
            "columns": len(names),
            "train_rows": int(len(train)),
            "test_rows": int(len(test)),
            "split_seed": SEED,
            "dropped_constant_columns": dropped,
            "integer_valued_columns": integer_columns,
            "all_integer": integer,
            "gaussian": g,
        }
        with open(os.path.join(d, "gaussian.json"), "w") as f:
            json.dump(info, f, indent=2)
        print(f"{name}: {len(x)} rows x {len(names)} columns, Gaussian test NLL "
              f"{g['mean_nll']:.4f} +- {g['standard_error']:.4f}" + (" (ridge)" if g["ridge"] else ""))


if __name__ == "__main__":
    main()

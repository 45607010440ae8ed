"""NegBinMixture against sklearn's GaussianMixture on the same data, in one run.

Run on demand (not part of the tests)::

    python benchmarks/bench_negbin.py            # all three cases
    python benchmarks/bench_negbin.py --case a   # one case

Cases: (a) 10**6 one-dimensional counts, K=3; (b) dense 10**5 x 50, K=5;
(c) sparse 50 000 x 2 000 at 5 % density, K=8. Both estimators get the same K,
n_init, max_iter and tol. GaussianMixture uses covariance_type="diag", the
Gaussian analogue of NegBinMixture's independent features. Reported: time
ratio GaussianMixture / NegBinMixture, peak memory of each fit (tracemalloc:
allocations made during the fit), the NB fit's mean log-likelihood against
that of the true parameters, and the same for the best of 5 starts run to
tol=1e-6.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from _common import peak_memory, print_table, timed
from skem import NegBinMixture
from skem.datasets import make_negbin_mixture


def case_a(rng):
    means = np.array([[3.0], [25.0], [150.0]])
    X, _ = make_negbin_mixture(10**6, weights=(0.5, 0.3, 0.2), means=means, dispersion=0.1,
                               random_state=int(rng.integers(2**31)))
    return X, dict(weights=(0.5, 0.3, 0.2), means=means, dispersion=0.1), 3


def case_b(rng):
    K, D = 5, 50
    means = rng.gamma(2.0, 5.0, size=(K, D)) + 0.5
    weights = np.full(K, 1 / K)
    X, _ = make_negbin_mixture(10**5, weights=weights, means=means, dispersion=0.3,
                               random_state=int(rng.integers(2**31)))
    return X, dict(weights=weights, means=means, dispersion=0.3), K


def case_c(rng):
    n, D, K, density = 50_000, 2_000, 8, 0.05
    y = rng.integers(0, K, size=n)
    means = rng.gamma(1.0, 2.0, size=(K, D)) + 0.2
    nnz_per_row = rng.binomial(D, density, size=n)
    indptr = np.concatenate([[0], np.cumsum(nnz_per_row)])
    indices = np.concatenate([np.sort(rng.choice(D, size=m, replace=False)) for m in nnz_per_row])
    rows = np.repeat(np.arange(n), nnz_per_row)
    mu = means[y[rows], indices]
    size = 1 / 0.5
    data = 1.0 + rng.negative_binomial(size, size / (size + mu))  # stored entries are >= 1
    X = sp.csr_matrix((data, indices, indptr), shape=(n, D))
    return X, None, K


CASES = {"a": case_a, "b": case_b, "c": case_c}


def run(name, n_init, max_iter, tol):
    rng = np.random.default_rng(0)
    X, truth, K = CASES[name](rng)
    sparse = sp.issparse(X)
    nb = lambda: NegBinMixture(K, dispersion="shared", n_init=n_init, max_iter=max_iter, tol=tol,
                               random_state=0).fit(X)
    gm = lambda data: GaussianMixture(K, covariance_type="diag", n_init=n_init,
                                      max_iter=max_iter, tol=tol, random_state=0).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nb_time, model = timed(nb)
        nb_peak = peak_memory(nb)
        dense = X.toarray() if sparse else X
        gm_time, _ = timed(gm, dense)
        gm_peak = peak_memory(gm, dense)
    input_bytes = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) if sparse else X.nbytes
    resp_bytes = X.shape[0] * K * 8
    row = {
        "case": name,
        "shape": f"{X.shape[0]}x{X.shape[1]}" + (" sparse" if sparse else ""),
        "K": K,
        "NB s": f"{nb_time:.2f}",
        "GM s": f"{gm_time:.2f}",
        "GM/NB time": f"{gm_time / nb_time:.1f}x",
        "NB iters": model.n_iter_,
        "NB peak MB": f"{nb_peak / 2**20:.0f}",
        "GM peak MB": f"{gm_peak / 2**20:.0f}",
        "NB peak / (input+resp)": f"{nb_peak / (input_bytes + resp_bytes):.2f}",
    }
    if truth is not None:
        true_model = NegBinMixture(
            K, dispersion=truth["dispersion"], means_init=truth["means"],
            weights_init=truth["weights"], max_iter=0,
        ).fit(X)
        row["NB loglik - truth"] = f"{model.score(X) - true_model.score(X):+.2e}"
        # The target on simulated data: the best of 5 starts, run to a tight tolerance,
        # is no worse than the parameters that generated the data.
        tight = NegBinMixture(K, dispersion="shared", n_init=5, tol=1e-6, max_iter=1000,
                              random_state=0).fit(X)
        row["best-of-5 (tol 1e-6) - truth"] = f"{tight.score(X) - true_model.score(X):+.2e}"
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--n-init", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args()
    rows = [run(name, args.n_init, args.max_iter, args.tol) for name in args.case or sorted(CASES)]
    columns = list(dict.fromkeys(c for r in rows for c in r))
    for r in rows:
        r.setdefault("NB loglik - truth", "n/a")
        r.setdefault("best-of-5 (tol 1e-6) - truth", "n/a")
    print_table(rows, columns)


if __name__ == "__main__":
    main()

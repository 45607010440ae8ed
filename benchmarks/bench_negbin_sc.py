"""NegBinMixture at single-cell scale, beside the usual Gaussian-mixture and k-means pipeline.

Run on demand (not part of the tests)::

    python benchmarks/bench_negbin_sc.py                       # 10**5 cells x 2 000 genes
    python benchmarks/bench_negbin_sc.py --cells 20000         # smaller

Data: ``--cells`` x ``--genes`` counts at about 5 % density (CSR, float32, as
AnnData's ``.X``), ``--types`` cell types that differ in 10 % of the genes,
gene-wise dispersions, and a sequencing depth that varies 10x (log-uniform
on [0.3, 3]) independently of the cell type. Fitted side by side with the
same K:

* ``NegBinMixture(dispersion="feature", size_factors="library")`` on the
  counts (sparse, never densified);
* ``GaussianMixture(covariance_type="diag")`` and ``KMeans`` on the usual
  transform: ``log1p`` of counts normalized to 10 000 per cell, reduced to
  50 components by ``TruncatedSVD`` (the PCA step of scanpy/Seurat).

Reported: whole-fit time (wall) and NB iterations; the CPU time of one
E-step pass over all rows and of one M-step, each over the floor of one
iteration (the two sparse products ``X @ A`` and ``X.T @ B`` that any
E-step and M-step of a sparse mixture needs; CPU time, as the machines are
shared); peak memory of the NB fit (tracemalloc: allocations during the
fit) against the CSR input plus one (n, K) array; and the adjusted Rand
index of each method against the simulated types.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from _common import peak_memory, print_table, timed
from skem import NegBinMixture
from skem._em import e_pass, in_memory_rows


def simulate(n_cells, n_genes, n_types, seed=0, density=0.05, block=5000, fold_range=(2.0, 8.0),
             depth_range=(0.3, 3.0), proportions=None):
    """Sparse NB counts with cell types, gene-wise dispersions and 10x depth variation.

    Each type changes 10 % of the genes by a factor log-uniform in
    ``fold_range`` (up or down); depths are log-uniform in ``depth_range``;
    types are uniform, or drawn with ``proportions``.
    """
    rng = np.random.default_rng(seed)
    # Base expression so that about `density` of the entries are non-zero at depth 1.
    base = rng.lognormal(np.log(density) - 0.5, 1.0, n_genes)
    means = np.tile(base, (n_types, 1))
    low, high = np.log(fold_range)
    for k in range(n_types):  # each type changes 10 % of the genes 2-8 fold
        changed = rng.choice(n_genes, n_genes // 10, replace=False)
        means[k, changed] *= np.exp(rng.choice([-1, 1], changed.size) * rng.uniform(low, high, changed.size))
    dispersion = rng.uniform(0.1, 1.0, n_genes)
    if proportions is None:
        y = rng.integers(0, n_types, n_cells)
    else:
        y = rng.choice(n_types, n_cells, p=proportions)
    depth = np.exp(rng.uniform(*np.log(depth_range), n_cells))
    blocks = []
    size = 1.0 / dispersion
    for start in range(0, n_cells, block):
        rows = slice(start, min(start + block, n_cells))
        mu = depth[rows, None] * means[y[rows]]
        counts = rng.negative_binomial(size, size / (size + mu)).astype(np.float32)
        blocks.append(sp.csr_matrix(counts))
    return sp.vstack(blocks, format="csr"), y, depth


def log_normalized_pcs(X, seed):
    totals = np.asarray(X.sum(axis=1)).ravel()
    normalized = sp.diags(1e4 / np.maximum(totals, 1)) @ X
    normalized.data = np.log1p(normalized.data)
    return TruncatedSVD(50, random_state=seed).fit_transform(normalized)


def cpu_seconds(function, repeat=3):
    """CPU time of this process per call (less sensitive than wall time to a shared machine)."""
    start = time.process_time()
    for _ in range(repeat):
        function()
    return (time.process_time() - start) / repeat


def sparse_product_floor(X, K, repeat=3):
    """CPU time of the two sparse products of one iteration: X @ (D, K) and X.T @ (n, K)."""
    A, B = np.ones((X.shape[1], K)), np.ones((X.shape[0], K))
    X64 = X.astype(np.float64)
    return cpu_seconds(lambda: (X64 @ A, X64.T @ B), repeat)


def step_costs(model, X):
    """CPU time of one E-step pass over all rows and of one M-step, at the fitted parameters."""
    params = model._get_fitted_params()
    data = in_memory_rows(model._model, model._validate_X(X, reset=False), np.ones(X.shape[0]))
    # Fresh parameter objects: their per-pass tables are not cached yet, as in a real pass.
    fresh = lambda: type(params)(params.weights, params.means, params.dispersion)  # noqa: E731
    e_time = cpu_seconds(lambda: e_pass(model._model, fresh(), data))
    stats, _ = e_pass(model._model, params, data)
    m_time = cpu_seconds(lambda: model._model.m_step(stats, fresh()))
    return e_time, m_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--types", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the traced second NB fit")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="cap the NB fits' iterations (default: the estimator's)")
    args = parser.parse_args()
    K = args.types
    X, y, depth = simulate(args.cells, args.genes, K, args.seed)
    print(f"{X.shape[0]} x {X.shape[1]} CSR float32, density {X.nnz / np.prod(X.shape):.3f}, "
          f"K = {K}, depth 10x (log-uniform 0.3-3)")

    cap = {} if args.max_iter is None else {"max_iter": args.max_iter}

    def nb():
        return NegBinMixture(K, dispersion="feature", size_factors="library",
                             random_state=args.seed, **cap).fit(X)

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nb_time, model = timed(nb)
        floor = sparse_product_floor(X, K)
        e_time, m_time = step_costs(model, X)
        nb_peak = None if args.no_memory else peak_memory(nb)
        input_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        resp_bytes = X.shape[0] * K * 8
        rows.append({
            "method": "NegBinMixture(feature, library size factors)",
            "fit s": f"{nb_time:.1f}",
            "iters": model.n_iter_,
            "E-step / floor": f"{e_time / floor:.1f}x",
            "M-step / floor": f"{m_time / floor:.1f}x",
            "peak / (CSR+resp)": "n/a" if nb_peak is None else f"{nb_peak / (input_bytes + resp_bytes):.2f}",
            "ARI": f"{adjusted_rand_score(y, model.predict(X)):.3f}",
        })
        no_sf_time, no_sf = timed(lambda: NegBinMixture(K, dispersion="feature",
                                                         random_state=args.seed, **cap).fit(X))
        no_sf_e, no_sf_m = step_costs(no_sf, X)
        rows.append({
            "method": "NegBinMixture(feature, no size factors)", "fit s": f"{no_sf_time:.1f}",
            "iters": no_sf.n_iter_, "E-step / floor": f"{no_sf_e / floor:.1f}x",
            "M-step / floor": f"{no_sf_m / floor:.1f}x",
            "peak / (CSR+resp)": "n/a", "ARI": f"{adjusted_rand_score(y, no_sf.predict(X)):.3f}",
        })
        transform_time, pcs = timed(log_normalized_pcs, X, args.seed)
        gm_time, gm = timed(lambda: GaussianMixture(K, covariance_type="diag",
                                                    random_state=args.seed).fit(pcs))
        rows.append({
            "method": "GaussianMixture(diag) on log1p-normalized PCs",
            "fit s": f"{gm_time:.1f} (+{transform_time:.1f} transform)", "iters": gm.n_iter_,
            "E-step / floor": "", "M-step / floor": "",
            "peak / (CSR+resp)": "", "ARI": f"{adjusted_rand_score(y, gm.predict(pcs)):.3f}",
        })
        km_time, km = timed(lambda: KMeans(K, n_init=3, random_state=args.seed).fit(pcs))
        rows.append({
            "method": "KMeans on log1p-normalized PCs",
            "fit s": f"{km_time:.1f} (+{transform_time:.1f} transform)", "iters": km.n_iter_,
            "E-step / floor": "", "M-step / floor": "", "peak / (CSR+resp)": "",
            "ARI": f"{adjusted_rand_score(y, km.labels_):.3f}",
        })
    print(f"floor of one iteration (X @ A and X.T @ B, float64): {floor:.3f} s CPU")
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()

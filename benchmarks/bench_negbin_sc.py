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
shared; the median of ``--repeat`` ratios, each pass timed right after a
floor); peak memory of the NB fit (tracemalloc: allocations during the
fit) against the CSR input plus one (n, K) array; and the adjusted Rand
index of each method against the simulated types.

With size factors the E-step runs compiled kernels when numba is installed
(``pip install skem[fast]``); the first NB fit is the first use in the
process, so its time includes importing numba and loading the compiled
kernels. Also reported: that import and load (from numba's cache), and a
compilation from an empty cache, each in a fresh process; and the E-step of
the NumPy path (``SKEM_NUMBA=0``) on the same fit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
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
from skem._negbin_kernels import compiled_kernels


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


def step_costs(model, X, floor_call, repeat):
    """CPU time of one E-step pass over all rows and of one M-step, at the fitted parameters,
    each over the floor: medians of ``repeat`` ratios, each pass timed right after a floor."""
    params = model._get_fitted_params()
    data = in_memory_rows(model._model, model._validate_X(X, reset=False), np.ones(X.shape[0]))
    # Fresh parameter objects: their per-pass tables are not cached yet, as in a real pass.
    fresh = lambda: type(params)(params.weights, params.means, params.dispersion)  # noqa: E731
    stats, _ = e_pass(model._model, params, data)
    e_ratios, m_ratios = [], []
    for _ in range(repeat):
        floor = cpu_seconds(floor_call, 1)
        e_ratios.append(cpu_seconds(lambda: e_pass(model._model, fresh(), data), 1) / floor)
        floor = cpu_seconds(floor_call, 1)
        m_ratios.append(cpu_seconds(lambda: model._model.m_step(stats, fresh()), 1) / floor)
    return float(np.median(e_ratios)), float(np.median(m_ratios))


_LOAD_KERNELS = """
import time
start = time.perf_counter()
import numpy as np, scipy.sparse as sp
from skem._negbin_kernels import OffsetEntries, SizeNodes, compiled_kernels, index_entries
from skem.negbin import NegBinData, NegBinModel, NegBinParams
assert compiled_kernels() is not None
X = sp.csr_matrix(np.eye(3))
index, pairs = index_entries(X)
s = np.ones(3) * 2
chunk = NegBinData(weights=np.ones(3), value_index=index, pairs=pairs, size_factors=s,
                   nodes=SizeNodes.of(s))
entries = OffsetEntries.of(np.ones((3, 2)), chunk)
entries.log_density(np.zeros((2, pairs.size)))
entries.statistics(np.ones((3, 2)))
model = NegBinModel(n_components=2, n_features=3, dispersion="feature", size_factors="given")
model.e_step(NegBinParams(np.full(2, 0.5), np.ones((2, 3)), np.full((2, 3), 0.1)), chunk)
print(time.perf_counter() - start)
"""


def kernel_load_seconds(cache_dir):
    """Wall time, in a fresh process, to import numba and skem's kernels and run each once (the
    fit's fused E-step and the scoring kernels; importing numpy and scipy included): compiling them into ``cache_dir`` if it is empty,
    loading them from it otherwise."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, SKEM_NUMBA="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _LOAD_KERNELS], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--types", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the traced second NB fit")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="cap the NB fits' iterations (default: the estimator's)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="E-step and M-step timings (each against its own floor); medians")
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
        compiled = compiled_kernels() is not None
        X64 = X.astype(np.float64)
        A, B = np.ones((X.shape[1], K)), np.ones((X.shape[0], K))

        def floor_call():
            return X64 @ A, X64.T @ B

        floor = cpu_seconds(floor_call)
        e_ratio, m_ratio = step_costs(model, X, floor_call, args.repeat)
        numpy_ratio = None
        if compiled:
            os.environ["SKEM_NUMBA"] = "0"
            compiled_kernels.cache_clear()
            numpy_ratio = step_costs(model, X, floor_call, max(1, args.repeat // 2))[0]
            del os.environ["SKEM_NUMBA"]
            compiled_kernels.cache_clear()
        nb_peak = None if args.no_memory else peak_memory(nb)
        input_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        resp_bytes = X.shape[0] * K * 8
        rows.append({
            "method": "NegBinMixture(feature, library size factors)"
                      + (", numba" if compiled else ", NumPy"),
            "fit s": f"{nb_time:.1f}",
            "iters": model.n_iter_,
            "E-step / floor": f"{e_ratio:.1f}x",
            "M-step / floor": f"{m_ratio:.1f}x",
            "peak / (CSR+resp)": "n/a" if nb_peak is None else f"{nb_peak / (input_bytes + resp_bytes):.2f}",
            "ARI": f"{adjusted_rand_score(y, model.predict(X)):.3f}",
        })
        if numpy_ratio is not None:
            rows.append({
                "method": "  same fit, E-step of the NumPy path (SKEM_NUMBA=0)", "fit s": "",
                "iters": "", "E-step / floor": f"{numpy_ratio:.1f}x", "M-step / floor": "",
                "peak / (CSR+resp)": "", "ARI": "",
            })
        no_sf_time, no_sf = timed(lambda: NegBinMixture(K, dispersion="feature",
                                                         random_state=args.seed, **cap).fit(X))
        no_sf_e, no_sf_m = step_costs(no_sf, X, floor_call, args.repeat)
        rows.append({
            "method": "NegBinMixture(feature, no size factors)", "fit s": f"{no_sf_time:.1f}",
            "iters": no_sf.n_iter_, "E-step / floor": f"{no_sf_e:.1f}x",
            "M-step / floor": f"{no_sf_m:.1f}x",
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
    if compiled:
        with tempfile.TemporaryDirectory() as cache_dir:
            cold = kernel_load_seconds(cache_dir)
            warm = kernel_load_seconds(cache_dir)
        print(f"numba kernels in a fresh process (imports and one call): {cold:.1f} s compiling "
              f"into an empty cache, {warm:.1f} s loading from the cache (the fit above loaded "
              f"them from the cache: its time includes that)")


if __name__ == "__main__":
    main()

"""The negative-binomial kernels and M-step solvers on their own: the compiled E-step kernels
against the NumPy path and against brute force, the M-step solvers called with plain arrays
against scipy, and the Poisson limit (a dispersion of exactly 0) through the whole fit."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats as st
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

import skem._negbin_kernels as kernels
from skem import NegBinMixture
from skem._negbin_kernels import (
    PHI_MIN,
    OffsetEntries,
    SizeNodes,
    index_entries,
    max_factors,
    stored_entries,
)
from skem._negbin_mstep import offset_m_step, solve_dispersion
from skem.negbin import NegBinData, NegBinModel, NegBinParams

# ------------------------------------------------------- E-step with size factors


def _chunk(X, size_factors):
    value_index, pairs = index_entries(X)
    return NegBinData(weights=np.ones(X.shape[0]), value_index=value_index, pairs=pairs,
                      size_factors=size_factors, nodes=SizeNodes.of(size_factors))


def _counts(seed, n=60, D=7, layout="csr"):
    """Counts with ones and twos (the product path), larger and non-integer values (the
    logarithm path), empty rows and stored zeros."""
    rng = np.random.default_rng(seed)
    X = rng.negative_binomial(0.7, 0.3, size=(n, D)).astype(float)
    X[rng.uniform(size=X.shape) < 0.5] = 0.0
    X[3] = 0.0
    X[5, 2] = 2.5
    X[6, :3] = [150.0, 7.0, 1e6]
    if layout == "dense":
        return X
    X = sp.csr_matrix(X)
    X.data[:2] = 0.0  # stored zeros
    return X


def _brute_force(X, size_factors, phi_mu, table, pairs, weighted_resp):
    """The E-step's entry sums from the dense matrix, entry by entry."""
    dense = X.toarray() if sp.issparse(X) else X
    value_index, _ = index_entries(X)
    index = value_index.toarray() if sp.issparse(value_index) else value_index
    stored = (X != 0).toarray() if sp.issparse(X) else X != 0
    if sp.issparse(X):
        stored = np.zeros(X.shape, dtype=bool)
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        stored[rows, X.indices] = True
    n, D = dense.shape
    K = phi_mu.shape[1]
    log_density, totals = np.zeros((n, K)), np.zeros(n)
    hist, slope = np.zeros((K, pairs.size)), np.zeros((K, D))
    for i in range(n):
        for d in range(D):
            if not stored[i, d]:
                continue
            x, u = dense[i, d], 1.0 + phi_mu[d] * size_factors[i]
            log_density[i] += table[:, index[i, d]] - x * np.log(u)
            totals[i] += x
            hist[:, index[i, d]] += weighted_resp[i]
            slope[:, d] += weighted_resp[i] * x * size_factors[i] / u
    return log_density, totals, hist, slope


@pytest.mark.parametrize("layout", ["csr", "dense"])
@pytest.mark.parametrize("backend", ["numpy", "compiled"])
def test_entry_sums_and_statistics_match_brute_force(layout, backend):
    compiled = kernels.compiled_kernels() if backend == "compiled" else None
    if backend == "compiled" and compiled is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(1)
    X = _counts(0, layout=layout)
    s = np.exp(rng.normal(0, 0.8, X.shape[0]))
    chunk = _chunk(X, s)
    K = 3
    phi_mu = rng.uniform(0, 4, (X.shape[1], K))
    phi_mu[1] = 0.0  # a Poisson feature
    table = rng.normal(size=(K, chunk.pairs.size))
    weighted_resp = rng.uniform(size=(X.shape[0], K))
    entries = OffsetEntries.of(phi_mu, chunk, kernels=compiled)
    log_density, totals = entries.log_density(table)
    hist, x_sum, slope = entries.statistics(weighted_resp)
    expected = _brute_force(X, s, phi_mu, table, chunk.pairs, weighted_resp)
    np.testing.assert_allclose(log_density, expected[0], rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(totals, expected[1], rtol=1e-15)
    # Stored zeros (value 0) land in the histogram too, as in the pair product.
    np.testing.assert_allclose(hist, expected[2], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(x_sum, chunk.pairs.per_feature(expected[2] * chunk.pairs.values),
                               rtol=1e-13)
    np.testing.assert_allclose(slope, expected[3], rtol=1e-13, atol=1e-14)


def test_stored_entries_of_dense_input_are_its_non_zeros():
    X = _counts(2, layout="dense")
    value_index, pairs = index_entries(X)
    indptr, columns, pair_index = stored_entries(value_index, pairs)
    rebuilt = sp.csr_matrix((pairs.values[pair_index], columns, indptr), shape=X.shape).toarray()
    np.testing.assert_array_equal(rebuilt, X)
    assert np.all(pairs.values[pair_index] != 0)


@pytest.fixture
def compiled():
    module = kernels.compiled_kernels()
    if module is None:
        pytest.skip("numba is not installed")
    return module


def test_compiled_log_is_within_one_ulp(compiled):
    import numba

    @numba.njit
    def logs(values):
        out = np.empty_like(values)
        for i in range(values.size):
            out[i] = compiled.log_exact(values[i])
        return out

    rng = np.random.default_rng(0)
    values = np.concatenate([
        1.0 + rng.uniform(0, 1e-6, 10_000), 1.0 + rng.uniform(0, 1, 10_000),
        np.exp(rng.uniform(0, 700, 10_000)), [1.0, 2.0, np.sqrt(2.0), 1e300, 2.0**-1000],
    ])
    exact = np.log(values.astype(np.longdouble))
    got = logs(values)
    error = np.abs(got - exact) / np.spacing(np.abs(exact).astype(float) + 1e-300)
    assert np.max(error) <= 1.0
    assert got[values == 1.0][0] == 0.0


def test_running_products_are_renormalized_before_they_overflow(compiled):
    # Factors near 1e100: at most max_factors of them between renormalizations; rows of
    # 40 entries of 1 to 4 would overflow a plain product many times over.
    rng = np.random.default_rng(3)
    n, D, K = 5, 40, 2
    X = sp.csr_matrix(rng.integers(1, 5, (n, D)).astype(float))
    s = np.full(n, 1e50)
    phi_mu = np.exp(rng.uniform(100, 120, (D, K)))
    value_index, pairs = index_entries(X)
    table = np.zeros((pairs.size, K))
    assert 1 <= max_factors(phi_mu, s) <= 3
    for limit in (1, max_factors(phi_mu, s)):
        out, totals = np.empty((n, K)), np.empty(n)
        compiled.entry_sums(value_index.indptr, value_index.indices, value_index.data, pairs.values,
                            s, phi_mu, table, limit, out, totals)
        expected = -(X.toarray()[:, :, None] * np.log(1.0 + phi_mu[None] * s[:, None, None])).sum(axis=1)
        np.testing.assert_allclose(out, expected, rtol=1e-14)
    # Factors beyond 2**500: every entry takes the logarithm.
    assert max_factors(np.full((1, 1), 1e160), np.full(1, 1e10)) == 0
    out = np.empty((n, K))
    compiled.entry_sums(value_index.indptr, value_index.indices, value_index.data, pairs.values,
                        np.full(n, 1e10), np.full((D, K), 1e160), table, 0, out, totals)
    np.testing.assert_allclose(out[:, 0], -X.toarray().sum(axis=1) * np.log(1e160 * 1e10 + 1),
                               rtol=1e-14)


@pytest.mark.parametrize("layout", ["csr", "dense"])
@pytest.mark.parametrize("nodes", ["interpolated", "exact"])
@pytest.mark.parametrize("dispersion", ["feature", 0.5])
def test_compiled_e_step_matches_the_numpy_path(layout, nodes, dispersion, monkeypatch, compiled):
    # The fused compiled E-step against the NumPy path's estimate_log_prob and accumulate:
    # integer, non-integer and huge counts, stored zeros, an all-zero row (s = 0 under library
    # size factors), zero and fractional row weights, interpolated or exact size nodes.
    rng = np.random.default_rng(5)
    X = _counts(2, n=100, layout=layout)
    totals = np.asarray(X.sum(axis=1)).ravel()
    s = (np.where(totals > 0, np.exp(rng.normal(0.0, 1.0, X.shape[0])), 0.0)
         if nodes == "interpolated" else rng.choice([0.5, 1.0, 3.0], X.shape[0]))
    chunk = replace(_chunk(X, s), weights=rng.choice([0.0, 0.5, 1.0, 2.0], X.shape[0]))
    assert chunk.nodes.exact == (nodes == "exact")
    K, D = 3, X.shape[1]
    model = NegBinModel(n_components=K, n_features=D, dispersion=dispersion, size_factors="given")
    phi = rng.uniform(0.05, 2.0, (K, D)) if dispersion == "feature" else np.full((K, D), 0.5)
    params = NegBinParams(np.array([0.5, 0.3, 0.2]), rng.uniform(0.1, 5.0, (K, D)), phi)
    results = {}
    for backend in ("compiled", "numpy"):
        monkeypatch.setenv("SKEM_NUMBA", "1" if backend == "compiled" else "0")
        kernels.compiled_kernels.cache_clear()
        fresh = NegBinParams(params.weights, params.means, params.dispersion)
        results[backend] = model.e_step(fresh, chunk)
    kernels.compiled_kernels.cache_clear()
    (got, got_loglik), (expected, expected_loglik) = results["compiled"], results["numpy"]
    np.testing.assert_allclose(got_loglik, expected_loglik, rtol=1e-13)
    for name in ("resp_sum", "x_sum", "value_hist"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    for name in ("size_sum", "node_mass", "entry_slope"):
        np.testing.assert_allclose(getattr(got.offsets, name), getattr(expected.offsets, name),
                                   rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("dispersion", ["feature", 0.5])
def test_compiled_and_numpy_fits_agree(dispersion, monkeypatch, compiled):
    rng = np.random.default_rng(4)
    X = sp.csr_matrix(rng.negative_binomial(1.5, 0.4, size=(300, 6)).astype(np.float32))
    fits = {}
    for backend in ("compiled", "numpy"):
        monkeypatch.setenv("SKEM_NUMBA", "1" if backend == "compiled" else "0")
        kernels.compiled_kernels.cache_clear()
        assert (kernels.compiled_kernels() is None) == (backend == "numpy")
        fits[backend] = NegBinMixture(3, dispersion=dispersion, size_factors="library", tol=0,
                                      max_iter=15, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            fits[backend].fit(X)
    kernels.compiled_kernels.cache_clear()
    np.testing.assert_allclose(fits["compiled"].lower_bounds_, fits["numpy"].lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(fits["compiled"].means_, fits["numpy"].means_, rtol=1e-8)


# ------------------------------------------------------ the M-step on plain arrays


def test_solve_dispersion_on_plain_arrays_is_the_weighted_mle():
    rng = np.random.default_rng(5)
    x = rng.negative_binomial(2.0, 0.25, 500).astype(float)[:, None]
    w = rng.uniform(0.2, 2.0, 500)
    value_index, pairs = index_entries(x)
    hist = np.bincount(value_index.ravel(), weights=w, minlength=pairs.size)[None]
    mean = np.array([[w @ x[:, 0] / w.sum()]])
    phi = solve_dispersion(np.array([w.sum()]), np.array([[w @ x[:, 0]]]), hist, pairs, mean,
                           (0, 1), None)

    def negative(log_phi):
        size = np.exp(-log_phi)
        return -w @ st.nbinom.logpmf(x[:, 0], size, size / (size + mean[0, 0]))

    best = minimize_scalar(negative, bracket=(-3, 1), tol=1e-12).x
    assert phi[0, 0] == pytest.approx(np.exp(best), rel=1e-6)


def _offset_inputs(seed, phi):
    """Statistics of one component's rows with size factors, as the E-step sums them."""
    rng = np.random.default_rng(seed)
    n, D = 400, 3
    s = np.exp(rng.normal(0, 0.6, n))
    w = rng.uniform(0.5, 1.5, n)
    mu = np.array([[4.0, 0.5, 3.0]])
    X = rng.negative_binomial(2.0, 2.0 / (2.0 + s[:, None] * mu)).astype(float)
    X[:, 2] = np.round(3.0 * s)  # under-dispersed given the size factors
    value_index, pairs = index_entries(X)
    nodes = SizeNodes.of(s)
    hist = np.bincount(value_index.ravel(), weights=np.repeat(w, D), minlength=pairs.size)[None]
    slope = ((w[:, None] * X * s[:, None]) / (1.0 + phi * mu * s[:, None])).sum(axis=0)[None]
    return dict(x_sum=(w @ X)[None], entry_slope=slope, node_mass=(w @ nodes.weights(s))[None],
                node_values=nodes.values, value_hist=hist, pairs=pairs), X, s, w, mu


def test_offset_m_step_from_a_zero_dispersion_is_warning_free_and_increases_q():
    # phi = 0 exactly (the Poisson limit, where r = 1/phi is infinite) in the current
    # parameters: the M-step treats it as such and increases the expected log-likelihood.
    phi0 = np.array([[0.3, 0.0, 0.0]])
    inputs, X, s, w, mu0 = _offset_inputs(6, phi0)

    def q(means, phi):
        total = 0.0
        for d in range(3):
            m = s * means[0, d]
            if phi[0, d] == 0:
                total += w @ st.poisson.logpmf(X[:, d], m)
            else:
                size = 1.0 / phi[0, d]
                total += w @ st.nbinom.logpmf(X[:, d], size, size / (size + m))
        return total

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means, phi = offset_m_step(**inputs, means=mu0, dispersion=phi0,
                                   occupied=np.array([True]), tied_axes=())
    assert np.all(np.isfinite(means)) and np.all(np.isfinite(phi))
    assert q(means, phi) > q(mu0, phi0)
    # Feature 2 is under-dispersed: it stays at phi = 0, with the closed-form mean.
    assert phi[0, 2] == 0.0
    assert means[0, 2] == pytest.approx(w @ X[:, 2] / (w @ s), rel=1e-12)


# ------------------------------------------------------------- the Poisson limit


def _with_poisson_gene(seed, n=400, constant=False):
    rng = np.random.default_rng(seed)
    s = np.exp(rng.normal(0, 0.5, n))
    y = rng.integers(0, 2, n)
    mu = np.array([[5.0, 20.0], [25.0, 2.0]])
    X = np.empty((n, 3))
    X[:, :2] = rng.negative_binomial(2.0, 2.0 / (2.0 + s[:, None] * mu[y]))
    # Constant counts, or counts rounded to their means given the size factors: neither
    # varies more than a Poisson would, without size factors and with them respectively.
    X[:, 2] = 3.0 if constant else np.round(3.0 * s)
    return X, s


def _per_row_loglik(model, X, s):
    """Mixture log-likelihood per row from scipy: nbinom for dispersions > 0, poisson at 0."""
    terms = []
    for k in range(model.n_components):
        total = np.log(model.weights_[k])
        for d in range(X.shape[1]):
            m, phi = s * model.means_[k, d], model.dispersion_[k, d]
            if phi == 0:
                total = total + st.poisson.logpmf(X[:, d], m)
            else:
                total = total + st.nbinom.logpmf(X[:, d], 1 / phi, (1 / phi) / (1 / phi + m))
        terms.append(total)
    return logsumexp(np.stack(terms, axis=1), axis=1)


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("with_size_factors", [False, True])
def test_a_poisson_gene_gets_dispersion_zero_and_the_poisson_likelihood(constant, with_size_factors):
    X, s = _with_poisson_gene(7, constant=constant)
    given = s if with_size_factors else None
    model = NegBinMixture(2, dispersion="feature", random_state=0).fit(X, size_factors=given)
    if with_size_factors != constant:
        assert np.all(model.dispersion_[:, 2] == 0.0)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bounds_[1:]))
    rows = np.ones(len(X)) if given is None else s
    np.testing.assert_allclose(model.score_samples(X, size_factors=given),
                               _per_row_loglik(model, X, rows), rtol=1e-11)


@pytest.mark.parametrize("dispersion", ["feature", "full", "shared"])
def test_a_fit_that_starts_at_dispersion_zero_with_size_factors_stays_warning_free(dispersion):
    # Extrapolation can set a dispersion to exactly 0 (SQUAREM's log(phi + PHI_MIN) coordinates);
    # a warm start from such parameters is the same M-step input.
    X, s = _with_poisson_gene(8)
    model = NegBinMixture(2, dispersion=dispersion, random_state=0, max_iter=3, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*converge.*")
        model.fit(X, size_factors=s)
        model.dispersion_ = np.where(np.arange(3) == 2, 0.0, np.maximum(model.dispersion_, PHI_MIN))
        model.max_iter = 50
        model.fit(X, size_factors=s)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.dispersion_))
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bounds_[1:]))
    np.testing.assert_allclose(model.score_samples(X, size_factors=s), _per_row_loglik(model, X, s),
                               rtol=1e-11)

"""Tests of NegBinMixture: its kernels against scipy, recovery of known parameters, and bad input."""

from __future__ import annotations

import warnings
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skem import NegBinMixture
from skem._rows import compress_rows
from skem.datasets import make_negbin_mixture
from skem._negbin_kernels import log_rising_ratio
from skem.negbin import NegBinParams, negbin_log_pmf


def _sorted_by_first_mean(model):
    order = np.argsort(model.means_[:, 0])
    return model.weights_[order], model.means_[order], model.dispersion_[order]


# ------------------------------------------------------------------ kernels


@pytest.mark.parametrize("phi", [1e-4, 0.01, 0.5, 3.0, 200.0])
def test_log_pmf_matches_scipy_nbinom(phi):
    x = np.arange(0, 300)
    mean = 17.3
    size = 1.0 / phi
    expected = st.nbinom.logpmf(x, size, size / (size + mean))
    np.testing.assert_allclose(negbin_log_pmf(x, mean, phi), expected, rtol=1e-9, atol=1e-9)


def test_tiny_dispersion_approaches_poisson_smoothly():
    # scipy's nbinom loses digits as size -> infinity (1e-5 relative at size 1e10); the
    # exact series keeps the difference to the Poisson limit at its true order, phi * x**2.
    x = np.arange(0, 60)
    difference = negbin_log_pmf(x, 17.3, 1e-10) - st.poisson.logpmf(x, 17.3)
    assert np.max(np.abs(difference)) < 1e-10 * 60**2


def test_zero_dispersion_is_poisson():
    x = np.arange(0, 80)
    np.testing.assert_allclose(negbin_log_pmf(x, 9.5, 0.0), st.poisson.logpmf(x, 9.5), rtol=1e-13)


def test_log_rising_ratio_small_dispersion_is_exact():
    # B(x, phi) = sum_{j < x} log1p(j phi); the lgamma form cancels badly for tiny phi.
    x, phi = 40.0, 1e-7
    exact = np.sum(np.log1p(np.arange(40) * phi))
    assert log_rising_ratio(x, phi) == pytest.approx(exact, rel=1e-12)
    assert log_rising_ratio(0.0, 0.7) == 0.0
    assert log_rising_ratio(5.0, 0.0) == 0.0


_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494")
_BERNOULLI = [Fraction(1, 6), Fraction(-1, 30), Fraction(1, 42), Fraction(-1, 30), Fraction(5, 66),
              Fraction(-691, 2730), Fraction(7, 6), Fraction(-3617, 510), Fraction(43867, 798),
              Fraction(-174611, 330)]


def _lgamma_60_digits(z):
    """log Gamma(z) of a Decimal z > 0: Stirling's series at z + m >= 40 (ten terms, error
    below 1e-32) and the recurrence down to z."""
    shift = Decimal(0)
    while z < 40:
        shift += z.ln()
        z += 1
    out = (z - Decimal("0.5")) * z.ln() - z + (2 * _PI).ln() / 2
    for k, b in enumerate(_BERNOULLI, start=1):
        out += Decimal(b.numerator) / b.denominator / (2 * k * (2 * k - 1) * z ** (2 * k - 1))
    return out - shift


def _log_pmf_60_digits(x, mu, phi):
    """log NB(x; mu, phi) of the floats given, to 60 digits (phi = 0: Poisson)."""
    with localcontext() as context:
        context.prec = 60
        x, mu = Decimal(x), Decimal(mu)
        if phi == 0:
            return float(x * mu.ln() - mu - _lgamma_60_digits(x + 1))
        r = 1 / Decimal(phi)
        return float(_lgamma_60_digits(x + r) - _lgamma_60_digits(r) - _lgamma_60_digits(x + 1)
                     + x * (mu / (r + mu)).ln() + r * (r / (r + mu)).ln())


@pytest.mark.parametrize("x", [1.0, 7.0, 65.0, 0.3, 1234.5, 1e6, 1e9, 1e11, 1e12 - 1])
def test_log_pmf_is_exact_to_rounding_at_any_count(x):
    # The lgamma form sums terms of order x log x that cancel (1e-3 absolute at 1e12); the
    # saddle-point form is exact to rounding, checked against 60-digit arithmetic. The pair
    # table the E-step uses holds the same terms, minus log NB(0).
    from skem.negbin import NegBinModel, PairTable

    phis = [0.0, 1e-12, 1e-6, 1e-3, 0.05, 0.5, 3.0, 200.0]
    means = x * np.array([1e-6, 0.3, 1.0, 1.0 + 1e-7, 1.7, 1e3])
    phi, mu = (a.ravel() for a in np.meshgrid(phis, means, indexing="ij"))
    exact = np.array([_log_pmf_60_digits(x, m, p) for m, p in zip(mu, phi)])
    with np.errstate(divide="ignore"):
        log_zero = np.where(phi > 0, -np.log1p(phi * mu) / np.where(phi > 0, phi, 1), -mu)
    # Rounding of the result and of log NB(0), which the pair terms and the zero term split.
    tolerance = 2e-15 * np.maximum(1.0, np.abs(exact) + np.abs(log_zero))
    assert np.all(np.abs(negbin_log_pmf(x, mu, phi) - exact) <= tolerance)
    pairs = PairTable(np.array([x, 0.0]), np.zeros(2, dtype=np.intp), 1)
    params = NegBinParams(np.ones(mu.size) / mu.size, mu[:, None], phi[:, None])
    table = NegBinModel.pair_log_terms(params, pairs)
    assert np.all(np.abs(table[:, 0] + log_zero - exact) <= tolerance)
    assert np.all(table[:, 1] == 0.0)


def test_consecutive_pair_table_is_exact_to_rounding():
    from skem.negbin import NegBinModel, NegBinParams
    from skem._negbin_kernels import direct_table

    pairs = direct_table(np.array([100.0, 30.0]))
    phi = np.array([[1e-9, 1e-3], [0.05, 0.5], [3.0, 200.0], [1e-4, 0.0]])
    mu = np.array([[30.0, 1e-3], [95.0, 20.0], [7.5, 1e3], [64.0, 20.0]])
    table = NegBinModel.pair_log_terms(NegBinParams(np.full(4, 0.25), mu, phi), pairs)
    with np.errstate(divide="ignore"):
        log_zero = np.where(phi > 0, -np.log1p(phi * mu) / np.where(phi > 0, phi, 1), -mu)
    for u, (x, d) in enumerate(zip(pairs.values[:-1], pairs.feature)):
        exact = np.array([_log_pmf_60_digits(x, m, p) for m, p in zip(mu[:, d], phi[:, d])])
        error = np.abs(table[:, u] + log_zero[:, d] - exact)
        # Values up to 64 keep the cheaper lgamma form, whose terms are at most ~300.
        rtol = 1e-13 if x <= 64 else 2e-15
        assert np.all(error <= rtol * np.maximum(1.0, np.abs(exact) + np.abs(log_zero[:, d])))


def test_score_samples_is_logsumexp_of_scipy_terms():
    X, _ = make_negbin_mixture(
        400, weights=(0.3, 0.7), means=((3.0, 30.0), (25.0, 2.0)), dispersion=0.4, random_state=1
    )
    model = NegBinMixture(2, dispersion="full", random_state=0).fit(X)
    size = 1.0 / model.dispersion_
    per_component = np.stack(
        [
            st.nbinom.logpmf(X, size[k], size[k] / (size[k] + model.means_[k])).sum(axis=1)
            + np.log(model.weights_[k])
            for k in range(2)
        ],
        axis=1,
    )
    np.testing.assert_allclose(model.score_samples(X), logsumexp(per_component, axis=1), rtol=1e-10)


def test_dispersion_m_step_is_the_maximum_likelihood_estimate():
    rng = np.random.default_rng(3)
    size, mean = 2.5, 12.0
    x = rng.negative_binomial(size, size / (size + mean), size=5000).astype(float)[:, None]
    model = NegBinMixture(1, dispersion="shared").fit(x)
    mle = minimize_scalar(
        lambda log_phi: -negbin_log_pmf(x[:, 0], x.mean(), np.exp(log_phi)).sum(),
        bounds=(-10, 5), method="bounded", options={"xatol": 1e-10},
    )
    assert model.means_[0, 0] == pytest.approx(x.mean(), rel=1e-12)
    assert model.dispersion_[0, 0] == pytest.approx(np.exp(mle.x), rel=1e-5)


def test_underdispersed_data_gives_poisson():
    x = np.tile(np.arange(3, 8), 50).astype(float)[:, None]  # variance < mean
    model = NegBinMixture(1, dispersion="shared").fit(x)
    assert model.dispersion_[0, 0] == 0.0


# ----------------------------------------------------------------- recovery


@pytest.mark.parametrize("n_components", [1, 2, 3, 4])
@pytest.mark.parametrize("dispersion", [0.2, "shared", "full"])
def test_recovers_parameters_one_feature(n_components, dispersion):
    means = np.array([[2.0], [20.0], [120.0], [600.0]])[:n_components]
    weights = np.full(n_components, 1.0 / n_components)
    X, _ = make_negbin_mixture(
        20000, weights=weights, means=means, dispersion=0.2, random_state=n_components
    )
    model = NegBinMixture(n_components, dispersion=dispersion, n_init=3, random_state=0).fit(X)
    fitted_weights, fitted_means, fitted_phi = _sorted_by_first_mean(model)
    np.testing.assert_allclose(fitted_means, means, rtol=0.08)
    np.testing.assert_allclose(fitted_weights, weights, atol=0.03)
    # A per-component dispersion at mean 2 rests on little information: looser there.
    np.testing.assert_allclose(fitted_phi, 0.2, rtol=0.3 if dispersion == "full" else 0.1)


@pytest.mark.slow
@pytest.mark.parametrize("n_components", [1, 2, 3, 4])
@pytest.mark.parametrize("dispersion", [0.5, "component", "feature"])
def test_recovers_parameters_fifty_features(n_components, dispersion):
    rng = np.random.default_rng(n_components)
    means = rng.gamma(2.0, 5.0, size=(n_components, 50)) + 0.5
    weights = rng.dirichlet(np.full(n_components, 5.0))
    X, y = make_negbin_mixture(
        3000, weights=weights, means=means, dispersion=0.5, random_state=n_components
    )
    model = NegBinMixture(n_components, dispersion=dispersion, n_init=2, random_state=0).fit(X)
    # Match components through the labels (50 features separate them perfectly).
    labels = model.predict(X)
    mapping = np.array([np.bincount(y[labels == k], minlength=n_components).argmax()
                        for k in range(n_components)])
    assert sorted(mapping) == list(range(n_components))
    np.testing.assert_allclose(model.weights_, weights[mapping], atol=0.02)
    relative = np.abs(model.means_ - means[mapping]) / means[mapping]
    assert np.median(relative) < 0.05
    assert np.median(model.dispersion_) == pytest.approx(0.5, rel=0.1)


def test_best_of_restarts_is_no_worse_than_the_truth():
    X, _ = make_negbin_mixture(
        5000, weights=(0.5, 0.3, 0.2), means=((1.0, 9.0), (8.0, 2.0), (30.0, 30.0)),
        dispersion=0.3, random_state=7,
    )
    model = NegBinMixture(3, dispersion="shared", n_init=5, random_state=0).fit(X)
    truth = NegBinMixture(3, dispersion=0.3, means_init=[[1.0, 9.0], [8.0, 2.0], [30.0, 30.0]],
                          weights_init=[0.5, 0.3, 0.2], max_iter=0).fit(X)
    assert model.score(X) >= truth.score(X)


# --------------------------------------------------- properties of the fit


@settings(deadline=None)
@given(
    seed=hst.integers(0, 2**16),
    n_components=hst.integers(1, 4),
    n_features=hst.integers(1, 4),
    dispersion=hst.sampled_from(["shared", "component", "feature", "full", 0.0, 0.7]),
    init_params=hst.sampled_from(["kmeans", "random", "random_from_data", "k-means++"]),
)
def test_log_likelihood_never_decreases(seed, n_components, n_features, dispersion, init_params):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(n_components, 60))
    scale = rng.gamma(1.0, 20.0, size=n_features)
    X = rng.negative_binomial(rng.uniform(0.3, 5), 0.5, size=(n, n_features)) * 0 + rng.poisson(
        scale * rng.gamma(0.7, 1.0, size=(n, 1)), size=(n, n_features)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NegBinMixture(
            n_components, dispersion=dispersion, init_params=init_params,
            random_state=seed, max_iter=25, tol=0,
        ).fit(X)
    bounds = model.lower_bounds_
    assert np.all(np.isfinite(bounds))
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[1:]))
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.dispersion_))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dispersion", ["shared", "component", "feature", "full"])
def test_log_likelihood_never_decreases_at_huge_counts(dispersion, sparse):
    # Counts 1e9..1e12: the log-pmf's terms of order x log x cancel, so any rounding in the
    # pair terms or in the dispersion M-step's objective shows as dips (1e-4 relative before).
    rng = np.random.default_rng(3)
    means = np.array([[1e9, 3e10, 4e11, 1e12], [5e9, 1e10, 1e12, 2e11]])
    z = rng.integers(0, 2, 300)
    size = 1.0 / rng.uniform(0.02, 0.3, size=(2, 4))[z]
    X = rng.negative_binomial(size, size / (size + means[z])).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NegBinMixture(2, dispersion=dispersion, tol=0, max_iter=60, random_state=0).fit(
            sp.csr_matrix(X) if sparse else X)
    bounds = model.lower_bounds_
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))
    # It also fits: the means are recovered to their standard errors.
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], means, rtol=0.1)


@pytest.mark.parametrize("dispersion", ["shared", "full", 1.0])
def test_sparse_equals_dense(dispersion):
    rng = np.random.default_rng(0)
    X = rng.negative_binomial(0.5, 0.2, size=(400, 30)) * (rng.random((400, 30)) < 0.1)
    X[:200, :5] += rng.poisson(20, size=(200, 5))
    X[-3:] = 0  # empty rows at the end of a CSR matrix are an edge case of row sums
    dense = NegBinMixture(2, dispersion=dispersion, random_state=0).fit(X)
    for fmt in ["csr", "csc", "coo"]:
        sparse = NegBinMixture(2, dispersion=dispersion, random_state=0).fit(sp.csr_matrix(X).asformat(fmt))
        np.testing.assert_allclose(sparse.means_, dense.means_, rtol=1e-9)
        np.testing.assert_allclose(sparse.dispersion_, dense.dispersion_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sparse.lower_bounds_, dense.lower_bounds_, rtol=1e-10)
        np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X),
                                   atol=1e-10)


def test_sparse_input_is_never_densified(monkeypatch):
    X = sp.random(300, 40, density=0.05, format="csr", random_state=0, data_rvs=lambda n: np.arange(1, n + 1) % 7 + 1)

    original = sp.csr_matrix.toarray

    def toarray_of_a_few_rows(self, *args, **kwargs):
        # k-means seeding may densify its K chosen centers, never the data.
        assert self.shape[0] <= 2, "sparse input was densified"
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", toarray_of_a_few_rows)
    model = NegBinMixture(2, random_state=0).fit(X)
    assert model.predict(X).shape == (300,)


def test_identical_rows_are_compressed_exactly():
    X, _ = make_negbin_mixture(10**5, means=((3.0,), (40.0,)), dispersion=0.2, random_state=0)
    distinct, weights, inverse = compress_rows(X)
    assert distinct.shape[0] < 500 and weights.sum() == X.shape[0]
    np.testing.assert_array_equal(distinct[inverse], X)


def test_empty_component_stays_finite():
    X = np.concatenate([np.full((50, 1), 3.0), np.full((50, 1), 5.0)])
    model = NegBinMixture(2, means_init=[[4.0], [10**6]], dispersion=0.0, max_iter=20).fit(X)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.weights_))
    assert model.weights_.min() < 1e-6
    assert np.all(np.isfinite(model.predict_proba(np.array([[0.0], [10.0**7]]))))


def test_fewer_distinct_rows_than_components_still_fits():
    X = np.repeat([[1.0, 2.0], [7.0, 0.0]], 10, axis=0)
    model = NegBinMixture(3, random_state=0).fit(X)
    assert np.all(np.isfinite(model.means_))


def test_sample_draws_from_the_fitted_distribution():
    model = NegBinMixture(2, means_init=[[5.0], [50.0]], weights_init=[0.25, 0.75],
                          dispersion=0.3, max_iter=0, random_state=0).fit(np.array([[1.0], [60.0]]))
    X, y = model.sample(40000)
    assert X.shape == (40000, 1) and np.bincount(y).tolist() == np.bincount(y, minlength=2).tolist()
    assert np.mean(y == 1) == pytest.approx(0.75, abs=0.01)
    high = X[y == 1, 0]
    assert high.mean() == pytest.approx(50.0, rel=0.02)
    assert high.var() == pytest.approx(50.0 + 0.3 * 50.0**2, rel=0.05)


def test_bic_and_aic_count_the_free_parameters():
    X, _ = make_negbin_mixture(500, means=((2.0, 5.0), (30.0, 1.0)), random_state=0)
    expected = {"shared": 1, "component": 2, "feature": 2, "full": 4, 0.1: 0}
    for dispersion, n_dispersion in expected.items():
        model = NegBinMixture(2, dispersion=dispersion, random_state=0).fit(X)
        p = 1 + 2 * 2 + n_dispersion
        log_likelihood = model.score(X) * 500
        assert model.bic(X) == pytest.approx(-2 * log_likelihood + p * np.log(500))
        assert model.aic(X) == pytest.approx(-2 * log_likelihood + 2 * p)


def test_non_integer_counts_use_the_continuous_extension():
    X = np.array([[0.5], [1.25], [7.5], [8.0], [30.2], [29.0]])
    model = NegBinMixture(1, dispersion=0.3).fit(X)
    np.testing.assert_allclose(
        model.score_samples(X), negbin_log_pmf(X[:, 0], model.means_[0, 0], 0.3), rtol=1e-12
    )


# ---------------------------------------------------------- scikit-learn use


def test_grid_search_picks_the_true_number_of_components():
    X, _ = make_negbin_mixture(
        1500, weights=(0.4, 0.35, 0.25), means=((2.0, 40.0), (40.0, 2.0), (60.0, 60.0)),
        dispersion=0.1, random_state=0,
    )
    # Model selection, not optimality, is tested: a looser tolerance keeps it fast (spare
    # components converge slowly).
    search = GridSearchCV(
        NegBinMixture(dispersion="shared", n_init=2, tol=1e-6, random_state=0),
        {"n_components": [1, 2, 3, 4, 5]}, cv=3,
    ).fit(X)
    bics = [NegBinMixture(k, random_state=0, n_init=2, tol=1e-6).fit(X).bic(X) for k in range(1, 6)]
    assert int(np.argmin(bics)) + 1 == 3
    # Held-out likelihood cannot tell spare components from none here (K = 3, 4 and 5 score
    # within 1e-3 per row of each other); it must rule out too few.
    scores = search.cv_results_["mean_test_score"]
    assert search.best_params_["n_components"] >= 3
    assert scores[2] >= scores.max() - 1e-3 and scores[1] < scores.max() - 0.5


def test_pipeline_and_cross_val_score():
    X, _ = make_negbin_mixture(600, means=((2.0, 20.0), (25.0, 3.0)), random_state=0)
    pipe = make_pipeline(FunctionTransformer(np.round), NegBinMixture(2, random_state=0))
    scores = cross_val_score(pipe, X, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert pipe.fit(X).predict(X).shape == (600,)


def test_dataframe_input_sets_feature_names():
    X, _ = make_negbin_mixture(100, means=((2.0, 20.0), (25.0, 3.0)), random_state=0)
    frame = pd.DataFrame(X, columns=["geneA", "geneB"])
    model = NegBinMixture(2, random_state=0).fit(frame)
    np.testing.assert_array_equal(model.feature_names_in_, ["geneA", "geneB"])
    assert model.n_features_in_ == 2
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X)


def test_verbose_prints_progress(capsys):
    X, _ = make_negbin_mixture(200, random_state=0)
    NegBinMixture(2, verbose=2, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "EM converged after" in out and "objective" in out


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "X, params, message",
    [
        ([[1, 2], [-1, 3]], {}, "Negative values"),
        ([[1, np.nan], [1, 3]], {}, "NaN"),
        ([[1, np.inf], [1, 3]], {}, "infinity"),
        (np.empty((0, 3)), {}, "0 sample"),
        ([1, 2, 3], {}, "Expected 2D array"),
        ([[1, 2], [3, 4]], {"n_components": 3}, "n_samples >= n_components"),
        ([[1, 2], [3, 4]], {"means_init": [[1, 2, 3], [1, 2, 3]]}, "means_init must have shape"),
        ([[1, 2], [3, 4]], {"means_init": [[1, -2], [1, 2]]}, "means_init must be finite"),
        ([[1, 2], [3, 4]], {"weights_init": [0.2, 0.2]}, "weights_init must be"),
        ([[1, 2], [3, 4]], {"dispersion": -0.5}, "'dispersion' parameter"),
        ([[1, 2], [3, 4]], {"dispersion": "per-gene"}, "'dispersion' parameter"),
        ([[1, 2], [3, 4]], {"init_params": "kmeans++"}, "'init_params' parameter"),
    ],
)
def test_bad_input_raises_a_clear_error(X, params, message):
    with pytest.raises(ValueError, match=message):
        NegBinMixture(**{"n_components": 2, **params}).fit(np.asarray(X, dtype=float))


def test_negative_sample_weight_is_rejected():
    with pytest.raises(ValueError, match="[Nn]egative"):
        NegBinMixture(1).fit([[1.0], [2.0]], sample_weight=[1.0, -1.0])


def test_predict_checks_the_number_of_features():
    model = NegBinMixture(1).fit([[1.0, 2.0], [2.0, 3.0]])
    with pytest.raises(ValueError, match="features"):
        model.predict([[1.0, 2.0, 3.0]])


def test_consecutive_pair_table_agrees_with_the_general_one():
    # Integer counts use cumulative sums over values 1..max; the general table uses
    # digamma/lgamma at each distinct value. Both must give the same sums.
    from skem.negbin import PairTable, index_entries

    rng = np.random.default_rng(0)
    X = rng.negative_binomial(2, 0.2, size=(200, 4)).astype(float)
    _, consecutive = index_entries(X)
    assert consecutive.offsets is not None
    general = PairTable(consecutive.values, consecutive.feature, consecutive.n_features)
    phi = rng.uniform(0.01, 2.0, size=(3, 4))
    np.testing.assert_allclose(consecutive.rising(phi), general.rising(phi), rtol=1e-10, atol=1e-10)
    hist = rng.uniform(0, 5, size=(3, consecutive.size)) * (consecutive.values > 0)
    r = (1 / phi)[:, consecutive.feature]
    for a, b in zip(
        consecutive.score_terms(consecutive.dispersion_weights(hist), r),
        general.score_terms(general.dispersion_weights(hist), r),
    ):
        np.testing.assert_allclose(consecutive.per_feature(a), general.per_feature(b), rtol=1e-9)
    np.testing.assert_allclose(
        consecutive.per_feature(consecutive.slope_terms(consecutive.dispersion_weights(hist))),
        general.per_feature(general.slope_terms(hist)), rtol=1e-10,
    )
    np.testing.assert_allclose(
        consecutive.per_feature(consecutive.loglik_terms(consecutive.dispersion_weights(hist), phi[:, consecutive.feature])),
        general.per_feature(general.loglik_terms(hist, phi[:, consecutive.feature])), rtol=1e-9,
    )


def test_sorted_pair_table_fits_like_the_consecutive_one(monkeypatch):
    import skem._negbin_kernels as kernels

    X, _ = make_negbin_mixture(600, means=((40.0, 3.0), (5.0, 20.0)), dispersion=0.3, random_state=1)
    consecutive = NegBinMixture(2, dispersion="full", random_state=0).fit(X)
    monkeypatch.setattr(kernels, "direct_table_pays", lambda column_max, n_entries: False)
    assert kernels.index_entries(X)[1].offsets is None
    general = NegBinMixture(2, dispersion="full", random_state=0).fit(X)
    np.testing.assert_allclose(general.means_, consecutive.means_, rtol=1e-9)
    np.testing.assert_allclose(general.dispersion_, consecutive.dispersion_, rtol=1e-6)
    np.testing.assert_allclose(general.lower_bounds_, consecutive.lower_bounds_, rtol=1e-10)


# ------------------------------------------------------------- size factors


def _with_size_factors(n, sd, means, dispersion, seed, weights=None):
    rng = np.random.default_rng(seed)
    s = np.exp(rng.normal(0.0, sd, n))
    weights = np.full(len(means), 1.0 / len(means)) if weights is None else weights
    X, y = make_negbin_mixture(n, weights=weights, means=means, dispersion=dispersion,
                               size_factors=s, random_state=seed)
    return X, y, s


def _negative_loglik(theta, X, s, K, tied):
    """Minus the total log-likelihood with size factors, from scipy.stats.nbinom (the reference)."""
    D = X.shape[1]
    logits = np.concatenate([[0.0], theta[: K - 1]])
    weights = np.exp(logits - logsumexp(logits))
    means = np.exp(theta[K - 1 : K - 1 + K * D]).reshape(K, D)
    log_phi = theta[K - 1 + K * D :]
    phi = np.broadcast_to(np.exp(log_phi)[None, :] if tied == "feature" else np.exp(log_phi[0]), (K, D))
    per_component = []
    for k in range(K):
        mu = s[:, None] * means[k]
        size = 1.0 / phi[k]
        per_component.append(st.nbinom.logpmf(X, size, size / (size + mu)).sum(axis=1) + np.log(weights[k]))
    return -logsumexp(np.stack(per_component, axis=1), axis=1).sum()


def _theta_of(model, tied):
    K = model.n_components
    logits = np.log(model.weights_)
    phi = model.dispersion_[0] if tied == "feature" else model.dispersion_[:1, 0]
    return np.concatenate([logits[1:] - logits[0], np.log(model.means_).ravel(), np.log(phi)])


@pytest.mark.parametrize("with_size_factors", [False, True])
@pytest.mark.parametrize("dispersion", ["shared", "feature"])
def test_default_fit_is_the_maximum_likelihood(dispersion, with_size_factors):
    # At the defaults: a direct optimizer on all free parameters, started from our fit,
    # finds nothing better by 1e-6 relative, and neither does a strict-tolerance run.
    X, _, s = _with_size_factors(600, 0.7, ((3.0, 30.0, 8.0), (25.0, 2.0, 8.0)), 0.3, seed=4)
    if not with_size_factors:
        X, _ = make_negbin_mixture(600, means=((3.0, 30.0, 8.0), (25.0, 2.0, 8.0)), dispersion=0.3,
                                   random_state=4)
        s = np.ones(600)
    model = NegBinMixture(2, dispersion=dispersion, random_state=0).fit(X, size_factors=s)
    theta = _theta_of(model, dispersion)
    ours = _negative_loglik(theta, X, s, 2, dispersion)
    assert ours == pytest.approx(-model.score(X, size_factors=s) * len(X), rel=1e-10)
    best = minimize(_negative_loglik, theta, args=(X, s, 2, dispersion), method="BFGS",
                    options={"gtol": 1e-8})
    assert ours - best.fun < 1e-6 * abs(ours)
    strict = NegBinMixture(2, dispersion=dispersion, random_state=0, tol=1e-14,
                           max_iter=100_000).fit(X, size_factors=s)
    assert strict.lower_bound_ - model.lower_bound_ < 1e-6 * abs(strict.lower_bound_)


@pytest.mark.parametrize(
    "sparse, dispersion, sd",
    [(False, 0.4, 0.5), (True, "feature", 0.5), (True, 0.4, 1.0), (False, "feature", 1.0),
     pytest.param(False, "feature", 0.5, marks=pytest.mark.slow),
     pytest.param(True, 0.4, 0.5, marks=pytest.mark.slow),
     pytest.param(False, 0.4, 1.0, marks=pytest.mark.slow),
     pytest.param(True, "feature", 1.0, marks=pytest.mark.slow)],
)
def test_recovers_means_with_lognormal_size_factors(sparse, dispersion, sd):
    means = np.array([[2.0, 20.0, 5.0, 0.5], [20.0, 2.0, 5.0, 3.0], [8.0, 8.0, 30.0, 1.0]])
    X, y, s = _with_size_factors(4000, sd, means, 0.4, seed=1)
    data = sp.csr_matrix(X) if sparse else X
    model = NegBinMixture(3, dispersion=dispersion, random_state=0).fit(data, size_factors=s)
    labels = model.predict(data, size_factors=s)
    mapping = np.array([np.bincount(y[labels == k], minlength=3).argmax() for k in range(3)])
    assert sorted(mapping) == [0, 1, 2]
    np.testing.assert_allclose(model.means_, means[mapping], rtol=0.1, atol=0.05)
    np.testing.assert_allclose(np.median(model.dispersion_), 0.4, rtol=0.1)


def test_size_factors_beat_depth_clustering():
    # Depth varying 10x independently of the group: without size factors the mixture
    # splits by depth; with them it finds the groups.
    rng = np.random.default_rng(2)
    means = rng.gamma(2.0, 3.0, size=(2, 30)) + 0.5
    s = np.exp(rng.uniform(np.log(0.3), np.log(3.0), 2000))
    X, y = make_negbin_mixture(2000, means=means, dispersion=0.2, size_factors=s, random_state=2)
    from sklearn.metrics import adjusted_rand_score

    with_s = NegBinMixture(2, size_factors="library", n_init=2, random_state=0).fit(X)
    without = NegBinMixture(2, n_init=2, random_state=0).fit(X)
    assert adjusted_rand_score(y, with_s.predict(X)) > 0.95
    assert adjusted_rand_score(y, without.predict(X)) < adjusted_rand_score(y, with_s.predict(X))


@pytest.mark.parametrize("dispersion", [0.0, 0.3, "shared"])
def test_constant_size_factor_rescales_the_means(dispersion):
    # s_i = c for every row: the same likelihood as without size factors, means divided by c.
    # (The offset path, with its MM steps, against the exact M-step of the plain model.)
    X, _ = make_negbin_mixture(800, means=((3.0, 30.0), (25.0, 2.0)), dispersion=0.3, random_state=5)
    plain = NegBinMixture(2, dispersion=dispersion, tol=1e-12, max_iter=5000, random_state=0).fit(X)
    scaled = NegBinMixture(2, dispersion=dispersion, tol=1e-12, max_iter=5000, accelerate="squarem",
                           random_state=0).fit(X, size_factors=np.full(800, 2.5))
    order = np.argsort(plain.means_[:, 0]), np.argsort(scaled.means_[:, 0])
    np.testing.assert_allclose(scaled.means_[order[1]] * 2.5, plain.means_[order[0]], rtol=1e-5)
    np.testing.assert_allclose(scaled.dispersion_, plain.dispersion_, rtol=1e-4, atol=1e-7)
    assert scaled.lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-9)


def test_all_ones_size_factors_equal_none():
    X, _ = make_negbin_mixture(500, means=((3.0, 30.0), (25.0, 2.0)), dispersion=0.3, random_state=5)
    plain = NegBinMixture(2, dispersion="feature", random_state=0).fit(X)
    ones = NegBinMixture(2, dispersion="feature", random_state=0).fit(X, size_factors=np.ones(500))
    np.testing.assert_allclose(ones.means_, plain.means_, rtol=1e-12)
    np.testing.assert_allclose(ones.lower_bounds_, plain.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(ones.predict_proba(X, size_factors=np.ones(500)), plain.predict_proba(X))


@pytest.mark.parametrize("dispersion", [0.3, "feature"])
def test_weights_equal_repeats_with_size_factors(dispersion):
    X, _, s = _with_size_factors(300, 0.7, ((3.0, 30.0), (25.0, 2.0)), 0.3, seed=6)
    repeats = np.random.default_rng(0).integers(0, 4, 300)
    weighted = NegBinMixture(2, dispersion=dispersion, random_state=0, init_params="random_from_data")
    repeated = NegBinMixture(2, dispersion=dispersion, random_state=0, init_params="random_from_data")
    weighted.fit(X, sample_weight=repeats, size_factors=s)
    repeated.fit(np.repeat(X, repeats, axis=0), size_factors=np.repeat(s, repeats))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-9)
    np.testing.assert_allclose(weighted.dispersion_, repeated.dispersion_, rtol=1e-9)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-12)


def test_rows_with_equal_counts_and_different_size_factors_are_kept_apart():
    X = np.array([[4.0, 1.0]] * 4 + [[0.0, 9.0]] * 4)
    s = np.array([1.0, 1.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0])
    model = NegBinMixture(1, dispersion=0.0).fit(X, size_factors=s)
    # Poisson with offsets: mean = sum x / sum s, exactly.
    np.testing.assert_allclose(model.means_[0], X.sum(axis=0) / s.sum(), rtol=1e-12)


@pytest.mark.parametrize("layout", ["dense", "csr float64", "csr float32"])
def test_score_samples_with_size_factors_is_logsumexp_of_scipy_terms(layout, monkeypatch):
    # Entry blocks of 7 entries, so that the blocked per-entry pass crosses rows and blocks.
    monkeypatch.setattr("skem._negbin_kernels._ENTRY_BLOCK", 7)
    X, _, s = _with_size_factors(300, 0.8, ((3.0, 30.0, 0.5), (25.0, 2.0, 9.0)), 0.4, seed=11)
    model = NegBinMixture(2, dispersion="full", random_state=0).fit(X, size_factors=s)
    data = {"dense": X, "csr float64": sp.csr_matrix(X),
            "csr float32": sp.csr_matrix(X.astype(np.float32))}[layout]
    size = 1.0 / model.dispersion_
    per_component = np.stack([
        st.nbinom.logpmf(X, size[k], size[k] / (size[k] + s[:, None] * model.means_[k])).sum(axis=1)
        + np.log(model.weights_[k])
        for k in range(2)
    ], axis=1)
    np.testing.assert_allclose(model.score_samples(data, size_factors=s),
                               logsumexp(per_component, axis=1), rtol=1e-11)


def test_float32_counts_fit_as_float64():
    X, _, s = _with_size_factors(400, 0.7, ((3.0, 30.0), (25.0, 2.0)), 0.3, seed=12)
    fits = [NegBinMixture(2, dispersion="feature", size_factors="library", random_state=0)
            .fit(sp.csr_matrix(X.astype(dtype))) for dtype in (np.float64, np.float32)]
    np.testing.assert_allclose(fits[1].means_, fits[0].means_, rtol=1e-9)
    np.testing.assert_allclose(fits[1].lower_bounds_, fits[0].lower_bounds_, rtol=1e-12)


def test_library_size_factors_need_nothing_at_prediction():
    X, _, _ = _with_size_factors(400, 0.7, ((3.0, 30.0), (25.0, 2.0)), 0.3, seed=7)
    X = X[X.sum(axis=1) > 0]  # explicit size factors must be positive
    model = NegBinMixture(2, size_factors="library", random_state=0).fit(X)
    totals = X.sum(axis=1)
    explicit = totals / totals.mean()
    np.testing.assert_allclose(model.predict_proba(X[:50]), model.predict_proba(X[:50], size_factors=explicit[:50]))
    np.testing.assert_allclose(model.score_samples(X), model.score_samples(X, size_factors=explicit))
    # The fit is the fit with those explicit values.
    again = NegBinMixture(2, random_state=0).fit(X, size_factors=explicit)
    np.testing.assert_allclose(model.means_, again.means_, rtol=1e-10)


def test_explicit_size_factors_are_required_again_and_checked():
    X, _, s = _with_size_factors(100, 0.5, ((3.0,), (25.0,)), 0.3, seed=8)
    model = NegBinMixture(2, random_state=0).fit(X, size_factors=s)
    with pytest.raises(ValueError, match="size_factors="):
        model.predict(X)
    for bad in (-s, np.where(np.arange(100) == 3, np.nan, s), s[:10]):
        with pytest.raises(ValueError, match="size_factors"):
            NegBinMixture(2).fit(X, size_factors=bad)


def test_sample_with_size_factors():
    model = NegBinMixture(1, means_init=[[20.0]], dispersion=0.2, max_iter=0,
                          random_state=0).fit(np.array([[1.0], [2.0]]))
    X, _ = model.sample(20000, size_factors=3.0)
    assert X.mean() == pytest.approx(60.0, rel=0.02)
    assert X.var() == pytest.approx(60.0 + 0.2 * 60.0**2, rel=0.05)


def test_grid_search_and_cross_validation_route_size_factors():
    from sklearn import config_context
    from sklearn.model_selection import KFold

    X, _, s = _with_size_factors(600, 0.7, ((3.0, 30.0), (25.0, 2.0), (40.0, 40.0)), 0.1, seed=9,
                                 weights=(0.4, 0.35, 0.25))
    with config_context(enable_metadata_routing=True):
        # Model selection, not optimality, is tested: a looser tolerance keeps it fast.
        estimator = NegBinMixture(tol=1e-6, random_state=0).set_fit_request(size_factors=True)
        estimator = estimator.set_score_request(size_factors=True, sample_weight=False)
        search = GridSearchCV(estimator, {"n_components": [1, 2, 3]}, cv=3).fit(X, size_factors=s)
        assert search.best_params_["n_components"] == 3
        folds = KFold(3)
        scores = cross_val_score(estimator.set_params(n_components=3), X, cv=folds,
                                 params={"size_factors": s})
    expected = [
        NegBinMixture(3, tol=1e-6, random_state=0).fit(X[train], size_factors=s[train])
        .score(X[test], size_factors=s[test])
        for train, test in KFold(3).split(X)
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_dask_input_with_explicit_size_factors_is_refused():
    da = pytest.importorskip("dask.array")
    X, _, s = _with_size_factors(100, 0.5, ((3.0,), (25.0,)), 0.3, seed=8)
    with pytest.raises(NotImplementedError, match="dask"):
        NegBinMixture(2).fit(da.from_array(X, chunks=50), size_factors=s)


def test_component_tables_are_named_by_features():
    X, _ = make_negbin_mixture(200, means=((2.0, 20.0), (25.0, 3.0)), random_state=0)
    named = NegBinMixture(2, random_state=0).fit(pd.DataFrame(X, columns=["geneA", "geneB"]))
    means, dispersions = named.component_means(), named.component_dispersions()
    assert list(means.columns) == ["geneA", "geneB"] and list(means.index) == [0, 1]
    np.testing.assert_array_equal(means.to_numpy(), named.means_)
    np.testing.assert_array_equal(dispersions.to_numpy(), named.dispersion_)
    unnamed = NegBinMixture(2, random_state=0).fit(X)
    assert list(unnamed.component_means().columns) == ["x0", "x1"]


@pytest.mark.parametrize("dispersion", ["feature", "full", 0.4])
def test_m_step_with_size_factors_increases_the_expected_loglik(dispersion):
    # The M-step with offsets maximizes a bound on the expected complete log-likelihood
    # Q; Q itself, computed here with scipy.stats from the E-step's responsibilities,
    # must increase, and by about as much as a direct maximization of Q can.
    from scipy.stats import nbinom

    X, _, s = _with_size_factors(400, 0.7, ((3.0, 0.2, 8.0), (0.5, 2.0, 8.0)), 0.4, seed=9)
    est = NegBinMixture(2, dispersion=dispersion, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, size_factors=s)
    model, params = est._model, est._get_fitted_params()
    data = model.prepare(X, np.ones(len(X)), size_factors=s)
    stats, _ = model.e_step(params, data)
    resp = model.predict_proba(params, data)

    def expected_loglik(p):
        size = 1.0 / p.dispersion
        return sum(
            (resp[:, [k]] * nbinom.logpmf(X, size[k], size[k] / (size[k] + s[:, None] * p.means[k]))).sum()
            for k in range(2)
        )

    new = model.m_step(stats, params)
    before, after = expected_loglik(params), expected_loglik(new)
    assert after > before
    if dispersion == 0.4:
        # Means only: many M-steps from fixed responsibilities reach the maximum of Q,
        # the first one already gets most of the way.
        def negative(log_means):
            return -expected_loglik(NegBinParams(params.weights, np.exp(log_means).reshape(2, 3),
                                                 params.dispersion))

        best = -minimize(negative, np.log(new.means).ravel(), method="BFGS").fun
        assert after - before > 0.5 * (best - before)


def test_library_size_factors_with_sample_weight_through_grid_search():
    # The weighted reference row total never ran: any sample_weight crashed in _build_model.
    from sklearn import config_context

    X, _, _ = _with_size_factors(400, 0.6, ((3.0, 30.0), (25.0, 2.0)), 0.1, seed=3)
    weights = np.random.default_rng(0).integers(1, 4, size=len(X)).astype(float)
    with config_context(enable_metadata_routing=True):
        estimator = NegBinMixture(size_factors="library", tol=1e-6, random_state=0)
        estimator.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        search = GridSearchCV(estimator, {"n_components": [1, 2]}, cv=3)
        search.fit(X, sample_weight=weights)
    assert search.best_params_["n_components"] == 2
    repeated = NegBinMixture(2, size_factors="library", tol=1e-6, random_state=0).fit(
        np.repeat(X, weights.astype(int), axis=0))
    np.testing.assert_allclose(search.best_estimator_.means_, repeated.means_, rtol=1e-6)


def test_weights_init_is_kept_with_library_size_factors():
    X, _, _ = _with_size_factors(200, 0.6, ((3.0, 30.0), (25.0, 2.0)), 0.1, seed=3)
    model = NegBinMixture(2, size_factors="library", weights_init=[0.9, 0.1], max_iter=0).fit(X)
    np.testing.assert_array_equal(model.weights_, [0.9, 0.1])


def test_warm_start_after_more_components_fits_them_and_names_them():
    X, _, _ = _with_size_factors(300, 0.3, ((3.0, 30.0), (25.0, 2.0)), 0.1, seed=5)
    model = NegBinMixture(2, warm_start=True, random_state=0).fit(X)
    with pytest.warns(UserWarning, match="n_components=2 -> 3"):
        model.set_params(n_components=3).fit(X)
    assert model.means_.shape == (3, 2) and model.component_means().shape == (3, 2)


def test_component_tables_before_fit_raise_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        NegBinMixture().component_means()
    with pytest.raises(NotFittedError):
        NegBinMixture().component_dispersions()


def test_unknown_per_row_keyword_is_a_type_error_naming_the_known_ones():
    X, _, _ = _with_size_factors(50, 0.3, ((3.0,), (25.0,)), 0.1, seed=5)
    with pytest.raises(TypeError, match="size_factor.*size_factors"):
        NegBinMixture(2).fit(X, size_factor=np.ones(50))

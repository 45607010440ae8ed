"""The test-only Dirichlet-multinomial mixture (tests/dirichlet_multinomial.py) against
independent references: scipy's log-pmf, brute-force sums over rows, a generic
optimizer, and planted parameters. The engine's contract tests run over it
through ``conftest.ESTIMATORS``."""

from __future__ import annotations

import warnings
from itertools import permutations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp
from scipy.stats import dirichlet_multinomial, multinomial
from sklearn.exceptions import ConvergenceWarning

from dirichlet_multinomial import (
    ALPHA_FLOOR,
    DirichletMultinomialMixture,
    DirichletMultinomialModel,
    DMParams,
    expected_log_likelihood,
    fit_concentrations,
    minka_step,
    pair_table,
)


def _simulate(concentrations, weights, n_rows, totals, seed):
    rng = np.random.default_rng(seed)
    components = rng.choice(len(weights), size=n_rows, p=weights)
    n = rng.integers(*totals, size=n_rows)
    X = np.array([rng.multinomial(m, rng.dirichlet(concentrations[k]))
                  for k, m in zip(components, n)], dtype=float)
    return X, components


def _scipy_log_pmf(X, concentrations):
    """log p(x_i | k) by scipy, (n, K)."""
    totals = X.sum(axis=1)
    return np.column_stack([dirichlet_multinomial.logpmf(X, alpha, totals) for alpha in concentrations])


def _model_and_data(X, concentrations, sample_weight=None):
    """The model of ``len(concentrations)`` components and its row data for ``X``."""
    weights = np.ones(len(X)) if sample_weight is None else sample_weight
    model = DirichletMultinomialModel(
        n_components=len(concentrations), n_features=X.shape[1],
        totals=np.array([0.0]), total_weights=np.array([1.0]),  # for sampling only
    )
    return model, model.prepare(X, weights)


def _stats(model, data, resp):
    return model.accumulate(None, data, resp * data.weights[:, None], None)


# ------------------------------------------------------------------ the log-pmf


@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1.0, 1e3, 1e6])
def test_log_pmf_matches_scipy(seed, scale):
    rng = np.random.default_rng(seed)
    concentrations = scale * rng.uniform(0.2, 3.0, size=(3, 5))
    X = rng.integers(0, 6, size=(40, 5)).astype(float)
    X[:3] = 0.0  # all-zero rows: p = 1
    X[3:8, :4] = 0.0  # a single category
    model, data = _model_and_data(X, concentrations)
    params = DMParams(np.full(3, 1 / 3), concentrations)
    ours = model.estimate_log_prob(params, data, None)
    # scipy's gamma-function differences lose digits for large concentrations.
    np.testing.assert_allclose(ours, _scipy_log_pmf(X, concentrations),
                               rtol=1e-9 if scale <= 1e3 else 1e-6, atol=1e-9)


def test_score_samples_is_the_mixture_log_pmf(seed):
    X, _ = _simulate(np.array([[4.0, 1.0, 2.0], [1.0, 1.0, 8.0]]), [0.3, 0.7], 150, (0, 40), seed)
    model = DirichletMultinomialMixture(random_state=seed).fit(X)
    reference = logsumexp(_scipy_log_pmf(X, model.concentrations_) + np.log(model.weights_), axis=1)
    np.testing.assert_allclose(model.score_samples(X), reference, rtol=1e-10, atol=1e-12)
    # and on rows the model was not fitted on (new pairs and totals)
    new, _ = _simulate(np.array([[1.0, 1.0, 1.0]]), [1.0], 30, (50, 90), seed + 1)
    reference = logsumexp(_scipy_log_pmf(new, model.concentrations_) + np.log(model.weights_), axis=1)
    np.testing.assert_allclose(model.score_samples(new), reference, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------- statistics and M-step


def test_histograms_give_the_expected_complete_log_likelihood(seed):
    """Q from the histograms differs between two concentrations exactly as the brute-force
    sum over rows of w_i q_ik log p(x_i | alpha_k) does, for integer and non-integer rows."""
    rng = np.random.default_rng(seed)
    for X in (rng.integers(0, 9, size=(60, 4)).astype(float), rng.uniform(0, 5, size=(60, 4))):
        weights = rng.uniform(0, 3, size=60)
        resp = rng.dirichlet(np.ones(2), size=60)
        a, b = rng.uniform(0.1, 5, size=(2, 2, 4))
        model, data = _model_and_data(X, a, weights)
        stats = _stats(model, data, resp)
        ours = [expected_log_likelihood(alpha, stats.pair_hist, stats.total_hist, stats.pairs)
                for alpha in (a, b)]

        def brute(alpha):
            # the Gamma-function form, over rows (not scipy: it refuses non-integer counts)
            n = X.sum(axis=1)[:, None]
            A = alpha.sum(axis=1)
            log_p = (gammaln(A) - gammaln(n + A)
                     + (gammaln(X[:, None, :] + alpha) - gammaln(alpha)).sum(axis=2))
            return ((weights[:, None] * resp) * log_p).sum(axis=0)

        np.testing.assert_allclose(ours[0] - ours[1], brute(a) - brute(b), rtol=1e-9, atol=1e-9)


def test_statistics_add_up_over_chunks(seed):
    X, _ = _simulate(np.array([[2.0, 1.0, 3.0]]), [1.0], 90, (0, 30), seed)
    model, data = _model_and_data(X, np.ones((2, 3)))
    resp = np.random.default_rng(seed).dirichlet(np.ones(2), size=90)
    whole = _stats(model, data, resp)
    parts = [_stats(model, chunk, resp[start:start + 13])
             for start, chunk in zip(range(0, 90, 13), data.chunks(13))]
    summed = sum(parts[1:], parts[0])
    for name in ("resp_sum", "pair_hist", "total_hist"):
        np.testing.assert_allclose(getattr(summed, name), getattr(whole, name), rtol=1e-12)


@pytest.mark.parametrize("integer", [True, False], ids=["counts", "non-integer"])
def test_every_fixed_point_step_raises_q(seed, integer):
    """Minka's step never lowers Q (integer counts: by its bound; otherwise: by the safeguard)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 12, size=(80, 5)).astype(float) if integer else rng.gamma(0.5, 4, (80, 5))
    model, data = _model_and_data(X, np.ones((3, 5)))
    stats = _stats(model, data, rng.dirichlet(np.ones(3), size=80))
    alpha = rng.uniform(0.01, 50, size=(3, 5))
    q = expected_log_likelihood(alpha, stats.pair_hist, stats.total_hist, stats.pairs)
    for _ in range(50):
        alpha = fit_concentrations(alpha, stats.pair_hist, stats.total_hist, stats.pairs, 5, 1, 0.0)
        new = expected_log_likelihood(alpha, stats.pair_hist, stats.total_hist, stats.pairs)
        assert np.all(new >= q - 1e-12 * np.abs(q))  # up to Q_ROUNDING
        q = new


def test_unguarded_step_raises_q_on_non_integer_values(seed):
    """Minka's bound is not proven for non-integer values; the step alone still raises Q
    on random small rows, weights and concentrations (the fit refuses a step that would not)."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        D = rng.integers(2, 5)
        X = np.exp(rng.uniform(-8, 2, size=(rng.integers(1, 5), D)))
        X[rng.uniform(size=X.shape) < 0.3] = 0.0
        if not X.sum():
            continue
        pairs, pair_rows, total_rows = pair_table(X)
        weights = rng.uniform(0.1, 2, size=X.shape[0])
        pair_hist, total_hist = (np.asarray(rows.T @ weights)[None] for rows in (pair_rows, total_rows))
        alpha = np.exp(rng.uniform(-12, 8, size=(1, D)))
        before, after = (expected_log_likelihood(a, pair_hist, total_hist, pairs)[0]
                         for a in (alpha, minka_step(alpha, pair_hist, total_hist, pairs, D)))
        assert after >= before - 1e-12 * abs(before)


def test_m_step_maximizes_q_like_a_generic_optimizer(seed):
    """The fixed point's answer is Q's maximum, as L-BFGS on log alpha finds it."""
    X, _ = _simulate(np.array([[3.0, 0.7, 1.5, 4.0]]), [1.0], 300, (1, 40), seed)
    model, data = _model_and_data(X, np.ones((1, 4)))
    stats = _stats(model, data, np.ones((300, 1)))
    ours = fit_concentrations(np.ones((1, 4)), stats.pair_hist, stats.total_hist, stats.pairs,
                              4, 10_000, 1e-12)

    def negative_q(log_alpha):
        return -expected_log_likelihood(np.exp(log_alpha)[None], stats.pair_hist,
                                        stats.total_hist, stats.pairs)[0]

    reference = minimize(negative_q, np.zeros(4), method="L-BFGS-B", options={"gtol": 1e-10})
    np.testing.assert_allclose(ours[0], np.exp(reference.x), rtol=1e-4)
    assert -negative_q(np.log(ours[0])) >= -reference.fun - 1e-9


# ------------------------------------------------------------------ EM


def test_recovers_planted_concentrations(seed):
    truth = np.array([[6.0, 1.0, 2.0, 0.5], [0.5, 3.0, 1.0, 8.0]])
    X, components = _simulate(truth, [0.35, 0.65], 3000, (10, 80), seed)
    model = DirichletMultinomialMixture(random_state=seed, n_init=2, tol=1e-10, max_iter=1000).fit(X)
    order = max(permutations(range(2)),
                key=lambda p: np.mean(model.predict(X) == np.asarray(p)[components]))
    labels = np.asarray(order)[components]
    assert np.mean(model.predict(X) == labels) > 0.95
    np.testing.assert_allclose(model.weights_[list(order)], [0.35, 0.65], atol=0.03)
    np.testing.assert_allclose(model.concentrations_[list(order)], truth, rtol=0.15)


@pytest.mark.parametrize("accelerate", [None, "squarem"])
@pytest.mark.parametrize("integer", [True, False], ids=["counts", "non-integer"])
def test_em_is_monotone(seed, accelerate, integer):
    X, _ = _simulate(np.array([[2.0, 0.5, 1.0], [0.3, 2.0, 2.0]]), [0.5, 0.5], 200, (0, 30), seed)
    if not integer:
        X = X * np.random.default_rng(seed).uniform(0.5, 1.5, size=X.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the engine warns on any decrease
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = DirichletMultinomialMixture(
            random_state=seed, tol=0, max_iter=40, accelerate=accelerate, init_params="random"
        ).fit(X)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bounds_[1:]))


@pytest.mark.filterwarnings("ignore:Number of distinct clusters:sklearn.exceptions.ConvergenceWarning")
def test_one_category_and_empty_rows_are_fitted(seed):
    """D = 1 (every row is its total: p = 1) and all-zero data leave nothing to learn."""
    for X in (np.arange(1.0, 21.0)[:, None], np.zeros((20, 3))):
        model = DirichletMultinomialMixture(random_state=seed).fit(X)
        np.testing.assert_allclose(model.score_samples(X), 0.0, atol=1e-12)
        assert np.all(np.isfinite(model.concentrations_))


# -------------------------------------------------------------- sampling


def test_sample_draws_training_totals_and_component_proportions(seed):
    truth = np.array([[8.0, 1.0, 1.0], [ALPHA_FLOOR, 1.0, 3.0]])
    X, _ = _simulate(truth, [0.5, 0.5], 400, (20, 25), seed)
    model = DirichletMultinomialMixture(random_state=seed, tol=1e-8).fit(X)
    drawn, components = model.sample(4000)
    assert np.all(drawn == np.round(drawn)) and np.all(drawn >= 0)
    assert set(np.unique(drawn.sum(axis=1))) <= set(np.unique(X.sum(axis=1)))
    for k in range(2):
        alpha = model.concentrations_[k]
        proportions = drawn[components == k].sum(axis=0) / drawn[components == k].sum()
        np.testing.assert_allclose(proportions, alpha / alpha.sum(), atol=0.03)


def test_data_without_overdispersion_converge(seed):
    """Multinomial rows: the maximum is far out or at infinite precision, which the fixed
    point alone creeps towards (50 EM steps left it 1e-3 per row short); with the
    precision's Newton step the fit converges, at least as high as the multinomial limit."""
    rng = np.random.default_rng(seed)
    X = rng.multinomial(30, [0.2, 0.3, 0.5], size=300).astype(float)
    model = DirichletMultinomialMixture(n_components=1, tol=1e-8, max_iter=50).fit(X)
    assert model.converged_
    limit = multinomial.logpmf(X, 30, X.sum(axis=0) / X.sum()).mean()
    assert model.score(X) >= limit - 1e-6

"""NegBinMixture against independent references: scipy.optimize on summed
``scipy.stats.nbinom.logpmf``, closed forms for weighted fits, and recovery
of hard truths within the estimator's own standard error.

Nothing here compares skem with skem: every expected value is computed from
scipy or numpy in the test.
"""

from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

from skem import NegBinMixture

TRUE_WEIGHTS = np.array([0.65, 0.35])
TRUE_MEANS = np.array([[4.0, 20.0, 60.0], [30.0, 6.0, 15.0]])
#: Different along both axes, so that every tying mode has something to identify.
TRUE_DISPERSION = np.array([[0.05, 0.6, 0.2], [0.9, 0.1, 0.4]])


def _simulate(n, weights, means, dispersion, seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(weights), size=n, p=weights)
    mu, phi = means[labels], dispersion[labels]
    size = 1.0 / phi
    return rng.negative_binomial(size, size / (size + mu)).astype(float), labels


def _component_logpmf(X, means, dispersion):
    """``sum_d log NB(x_id; mu_kd, phi_kd)``, shape (n, K), from scipy.stats alone."""
    size = 1.0 / dispersion  # (K, D)
    logpmf = stats.nbinom.logpmf(
        X[:, None, :], size[None], (size / (size + means))[None]
    )
    return logpmf.sum(axis=2)


def _mixture_loglik(X, weights, means, dispersion, sample_weight=None):
    """Weighted mixture log-likelihood, sum over rows."""
    log_joint = np.log(weights) + _component_logpmf(X, means, dispersion)
    per_row = logsumexp(log_joint, axis=1)
    return float(per_row.sum() if sample_weight is None else sample_weight @ per_row)


def _tie(values, mode, K, D):
    """Expand the free dispersions of a tying mode to the (K, D) grid."""
    if mode == "shared":
        return np.full((K, D), values[0])
    if mode == "component":  # one dispersion per component, shared by its features
        return np.repeat(values[:, None], D, axis=1)
    if mode == "feature":  # one dispersion per feature, shared by the components
        return np.repeat(values[None, :], K, axis=0)
    return values.reshape(K, D)


def _n_free(mode, K, D):
    return {"shared": 1, "component": K, "feature": D, "full": K * D}[mode]


def _free_from_grid(grid, mode):
    K, D = grid.shape
    if mode == "shared":
        return np.array([grid.mean()])
    if mode == "component":
        return grid.mean(axis=1)
    if mode == "feature":
        return grid.mean(axis=0)
    return grid.ravel()


def reference_fit(X, mode, start_weights, start_means, start_dispersion, sample_weight=None):
    """Maximize the mixture log-likelihood with scipy.optimize (BFGS on unconstrained coordinates).

    Returns weights, means, dispersion (K, D) and the maximum per unit weight.
    """
    K, D = start_means.shape
    total = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))

    def unpack(z):
        logits = np.concatenate([[0.0], z[: K - 1]])
        weights = np.exp(logits - logsumexp(logits))
        means = np.exp(z[K - 1 : K - 1 + K * D]).reshape(K, D)
        dispersion = _tie(np.exp(z[K - 1 + K * D :]), mode, K, D)
        return weights, means, dispersion

    def objective(z):
        return -_mixture_loglik(X, *unpack(z), sample_weight) / total

    z0 = np.concatenate([
        np.log(start_weights[1:] / start_weights[0]),
        np.log(start_means).ravel(),
        np.log(_free_from_grid(start_dispersion, mode)),
    ])
    result = optimize.minimize(objective, z0, method="BFGS", options={"gtol": 1e-9, "maxiter": 5000})
    return (*unpack(result.x), -result.fun)


def _order(weights, means, dispersion):
    """Components sorted by the mean of the first feature (labels are arbitrary)."""
    order = np.argsort(means[:, 0])
    return weights[order], means[order], dispersion[order]


def _tight(**params):
    return NegBinMixture(
        n_components=2, tol=1e-12, max_iter=5000, accelerate="squarem", n_init=2,
        random_state=0, **params,
    )


@pytest.fixture(scope="module")
def counts():
    X, _ = _simulate(600, TRUE_WEIGHTS, TRUE_MEANS, TRUE_DISPERSION, seed=1)
    return X


@pytest.mark.parametrize("mode", ["shared", "component", "feature", "full"])
def test_dispersion_tying_mode_matches_scipy_optimize(counts, mode):
    model = _tight(dispersion=mode).fit(counts)
    weights, means, dispersion = _order(model.weights_, model.means_, model.dispersion_)
    ref_w, ref_mu, ref_phi, ref_max = reference_fit(
        counts, mode, *_order(TRUE_WEIGHTS, TRUE_MEANS, TRUE_DISPERSION)
    )
    ref_w, ref_mu, ref_phi = _order(ref_w, ref_mu, ref_phi)
    # The objective the user reads is the log-likelihood scipy computes at the fitted values ...
    assert model.lower_bound_ == pytest.approx(
        _mixture_loglik(counts, weights, means, dispersion) / len(counts), rel=1e-9
    )
    # ... and it is the maximum scipy.optimize finds, at the same parameters.
    assert model.lower_bound_ == pytest.approx(ref_max, abs=1e-7)
    np.testing.assert_allclose(weights, ref_w, rtol=1e-3)
    np.testing.assert_allclose(means, ref_mu, rtol=1e-3)
    np.testing.assert_allclose(dispersion, ref_phi, rtol=1e-2)


@pytest.mark.parametrize(
    "mode, truth",
    [
        ("component", np.array([[0.05, 0.05, 0.05], [0.8, 0.8, 0.8]])),
        ("feature", np.array([[0.05, 0.8, 0.3], [0.05, 0.8, 0.3]])),
    ],
)
def test_component_and_feature_dispersion_tying_are_not_swapped(mode, truth):
    """"component" is one dispersion per component (the rows of dispersion_), "feature" one per
    feature (the columns): on data whose dispersions differ along that axis only, each mode
    recovers them, constant along the tied axis, at the optimizer's maximum."""
    X, _ = _simulate(1500, TRUE_WEIGHTS, TRUE_MEANS, truth, seed=2)
    model = _tight(dispersion=mode).fit(X)
    weights, means, phi = _order(model.weights_, model.means_, model.dispersion_)
    tied_axis = 1 if mode == "component" else 0
    np.testing.assert_allclose(phi, np.broadcast_to(phi.mean(axis=tied_axis, keepdims=True), phi.shape),
                               rtol=1e-12)
    np.testing.assert_allclose(phi, truth, rtol=0.25)
    *reference, ref_max = reference_fit(X, mode, *_order(TRUE_WEIGHTS, TRUE_MEANS, truth))
    np.testing.assert_allclose(phi, _order(*reference)[2], rtol=1e-2)
    assert model.lower_bound_ == pytest.approx(ref_max, abs=1e-7)


def test_poisson_k1_real_weights_is_the_weighted_mean():
    rng = np.random.default_rng(3)
    X = rng.poisson([3.0, 11.0, 0.5], size=(80, 3)).astype(float)
    X[:, 0] += np.arange(80)  # no two rows alike: no compression can hide the weights
    weights = rng.uniform(0.05, 3.0, size=80)
    model = NegBinMixture(n_components=1, dispersion=0.0).fit(X, sample_weight=weights)
    expected = np.average(X, axis=0, weights=weights)
    np.testing.assert_allclose(model.means_[0], expected, rtol=1e-12)
    loglik = stats.poisson.logpmf(X, expected).sum(axis=1)
    assert model.lower_bound_ == pytest.approx(np.average(loglik, weights=weights), rel=1e-12)
    # Unweighted, the answer differs: the weights are used at all.
    assert not np.allclose(NegBinMixture(n_components=1, dispersion=0.0).fit(X).means_[0], expected)


def test_k1_shared_dispersion_real_weights_matches_scipy_optimize():
    rng = np.random.default_rng(4)
    X, _ = _simulate(300, np.array([1.0]), np.array([[5.0, 12.0]]), np.array([[0.4, 0.4]]), seed=4)
    X[:, 1] += np.arange(300)
    weights = rng.uniform(0.1, 4.0, size=300)
    model = NegBinMixture(n_components=1, dispersion="shared", tol=1e-12, max_iter=1000).fit(
        X, sample_weight=weights
    )
    # The mean's MLE is the weighted mean whatever the dispersion.
    np.testing.assert_allclose(model.means_[0], np.average(X, axis=0, weights=weights), rtol=1e-10)

    def negative(log_phi):
        phi = np.full((1, 2), np.exp(log_phi[0]))
        return -_mixture_loglik(X, np.ones(1), model.means_, phi, weights) / weights.sum()

    best = optimize.minimize_scalar(lambda t: negative([t]), bounds=(-8, 3), method="bounded",
                                    options={"xatol": 1e-10})
    assert model.dispersion_[0, 0] == pytest.approx(np.exp(best.x), rel=1e-5)
    assert model.lower_bound_ == pytest.approx(-best.fun, abs=1e-10)


def test_two_components_real_weights_match_scipy_optimize():
    """Real-valued weights on distinct rows: the weighted MLE, not the unweighted one."""
    X, _ = _simulate(400, TRUE_WEIGHTS, TRUE_MEANS[:, :2], TRUE_DISPERSION[:, :2], seed=5)
    X[:, 0] += np.arange(400) % 7  # break ties between rows
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.1, 3.0, size=400) * np.where(X[:, 0] > 15, 2.5, 1.0)
    model = _tight(dispersion="full").fit(X, sample_weight=weights)
    weights_, means, dispersion = _order(model.weights_, model.means_, model.dispersion_)
    ref_w, ref_mu, ref_phi, ref_max = reference_fit(
        X, "full", *_order(TRUE_WEIGHTS, TRUE_MEANS[:, :2], TRUE_DISPERSION[:, :2]), sample_weight=weights
    )
    ref_w, ref_mu, ref_phi = _order(ref_w, ref_mu, ref_phi)
    assert model.lower_bound_ == pytest.approx(ref_max, abs=1e-7)
    np.testing.assert_allclose(weights_, ref_w, rtol=1e-3)
    np.testing.assert_allclose(means, ref_mu, rtol=1e-3)
    np.testing.assert_allclose(dispersion, ref_phi, rtol=1e-2)


def _standard_errors(X, weights, means, dispersion, mode):
    """Standard errors from the observed information: the inverse Hessian of the
    log-likelihood in (logit weight, means, free dispersions), by central differences."""
    K, D = means.shape
    theta = np.concatenate([[np.log(weights[1] / weights[0])], means.ravel(),
                            _free_from_grid(dispersion, mode)])

    def loglik(t):
        w = np.array([1.0, np.exp(t[0])])
        return _mixture_loglik(X, w / w.sum(), t[1 : 1 + K * D].reshape(K, D),
                               _tie(t[1 + K * D :], mode, K, D))

    h = 1e-4 * np.maximum(np.abs(theta), 1e-2)
    p = theta.size
    hessian = np.empty((p, p))
    for i in range(p):
        for j in range(i, p):
            values = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                t = theta.copy()
                t[i] += si * h[i]
                t[j] += sj * h[j]
                values.append(loglik(t))
            hessian[i, j] = hessian[j, i] = (values[0] - values[1] - values[2] + values[3]) / (
                4 * h[i] * h[j]
            )
    covariance = np.linalg.inv(-hessian)
    se = np.sqrt(np.diag(covariance))
    # The weight's standard error by the delta method from the logit's.
    pi1 = weights[1]
    return pi1 * (1 - pi1) * se[0], se[1 : 1 + K * D].reshape(K, D), se[1 + K * D :]


@pytest.mark.slow
def test_recovers_unequal_overlapping_components_within_standard_errors():
    """A hard truth: weights 0.8/0.2, means 1.5-2x apart, dispersions per component.

    Each estimate is within 4 standard errors (from the observed information)
    of the truth; an M-step blurred by 15 % misses by many standard errors.
    """
    weights = np.array([0.8, 0.2])
    means = np.array([[10.0, 30.0], [18.0, 16.0]])
    dispersion = np.array([[0.05, 0.05], [0.3, 0.3]])
    X, _ = _simulate(8000, weights, means, dispersion, seed=11)
    model = NegBinMixture(
        n_components=2, dispersion="component", tol=1e-10, max_iter=5000,
        accelerate="squarem", n_init=3, random_state=0,
    ).fit(X)
    w_hat, mu_hat, phi_hat = _order(model.weights_, model.means_, model.dispersion_)
    se_w, se_mu, se_phi = _standard_errors(X, w_hat, mu_hat, phi_hat, "component")
    assert abs(w_hat[1] - weights[1]) < 4 * se_w
    assert np.all(np.abs(mu_hat - means) < 4 * se_mu)
    assert np.all(np.abs(phi_hat[:, 0] - dispersion[:, 0]) < 4 * se_phi)
    # The standard errors are small enough for the test to bite: a 15 % error is > 4 SE.
    assert np.all(0.15 * means > 4 * se_mu)
    assert 0.2 * weights[1] > 4 * se_w  # the minor weight is the hardest to pin down


@pytest.mark.parametrize("mode", ["shared", "component", "feature", "full", 0.2])
def test_scores_posteriors_and_criteria_by_hand(counts, mode):
    """What a user reads after the fit, recomputed from scipy.stats and the parameter count
    of each tying mode: ``score_samples``, ``predict_proba``, ``score``, ``bic``, ``aic``."""
    model = NegBinMixture(n_components=2, dispersion=mode, random_state=0).fit(counts)
    log_joint = np.log(model.weights_) + _component_logpmf(counts, model.means_, np.maximum(model.dispersion_, 1e-300))
    per_row = logsumexp(log_joint, axis=1)
    np.testing.assert_allclose(model.score_samples(counts), per_row, rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(counts), np.exp(log_joint - per_row[:, None]), atol=1e-10)
    assert model.score(counts) == pytest.approx(per_row.mean(), rel=1e-10)
    K, D = model.means_.shape
    n_dispersion = 0 if not isinstance(mode, str) else _n_free(mode, K, D)
    p = (K - 1) + K * D + n_dispersion
    n = len(counts)
    assert model.bic(counts) == pytest.approx(-2 * per_row.sum() + p * np.log(n), rel=1e-10)
    assert model.aic(counts) == pytest.approx(-2 * per_row.sum() + 2 * p, rel=1e-10)


@pytest.mark.parametrize("factors", ["library", "many distinct"])
def test_size_factor_log_likelihood_at_extreme_parameters_matches_scipy(factors):
    # Parameters a fit reached on the single-cell page's data: shared phi 12.3, one gene's
    # means at 1e15-7e21, others at the 1e-8 floor. Splitting such a cell's zero term as
    # -s mu + (s mu - log1p(phi s mu) / phi) lost ~1e6 nats to rounding. The library factors
    # take few distinct values (exact size nodes); the "many distinct" ones are interpolated.
    data = np.load(Path(__file__).parent / "data" / "negbin_offset_accuracy.npz")
    X, weights, means, dispersion = data["X"], data["weights"], data["means"], data["dispersion"]
    if factors == "library":
        s = X.sum(axis=1) / X.sum(axis=1).mean()
        fit_params = {}
    else:
        X = np.tile(X, (3, 1))
        s = np.random.default_rng(0).lognormal(0.0, 1.0, len(X))
        fit_params = {"size_factors": s}
    model = NegBinMixture(len(weights), size_factors="library" if factors == "library" else "none",
                          means_init=means, weights_init=weights,
                          dispersion=float(dispersion[0, 0]), max_iter=0).fit(X, **fit_params)
    size = 1.0 / dispersion
    expected = logsumexp(np.stack([
        stats.nbinom.logpmf(X, size[k], size[k] / (size[k] + s[:, None] * means[k])).sum(axis=1)
        + np.log(weights[k]) for k in range(len(weights))
    ], axis=1), axis=1)
    np.testing.assert_allclose(model.score_samples(X, **fit_params), expected, rtol=1e-9, atol=1e-9)

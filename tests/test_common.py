"""Contract tests that every estimator in the registry (``conftest.ESTIMATORS``) must pass.

These check what the shared engine promises, whatever the model: scikit-learn's
own estimator checks, a log-likelihood that never decreases, restarts, warm
starts, parallel restarts, and pickling. The invariants that must hold whatever
the options (weights that mean repetition, zero weights, row order, chunking,
score, starting values, the warm-start rule) run over combinations of every
estimator's options in ``test_combinations.py``.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import ESTIMATORS

CASES = list(ESTIMATORS.items())
NAMES = [name for name, _ in CASES]


def _expected_failed_checks(estimator):
    return ESTIMATORS[type(estimator).__name__].expected_failed_checks


@parametrize_with_checks(
    [case.make_estimator() for _, case in CASES],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def _assert_same_fit(a, b, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol, atol=atol)
    for name in vars(a):
        value = getattr(a, name)
        if name.endswith("_") and not name.startswith("_") and isinstance(value, np.ndarray):
            if value.dtype.kind in "fc":
                np.testing.assert_allclose(value, getattr(b, name), rtol=rtol, atol=atol,
                                           err_msg=name)


@pytest.fixture(params=CASES, ids=NAMES)
def case(request):
    case = request.param[1]
    reason = case.not_applicable.get(request.node.originalname)
    if reason:
        pytest.skip(reason)
    return case


def test_log_likelihood_never_decreases(case, seed):
    X = case.make_data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the engine warns on any decrease
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = case.make_estimator(random_state=seed, max_iter=30, tol=0).fit(X)
    steps = np.diff(model.lower_bounds_)
    assert np.all(steps >= -1e-10 * np.abs(model.lower_bounds_[1:]))
    # as in GaussianMixture: one value per iteration, the last one is lower_bound_
    assert len(model.lower_bounds_) == model.n_iter_ == 30
    assert model.lower_bound_ == model.lower_bounds_[-1]


def test_lower_bound_is_training_score(case, seed):
    X = case.make_data(seed)
    model = case.make_estimator(random_state=seed).fit(X)
    log_prior = model._model.log_prior(model._get_fitted_params())
    assert model.score(X) == pytest.approx(model.lower_bound_ - log_prior / X.shape[0], rel=1e-9)


def test_max_iter_zero_evaluates_the_start(case, seed):
    X = case.make_data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # max_iter=0 must not warn
        model = case.make_estimator(random_state=seed, max_iter=0).fit(X)
    assert model.n_iter_ == 0 and not model.converged_
    assert len(model.lower_bounds_) == 0 and np.isfinite(model.lower_bound_)


def test_warns_when_not_converged(case, seed):
    X = case.make_data(seed)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        case.make_estimator(random_state=seed, max_iter=1, tol=0).fit(X)


def test_warm_start_continues_from_previous_fit(case, seed):
    X = case.make_data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = case.make_estimator(random_state=seed, max_iter=3, tol=0, warm_start=True)
        model.fit(X)
        first = model.lower_bound_
        model.set_params(max_iter=0).fit(X)  # the start of a warm fit is the previous end
        assert model.lower_bound_ == pytest.approx(first, rel=1e-12)
        model.set_params(max_iter=3).fit(X)
    assert model.lower_bounds_[0] >= first - 1e-12
    assert model.lower_bound_ >= first - 1e-12


def test_warm_start_with_other_features_starts_afresh(case, seed):
    X = case.make_data(seed)
    model = case.make_estimator(random_state=seed, warm_start=True).fit(X)
    with pytest.warns(UserWarning, match="n_features_in_"):
        model.fit(X[:, :-1])
    fresh = case.make_estimator(random_state=seed).fit(X[:, :-1])
    assert model.n_features_in_ == X.shape[1] - 1
    np.testing.assert_allclose(model.lower_bound_, fresh.lower_bound_, rtol=1e-12)


def test_n_init_keeps_the_best_run(case, seed):
    X = case.make_data(seed)
    single = case.make_estimator(random_state=seed, n_init=1, init_params="random").fit(X)
    best = case.make_estimator(random_state=seed, n_init=4, init_params="random").fit(X)
    assert best.lower_bound_ >= single.lower_bound_ - 1e-12


def test_parallel_restarts_equal_serial(case, seed):
    X = case.make_data(seed)
    serial = case.make_estimator(random_state=seed, n_init=3, init_params="random").fit(X)
    parallel = case.make_estimator(
        random_state=seed, n_init=3, init_params="random", n_jobs=2
    ).fit(X)
    _assert_same_fit(serial, parallel, rtol=0, atol=0)


def test_squarem_reaches_plain_em_objective(case, seed):
    X = case.make_data(seed)
    plain = case.make_estimator(random_state=seed, tol=1e-9, max_iter=2000).fit(X)
    fast = case.make_estimator(
        random_state=seed, tol=1e-9, max_iter=2000, accelerate="squarem"
    ).fit(X)
    assert np.all(np.diff(fast.lower_bounds_) >= -1e-10 * np.abs(fast.lower_bounds_[1:]))
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-6


def test_fit_predict_equals_fit_then_predict(case, seed):
    X = case.make_data(seed)
    labels = case.make_estimator(random_state=seed).fit_predict(X)
    np.testing.assert_array_equal(labels, case.make_estimator(random_state=seed).fit(X).predict(X))


def test_pickle_round_trip(case, seed):
    X = case.make_data(seed)
    model = case.make_estimator(random_state=seed).fit(X)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.score_samples(X), restored.score_samples(X))
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize(
    "bad",
    [lambda n: np.zeros(n), lambda n: -np.ones(n), lambda n: np.full(n, np.nan),
     lambda n: np.ones(n + 1), lambda n: np.ones((n, 2))],
    ids=["zeros", "negative", "nan", "length", "2d"],
)
def test_bad_sample_weight_is_a_clear_error_in_fit_and_score(case, seed, bad):
    X = case.make_data(seed)
    with pytest.raises(ValueError, match="(?i)sample.weight"):
        case.make_estimator().fit(X, sample_weight=bad(X.shape[0]))
    model = case.make_estimator().fit(X)
    with pytest.raises(ValueError, match="(?i)sample.weight"):
        model.score(X, sample_weight=bad(X.shape[0]))


def test_accelerate_none_means_plain_em(case, seed):
    X = case.make_data(seed)
    a = case.make_estimator(random_state=seed, accelerate=None).fit(X)
    b = case.make_estimator(random_state=seed, accelerate="none").fit(X)
    _assert_same_fit(a, b, rtol=0, atol=0)

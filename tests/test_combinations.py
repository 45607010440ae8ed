"""Every contract invariant over combinations of every estimator's options.

Options go wrong in combination (size factors with sample weights, a warm start
after a structural change...), so each invariant runs on a set of settings --
one level of each option axis the registry declares (``conftest.Case.options``:
data layout, per-row arrays, modes, chunk size, acceleration, restarts) -- in
which every pair of levels of two axes appears. Fits run a fixed number of
iterations (``tol=0``): the invariants hold along the whole EM path, not only
at the optimum, and the fits stay cheap.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from conftest import ESTIMATORS, pairwise_settings

#: EM iterations of every fit in this module.
N_ITER = 12

SETTINGS = [
    (name, setting)
    for name, case in ESTIMATORS.items()
    for setting in pairwise_settings({axis: list(levels) for axis, levels in case.options.items()})
]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _setting_id(item):
    name, setting = item
    levels = [setting[axis] for axis in ESTIMATORS[name].options]
    return name + ("[" + ",".join(levels) + "]" if levels else "")


class Setup:
    """An estimator factory, data and per-row arrays for one setting."""

    def __init__(self, name, setting, seed):
        case = ESTIMATORS[name]
        self.case, self.seed = case, seed
        self.params = {"random_state": seed, "max_iter": N_ITER, "tol": 0.0}
        options = [case.options[axis][level] for axis, level in setting.items()]
        X = case.make_data(seed)
        for option in options:
            self.params.update(option.params)
            if option.layout is not None:
                X = option.layout(X)
        rng = np.random.default_rng(seed)
        self.metadata = {}
        for option in options:
            if option.row_metadata is not None:
                self.metadata.update(option.row_metadata(X, rng))
        self.X = X

    def make(self, **params):
        return self.case.make_estimator(**{**self.params, **params})

    def rows(self, index):
        """The data and per-row arrays of the rows ``index`` (with repeats, in that order)."""
        return self.X[index], {name: values[index] for name, values in self.metadata.items()}

    def fit(self, X=None, sample_weight=None, metadata=None, **params):
        X = self.X if X is None else X
        metadata = self.metadata if metadata is None else metadata
        return self.make(**params).fit(X, sample_weight=sample_weight, **metadata)


def _dense(array):
    return array.toarray() if sp.issparse(array) else np.asarray(array)


def _fitted_arrays(model):
    return {
        name: value for name, value in vars(model).items()
        if name.endswith("_") and not name.startswith("_")
        and isinstance(value, np.ndarray) and value.dtype.kind == "f"
    }


def assert_same_fit(a, b, rtol=1e-7, atol=1e-10):
    """Same objective trace and same fitted parameter arrays (component order included)."""
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol, atol=atol)
    expected = _fitted_arrays(b)
    for name, value in _fitted_arrays(a).items():
        np.testing.assert_allclose(value, expected[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(params=SETTINGS, ids=[_setting_id(item) for item in SETTINGS])
def setup(request, seed):
    name, setting = request.param
    return Setup(name, setting, seed)


def test_settings_cover_every_pair_of_levels():
    for case in ESTIMATORS.values():
        axes = {axis: list(levels) for axis, levels in case.options.items()}
        settings = pairwise_settings(axes)
        for a, b in [(a, b) for a in axes for b in axes if a < b]:
            seen = {(s[a], s[b]) for s in settings}
            assert seen == {(x, y) for x in axes[a] for y in axes[b]}, (a, b)


def test_weights_equal_repeated_rows(setup):
    counts = np.random.default_rng(setup.seed).integers(1, 4, size=setup.X.shape[0])
    weighted = setup.fit(sample_weight=counts)
    X, metadata = setup.rows(np.repeat(np.arange(setup.X.shape[0]), counts))
    assert_same_fit(weighted, setup.fit(X, metadata=metadata))


def test_zero_weight_rows_equal_dropped_rows(setup):
    weights = np.ones(setup.X.shape[0])
    weights[np.random.default_rng(setup.seed).permutation(weights.size)[: weights.size // 5]] = 0.0
    X, metadata = setup.rows(np.flatnonzero(weights))
    assert_same_fit(setup.fit(sample_weight=weights), setup.fit(X, metadata=metadata))


def test_row_order_does_not_matter(setup):
    order = np.random.default_rng(setup.seed).permutation(setup.X.shape[0])
    X, metadata = setup.rows(order)
    a, b = setup.fit(), setup.fit(X, metadata=metadata)
    assert_same_fit(a, b)
    np.testing.assert_allclose(
        a.score_samples(setup.X, **setup.metadata)[order], b.score_samples(X, **metadata),
        rtol=1e-9,
    )


def test_score_is_the_weighted_mean_of_score_samples(setup):
    model = setup.fit()
    log_likelihood = model.score_samples(setup.X, **setup.metadata)
    assert np.all(np.isfinite(log_likelihood))
    weights = np.random.default_rng(setup.seed).uniform(0, 2, size=setup.X.shape[0])
    weights[0] = 0.0
    score = model.score(setup.X, sample_weight=weights, **setup.metadata)
    assert np.isfinite(score)
    assert score == pytest.approx(np.average(log_likelihood, weights=weights), rel=1e-12)


def test_objective_never_decreases(setup):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the engine warns on any decrease
        model = setup.fit()
    trace = model.lower_bounds_
    assert len(trace) == model.n_iter_ == N_ITER
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))


def test_chunking_changes_nothing(setup):
    chunk_size = 29 if setup.params.get("chunk_size") else 64
    a, b = setup.fit(), setup.fit(chunk_size=chunk_size)
    assert_same_fit(a, b)
    proba_a, proba_b = (_dense(m.predict_proba(setup.X, **setup.metadata)) for m in (a, b))
    np.testing.assert_allclose(proba_a, proba_b, rtol=1e-7, atol=1e-10)


def test_initial_values_are_honoured_at_max_iter_zero(setup):
    if not setup.case.honoured_inits:
        pytest.skip("no starting-value parameters")
    for name, (make_value, attribute) in setup.case.honoured_inits.items():
        value = make_value(setup.X)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            model = setup.fit(max_iter=0, **{name: value})
        np.testing.assert_allclose(getattr(model, attribute), value, rtol=1e-12, err_msg=name)


def test_warm_start_after_a_structural_change_starts_afresh(setup):
    if not setup.case.structural_changes:
        pytest.skip("no structural parameters")
    for name, value in setup.case.structural_changes.items():
        model = setup.fit(warm_start=True)
        model.set_params(**{name: value})
        with pytest.warns(UserWarning, match=name):
            model.fit(setup.X, **setup.metadata)
        assert_same_fit(model, setup.fit(**{name: value}))
        # With the structure unchanged, the next warm fit continues, without a warning.
        previous = model.lower_bound_
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.set_params(max_iter=0).fit(setup.X, **setup.metadata)
        assert model.lower_bound_ == pytest.approx(previous, rel=1e-12)

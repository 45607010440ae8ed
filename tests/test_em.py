"""The EM engine on a stub model: stopping rules, warnings, verbose output, chunks and SQUAREM."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy.stats import poisson

from poisson_mixture import Counts, PoissonModel, PoissonParams

from skem._accel import squarem_step_length
from skem._em import EMControls, e_pass, run_em


@dataclass(frozen=True, kw_only=True)
class StubPoisson(PoissonModel):
    """The test Poisson mixture with knobs that break it in known ways."""

    n_components: int = 2
    stop_after: int | None = None
    broken_unpack: bool = False
    bad_m_step: bool = False
    min_iter: int = 0
    rule_calls: list = field(default_factory=list)

    def m_step(self, stats, params):
        new = super().m_step(stats, params)
        if self.bad_m_step:  # deliberately wrong: moves the rates away from the optimum
            return PoissonParams(new.weights, new.rates * 1.5)
        return new

    def params_converged(self, old, new):
        self.rule_calls.append(1)
        return self.stop_after is not None and len(self.rule_calls) >= self.stop_after

    def unpack(self, vector, params):
        if self.broken_unpack:
            return PoissonParams(params.weights, np.full_like(params.rates, np.nan))
        return super().unpack(vector, params)


def fit(model=None, data=None, start=None, **controls):
    return run_em(model or StubPoisson(), _data() if data is None else data,
                  START if start is None else start, EMControls(**controls))


def _data(seed=0, n=2000, rates=(4.0, 7.0)):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.4, rng.poisson(rates[0], n), rng.poisson(rates[1], n))
    return Counts(weights=np.ones(n), X=x.astype(float)[:, None])


START = PoissonParams(np.array([0.5, 0.5]), np.array([[2.0], [12.0]]))


def test_e_step_matches_scipy():
    data = _data(n=50)
    _, objective = e_pass(StubPoisson(), START, data)
    mixture = 0.5 * poisson.pmf(data.X[:, 0], 2.0) + 0.5 * poisson.pmf(data.X[:, 0], 12.0)
    assert objective == pytest.approx(np.log(mixture).mean(), rel=1e-12)


def test_plain_em_is_monotone_and_counts_its_steps():
    result = fit(max_iter=500, tol=1e-10)
    assert result.converged
    assert result.n_iter == len(result.lower_bounds)
    assert result.lower_bound == result.lower_bounds[-1]
    assert np.all(np.diff(result.lower_bounds) >= -1e-12)


def test_stops_at_max_iter_without_converging():
    result = fit(max_iter=3, tol=0.0)
    assert not result.converged and result.n_iter == 3 and len(result.lower_bounds) == 3


def test_max_iter_zero_evaluates_the_start_only():
    result = fit(max_iter=0, tol=0.0)
    assert result.n_iter == 0 and result.lower_bounds.size == 0 and np.isfinite(result.lower_bound)
    assert result.params is START


def test_tol_is_on_the_change_per_unit_weight():
    data = _data()
    heavy = Counts(weights=data.weights * 1000.0, X=data.X)
    a = fit(data=data, max_iter=500, tol=1e-6)
    b = fit(data=heavy, max_iter=500, tol=1e-6)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(a.lower_bounds, b.lower_bounds, rtol=1e-10)


def test_model_stopping_rule_and_declared_min_iter():
    result = fit(StubPoisson(stop_after=1), max_iter=500, tol=0.0)
    assert result.converged and result.n_iter == 1  # the rule compares the start and step 1
    later = fit(StubPoisson(stop_after=1, min_iter=7), max_iter=500, tol=0.0)
    assert later.converged and later.n_iter == 7


def test_decreasing_objective_warns():
    with pytest.warns(RuntimeWarning, match="decreased"):
        fit(StubPoisson(bad_m_step=True), max_iter=5, tol=0.0)


def test_chunks_sum_to_the_whole():
    data, model = _data(n=1001), StubPoisson()
    whole, objective = e_pass(model, START, data, None)
    chunked, chunked_objective = e_pass(model, START, data, 64)
    np.testing.assert_allclose(chunked.resp_sum, whole.resp_sum, rtol=1e-12)
    np.testing.assert_allclose(chunked.x_sum, whole.x_sum, rtol=1e-12)
    assert chunked_objective == pytest.approx(objective, rel=1e-13)


def test_verbose_prints_fixed_width_rows(capsys):
    fit(max_iter=4, tol=0.0, verbose=2, verbose_interval=2)
    rows = [line for line in capsys.readouterr().out.splitlines() if "objective" in line]
    assert len(rows) == 3 and all("change" in row and "time" in row for row in rows)


@pytest.mark.parametrize("plain", [None, "none"])
def test_accelerate_none_is_plain_em(plain):
    a = fit(max_iter=50, tol=0.0, accelerate=plain)
    b = fit(max_iter=50, tol=0.0, accelerate="squarem")
    assert a.n_iter == 50 and b.lower_bound > a.lower_bound


def test_squarem_reaches_the_same_optimum_in_fewer_passes():
    # Overlapping components make plain EM slow: the case acceleration is for.
    data = _data(rates=(5.0, 6.5), n=1000)
    plain = fit(data=data, max_iter=20000, tol=1e-9)
    fast = fit(data=data, max_iter=20000, tol=1e-9, accelerate="squarem")
    assert plain.converged and fast.converged
    assert fast.lower_bound >= plain.lower_bound - 1e-9
    assert np.all(np.diff(fast.lower_bounds) >= -1e-12)
    assert fast.n_iter == len(fast.lower_bounds)
    assert fast.n_iter * 3 < plain.n_iter


def test_squarem_falls_back_to_plain_steps_when_extrapolation_fails():
    data = _data(rates=(5.0, 6.5), n=2000)
    plain = fit(data=data, max_iter=300, tol=0.0)
    guarded = fit(StubPoisson(broken_unpack=True), data=data, max_iter=300, tol=0.0,
                  accelerate="squarem")
    assert np.all(np.isfinite(guarded.lower_bounds))
    assert np.all(np.diff(guarded.lower_bounds) >= -1e-12)
    assert np.isfinite(guarded.params.rates).all()
    # every failed extrapolation costs a pass that gains nothing: at least half the plain rate
    assert guarded.lower_bound >= plain.lower_bounds[len(guarded.lower_bounds) // 2 - 1]


@pytest.mark.parametrize(
    "r, v, step_max, expected",
    [
        (np.array([3.0, 4.0]), np.array([1.0, 0.0]), 100.0, -5.0),
        (np.array([3.0, 4.0]), np.array([1.0, 0.0]), 2.0, -2.0),
        (np.array([0.1, 0.0]), np.array([1.0, 0.0]), 100.0, -1.0),
        (np.array([1.0, 0.0]), np.zeros(2), 100.0, -1.0),
    ],
)
def test_squarem_step_length_is_clamped(r, v, step_max, expected):
    assert squarem_step_length(r, v, step_max) == expected

"""The EM engine on a stub model: stopping rules, warnings, verbose output, chunks and SQUAREM."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import poisson

from skem._accel import squarem_step_length
from skem._em import AdditiveStats, RowData, e_pass, run_em


@dataclass(frozen=True)
class Counts(RowData):
    x: np.ndarray = None


@dataclass(frozen=True)
class PoissonStats(AdditiveStats):
    resp_sum: np.ndarray
    x_sum: np.ndarray


@dataclass(frozen=True)
class PoissonParams:
    weights: np.ndarray
    rates: np.ndarray


class PoissonMixture:
    """A 1-D Poisson mixture written directly against the engine's model contract."""

    def __init__(self, stop_after=None, broken_unpack=False, bad_m_step=False):
        self.stop_after = stop_after
        self.broken_unpack = broken_unpack
        self.bad_m_step = bad_m_step
        self.rule_calls = 0

    def _e_step(self, params, chunk):
        log_prob = poisson.logpmf(chunk.x[:, None], params.rates) + np.log(params.weights)
        norm = logsumexp(log_prob, axis=1)
        resp = np.exp(log_prob - norm[:, None]) * chunk.weights[:, None]
        return PoissonStats(resp.sum(axis=0), chunk.x @ resp), float(chunk.weights @ norm)

    def _m_step(self, stats, params):
        rates = stats.x_sum / stats.resp_sum
        if self.bad_m_step:  # deliberately wrong: moves the rates away from the optimum
            rates = rates * 1.5
        return PoissonParams(stats.resp_sum / stats.resp_sum.sum(), rates)

    def _log_prior(self, params):
        return 0.0

    def _params_converged(self, old, new):
        self.rule_calls += 1
        return self.stop_after is not None and self.rule_calls >= self.stop_after

    def _pack(self, params):
        return np.concatenate([np.log(params.weights), np.log(params.rates)])

    def _unpack(self, vector, params):
        if self.broken_unpack:
            return PoissonParams(params.weights, np.full_like(params.rates, np.nan))
        w = np.exp(vector[:2] - vector[:2].max())
        return PoissonParams(w / w.sum(), np.exp(vector[2:]))


def _data(seed=0, n=2000, rates=(4.0, 7.0)):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.4, rng.poisson(rates[0], n), rng.poisson(rates[1], n))
    return Counts(weights=np.ones(n), x=x.astype(float))


START = PoissonParams(np.array([0.5, 0.5]), np.array([2.0, 12.0]))


def test_plain_em_is_monotone_and_counts_its_steps():
    result = run_em(PoissonMixture(), _data(), START, max_iter=500, tol=1e-10)
    assert result.converged
    assert result.n_iter == len(result.lower_bounds) - 1
    assert np.all(np.diff(result.lower_bounds) >= -1e-12)


def test_stops_at_max_iter_without_converging():
    result = run_em(PoissonMixture(), _data(), START, max_iter=3, tol=0.0)
    assert not result.converged and result.n_iter == 3 and len(result.lower_bounds) == 4


def test_tol_is_on_the_change_per_unit_weight():
    data = _data()
    heavy = Counts(weights=data.weights * 1000.0, x=data.x)
    a = run_em(PoissonMixture(), data, START, max_iter=500, tol=1e-6)
    b = run_em(PoissonMixture(), heavy, START, max_iter=500, tol=1e-6)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(a.lower_bounds, b.lower_bounds, rtol=1e-10)


def test_model_stopping_rule_and_min_iter():
    result = run_em(PoissonMixture(stop_after=1), _data(), START, max_iter=500, tol=0.0)
    assert result.converged and result.n_iter == 1  # the rule compares the start and step 1
    later = run_em(PoissonMixture(stop_after=1), _data(), START, max_iter=500, tol=0.0, min_iter=7)
    assert later.converged and later.n_iter == 7


def test_decreasing_objective_warns():
    with pytest.warns(RuntimeWarning, match="decreased"):
        run_em(PoissonMixture(bad_m_step=True), _data(), START, max_iter=5, tol=0.0)


def test_chunks_sum_to_the_whole():
    data, model = _data(n=1001), PoissonMixture()
    whole, objective = e_pass(model, START, data, None)
    chunked, chunked_objective = e_pass(model, START, data, 64)
    np.testing.assert_allclose(chunked.resp_sum, whole.resp_sum, rtol=1e-12)
    np.testing.assert_allclose(chunked.x_sum, whole.x_sum, rtol=1e-12)
    assert chunked_objective == pytest.approx(objective, rel=1e-13)


def test_verbose_prints_fixed_width_rows(capsys):
    run_em(PoissonMixture(), _data(), START, max_iter=4, tol=0.0, verbose=2, verbose_interval=2)
    rows = [line for line in capsys.readouterr().out.splitlines() if "objective" in line]
    assert len(rows) == 3 and all("change" in row and "time" in row for row in rows)


def test_squarem_reaches_the_same_optimum_in_fewer_passes():
    # Overlapping components make plain EM slow: the case acceleration is for.
    data = _data(rates=(5.0, 6.5), n=1000)
    plain = run_em(PoissonMixture(), data, START, max_iter=20000, tol=1e-9)
    fast = run_em(PoissonMixture(), data, START, max_iter=20000, tol=1e-9, accelerate="squarem")
    assert plain.converged and fast.converged
    assert fast.lower_bound >= plain.lower_bound - 1e-9
    assert np.all(np.diff(fast.lower_bounds) >= -1e-12)
    assert fast.n_iter * 3 < plain.n_iter


def test_squarem_falls_back_to_plain_steps_when_extrapolation_fails():
    data = _data(rates=(5.0, 6.5), n=2000)
    plain = run_em(PoissonMixture(), data, START, max_iter=300, tol=0.0)
    guarded = run_em(PoissonMixture(broken_unpack=True), data, START, max_iter=300, tol=0.0,
                     accelerate="squarem")
    assert np.all(np.isfinite(guarded.lower_bounds))
    assert np.all(np.diff(guarded.lower_bounds) >= -1e-12)
    assert np.isfinite(guarded.params.rates).all()
    assert guarded.lower_bound >= plain.lower_bounds[len(guarded.lower_bounds) // 2]


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

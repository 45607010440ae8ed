"""A mixture of independent Poissons, written as a new contributor would add a model.

Test-only (not part of skem's public API): it shows, and the contract tests
check, that a model needs one module with its math -- a frozen
:class:`~skem.engine.MixtureModel` -- and a thin estimator, all from the public
contract :mod:`skem.engine`, and nothing in the engine. It is registered in
``conftest.ESTIMATORS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln
from sklearn.utils.validation import check_non_negative, validate_data

from skem.engine import AdditiveStats, BaseMixture, MixtureModel, RowData, mixing_weights, param

RATE_FLOOR = 1e-10


@dataclass(frozen=True)
class PoissonParams:
    weights: np.ndarray = param("simplex")  # (K,)
    rates: np.ndarray = param("positive", floor=RATE_FLOOR)  # (K, D)


@dataclass(frozen=True)
class PoissonStats(AdditiveStats):
    resp_sum: np.ndarray  # (K,)     sum_i w_i q_ik
    x_sum: np.ndarray  # (K, D)      sum_i w_i q_ik x_id


@dataclass(frozen=True)
class Counts(RowData):
    X: np.ndarray = None


@dataclass(frozen=True, kw_only=True)
class PoissonModel(MixtureModel):
    """``x_id | k ~ Poisson(rates[k, d])``."""

    def prepare(self, X, weights):
        return Counts(weights=weights, X=X)

    def estimate_log_prob(self, params, chunk, work):
        X = chunk.X
        return X @ np.log(params.rates).T - params.rates.sum(axis=1) - gammaln(X + 1).sum(axis=1)[:, None]

    def accumulate(self, params, chunk, weighted_resp, work):
        return PoissonStats(weighted_resp.sum(axis=0), weighted_resp.T @ chunk.X)

    def m_step(self, stats, params):
        weights, occupied = mixing_weights(stats.resp_sum)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = stats.x_sum / stats.resp_sum[:, None]
        # An empty component keeps its rates (at the start, the pooled rates).
        kept = stats.x_sum.sum(axis=0) / stats.resp_sum.sum() if params is None else params.rates
        rates = np.where(occupied[:, None], rates, kept)
        return PoissonParams(weights, np.maximum(rates, RATE_FLOOR))

    def init_features(self, data, rows):
        return np.log1p(data.X[rows])

    def sample_component(self, params, k, n, random_state):
        return random_state.poisson(params.rates[k], size=(n, params.rates.shape[1])).astype(float)

    def n_parameters(self, params):
        K, D = params.rates.shape
        return K - 1 + K * D


class PoissonMixture(BaseMixture):
    """Mixture of independent Poisson distributions (a test-only example estimator).

    Parameters
    ----------
    n_components : int, default=2
        Number of components.
    **em_controls
        ``n_init, init_params, max_iter, tol, accelerate, chunk_size, n_jobs,
        warm_start, random_state, verbose, verbose_interval``, as for
        :class:`skem.NegBinMixture`.
    """

    def __init__(
        self, n_components=2, *, n_init=1, init_params="kmeans", max_iter=100, tol=1e-3,
        accelerate=None, chunk_size=None, n_jobs=None, warm_start=False, random_state=None,
        verbose=0, verbose_interval=10,
    ):
        super().__init__(
            n_init=n_init, init_params=init_params, max_iter=max_iter, tol=tol,
            accelerate=accelerate, chunk_size=chunk_size, n_jobs=n_jobs, warm_start=warm_start,
            random_state=random_state, verbose=verbose, verbose_interval=verbose_interval,
        )
        self.n_components = n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def _validate_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1)
        check_non_negative(X, "PoissonMixture")
        return X

    def _build_model(self, X, sample_weight):
        self._check_n_samples(X)
        return PoissonModel(n_components=self.n_components, init_params=self.init_params)

    def _get_fitted_params(self):
        return PoissonParams(self.weights_, self.rates_)

    def _set_fitted_params(self, params):
        self.weights_, self.rates_ = params.weights, params.rates

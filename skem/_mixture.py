"""Finite mixtures as engine models: the E-step, starts and sampling from per-component hooks.

:class:`MixtureModel` implements :class:`skem._em.EMModel`'s EM and
inference hooks for any finite mixture ``p(x) = sum_k weights_k p(x | k)``.
A concrete mixture (a frozen dataclass) adds four hooks with its own math:

``estimate_log_prob(params, chunk, work) -> ndarray (n, K)``
    ``log p(x_i | component k)``.
``accumulate(params, chunk, weighted_resp, work) -> AdditiveStats``
    Statistics of a chunk given ``w_i q_ik``. ``params`` and ``work`` are
    None for the starting responsibilities.
``init_features(data, rows) -> array (n_rows, d)``
    Euclidean features of the given rows (slice or index array), for k-means starts.
``sample_component(params, k, n, random_state, **row_metadata) -> ndarray (n, n_features)``
    Draw rows from component ``k`` (with the drawn rows' per-row arrays, if the
    estimator declares any).

and the data hooks ``prepare``, ``m_step``, ``n_parameters``. Optionally,
``chunk_work(params, chunk) -> object`` computes per-chunk terms that both
the log-density and the statistics use (default: None); the E-step computes
it once and hands it to both, so no model needs its own ``e_step``.

Its parameters are a frozen dataclass with a ``weights`` field (the mixing
proportions, shape (K,)); fields declared with :func:`skem._params.param`
give SQUAREM its coordinates. The M-step's mixing proportions, with the
floor that keeps an empty component alive, are :func:`mixing_weights`.
The first M-step, from the starting responsibilities, is
:meth:`MixtureModel.initial_m_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import pairwise_distances_argmin

from ._em import EMModel, chunk_rows

__all__ = [
    "EMPTY_WEIGHT", "INIT_SAMPLE", "MixtureModel", "init_sample", "mixing_weights", "normalize_log_prob",
]

#: k-means initialization clusters at most this many rows, then assigns all rows.
INIT_SAMPLE = 10_000

#: A component whose responsibilities sum to at most this fraction of the total weight is
#: empty: it keeps this mixing proportion (not 0, so it may regain rows) and its other
#: parameters are not re-estimated.
EMPTY_WEIGHT = 1e-10


def mixing_weights(resp_sum):
    """The M-step's mixing proportions from the summed responsibilities, and which components hold rows.

    Parameters
    ----------
    resp_sum : ndarray of shape (K,)
        ``sum_i w_i q_ik``.

    Returns
    -------
    weights : ndarray of shape (K,)
        Proportional to ``resp_sum``, each at least :data:`EMPTY_WEIGHT` of the total
        (then renormalized), summing to 1.
    occupied : ndarray of bool, shape (K,)
        Components with more than :data:`EMPTY_WEIGHT` of the total: their other
        parameters can be estimated from their rows.
    """
    total = resp_sum.sum()
    weights = np.maximum(resp_sum, EMPTY_WEIGHT * total)
    return weights / weights.sum(), resp_sum > EMPTY_WEIGHT * total


@dataclass(frozen=True, kw_only=True)
class MixtureModel(EMModel):
    """A finite mixture with ``n_components`` components, started by ``init_params``.

    Parameters
    ----------
    n_components : int
        Number of components K.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
        How the starting responsibilities are chosen (see :meth:`initial_resp`).
    """

    n_components: int
    init_params: str = "kmeans"

    # ------------------------------------------------------------ the E-step

    def chunk_work(self, params, chunk):
        """Per-chunk terms shared by :meth:`estimate_log_prob` and :meth:`accumulate` (default: none)."""
        return None

    def weighted_log_prob(self, params, chunk, work=None):
        """``log weights_k + log p(x_i | k)``, shape (n, K)."""
        if work is None:
            work = self.chunk_work(params, chunk)
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        return self.estimate_log_prob(params, chunk, work) + log_weights

    def e_step(self, params, chunk):
        fused = self.fused_e_step(params, chunk)
        if fused is not None:
            return fused
        work = self.chunk_work(params, chunk)
        resp, log_norm = normalize_log_prob(self.weighted_log_prob(params, chunk, work), axis=1)
        resp *= chunk.weights[:, None]
        return self.accumulate(params, chunk, resp, work), float(chunk.weights @ log_norm)

    def fused_e_step(self, params, chunk):
        """The whole E-step of ``chunk`` in one pass, or None (the default) for the template's.

        A model may compute the statistics and the objective in one compiled
        pass over the chunk (a kernel that keeps no (n, K) array). It must
        return what the template returns from :meth:`weighted_log_prob` and
        :meth:`accumulate`, to rounding; the template is its reference in the tests.
        """
        return None

    def score_samples(self, params, chunk):
        return normalize_log_prob(self.weighted_log_prob(params, chunk), axis=1)[1]

    def predict_proba(self, params, chunk):
        return normalize_log_prob(self.weighted_log_prob(params, chunk), axis=1)[0]

    def work_per_row(self, data):
        return 4 * self.n_components

    # ------------------------------------------------------------- starts

    @property
    def n_outputs(self):
        return self.n_components

    def initialize(self, data, random_state, controls):
        resp = self.initial_resp(data, random_state, controls.chunk_size)
        return self.params_from_resp(data, resp, controls.chunk_size)

    def params_from_resp(self, data, resp, chunk_size):
        """Starting parameters from responsibilities ``resp`` (n, K) of all rows (overwritten).

        The rows' weights multiply ``resp`` here; the first M-step is
        :meth:`initial_m_step`.
        """
        resp *= data.weights[:, None]
        # Chunk by chunk, as in an E-step: the statistics of all rows at once would take the
        # work arrays of all rows.
        step = chunk_rows(data, self, chunk_size)
        stats = None
        for start, chunk in zip(range(0, data.n_rows, step), data.chunks(step)):
            chunk_stats = self.accumulate(None, chunk, resp[start : start + step], None)
            stats = chunk_stats if stats is None else stats + chunk_stats
        return self.initial_m_step(stats)

    def initial_m_step(self, stats):
        """Parameters from the statistics of the starting responsibilities.

        The default is ``m_step(stats, None)``: an M-step with no current
        parameters to keep or to warm-start from.
        """
        return self.m_step(stats, None)

    def initial_resp(self, data, random_state, chunk_size):
        """Responsibilities ``(n, K)`` that start EM, by ``init_params``; weight-aware.

        k-means runs on at most :data:`INIT_SAMPLE` rows (drawn uniformly,
        keeping their weights); then every row goes to its nearest center,
        chunk by chunk, so the start costs little memory. With fewer distinct
        rows than components, k-means and a draw of K rows cannot start, and
        random responsibilities are used instead.
        """
        n, K = data.n_rows, self.n_components
        weights = data.weights
        if self.init_params == "random" or n < K:
            resp = random_state.uniform(size=(n, K))
            return resp / resp.sum(axis=1, keepdims=True)
        resp = np.zeros((n, K))
        if self.init_params == "random_from_data":
            chosen = random_state.choice(n, size=K, replace=False, p=weights / weights.sum())
            resp[chosen, np.arange(K)] = 1.0
            return resp
        sample = init_sample(n, random_state)
        features = self.init_features(data, sample)
        if self.init_params == "k-means++":
            centers, _ = kmeans_plusplus(
                features, K, sample_weight=weights[sample], random_state=random_state
            )
        else:
            kmeans = KMeans(n_clusters=K, n_init=3, random_state=random_state)
            centers = kmeans.fit(features, sample_weight=weights[sample]).cluster_centers_
        step = chunk_rows(data, self, chunk_size)
        labels = np.concatenate([
            pairwise_distances_argmin(self.init_features(data, slice(start, start + step)), centers)
            for start in range(0, n, step)
        ])
        resp[np.arange(n), labels] = 1.0
        return resp

    # ------------------------------------------------------------ sampling

    def sample(self, params, n_samples, random_state, **row_metadata):
        """``n_samples`` rows drawn from the mixture, grouped by component, and their components.

        ``row_metadata`` are per-row arrays of shape (n_samples,) for the drawn rows, in
        the order returned; each component's slice goes to its ``sample_component``.
        """
        counts = random_state.multinomial(n_samples, params.weights)
        ends = np.cumsum(counts)
        X = np.concatenate([
            self.sample_component(
                params, k, n_k, random_state,
                **{name: values[end - n_k : end] for name, values in row_metadata.items()},
            )
            for k, (n_k, end) in enumerate(zip(counts, ends))
        ])
        return X, np.repeat(np.arange(len(counts)), counts)


def init_sample(n_rows, random_state):
    """Indices (sorted) of the rows a start clusters: all, or :data:`INIT_SAMPLE` drawn uniformly.

    Drawn uniformly over rows, not by weight: each drawn row keeps its weight,
    so the sample's weighted statistics estimate the data's.
    """
    if n_rows <= INIT_SAMPLE:
        return np.arange(n_rows)
    return np.sort(random_state.choice(n_rows, size=INIT_SAMPLE, replace=False))


def normalize_log_prob(log_prob, axis):
    """Posterior probabilities and log-sum-exp of ``log_prob`` along ``axis``, in place.

    One exponential serves both results (``scipy.special.logsumexp`` followed by
    another ``exp`` would take two), which matters when the E-step is otherwise
    a single matrix product.

    Parameters
    ----------
    log_prob : ndarray
        Log joint probabilities; overwritten by the probabilities.
    axis : int
        The component axis.

    Returns
    -------
    prob : ndarray
        ``exp(log_prob - log_norm)``, summing to 1 along ``axis`` (``log_prob``'s memory).
    log_norm : ndarray
        ``log sum exp(log_prob)`` along ``axis``.
    """
    top = log_prob.max(axis=axis, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    prob = np.exp(np.subtract(log_prob, top, out=log_prob), out=log_prob)
    total = prob.sum(axis=axis, keepdims=True)
    prob /= total
    return prob, np.squeeze(np.log(total) + top, axis=axis)

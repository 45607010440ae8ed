"""Mixture of negative binomials for clustering count data.

Only this model's math lives here; the EM loop, restarts, chunking and the
scikit-learn API come from :mod:`skem._base` and :mod:`skem._em`.

Numerics. In the parametrization used throughout (mean ``mu``, dispersion
``phi``, variance ``mu + phi mu**2``, size ``r = 1/phi``) the log-pmf is ::

    log NB(x; mu, phi) = B(x, phi) - log x! + x [log mu - log1p(phi mu)] - log1p(phi mu) / phi
    B(x, phi)          = lgamma(x + 1/phi) - lgamma(1/phi) + x log phi

``B(0, phi) = 0`` and ``B(x, 0) = 0`` (the Poisson limit, where the last term
becomes ``-mu``). So a row costs one matrix product for the linear term, a
per-component constant, and ``B`` at its *non-zero* entries only. ``B``
depends on an entry only through its (feature, value) pair, so it is tabulated
once per distinct pair (counts repeat a lot) and gathered through a sparse
indicator matrix: sparse input costs O(nnz K) per iteration and is never
densified.

The dispersion has no finite sufficient statistic, but its M-step needs the
data only through the weighted histogram of the distinct (feature, value)
pairs per component -- additive over chunks like every other statistic. The
M-step is exact: the mean's MLE is the weighted mean whatever the dispersion,
and the dispersion then solves a one-dimensional concave-in-practice problem
per tied group by safeguarded Newton on ``log(1/phi)``, keeping the previous
value whenever the new one does not increase the expected log-likelihood (so
EM stays monotone).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma, gammaln, polygamma
from sklearn.utils.validation import check_array, check_non_negative, validate_data

from ._base import BaseMixture
from ._compat import Interval, StrOptions
from ._em import AdditiveStats, RowData
from ._mixture import MixtureModel
from ._rows import _row_sums

__all__ = ["NegBinMixture", "NegBinModel"]

#: Means are kept at or above this, so that no count has probability exactly zero.
MEAN_FLOOR = 1e-8
#: The dispersion solver searches phi in [PHI_MIN, PHI_MAX]; beyond PHI_MIN it returns 0 (Poisson).
PHI_MIN, PHI_MAX = 1e-8, 1e6
#: The dispersion M-step keeps the previous value if the new one is worse by more than this (relative).
SAFEGUARD_RTOL = 1e-12
#: Below this dispersion, B(x, phi) for small integer x is summed exactly to avoid cancellation.
PHI_SMALL, X_SMALL = 1e-3, 64

_TIED_AXES = {"shared": (0, 1), "component": (1,), "feature": (0,), "full": ()}


@dataclass(frozen=True)
class NegBinParams:
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    dispersion: np.ndarray  # (K, D), phi >= 0


@dataclass(frozen=True)
class NegBinStats(AdditiveStats):
    resp_sum: np.ndarray  # (K,)      sum_i w_i q_ik
    x_sum: np.ndarray  # (K, D)       sum_i w_i q_ik x_id
    value_hist: np.ndarray | float  # (K, U) sum_i w_i q_ik #{d: x_id is pair u}, 0.0 if phi is fixed
    pairs: PairTable  # shared, not summed
    _shared = ("pairs",)


@dataclass(frozen=True)
class PairTable:
    """The distinct (feature, value) pairs that the entries of the count matrix point to.

    Pair ``u`` has value ``values[u]`` and feature ``feature[u]``. The last pair
    has value 0 and takes the zero entries of dense input; it contributes
    nothing to any sum (``B(0, phi) = 0``). When ``offsets`` is not None the
    table is *consecutive*: the pairs of feature ``d`` are the values
    ``1 .. max_d`` at positions ``offsets[d]:offsets[d + 1]``. Sums over a
    row's values then become cumulative sums (the count-survival identity
    ``sum_x H(x) [psi(x + r) - psi(r)] = sum_j #{x > j} / (r + j)``), exact
    and free of digamma and lgamma.
    """

    values: np.ndarray
    feature: np.ndarray
    n_features: int
    offsets: np.ndarray | None = None

    @property
    def size(self):
        return self.values.size

    @cached_property
    def _to_features(self):
        return sp.csr_matrix(
            (np.ones(self.size), (np.arange(self.size), self.feature)),
            shape=(self.size, self.n_features),
        )

    def per_feature(self, table):
        """Sum a (K, U) table over the pairs of each feature: (K, D)."""
        return np.asarray((self._to_features.T @ table.T).T)

    @cached_property
    def _steps(self):
        """For a consecutive table: ``j = value - 1`` of each pair, and block bounds."""
        nonzero = self.values > 0
        start = np.where(nonzero, self.offsets[self.feature], 0)
        stop = np.where(nonzero, self.offsets[self.feature + 1], 0)
        return np.where(nonzero, self.values - 1.0, 0.0), start, stop, nonzero

    def rising(self, phi):
        """``B(value_u, phi[k, feature_u])``, shape (K, U)."""
        if self.offsets is None:
            return log_rising_ratio(self.values, phi[:, self.feature])
        j, start, _, nonzero = self._steps
        increments = np.log1p(j * phi[:, self.feature]) * nonzero
        cumulative = np.concatenate([np.zeros((phi.shape[0], 1)), np.cumsum(increments, axis=1)], axis=1)
        # B(v) = sum_{j < v} log1p(j phi): the cumulative sum within the feature's block.
        return (cumulative[:, 1:] - cumulative[:, start]) * nonzero

    def dispersion_weights(self, hist):
        """Per-pair weights that the dispersion sums use: the survival ``#{x >= value}``
        for a consecutive table, the histogram itself otherwise."""
        if self.offsets is None:
            return hist
        _, _, stop, nonzero = self._steps
        cumulative = np.concatenate([np.zeros((hist.shape[0], 1)), np.cumsum(hist, axis=1)], axis=1)
        return (cumulative[:, stop] - cumulative[:, :-1]) * nonzero

    def slope_terms(self, weights):
        """Per-pair terms of ``sum_x H(x) x (x - 1) / 2``."""
        if self.offsets is None:
            return weights * self.values * (self.values - 1.0) / 2.0
        return weights * self._steps[0]

    def score_terms(self, weights, r):
        """Per-pair terms of the first and second derivatives in the size ``r`` (K, U)."""
        if self.offsets is None:
            x = self.values
            return (
                weights * (digamma(x + r) - digamma(r)),
                weights * (polygamma(1, x + r) - polygamma(1, r)),
            )
        shifted = r + self._steps[0]
        return weights / shifted, -weights / shifted**2

    def loglik_terms(self, weights, phi_pairs):
        """Per-pair terms of ``sum_x H(x) B(x, phi)``."""
        if self.offsets is None:
            return weights * log_rising_ratio(self.values, phi_pairs)
        return weights * np.log1p(self._steps[0] * phi_pairs)


@dataclass(frozen=True)
class NegBinData(RowData):
    """Counts, and for each entry the index of its (feature, value) pair.

    ``value_index`` has the layout of ``X``: a dense int32 array of the same
    shape, or a CSR matrix sharing ``X``'s index arrays whose data are int32
    pair indices into ``pairs``.
    """

    X: np.ndarray | sp.csr_matrix = None
    value_index: np.ndarray | sp.csr_matrix = None
    log_factorial: np.ndarray = None  # (n,) sum_d log x_id!
    pairs: PairTable = None
    _shared = ("pairs",)

    @property
    def entry_pairs(self):
        """0/1 matrix (n, U): row i has a 1 at the pair of each of its entries."""
        index = self.value_index
        if sp.issparse(index):
            indices, indptr = index.data, index.indptr
        else:
            indices = index.ravel()
            indptr = np.arange(0, indices.size + 1, max(index.shape[1], 1))
        return sp.csr_matrix(
            (np.ones(indices.size), indices, indptr), shape=(self.n_rows, self.pairs.size)
        )


#: Entries processed at a time while indexing, to bound temporary memory.
_INDEX_BLOCK = 2**20


def _direct_table_pays(column_max, n_entries):
    """Whether a table of all values 1..max per feature is small enough to address directly."""
    return column_max.sum() <= max(2 * n_entries, 10**6)


def _entries(X):
    """The entries of ``X`` (the stored ones if sparse), and the features of a slice of them."""
    if sp.issparse(X):
        return X.data, lambda block: X.indices[block]
    entries = X.reshape(-1)
    n_features = X.shape[1]
    # Entry e of dense X belongs to feature e % n_features.
    return entries, lambda block: np.arange(block.start, min(block.stop, entries.size)) % n_features


def _entry_blocks(n_entries):
    return [slice(start, start + _INDEX_BLOCK) for start in range(0, n_entries, _INDEX_BLOCK)]


def _entry_summary(X):
    """What the choice of pair table needs from ``X``: per-feature maxima, whether
    all entries are integers, and the number of entries. Maxima and counts
    combine over blocks of rows (max, all, sum), so dask input is summarized
    block by block."""
    entries, _ = _entries(X)
    column_max = X.max(axis=0).toarray().ravel() if sp.issparse(X) else X.max(axis=0, initial=0.0)
    integer = all(np.all(np.mod(entries[block], 1.0) == 0) for block in _entry_blocks(entries.size))
    return column_max, integer, entries.size


def _direct_table(column_max):
    """The consecutive table: values ``1 .. column_max[d]`` of each feature, then the zero pair."""
    counts = column_max.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    values = np.concatenate([np.arange(1, c + 1, dtype=float) for c in counts] + [[0.0]])
    value_feature = np.concatenate([np.repeat(np.arange(counts.size), counts), [0]])
    return PairTable(values, value_feature.astype(np.intp), counts.size, offsets)


def _distinct_pairs(X):
    """Sorted distinct (feature, value) pairs of the entries of ``X``, and each entry's pair."""
    entries, features_of = _entries(X)
    all_features = features_of(slice(0, entries.size))
    order = np.lexsort((entries, all_features))
    sorted_features, sorted_values = all_features[order], entries[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (sorted_features[1:] != sorted_features[:-1]) | (
        sorted_values[1:] != sorted_values[:-1]
    )
    index = np.empty(order.size, dtype=np.int32)
    index[order] = np.cumsum(new) - 1
    return sorted_features[new], sorted_values[new], index


def _sorted_table(features, values, n_features):
    """The general table: the distinct pairs among the given ones, sorted by feature then value."""
    order = np.lexsort((values, features))
    features, values = features[order], values[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (features[1:] != features[:-1]) | (values[1:] != values[:-1])
    return PairTable(values[new], features[new].astype(np.intp), n_features)


def _index_against(X, pairs):
    """Index each entry of ``X`` into a table built beforehand (from all blocks of dask input)."""
    entries, features_of = _entries(X)
    index = np.empty(entries.size, dtype=np.int32)
    if pairs.offsets is not None and not sp.issparse(X):
        # Dense rows, a few at a time: the offsets broadcast along the rows.
        zero_pair, starts = pairs.size - 1, pairs.offsets[:-1] - 1
        rows = index.reshape(X.shape)
        step = max(1, _INDEX_BLOCK // max(X.shape[1], 1))
        for start in range(0, X.shape[0], step):
            x = X[start : start + step]
            rows[start : start + step] = np.where(x > 0, starts + x.astype(np.int64), zero_pair)
    elif pairs.offsets is not None:
        zero_pair = pairs.size - 1
        for block in _entry_blocks(entries.size):
            x = entries[block]
            index[block] = np.where(
                x > 0, pairs.offsets[features_of(block)] + x.astype(np.int64) - 1, zero_pair
            )
    else:
        # Pairs are sorted by (feature, value): rank values among all distinct values, so that
        # (feature, rank) becomes one sortable integer key per pair and per entry.
        distinct_values = np.unique(pairs.values)
        keys = pairs.feature * distinct_values.size + np.searchsorted(distinct_values, pairs.values)
        for block in _entry_blocks(entries.size):
            entry_keys = features_of(block) * distinct_values.size + np.searchsorted(
                distinct_values, entries[block]
            )
            index[block] = np.searchsorted(keys, entry_keys)
    return _index_like(X, index)


def _index_like(X, index):
    """Pair indices laid out like ``X``: a CSR matrix sharing its index arrays, or a dense array."""
    if sp.issparse(X):
        return sp.csr_matrix((index, X.indices, X.indptr), shape=X.shape, copy=False)
    return index.reshape(X.shape)


def _index_entries(X):
    """Index each entry of ``X`` into a :class:`PairTable` built from ``X``.

    Integer counts are addressed directly -- pair ``offset[d] + x - 1`` for
    value ``x >= 1`` of feature ``d`` -- which needs no sorting and one int32 per
    entry, computed block by block so temporaries stay small. When that table
    would be much larger than the number of entries (very large or
    non-integer values) the distinct pairs are found by sorting.

    Returns
    -------
    value_index, log_factorial, pairs
        See :class:`NegBinData`.
    """
    column_max, integer, n_entries = _entry_summary(X)
    if integer and _direct_table_pays(column_max, n_entries):
        pairs = _direct_table(column_max)
        value_index = _index_against(X, pairs)
    else:
        features, values, index = _distinct_pairs(X)
        pairs = PairTable(values, features.astype(np.intp), X.shape[1])
        value_index = _index_like(X, index)
    return value_index, _log_factorial(value_index, pairs), pairs


def _log_factorial(value_index, pairs):
    """``sum_d log x_id!`` of each row, gathered from the pair table.

    Dense rows are gathered a few at a time, so that the temporaries stay
    small next to the data (they are made for every dask block in every pass).
    """
    table = gammaln(pairs.values + 1.0)
    if sp.issparse(value_index):
        return _row_sums(table[value_index.data], value_index.indptr)
    n_rows, n_features = value_index.shape
    step = max(1, _INDEX_BLOCK // max(n_features, 1))
    return np.concatenate(
        [table[value_index[start : start + step]].sum(axis=1) for start in range(0, n_rows, step)]
    )


def _block_pairs(model, X, weights):
    """Distinct (feature, value) pairs of one dask block."""
    features, values, _ = _distinct_pairs(model.check_block(X))
    return features, values


def log_rising_ratio(x, phi):
    """``B(x, phi) = lgamma(x + 1/phi) - lgamma(1/phi) + x log(phi)``, with ``B(x, 0) = 0``.

    Parameters
    ----------
    x : ndarray
        Non-negative values.
    phi : ndarray
        Dispersions >= 0, broadcastable with ``x``.

    Returns
    -------
    ndarray
        For small ``phi`` and small integer ``x`` it is computed as
        ``sum_{j < x} log1p(j phi)``, which has no cancellation.
    """
    x, phi = np.broadcast_arrays(np.asarray(x, float), np.asarray(phi, float))
    out = np.zeros(x.shape)
    positive = phi > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 / phi[positive]
        out[positive] = gammaln(x[positive] + r) - gammaln(r) + x[positive] * np.log(phi[positive])
    exact = positive & (phi < PHI_SMALL) & (x <= X_SMALL) & (x == np.round(x))
    if exact.any():
        xs, ps = x[exact], phi[exact]
        total = np.zeros(xs.shape)
        for j in range(1, int(xs.max())):
            total += np.where(xs > j, np.log1p(j * ps), 0.0)
        out[exact] = total
    return out


def negbin_log_pmf(x, mean, dispersion):
    """Log-pmf of the negative binomial with variance ``mean + dispersion * mean**2``.

    Parameters
    ----------
    x, mean, dispersion : array-like, broadcastable
        Non-negative counts, positive means, dispersions >= 0 (0 is Poisson).

    Returns
    -------
    ndarray
        ``log NB(x; mean, dispersion)`` (equal to ``scipy.stats.nbinom.logpmf``
        with ``n = 1/dispersion, p = n / (n + mean)``).
    """
    x, mean, phi = np.broadcast_arrays(*(np.asarray(a, float) for a in (x, mean, dispersion)))
    log1p_phi_mu = np.log1p(phi * mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero_term = np.where(phi > 0, -log1p_phi_mu / np.where(phi > 0, phi, 1.0), -mean)
    return (
        log_rising_ratio(x, phi)
        - gammaln(x + 1.0)
        + x * (np.log(mean) - log1p_phi_mu)
        + zero_term
    )


@dataclass(frozen=True, kw_only=True)
class NegBinModel(MixtureModel):
    """The negative-binomial mixture's math, for the engine (see :class:`NegBinMixture`).

    Parameters
    ----------
    n_components, init_params
        See :class:`~skem._mixture.MixtureModel`.
    n_features : int
        Columns of the count matrix.
    dispersion : float or {"shared", "component", "feature", "full"}
        A known dispersion, or how estimated dispersions are tied.
    means_init : ndarray of shape (K, D) or None
        Starting means (validated), overriding ``init_params``.
    weights_init : ndarray of shape (K,) or None
        Starting mixing proportions (validated).
    """

    n_features: int
    dispersion: float | str = "shared"
    means_init: np.ndarray | None = None
    weights_init: np.ndarray | None = None

    fits_dask = True

    @property
    def estimates_dispersion(self):
        return isinstance(self.dispersion, str)

    # ---------------------------------------------------------------- data

    def prepare(self, X, weights):
        value_index, log_factorial, pairs = _index_entries(X)
        return NegBinData(
            weights=weights, X=X, value_index=value_index, log_factorial=log_factorial, pairs=pairs
        )

    def work_per_row(self, data):
        entries_per_row = data.X.nnz / max(data.n_rows, 1) if sp.issparse(data.X) else data.X.shape[1]
        return int(4 * self.n_components + 3 * entries_per_row)

    # Dask blocks share one pair table, built from all blocks in the first pass.

    def check_block(self, X):
        X = check_array(X, accept_sparse="csr", dtype=np.float64, ensure_min_samples=0)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model is expecting {self.n_features}."
            )
        return _check_counts(X)

    def summarize_block(self, X):
        return _entry_summary(self.check_block(X))

    def dask_layout(self, summaries, map_blocks):
        column_max = np.max([summary[0] for summary in summaries], axis=0)
        n_entries = sum(summary[2] for summary in summaries)
        if all(summary[1] for summary in summaries) and _direct_table_pays(column_max, n_entries):
            return _direct_table(column_max)
        # The general table needs the distinct pairs of all blocks: a second pass.
        pairs = map_blocks(partial(_block_pairs, self))
        return _sorted_table(
            np.concatenate([features for features, _ in pairs]),
            np.concatenate([values for _, values in pairs]),
            self.n_features,
        )

    def prepare_block(self, X, weights, pairs):
        X = self.check_block(X)
        value_index = _index_against(X, pairs)
        return NegBinData(
            weights=weights, X=X, value_index=value_index,
            log_factorial=_log_factorial(value_index, pairs), pairs=pairs,
        )

    # -------------------------------------------------------------- kernels

    def estimate_log_prob(self, params, chunk):
        phi, mu = params.dispersion, params.means
        log1p_phi_mu = np.log1p(phi * mu)
        with np.errstate(divide="ignore"):
            linear = chunk.X @ (np.log(mu) - log1p_phi_mu).T
        zero_term = np.where(phi > 0, -log1p_phi_mu / np.where(phi > 0, phi, 1.0), -mu).sum(axis=1)
        log_prob = np.asarray(linear) + zero_term - chunk.log_factorial[:, None]
        if np.any(phi > 0):
            # sum_d B(x_id, phi_kd) over the entries of each row, shape (n, K)
            log_prob += np.asarray(chunk.entry_pairs @ chunk.pairs.rising(phi).T)
        return log_prob

    def accumulate(self, params, chunk, weighted_resp):
        x_sum = np.asarray(chunk.X.T @ weighted_resp).T
        value_hist = (
            np.asarray(chunk.entry_pairs.T @ weighted_resp).T
            if self.estimates_dispersion
            else 0.0
        )
        return NegBinStats(weighted_resp.sum(axis=0), x_sum, value_hist, chunk.pairs)

    def m_step(self, stats, params):
        resp_sum = stats.resp_sum
        total = resp_sum.sum()
        # An empty component keeps a tiny weight, its previous means and dispersions.
        weights = np.maximum(resp_sum, 1e-10 * total)
        weights = weights / weights.sum()
        occupied = resp_sum > 1e-10 * total
        with np.errstate(divide="ignore", invalid="ignore"):
            means = stats.x_sum / resp_sum[:, None]
        if params is not None:
            means = np.where(occupied[:, None], means, params.means)
        else:
            pooled = stats.x_sum.sum(axis=0) / total
            means = np.where(occupied[:, None], means, pooled)
        means = np.maximum(means, MEAN_FLOOR)

        if not self.estimates_dispersion:
            dispersion = np.full(means.shape, float(self.dispersion))
        else:
            dispersion = _solve_dispersion(
                stats, means, _TIED_AXES[self.dispersion],
                None if params is None else params.dispersion,
            )
        return NegBinParams(weights, means, dispersion)

    # -------------------------------------------------------- initialization

    def initialize(self, data, random_state, controls):
        if self.means_init is None:
            params = super().initialize(data, random_state, controls)
        else:
            K, D = self.n_components, self.n_features
            phi = 0.1 if self.estimates_dispersion else float(self.dispersion)
            params = NegBinParams(
                np.full(K, 1.0 / K), np.maximum(self.means_init, MEAN_FLOOR), np.full((K, D), phi)
            )
        if self.weights_init is not None:
            params = NegBinParams(self.weights_init, params.means, params.dispersion)
        return params

    def init_features(self, data, rows):
        X = data.X[rows]
        if sp.issparse(X):  # a fresh copy: transform its stored values in place
            np.log1p(X.data, out=X.data)
            return X
        return np.log1p(X)

    # ------------------------------------------------------ model selection

    def n_parameters(self, params):
        K, D = params.means.shape
        n_dispersion = (
            {"shared": 1, "component": K, "feature": D, "full": K * D}[self.dispersion]
            if self.estimates_dispersion
            else 0
        )
        return (K - 1) + K * D + n_dispersion

    def sample_component(self, params, k, n, random_state):
        mu, phi = params.means[k], params.dispersion[k]
        poisson = random_state.poisson(mu, size=(n, mu.size))
        with np.errstate(divide="ignore"):
            size = np.where(phi > 0, 1.0 / np.where(phi > 0, phi, 1.0), 1.0)
        negbin = random_state.negative_binomial(size, size / (size + mu), size=(n, mu.size))
        return np.where(phi > 0, negbin, poisson).astype(float)

    # ------------------------------------------------------------ SQUAREM

    def pack(self, params):
        return np.concatenate(
            [np.log(params.weights), np.log(params.means).ravel(),
             np.log(params.dispersion + PHI_MIN).ravel()]
        )

    def unpack(self, vector, params):
        K, D = params.means.shape
        log_weights = vector[:K]
        weights = np.exp(log_weights - log_weights.max())
        means = np.maximum(np.exp(vector[K : K + K * D]).reshape(K, D), MEAN_FLOOR)
        if self.estimates_dispersion:
            dispersion = np.clip(np.exp(vector[K + K * D :]).reshape(K, D) - PHI_MIN, 0, PHI_MAX)
        else:
            dispersion = params.dispersion
        return NegBinParams(weights / weights.sum(), means, dispersion)


def _check_counts(X):
    check_non_negative(X, "NegBinMixture (counts must be >= 0)")
    return X


class NegBinMixture(BaseMixture):
    """Mixture of negative binomial distributions for clustering count data.

    Each row is drawn from one of ``n_components`` groups; within group
    ``k`` the features are independent negative binomials with means
    ``means_[k]`` and dispersions ``dispersion_[k]`` (variance
    ``mu + phi * mu**2``; ``phi = 0`` is Poisson). Parameters are fitted by
    maximum likelihood with EM.

    Parameters
    ----------
    n_components : int, default=2
        Number of mixture components.
    dispersion : float >= 0 or {"shared", "component", "feature", "full"}, default="shared"
        A number is a known, fixed dispersion ``phi`` for every component and
        feature (0 gives a Poisson mixture). A string estimates ``phi`` by
        maximum likelihood, tied across all components and features
        ("shared"), per component ("component"), per feature ("feature"), or
        free for each component and feature ("full").
    n_init : int, default=1
        Number of EM runs from different starts; the best final
        log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the starting responsibilities are chosen: k-means clustering of
        ``log1p(X)``; k-means++ seeding on ``log1p(X)``; random
        responsibilities; or randomly chosen rows as the component means.
        All respect ``sample_weight``.
    means_init : array-like of shape (n_components, n_features), default=None
        Starting means; overrides ``init_params``.
    weights_init : array-like of shape (n_components,), default=None
        Starting mixing proportions (uniform when ``means_init`` is given without them).
    max_iter : int, default=100
        Maximum number of EM iterations per run.
    tol : float, default=1e-3
        Stop when the mean log-likelihood per (weighted) row changes by less than this.
    accelerate : {"squarem"} or None, default=None
        Plain EM, or SQUAREM extrapolation (fewer iterations on slowly converging data).
    chunk_size : int, default=None
        Rows per E-step chunk; None sizes chunks to about 32 MiB of work
        arrays. The fit does not depend on it.
    n_jobs : int, default=None
        Runs the ``n_init`` starts in parallel through joblib; results are
        identical to a serial fit.
    warm_start : bool, default=False
        Start from the previous fit's parameters (ignoring ``n_init``).
    random_state : int, RandomState instance or None, default=None
        Seeds the starts and :meth:`sample`.
    verbose : int, default=0
        1 prints a line per run, 2 also the objective every ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between two printed lines.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing proportions.
    means_ : ndarray of shape (n_components, n_features)
        Component means (at least 1e-8, so no count is impossible).
    dispersion_ : ndarray of shape (n_components, n_features)
        Dispersions ``phi`` (0 where the data are not over-dispersed).
    converged_ : bool
        Whether the best run met the stopping rule.
    n_iter_ : int
        EM iterations of the best run.
    lower_bound_ : float
        Mean log-likelihood per row of the training data at the fitted parameters.
    lower_bounds_ : ndarray of shape (`n_iter_`,)
        The same after each iteration of the best run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names, when ``X`` was a DataFrame with string column names.

    See Also
    --------
    sklearn.mixture.GaussianMixture : The Gaussian analogue.

    Notes
    -----
    The model is ``G_i ~ Categorical(weights)``,
    ``x_id | G_i = k ~ NB(mean = mu_kd, variance = mu_kd + phi_kd mu_kd**2)``.
    EM updates: ``q_ik ∝ weights_k prod_d NB(x_id; mu_kd, phi_kd)``;
    ``weights_k = sum_i w_i q_ik / sum_i w_i``;
    ``mu_kd = sum_i w_i q_ik x_id / sum_i w_i q_ik`` (the MLE for any ``phi``);
    ``phi`` maximizes the expected complete log-likelihood within its tied
    group (Newton's method with digamma and trigamma). The log-likelihood
    includes ``-log x!``, so it is comparable with other software.

    Counts are expected to be non-negative integers. Non-negative non-integer
    values are accepted and scored with the same formula (``lgamma`` in
    place of factorials), as for size-normalized counts; the result is then
    not a normalized probability.

    Identical rows are fitted once with their summed weight, which changes
    nothing but the speed. A component that loses all its rows keeps its
    means and dispersions, with a mixing proportion near zero (1e-10 of the
    total weight), and may regain rows in later iterations.

    Examples
    --------
    >>> import numpy as np
    >>> from skem import NegBinMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.poisson(2, (200, 3)), rng.poisson(40, (100, 3))])
    >>> model = NegBinMixture(n_components=2, random_state=0).fit(X)
    >>> np.round(np.sort(model.means_[:, 0]))
    array([ 2., 40.])
    """

    _parameter_constraints: dict = {
        **BaseMixture._parameter_constraints,
        "dispersion": [
            Interval(Real, 0.0, None, closed="left"),
            StrOptions(set(_TIED_AXES)),
        ],
        "means_init": ["array-like", None],
        "weights_init": ["array-like", None],
    }

    def __init__(
        self,
        n_components=2,
        *,
        dispersion="shared",
        n_init=1,
        init_params="kmeans",
        means_init=None,
        weights_init=None,
        max_iter=100,
        tol=1e-3,
        accelerate=None,
        chunk_size=None,
        n_jobs=None,
        warm_start=False,
        random_state=None,
        verbose=0,
        verbose_interval=10,
    ):
        super().__init__(
            n_init=n_init,
            init_params=init_params,
            max_iter=max_iter,
            tol=tol,
            accelerate=accelerate,
            chunk_size=chunk_size,
            n_jobs=n_jobs,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.n_components = n_components
        self.dispersion = dispersion
        self.means_init = means_init
        self.weights_init = weights_init

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        return tags

    def _validate_X(self, X, reset):
        X = validate_data(
            self, X, reset=reset, accept_sparse="csr", dtype=np.float64, ensure_min_samples=1
        )
        return _check_counts(X)

    def _build_model(self, X):
        self._check_n_samples(X)
        K, D = self.n_components, X.shape[1]
        means = weights = None
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=float)
            if means.shape != (K, D):
                raise ValueError(
                    f"means_init must have shape (n_components, n_features) = ({K}, {D}), "
                    f"got {means.shape}."
                )
            if not np.all(np.isfinite(means)) or np.any(means < 0):
                raise ValueError("means_init must be finite and non-negative.")
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=float)
            if weights.shape != (K,):
                raise ValueError(
                    f"weights_init must have shape (n_components,) = ({K},), got {weights.shape}."
                )
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
                raise ValueError("weights_init must be non-negative and sum to 1.")
        return NegBinModel(
            n_components=K, init_params=self.init_params, n_features=D,
            dispersion=self.dispersion, means_init=means, weights_init=weights,
        )

    def _get_fitted_params(self):
        return NegBinParams(self.weights_, self.means_, self.dispersion_)

    def _set_fitted_params(self, params):
        self.weights_ = params.weights
        self.means_ = params.means
        self.dispersion_ = params.dispersion


def _solve_dispersion(stats, means, tied_axes, previous):
    """M-step for the dispersion: maximize the expected log-likelihood in each tied group.

    Parameters
    ----------
    stats : NegBinStats
        Summed statistics (``resp_sum``, ``x_sum``, ``value_hist`` and the pair table).
    means : ndarray of shape (K, D)
        The new means (the M-step's first part).
    tied_axes : tuple of int
        Axes of the (K, D) grid over which one dispersion is shared.
    previous : ndarray of shape (K, D) or None
        Current dispersions, kept in groups where the solution does not improve on them.

    Returns
    -------
    dispersion : ndarray of shape (K, D)
    """
    K, D = means.shape
    pairs = stats.pairs
    weights = pairs.dispersion_weights(stats.value_hist)
    N = np.broadcast_to(stats.resp_sum[:, None], (K, D))
    S = stats.x_sum

    def group_sum(cells):
        return cells.sum(axis=tied_axes, keepdims=True) if tied_axes else cells

    def score(log_size):
        """Group sums of dQ/dr and d2Q/dr2 at r = exp(log_size)."""
        r = np.broadcast_to(np.exp(log_size), (K, D))
        first, second = (pairs.per_feature(t) for t in pairs.score_terms(weights, r[:, pairs.feature]))
        first = first + N * np.log(r / (r + means)) + (N * means - S) / (r + means)
        second = second + N * means / (r * (r + means)) - (N * means - S) / (r + means) ** 2
        return group_sum(first), group_sum(second)

    def expected_loglik(phi):
        """Group sums of the phi-dependent part of the expected complete log-likelihood."""
        phi = np.broadcast_to(phi, (K, D))
        log1p_phi_mu = np.log1p(phi * means)
        with np.errstate(divide="ignore", invalid="ignore"):
            zero_term = np.where(phi > 0, -log1p_phi_mu / np.where(phi > 0, phi, 1.0), -means)
        rising = pairs.per_feature(pairs.loglik_terms(weights, phi[:, pairs.feature]))
        return group_sum(rising - S * log1p_phi_mu + N * zero_term)

    # The slope of the expected log-likelihood in phi at phi = 0 is
    # sum_i w q [(x - mu)**2 - x] / 2 (over-dispersion against the Poisson):
    # where it is not positive, the maximum is the Poisson limit phi = 0.
    slope_at_zero = pairs.per_feature(pairs.slope_terms(weights)) - S * means + N * means**2 / 2
    poisson = group_sum(slope_at_zero) <= 0

    shape = tuple(1 if axis in tied_axes else size for axis, size in enumerate((K, D)))
    low, high = np.full(shape, -np.log(PHI_MAX)), np.full(shape, -np.log(PHI_MIN))
    falling_at_bottom = score(low)[0] <= 0  # decreasing already at r = 1/PHI_MAX
    log_size = (low + high) / 2
    for _ in range(100):
        first, second = score(log_size)
        low = np.where(first > 0, log_size, low)
        high = np.where(first > 0, high, log_size)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = log_size - first / (second * np.exp(log_size))
        inside = np.isfinite(newton) & (newton > low) & (newton < high)
        step = np.where(inside, newton, (low + high) / 2)
        done = np.max(np.abs(step - log_size)) < 1e-10
        log_size = step
        if done:
            break
    phi = np.exp(-log_size)
    phi = np.where(poisson, 0.0, np.where(falling_at_bottom, PHI_MAX, phi))
    phi = np.broadcast_to(phi, (K, D)).copy()
    if previous is not None:
        # Only a decrease beyond rounding keeps the previous value: a decision on rounding noise
        # would make the fit depend on how the rows are chunked (or split into dask blocks).
        old = expected_loglik(previous)
        worse = np.broadcast_to(expected_loglik(phi) < old - SAFEGUARD_RTOL * np.abs(old), (K, D))
        phi = np.where(worse, previous, phi)
    return phi

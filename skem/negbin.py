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

from dataclasses import dataclass, fields, replace
from functools import cached_property, partial
from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma, gammaln, polygamma
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, check_non_negative, validate_data

from ._base import BaseMixture, check_sample_weight
from ._compat import Interval, StrOptions, _fit_context
from ._dask import is_dask_array
from ._em import AdditiveStats, RowData
from ._mixture import MixtureModel, normalize_log_prob

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
    offsets: OffsetStats | float = 0.0  # with size factors only
    _shared = ("pairs",)


@dataclass(frozen=True)
class OffsetStats(AdditiveStats):
    """What the M-step with size factors ``s_i`` needs beyond :class:`NegBinStats`.

    ``size_sum = sum_i w q s_i`` (K,), ``node_mass = sum_i w q L_im`` (K, M)
    (the rows' interpolation weights at the size nodes) and ``entry_slope =
    sum w q x s_i / (1 + phi0 s_i mu0)`` over the non-zero entries (K, D), at
    the current parameters (see :func:`_offset_m_step`).
    """

    size_sum: np.ndarray
    node_mass: np.ndarray
    entry_slope: np.ndarray | float
    nodes: SizeNodes  # shared
    _shared = ("nodes",)


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
    def _feature_blocks(self):
        """Pairs are sorted by feature: the start of each non-empty feature's block, those
        features, and where the blocks end (a consecutive table's zero pair, last, is left out:
        every per-pair term is 0 there)."""
        end = self.size if self.offsets is None else int(self.offsets[-1])
        if np.any(np.diff(self.feature[:end]) < 0):
            return None
        starts = np.searchsorted(self.feature[:end], np.arange(self.n_features))
        stops = np.append(starts[1:], end)
        nonempty = np.flatnonzero(starts < stops)
        return starts[nonempty], nonempty, end

    def per_feature(self, table):
        """Sum a (K, U) table over the pairs of each feature: (K, D)."""
        if self._feature_blocks is None:  # a table built unsorted (tests)
            return np.stack([np.bincount(self.feature, weights=row, minlength=self.n_features)
                             for row in table])
        starts, nonempty, end = self._feature_blocks
        out = np.zeros((table.shape[0], self.n_features))
        if nonempty.size:
            out[:, nonempty] = np.add.reduceat(table[:, :end], starts, axis=1)
        return out

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


#: Size factors are used as their own nodes when they take at most this many distinct values.
MAX_EXACT_NODES = 64
#: At most this many Chebyshev nodes in log size factor.
MAX_NODES = 512


@dataclass(frozen=True)
class SizeNodes:
    """Nodes in the size factor at which the zero-count terms are evaluated.

    Terms of the entries that are 0 depend on a row only through its size
    factor ``s``: ``sum_d log1p(phi s mu) / phi`` over all features is a smooth
    function of ``u = log s`` for each component. It is evaluated at the
    nodes (``O(K D M)``) and carried to the rows by interpolation weights
    ``L`` (``O(n K M)``) -- instead of ``O(n K D)``, which sparse input cannot
    afford. When the size factors take few values the nodes are those
    values and ``L`` selects them: exact. Otherwise the nodes are
    Chebyshev points of ``u`` over the data's range, enough of them that
    the interpolation error is at rounding level: the functions are
    analytic in ``u`` in a strip of half-width ``pi`` (their singularities
    are at ``phi s mu = -1``), so the error falls like ``rho**-M`` with
    ``rho = b + sqrt(1 + b**2)``, ``b = pi / half-length of the range``.
    Rows with ``s = 0`` (all-zero rows under library size factors) get
    zero weights: every interpolated function vanishes at ``s = 0``.
    """

    values: np.ndarray  # (M,) size factors at the nodes
    exact: bool
    center: float = 0.0
    half_width: float = 1.0

    @classmethod
    def of(cls, size_factors):
        positive = np.unique(size_factors[size_factors > 0])
        if positive.size <= MAX_EXACT_NODES:
            return cls(positive if positive.size else np.ones(1), True)
        low, high = np.log(positive[0]), np.log(positive[-1])
        half_width = (high - low) / 2
        b = np.pi / half_width
        n_nodes = int(min(MAX_NODES, np.ceil(37.0 / np.log(b + np.sqrt(1 + b * b))) + 4))
        points = np.cos(np.pi * np.arange(n_nodes) / (n_nodes - 1))
        center = (high + low) / 2
        return cls(np.exp(center + half_width * points), False, center, half_width)

    @property
    def size(self):
        return self.values.size

    def weights(self, size_factors):
        """Interpolation weights (n, M) of the rows' size factors (barycentric formula)."""
        n, M = size_factors.size, self.size
        out = np.zeros((n, M))
        positive = size_factors > 0
        if self.exact:
            index = np.searchsorted(self.values, size_factors[positive])
            out[np.flatnonzero(positive), index] = 1.0
            return out
        t = (np.log(size_factors[positive]) - self.center) / self.half_width
        points = (np.log(self.values) - self.center) / self.half_width
        sign = (-1.0) ** np.arange(M)
        sign[[0, -1]] *= 0.5
        difference = t[:, None] - points[None, :]
        hit = difference == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = sign / difference
        terms = np.where(hit.any(axis=1, keepdims=True), hit.astype(float), terms)
        out[positive] = terms / terms.sum(axis=1, keepdims=True)
        return out


def _zero_remainder(mu, phi, s):
    """``s mu - log1p(phi s mu) / phi`` (0 where phi = 0): what the all-zero terms of a row
    with size factor ``s`` subtract from the Poisson ones. Broadcasts."""
    a = phi * mu * s
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(phi > 0, (a - np.log1p(a)) / np.where(phi > 0, phi, 1.0), 0.0)


@dataclass(frozen=True)
class NegBinData(RowData):
    """Counts, and for each entry the index of its (feature, value) pair.

    ``value_index`` has the layout of ``X``: a dense int32 array of the same
    shape, or a CSR matrix sharing ``X``'s index arrays whose data are int32
    pair indices into ``pairs``.
    """

    X: np.ndarray | sp.csr_matrix = None
    value_index: np.ndarray | sp.csr_matrix = None
    pairs: PairTable = None
    size_factors: np.ndarray | None = None  # (n,), None: all ones (no size factors)
    nodes: SizeNodes | None = None
    _shared = ("pairs", "nodes")

    def take(self, rows):
        return replace(
            self,
            **{f.name: getattr(self, f.name)[rows] for f in fields(self)
               if f.name not in self._shared and getattr(self, f.name) is not None},
        )

    def nonzero_entries(self):
        """Row, feature and value of each non-zero entry, and the CSR row pointer of the entries."""
        X = self.X
        if sp.issparse(X):
            counts = np.diff(X.indptr)
            return np.repeat(np.arange(X.shape[0]), counts), X.indices, X.data, X.indptr
        rows, columns = np.nonzero(X)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=X.shape[0]))])
        return rows, columns, X[rows, columns], indptr

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
    value_index, pairs
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
    return value_index, pairs


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
    size_factors: str = "none"
    library_reference: float = 1.0

    fits_dask = True

    @property
    def estimates_dispersion(self):
        return isinstance(self.dispersion, str)

    # ---------------------------------------------------------------- data

    def prepare(self, X, weights, size_factors=None):
        value_index, pairs = _index_entries(X)
        size_factors = self.row_size_factors(X, size_factors)
        if size_factors is not None and np.all(size_factors == 1.0):
            size_factors = None  # the model without size factors, and its exact M-step
        return NegBinData(
            weights=weights, X=X, value_index=value_index, pairs=pairs,
            size_factors=size_factors,
            nodes=None if size_factors is None else SizeNodes.of(size_factors),
        )

    def row_size_factors(self, X, given=None):
        """The size factor of each row of ``X``: ``given``, or by this model's rule (None: none)."""
        if given is not None:
            return np.asarray(given, dtype=np.float64)
        if self.size_factors == "library":
            totals = np.asarray(X.sum(axis=1), dtype=np.float64).reshape(-1)
            return totals / self.library_reference
        if self.size_factors == "given":
            raise ValueError(
                "This NegBinMixture was fitted with explicit size_factors: pass size_factors= "
                "for these rows too."
            )
        return None

    def work_per_row(self, data):
        entries_per_row = data.X.nnz / max(data.n_rows, 1) if sp.issparse(data.X) else data.X.shape[1]
        if data.size_factors is not None:
            # Per-entry (n, K) terms and the rows' interpolation weights at the size nodes.
            return int(4 * self.n_components + 3 * entries_per_row * (self.n_components + 1)
                       + data.nodes.size)
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
            weights=weights, X=X, value_index=value_index, pairs=pairs,
        )

    # -------------------------------------------------------------- kernels

    @staticmethod
    def pair_log_terms(params, pairs, with_offsets=False):
        """``log NB(x_u; mu, phi) - log NB(0; mu, phi)`` of each pair (K, U): the part of an
        entry's log-pmf that depends on its (feature, value) pair. With size factors, the
        part free of ``s`` (``B - log x! + x log mu``). 0 at value 0."""
        phi, mu = params.dispersion, params.means
        with np.errstate(divide="ignore"):
            log_mu = np.log(mu)
        if not with_offsets:
            log_mu = log_mu - np.log1p(phi * mu)
        values = pairs.values
        table = values * log_mu[:, pairs.feature] - gammaln(values + 1.0)
        if np.any(phi > 0):
            table += pairs.rising(phi)
        return table

    def estimate_log_prob(self, params, chunk):
        return self._log_prob(params, chunk, _OffsetEntries.of(params, chunk))

    def e_step(self, params, chunk):
        # The per-entry terms of the size factors serve both the log-likelihood and the statistics.
        entries = _OffsetEntries.of(params, chunk)
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        resp, log_norm = normalize_log_prob(self._log_prob(params, chunk, entries) + log_weights, axis=1)
        resp *= chunk.weights[:, None]
        return self._accumulate(params, chunk, resp, entries), float(chunk.weights @ log_norm)

    def _log_prob(self, params, chunk, entries):
        """``sum_d log NB(x_id; s_i mu_kd, phi_kd)``, (n, K): one product with the pair table
        (every term that depends on an entry's pair), per-component constants for the zero
        entries and, with size factors, the rows' ``s`` terms (non-zero entries: ``entries``;
        zero terms: at the size nodes)."""
        phi, mu = params.dispersion, params.means
        table = self.pair_log_terms(params, chunk.pairs, chunk.size_factors is not None)
        log_prob = np.asarray(chunk.entry_pairs @ table.T)
        if chunk.size_factors is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                zero_term = np.where(phi > 0, -np.log1p(phi * mu) / np.where(phi > 0, phi, 1.0), -mu)
            return log_prob + zero_term.sum(axis=1)
        s = chunk.size_factors
        x_total = np.asarray(chunk.X.sum(axis=1, dtype=np.float64)).reshape(-1)
        # s = 0 only for rows that are all 0 (library size factors), whose x log s is 0.
        log_s = np.log(np.where(s > 0, s, 1.0))
        log_prob += (x_total * log_s)[:, None] - s[:, None] * mu.sum(axis=1)
        if entries is not None:
            remainder = _zero_remainder(mu[:, :, None], phi[:, :, None], chunk.nodes.values).sum(axis=1)
            log_prob += entries.node_weights @ remainder.T
            log_prob -= entries.row_log1p
        return log_prob

    def accumulate(self, params, chunk, weighted_resp):
        return self._accumulate(params, chunk, weighted_resp, _OffsetEntries.of(params, chunk))

    def _accumulate(self, params, chunk, weighted_resp, entries):
        # One product gives the histogram of the pairs; the count sums follow from it.
        hist = np.asarray(chunk.entry_pairs.T @ weighted_resp).T
        pairs = chunk.pairs
        x_sum = pairs.per_feature(hist * pairs.values)
        offsets = 0.0
        if chunk.size_factors is not None:
            s = chunk.size_factors
            node_weights = chunk.nodes.weights(s) if entries is None else entries.node_weights
            slope = 0.0 if entries is None else entries.slope(weighted_resp, self.n_features)
            offsets = OffsetStats(weighted_resp.T @ s, weighted_resp.T @ node_weights, slope,
                                  chunk.nodes)
        value_hist = hist if self.estimates_dispersion else 0.0
        return NegBinStats(weighted_resp.sum(axis=0), x_sum, value_hist, pairs, offsets)

    def m_step(self, stats, params):
        resp_sum = stats.resp_sum
        total = resp_sum.sum()
        # An empty component keeps a tiny weight, its previous means and dispersions.
        weights = np.maximum(resp_sum, 1e-10 * total)
        weights = weights / weights.sum()
        occupied = resp_sum > 1e-10 * total
        offsets = stats.offsets
        with_offsets = isinstance(offsets, OffsetStats)
        with np.errstate(divide="ignore", invalid="ignore"):
            if with_offsets and (params is None or not np.any(params.dispersion > 0)):
                # Poisson means with offsets (and the start): sum w q x / sum w q s.
                means = stats.x_sum / offsets.size_sum[:, None]
            else:
                means = stats.x_sum / resp_sum[:, None]
        if params is not None:
            means = np.where(occupied[:, None], means, params.means)
        else:
            pooled = stats.x_sum.sum(axis=0) / total
            means = np.where(occupied[:, None], means, pooled)
        means = np.maximum(means, MEAN_FLOOR)

        if with_offsets and params is not None and np.any(params.dispersion > 0):
            tied = _TIED_AXES[self.dispersion] if self.estimates_dispersion else None
            means, dispersion = _offset_m_step(stats, params, occupied, tied)
        elif not self.estimates_dispersion:
            dispersion = np.full(means.shape, float(self.dispersion))
        elif with_offsets:
            # The start: the exact solution that ignores the size factors.
            with np.errstate(divide="ignore", invalid="ignore"):
                plain = stats.x_sum / resp_sum[:, None]
            plain = np.maximum(np.where(occupied[:, None], plain, means), MEAN_FLOOR)
            dispersion = np.maximum(
                _solve_dispersion(stats, plain, _TIED_AXES[self.dispersion], None), PHI_MIN
            )
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
    max_iter : int, default=1000
        Maximum number of EM iterations (passes over the data) per run.
    tol : float, default=1e-10
        Stop when the mean log-likelihood per (weighted) row changes by less
        than ``tol * max(1, |mean log-likelihood|)``. The default ends within
        about 1e-9 (relative) of the maximum that a run approaches -- no
        direct optimizer started there improves it by 1e-6 relative (see the
        user guide for the measurements); 1e-3 stops early, at up to 1e-3
        relative below it.
    accelerate : {"squarem", "none"} or None, default="squarem"
        SQUAREM extrapolation with a monotone safeguard (the default: it
        takes 2-7x fewer passes on slowly converging fits and costs nothing
        on fast ones), or plain EM (None or "none").
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
    size_factors : {"none", "library"}, default="none"
        Per-row size factors ``s_i`` (sequencing depth): row ``i`` of
        component ``k`` has means ``s_i * means_[k]``. "none": all 1.
        "library": each row's total count relative to the (weighted) mean
        row total of the training data, so new rows need nothing extra.
        Explicit values given to :meth:`fit` (``size_factors=``) override
        this; the inference methods then take them for their rows too.

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
        "size_factors": [StrOptions({"none", "library"})],
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
        max_iter=1000,
        tol=1e-10,
        accelerate="squarem",
        chunk_size=None,
        n_jobs=None,
        warm_start=False,
        random_state=None,
        verbose=0,
        verbose_interval=10,
        size_factors="none",
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
        self.size_factors = size_factors

    # ------------------------------------------- size factors: fit and inference

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, size_factors=None):
        """Estimate the model's parameters by EM.

        The model is fitted ``n_init`` times from different starts and the
        run with the highest final log-likelihood is kept (see
        :meth:`skem._base.BaseEM.fit`).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), or dask array
            Counts.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row multiplicities.
        size_factors : array-like of shape (n_samples,), default=None
            Positive per-row size factors ``s_i`` (row ``i`` of component
            ``k`` has means ``s_i * means_[k]``). They override the
            ``size_factors`` parameter; the inference methods then need them
            for their rows too. Routed by scikit-learn's metadata routing
            (``set_fit_request(size_factors=True)``). Not with dask input.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._reference_weights = sample_weight
        try:
            return self._fit(X, sample_weight, size_factors=size_factors)
        finally:
            del self._reference_weights

    def fit_predict(self, X, y=None, sample_weight=None, size_factors=None):
        """Fit the model and return the most probable component of each row of ``X``.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Counts.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities.
        size_factors : array-like of shape (n_samples,), default=None
            Per-row size factors (see :meth:`fit`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels, equal to ``fit(X).predict(X)``.
        """
        return self.fit(X, sample_weight=sample_weight, size_factors=size_factors).predict(
            X, size_factors=size_factors
        )

    def score_samples(self, X, size_factors=None):
        """Log-likelihood of each row under the fitted model.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), or dask array
            Counts.
        size_factors : array-like of shape (n_samples,), default=None
            The rows' size factors (needed if the fit had explicit ones;
            under ``size_factors="library"`` they come from the row totals).

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            ``log p(x_i)``, including all normalizing constants.
        """
        if size_factors is None:
            return super().score_samples(X)
        return self._per_row(X, method="score_samples", size_factors=size_factors)

    def predict_proba(self, X, size_factors=None):
        """Posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), or dask array
            Counts.
        size_factors : array-like of shape (n_samples,), default=None
            The rows' size factors (see :meth:`score_samples`).

        Returns
        -------
        posterior : ndarray of shape (n_samples, n_components)
            Rows sum to 1.
        """
        if size_factors is None:
            return super().predict_proba(X)
        return self._per_row(X, method="predict_proba", size_factors=size_factors)

    def predict(self, X, size_factors=None):
        """Most probable component of each row.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), or dask array
            Counts.
        size_factors : array-like of shape (n_samples,), default=None
            The rows' size factors (see :meth:`score_samples`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The component of highest posterior probability.
        """
        if size_factors is None:
            return super().predict(X)
        return self.predict_proba(X, size_factors=size_factors).argmax(axis=1)

    def score(self, X, y=None, sample_weight=None, size_factors=None):
        """Mean log-likelihood per row (weighted when ``sample_weight`` is given).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Counts.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities.
        size_factors : array-like of shape (n_samples,), default=None
            The rows' size factors (see :meth:`score_samples`).

        Returns
        -------
        score : float
            Mean ``log p(x_i)``.
        """
        log_likelihood = self.score_samples(X, size_factors=size_factors)
        weights = check_sample_weight(sample_weight, log_likelihood)
        return float(np.average(log_likelihood, weights=weights))

    def sample(self, n_samples=1, size_factors=None):
        """Draw rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        size_factors : float or array-like of shape (n_samples,), default=None
            Size factor of each drawn row (its means are ``s * means_[k]``);
            None draws with size factor 1.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The rows, grouped by component.
        y : ndarray of shape (n_samples,)
            The component each row was drawn from.
        """
        if size_factors is None:
            return super().sample(n_samples)
        check_is_fitted(self)
        factors = np.broadcast_to(np.asarray(size_factors, dtype=float), (int(n_samples),))
        if not (np.all(np.isfinite(factors)) and np.all(factors >= 0)):
            raise ValueError("size_factors must be non-negative and finite.")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        y = np.repeat(np.arange(counts.size), counts)
        mu, phi = factors[:, None] * self.means_[y], self.dispersion_[y]
        with np.errstate(divide="ignore"):
            size = np.where(phi > 0, 1.0 / np.where(phi > 0, phi, 1.0), 1.0)
        X = np.where(phi > 0, rng.negative_binomial(size, size / (size + mu)), rng.poisson(mu))
        return X.astype(float), y

    def bic(self, X, size_factors=None):
        """Bayesian information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Counts.
        size_factors : array-like of shape (n_samples,), default=None
            The rows' size factors (see :meth:`score_samples`).

        Returns
        -------
        bic : float
            ``-2 log L + p log n`` with ``p`` free parameters.
        """
        n = X.shape[0]
        return -2.0 * self.score(X, size_factors=size_factors) * n + self._n_parameters() * np.log(n)

    def aic(self, X, size_factors=None):
        """Akaike information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Counts.
        size_factors : array-like of shape (n_samples,), default=None
            The rows' size factors (see :meth:`score_samples`).

        Returns
        -------
        aic : float
            ``-2 log L + 2 p`` with ``p`` free parameters.
        """
        return -2.0 * self.score(X, size_factors=size_factors) * X.shape[0] + 2.0 * self._n_parameters()

    def _n_parameters(self):
        return self._model.n_parameters(self._get_fitted_params())

    def component_means(self):
        """The fitted means as a table: one row per component, one column per feature.

        Returns
        -------
        means : pandas.DataFrame of shape (n_components, n_features)
            ``means_``, with columns named by ``feature_names_in_`` (``x0``,
            ``x1``... when the training data had no feature names).
        """
        return self._component_frame(self.means_)

    def component_dispersions(self):
        """The fitted dispersions as a table: one row per component, one column per feature.

        Returns
        -------
        dispersions : pandas.DataFrame of shape (n_components, n_features)
            ``dispersion_``, labelled as in :meth:`component_means`.
        """
        return self._component_frame(self.dispersion_)

    def _component_frame(self, values):
        import pandas as pd

        check_is_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = [f"x{d}" for d in range(self.n_features_in_)]
        index = pd.RangeIndex(self.n_components, name="component")
        return pd.DataFrame(values, index=index, columns=pd.Index(names, name="feature"))

    def _check_row_metadata(self, X, row_metadata):
        checked = super()._check_row_metadata(X, row_metadata)
        given = checked.get("size_factors")
        if given is not None and not (np.all(np.isfinite(given)) and np.all(given > 0)):
            raise ValueError("size_factors must be positive and finite.")
        return checked

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

    def _build_model(self, X, size_factors=None):
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
        mode, reference = self.size_factors, 1.0
        if size_factors is not None:
            mode = "given"
        elif mode == "library":
            if is_dask_array(X):
                raise NotImplementedError(
                    'size_factors="library" is not available for dask input; compute X first.'
                )
            # Size factors relative to the mean row total, so that means_ are counts of an
            # average row. Weighted by multiplicity: weights are repeated rows.
            totals = np.asarray(X.sum(axis=1), dtype=np.float64).reshape(-1)
            reference = float(np.average(
                totals, weights=check_sample_weight(getattr(self, "_reference_weights", None), X)
            ))
            if not reference > 0:
                raise ValueError('size_factors="library" needs rows with counts; all rows are 0.')
        return NegBinModel(
            n_components=K, init_params=self.init_params, n_features=D,
            dispersion=self.dispersion, means_init=means, weights_init=weights,
            size_factors=mode, library_reference=reference,
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
    bottom = low.copy()
    log_size = (low + high) / 2
    if previous is not None:
        # Warm start from the current value (Newton then needs a few steps near convergence).
        start = -np.log(np.clip(previous, PHI_MIN, PHI_MAX))
        log_size = np.clip(start.mean(axis=tied_axes, keepdims=True) if tied_axes else start,
                           low, high)
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
    # Groups whose search ended at the bottom of the bracket, r = 1/PHI_MAX, and where the
    # expected log-likelihood is decreasing there already: the maximum is at PHI_MAX.
    at_bottom = log_size <= bottom + 1e-9
    if at_bottom.any():
        at_bottom &= score(bottom)[0] <= 0
    phi = np.exp(-log_size)
    phi = np.where(poisson, 0.0, np.where(at_bottom, PHI_MAX, phi))
    phi = np.broadcast_to(phi, (K, D)).copy()
    if previous is not None:
        # Only a decrease beyond rounding keeps the previous value: a decision on rounding noise
        # would make the fit depend on how the rows are chunked (or split into dask blocks).
        old = expected_loglik(previous)
        worse = np.broadcast_to(expected_loglik(phi) < old - SAFEGUARD_RTOL * np.abs(old), (K, D))
        phi = np.where(worse, previous, phi)
    return phi


@dataclass(frozen=True)
class _OffsetEntries:
    """Terms of the non-zero entries of one chunk with size factors, at the current parameters.

    ``inverse`` is ``1 / (1 + phi_kd s_i mu_kd)`` at each non-zero entry (nnz, K),
    ``row_log1p`` the rows' ``sum_d x_id log1p(phi_kd s_i mu_kd)`` (n, K) and
    ``node_weights`` the rows' interpolation weights at the size nodes (n, M).
    Computed once per chunk and E-step, for the log-likelihood and the statistics.
    """

    rows: np.ndarray
    columns: np.ndarray
    x: np.ndarray
    size_factors: np.ndarray
    inverse: np.ndarray
    row_log1p: np.ndarray
    node_weights: np.ndarray

    @classmethod
    def of(cls, params, chunk):
        """The terms of ``chunk``, or None without size factors or when every phi is 0."""
        if chunk.size_factors is None or params is None or not np.any(params.dispersion > 0):
            return None
        s = chunk.size_factors
        rows, columns, x, indptr = chunk.nonzero_entries()
        t = (params.dispersion * params.means).T[columns]
        t *= s[rows, None]
        inverse = np.add(t, 1.0)
        np.reciprocal(inverse, out=inverse)
        np.log1p(t, out=t)
        # Row sums weighted by x: a product with an (n, nnz) matrix holding x, in CSR order.
        by_row = sp.csr_matrix((x, np.arange(x.size), indptr), shape=(s.size, x.size))
        row_log1p = np.asarray(by_row @ t)
        return cls(rows, columns, x, s, inverse, row_log1p, chunk.nodes.weights(s))

    def slope(self, weighted_resp, n_features):
        """``sum_i w q x s / (1 + phi s mu)`` over the non-zero entries of each feature (K, D):
        the slope of the tangent that bounds their ``x log1p(phi s mu)`` terms."""
        values = self.inverse * weighted_resp[self.rows]
        # Column sums weighted by x s: a product with a (D, nnz) matrix, one entry per column.
        by_feature = sp.csc_matrix(
            (self.x * self.size_factors[self.rows], self.columns, np.arange(self.x.size + 1)),
            shape=(n_features, self.x.size),
        )
        return np.asarray(by_feature @ values).T


def _offset_m_step(stats, params, occupied, tied_axes):
    """Means and dispersions with size factors: the maximum of a minorizer of the expected
    log-likelihood that touches it at the current parameters (so EM stays monotone).

    With ``r = 1/phi`` and ``c = mu / r`` the expected log-likelihood of a
    (component, feature) cell is ``Q = H(r) + S log mu - F(c) - r G(c)``: ``H``
    the rising factorials (from the pair table), ``G(c) = sum_i w q log1p(s_i c)``
    over all rows (exact at the size nodes), and ``F(c) = sum w q x log1p(s c)``
    over the non-zero entries -- the only part that needs the entries at the
    parameters. ``F`` is concave, so its tangent at the current ``c0``
    (slope ``P``, :meth:`_OffsetEntries.slope`) bounds it from above:
    ``Q >= H(r) + S log mu - P c - r G(c) + const``. The bound is maximized
    jointly in the means and (tied) sizes by alternating 1-D Newton solves
    (the two are nearly orthogonal parameters), each safeguarded by a
    bracket; a group keeps its previous values if the result is not better.

    ``tied_axes`` None: fixed dispersions, means only.
    """
    offsets, pairs = stats.offsets, stats.pairs
    S, P = stats.x_sum, offsets.entry_slope
    node_mass, nodes = offsets.node_mass, offsets.nodes.values
    mu0, phi0 = params.means, params.dispersion
    K, D = mu0.shape
    estimate = tied_axes is not None
    hist_weights = pairs.dispersion_weights(stats.value_hist) if estimate else None

    def group_sum(cells):
        return cells.sum(axis=tied_axes, keepdims=True) if tied_axes else cells

    def group_max(cells):
        return cells.max(axis=tied_axes, keepdims=True) if tied_axes else cells

    def surrogate(mu, r):
        """The minorizer per cell, up to a constant."""
        c = mu / r
        G = np.einsum("km,kdm->kd", node_mass, np.log1p(c[:, :, None] * nodes))
        value = S * np.log(mu) - P * c - r * G
        if estimate:
            value = value + pairs.per_feature(
                pairs.loglik_terms(hist_weights, (1.0 / r)[:, pairs.feature]))
        return value

    def solve_means(mu, r):
        """Each cell's maximum in eta = log mu at fixed r: the root of the decreasing
        S - P c - r sum_m n_m s_m c / (1 + s_m c)."""
        cells = np.flatnonzero(np.broadcast_to(occupied[:, None], (K, D)) & (S > 0).reshape(K, D)
                               ).astype(np.intp)
        out = mu.copy()
        out[~occupied] = mu0[~occupied]
        out[occupied[:, None] & (S <= 0)] = MEAN_FLOOR
        if cells.size == 0:
            return out
        k = cells // D
        s_flat, p_flat, r_flat = S.ravel()[cells], P.ravel()[cells], r.ravel()[cells]
        mass = node_mass[k]
        low = np.full(cells.size, np.log(MEAN_FLOOR))
        with np.errstate(divide="ignore"):
            # At the root P c <= S.
            high = np.log(r_flat * s_flat / np.maximum(p_flat, 1e-300))
        high = np.maximum(np.minimum(high, np.log(1e300)), low)
        eta = np.clip(np.log(mu.ravel()[cells]), low, high)
        active = np.arange(cells.size)
        for _ in range(100):
            c = np.exp(eta[active]) / r_flat[active]
            a = c[:, None] * nodes
            frac = a / (1.0 + a)
            g = s_flat[active] - p_flat[active] * c - r_flat[active] * np.einsum(
                "nm,nm->n", mass[active], frac)
            dg = -p_flat[active] * c - r_flat[active] * np.einsum(
                "nm,nm->n", mass[active], frac / (1.0 + a))
            e = eta[active]
            low[active] = np.where(g > 0, e, low[active])
            high[active] = np.where(g > 0, high[active], e)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = e - g / dg
            inside = np.isfinite(newton) & (newton > low[active]) & (newton < high[active])
            step = np.where(inside, newton, (low[active] + high[active]) / 2)
            eta[active] = step
            active = active[np.abs(step - e) > 1e-11]
            if active.size == 0:
                break
        out.ravel()[cells] = np.maximum(np.exp(eta), MEAN_FLOOR)
        return out

    def joint_newton(mu, r):
        """Newton's method on (log mu, log r) of every tied group at once -- an arrowhead
        system: the means of a group are coupled only through its size -- with a step
        halved per group until the bound increases, inside the bounds of both."""
        low_eta, low_rho, high_rho = np.log(MEAN_FLOOR), -np.log(PHI_MAX), -np.log(PHI_MIN)
        free = np.broadcast_to(occupied[:, None], (K, D))
        eta = np.log(mu)
        rho = np.log(r)
        rho = rho.mean(axis=tied_axes, keepdims=True) if tied_axes else rho
        value = group_sum(surrogate(np.exp(eta), np.broadcast_to(np.exp(rho), (K, D))))
        active = np.ones(rho.shape, dtype=bool)
        for _ in range(100):
            size = np.broadcast_to(np.exp(rho), (K, D))
            c = np.exp(eta) / size
            a = c[:, :, None] * nodes
            frac = a / (1.0 + a)
            G = np.einsum("km,kdm->kd", node_mass, np.log1p(a))
            g1 = np.einsum("km,kdm->kd", node_mass, frac)
            g2 = np.einsum("km,kdm->kd", node_mass, frac / (1.0 + a))
            first, second = (pairs.per_feature(t)
                             for t in pairs.score_terms(hist_weights, size[:, pairs.feature]))
            grad_eta = S - P * c - size * g1
            # Means at their floor that would go lower stay there, as do empty components.
            moving = free & ~((eta <= low_eta) & (grad_eta <= 0))
            grad_eta = np.where(moving, grad_eta, 0.0)
            hess_eta = np.where(moving, -P * c - size * g2, -1.0)
            cross = np.where(moving, P * c - size * g1 + size * g2, 0.0)
            grad_rho = group_sum(size * first - S + P * c - size * G + size * g1)
            hess_rho = group_sum(size * first + size**2 * second - P * c - size * G
                                 + 2 * size * g1 - size * g2)
            schur = hess_rho - group_sum(cross**2 / hess_eta)
            rhs = grad_rho - group_sum(cross * grad_eta / hess_eta)
            with np.errstate(divide="ignore", invalid="ignore"):
                # Not concave there: a bounded move uphill in log r instead.
                d_rho = np.where(schur < 0, -rhs / schur, np.sign(grad_rho))
            d_rho = np.clip(d_rho, -2.0, 2.0)
            d_rho = np.where(((rho >= high_rho) & (d_rho > 0)) | ((rho <= low_rho) & (d_rho < 0)),
                             0.0, d_rho)
            d_eta = np.clip(-(grad_eta + cross * d_rho) / hess_eta, -2.0, 2.0)
            # A group is done when its Newton step, or the increase it promises, is at
            # rounding level (convergence is quadratic), or no fraction of it increases the bound.
            promise = grad_rho * d_rho + group_sum(grad_eta * d_eta)
            active &= (np.maximum(np.abs(d_rho), group_max(np.abs(d_eta))) > 1e-10) & (
                promise > 1e-13 * np.abs(value))
            if not active.any():
                break
            step = np.ones(rho.shape)
            pending = active.copy()
            for _ in range(20):
                t = np.where(pending, step, 0.0)
                new_rho = np.clip(rho + t * d_rho, low_rho, high_rho)
                new_eta = np.maximum(eta + np.broadcast_to(t, (K, D)) * d_eta, low_eta)
                new_value = group_sum(surrogate(np.exp(new_eta), np.broadcast_to(np.exp(new_rho), (K, D))))
                better = pending & (new_value >= value)
                rho = np.where(better, new_rho, rho)
                eta = np.where(np.broadcast_to(better, (K, D)), new_eta, eta)
                value = np.where(better, new_value, value)
                pending &= ~better
                step = step / 2
                if not pending.any():
                    break
            active &= ~pending
        return np.maximum(np.exp(eta), MEAN_FLOOR), np.broadcast_to(np.exp(rho), (K, D)).copy()

    r = 1.0 / phi0
    if estimate:
        mu, r = joint_newton(mu0, r)
    else:
        mu = solve_means(mu0, r)
    phi = np.clip(1.0 / r, PHI_MIN, PHI_MAX) if estimate else phi0
    # Keep a group's previous values where the bound did not increase beyond rounding.
    old = group_sum(surrogate(mu0, 1.0 / phi0))
    new = group_sum(surrogate(mu, 1.0 / phi))
    worse = np.broadcast_to(new < old - SAFEGUARD_RTOL * np.abs(old), (K, D))
    return np.where(worse, mu0, mu), np.where(worse, phi0, phi)

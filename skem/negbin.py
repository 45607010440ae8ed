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
    offsets: OffsetStats | float = 0.0  # with size factors only
    _shared = ("pairs",)


@dataclass(frozen=True)
class OffsetStats(AdditiveStats):
    """What the M-step with size factors ``s_i`` needs beyond :class:`NegBinStats`.

    With ``m = s_i mu0_kd`` and ``v = x_id phi0_kd / (1 + phi0_kd m)`` at the
    current parameters (``mu0``, ``phi0``), over the non-zero entries only:
    ``size_sum = sum_i w q s_i`` (K,), ``node_mass = sum_i w q L_ij`` (K, M)
    (the rows' interpolation weights at the size nodes), ``entry_mean =
    sum w q s_i v`` and ``entry_size = sum w q v`` (K, D).
    """

    size_sum: np.ndarray
    node_mass: np.ndarray
    entry_mean: np.ndarray | float
    entry_size: np.ndarray | float
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
    log_factorial: np.ndarray = None  # (n,) sum_d log x_id!
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
    size_factors: str = "none"
    library_reference: float = 1.0

    fits_dask = True

    @property
    def estimates_dispersion(self):
        return isinstance(self.dispersion, str)

    # ---------------------------------------------------------------- data

    def prepare(self, X, weights, size_factors=None):
        value_index, log_factorial, pairs = _index_entries(X)
        size_factors = self.row_size_factors(X, size_factors)
        if size_factors is not None and np.all(size_factors == 1.0):
            size_factors = None  # the model without size factors, and its exact M-step
        return NegBinData(
            weights=weights, X=X, value_index=value_index, log_factorial=log_factorial, pairs=pairs,
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
            weights=weights, X=X, value_index=value_index,
            log_factorial=_log_factorial(value_index, pairs), pairs=pairs,
        )

    # -------------------------------------------------------------- kernels

    def estimate_log_prob(self, params, chunk):
        phi, mu = params.dispersion, params.means
        if chunk.size_factors is not None:
            return self._log_prob_with_offsets(params, chunk)
        log1p_phi_mu = np.log1p(phi * mu)
        with np.errstate(divide="ignore"):
            linear = chunk.X @ (np.log(mu) - log1p_phi_mu).T
        zero_term = np.where(phi > 0, -log1p_phi_mu / np.where(phi > 0, phi, 1.0), -mu).sum(axis=1)
        log_prob = np.asarray(linear) + zero_term - chunk.log_factorial[:, None]
        if np.any(phi > 0):
            # sum_d B(x_id, phi_kd) over the entries of each row, shape (n, K)
            log_prob += np.asarray(chunk.entry_pairs @ chunk.pairs.rising(phi).T)
        return log_prob

    def _log_prob_with_offsets(self, params, chunk):
        """``log NB(x_id; s_i mu_kd, phi_kd)`` summed over features, (n, K): the Poisson
        part by products, the rest at the non-zero entries and (zeros) at the size nodes."""
        phi, mu, s = params.dispersion, params.means, chunk.size_factors
        x_total = np.asarray(chunk.X.sum(axis=1)).reshape(-1)
        with np.errstate(divide="ignore"):
            log_mu = np.log(mu)
        # s = 0 only for rows that are all 0 (library size factors), whose x log s is 0.
        log_s = np.log(np.where(s > 0, s, 1.0))
        log_prob = (
            np.asarray(chunk.X @ log_mu.T)
            + (x_total * log_s)[:, None]
            - s[:, None] * mu.sum(axis=1)
            - chunk.log_factorial[:, None]
        )
        if np.any(phi > 0):
            log_prob += np.asarray(chunk.entry_pairs @ chunk.pairs.rising(phi).T)
            remainder = _zero_remainder(mu[:, :, None], phi[:, :, None], chunk.nodes.values).sum(axis=1)
            log_prob += chunk.nodes.weights(s) @ remainder.T
            if sp.issparse(chunk.X):
                rows, columns, x, indptr = chunk.nonzero_entries()
                t = phi.T[columns] * mu.T[columns] * s[rows, None]
                log_prob -= _sum_by_row(x[:, None] * np.log1p(t), indptr)
            else:  # dense rows broadcast: no gathers
                t = (phi * mu)[None] * s[:, None, None]
                log_prob -= np.einsum("nd,nkd->nk", chunk.X, np.log1p(t))
        return log_prob

    def accumulate(self, params, chunk, weighted_resp):
        x_sum = np.asarray(chunk.X.T @ weighted_resp).T
        value_hist = (
            np.asarray(chunk.entry_pairs.T @ weighted_resp).T
            if self.estimates_dispersion
            else 0.0
        )
        offsets = 0.0
        if chunk.size_factors is not None:
            offsets = self._offset_stats(params, chunk, weighted_resp)
        return NegBinStats(weighted_resp.sum(axis=0), x_sum, value_hist, chunk.pairs, offsets)

    def _offset_stats(self, params, chunk, weighted_resp):
        s = chunk.size_factors
        entry_mean = entry_size = 0.0
        if params is not None and np.any(params.dispersion > 0):
            phi, mu = params.dispersion, params.means
            if sp.issparse(chunk.X):
                rows, columns, x, _ = chunk.nonzero_entries()
                v = x[:, None] * phi.T[columns] / (1.0 + (phi * mu).T[columns] * s[rows, None])
                v *= weighted_resp[rows]
                entry_size = _sum_by_feature(v, columns, self.n_features)
                entry_mean = _sum_by_feature(v * s[rows, None], columns, self.n_features)
            else:
                v = chunk.X[:, None, :] * phi / (1.0 + (phi * mu)[None] * s[:, None, None])
                entry_size = np.einsum("nk,nkd->kd", weighted_resp, v)
                entry_mean = np.einsum("nk,nkd->kd", weighted_resp * s[:, None], v)
        return OffsetStats(
            weighted_resp.T @ s, weighted_resp.T @ chunk.nodes.weights(s),
            entry_mean, entry_size, chunk.nodes,
        )

    def m_step(self, stats, params):
        resp_sum = stats.resp_sum
        total = resp_sum.sum()
        # An empty component keeps a tiny weight, its previous means and dispersions.
        weights = np.maximum(resp_sum, 1e-10 * total)
        weights = weights / weights.sum()
        occupied = resp_sum > 1e-10 * total
        offsets = stats.offsets
        with np.errstate(divide="ignore", invalid="ignore"):
            if isinstance(offsets, OffsetStats):
                means = stats.x_sum / _mean_denominator(offsets, params)
            else:
                means = stats.x_sum / resp_sum[:, None]
        if params is not None:
            means = np.where(occupied[:, None], means, params.means)
        else:
            pooled = stats.x_sum.sum(axis=0) / total
            means = np.where(occupied[:, None], means, pooled)
        means = np.maximum(means, MEAN_FLOOR)

        if not self.estimates_dispersion:
            dispersion = np.full(means.shape, float(self.dispersion))
        elif isinstance(offsets, OffsetStats) and params is not None:
            dispersion = _dispersion_mm_step(stats, params, _TIED_AXES[self.dispersion])
        elif isinstance(offsets, OffsetStats):
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


def _sum_by_row(values, indptr):
    """Sums of the rows of ``values`` (entries, K) over each CSR row of entries: (n, K)."""
    out = np.zeros((indptr.size - 1, values.shape[1]))
    nonempty = indptr[:-1] < indptr[1:]
    if nonempty.any():
        out[nonempty] = np.add.reduceat(values, indptr[:-1][nonempty], axis=0)
    return out


def _sum_by_feature(values, columns, n_features):
    """Sums of ``values`` (entries, K) over the entries of each feature: (K, D)."""
    return np.stack(
        [np.bincount(columns, weights=values[:, k], minlength=n_features) for k in range(values.shape[1])]
    )


def _mean_denominator(offsets, params):
    """``sum_i w q (x + r0) s_i / (r0 + s_i mu0)`` per (component, feature).

    The means' M-step with size factors maximizes a minorizer of the
    expected log-likelihood (the tangent of the concave ``log(r + s mu)`` at
    the current mean), whose maximum is ``x_sum / this``: an exact M-step for
    Poisson features (``sum w q s``) and an MM step otherwise, so EM stays
    monotone. ``params`` None (the start): the Poisson value.
    """
    if params is None:
        return offsets.size_sum[:, None]
    a = (params.dispersion * params.means)[:, :, None] * offsets.nodes.values
    zeros_part = offsets.size_sum[:, None] - np.einsum(
        "km,kdm->kd", offsets.node_mass, a * offsets.nodes.values / (1.0 + a)
    )
    return offsets.entry_mean + zeros_part


def _dispersion_mm_step(stats, params, tied_axes):
    """Dispersions with size factors: one minorize-maximize step from the current ones.

    With ``r = 1/phi`` and ``m = s mu``, the expected log-likelihood in ``r``
    is ``sum w q [sum_{j<x} log(r + j) + f(r)]`` with
    ``f(r) = r log r - (r + x) log(r + m)`` convex. Minorizing
    ``log(r + j) >= r0/(r0 + j) log r + const`` and ``f`` by its tangent at
    ``r0`` gives ``C log r + B r`` with ``C >= 0 > B``, maximized (per tied
    group) at ``r = -C / B``. The pair table gives ``C`` (as in the exact
    solver), the non-zero entries and the size nodes give ``B``.
    """
    offsets, pairs = stats.offsets, stats.pairs
    phi0 = np.maximum(params.dispersion, PHI_MIN)
    r0 = 1.0 / phi0
    hist_weights = pairs.dispersion_weights(stats.value_hist)
    C = r0 * pairs.per_feature(pairs.score_terms(hist_weights, r0[:, pairs.feature])[0])
    a = (phi0 * params.means)[:, :, None] * offsets.nodes.values
    B = np.einsum("km,kdm->kd", offsets.node_mass, a / (1.0 + a) - np.log1p(a)) - offsets.entry_size

    def group_sum(cells):
        return cells.sum(axis=tied_axes, keepdims=True) if tied_axes else cells

    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.broadcast_to(-group_sum(B) / group_sum(C), phi0.shape)
    # No information at all (0 / 0): keep the current value.
    return np.clip(np.where(np.isnan(phi), phi0, phi), PHI_MIN, PHI_MAX)

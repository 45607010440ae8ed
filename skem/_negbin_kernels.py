"""The negative-binomial mixture's tables and kernels, below the model in :mod:`skem.negbin`.

Counts repeat a lot, so every term that depends on an entry only through its
(feature, value) pair is tabulated once per distinct pair (:class:`PairTable`)
and gathered through the per-entry pair index built here (``index_entries``);
:class:`SizeNodes` does the same for the size factors of the rows. The
numerical constants shared by the model and its M-step solvers live here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cache, cached_property

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma, gammaln, polygamma

__all__ = [
    "MEAN_FLOOR", "PHI_MAX", "PHI_MIN", "SAFEGUARD_RTOL", "TIED_AXES", "OffsetEntries", "PairTable",
    "SizeNodes", "compiled_e_step", "compiled_kernels", "count_part", "direct_table", "direct_table_pays",
    "distinct_pairs", "entry_log_terms", "entry_summary", "index_against", "index_entries",
    "log_ratio_to_zero", "log_rising_ratio", "log_zero_probability", "max_factors", "mean_part",
    "sorted_table", "split_zero_terms", "stirling_error", "stored_entries", "zero_remainder",
]

#: Means are kept at or above this, so that no count has probability exactly zero.
MEAN_FLOOR = 1e-8
#: The dispersion solver searches phi in [PHI_MIN, PHI_MAX]; beyond PHI_MIN it returns 0 (Poisson).
PHI_MIN, PHI_MAX = 1e-8, 1e6
#: The dispersion M-step keeps the previous value if the new one is worse by more than this (relative).
SAFEGUARD_RTOL = 1e-12
#: Below this dispersion, B(x, phi) for small integer x is summed exactly to avoid cancellation.
PHI_SMALL, X_SMALL = 1e-3, 64

#: The axes of the (K, D) grid of dispersions that one estimate is shared over, per tying mode.
TIED_AXES = {"shared": (0, 1), "component": (1,), "feature": (0,), "full": ()}


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

    def log_ratio_to_zero(self, mu, phi):
        """``log NB(value_u; mu, phi) - log NB(0; mu, phi)`` at each pair's feature (K, U), exact
        to rounding (:func:`log_ratio_to_zero`), with the Stirling errors per value and per
        (component, feature) cell rather than per pair. A consecutive table's values up to
        ``X_SMALL`` take the lgamma form with the cumulative sums of :meth:`rising` instead:
        three times cheaper, and its terms of order ``x log x`` cost at most ~1e-13 there."""
        values, feature = self.values, self.feature
        out = np.zeros((mu.shape[0], self.size))
        large = values > (0 if self.offsets is None else X_SMALL)
        if self.offsets is not None:
            small = (values > 0) & ~large
            x, cells = values[small], feature[small]
            out[:, small] = (self.rising(phi)[:, small] - gammaln(x + 1.0)
                             + x * (np.log(mu) - np.log1p(phi * mu))[:, cells])
        if large.any():
            x, cells = values[large], feature[large]
            with np.errstate(divide="ignore"):
                stirling_r = stirling_error(1.0 / phi)
            out[:, large] = (count_part(x, phi[:, cells], stirling_error(x), stirling_r[:, cells])
                             + mean_part(x, mu[:, cells], phi[:, cells]))
        return out

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
        return cls.spanning(cls.summary(size_factors))

    @staticmethod
    def summary(size_factors):
        """What the nodes depend on: the smallest and largest positive size factor, and the
        distinct positive ones while there are at most :data:`MAX_EXACT_NODES` (else None).
        Summaries of blocks of rows combine with :meth:`combine`."""
        positive = np.unique(size_factors[size_factors > 0])
        if positive.size == 0:
            return None
        return positive[0], positive[-1], positive if positive.size <= MAX_EXACT_NODES else None

    @staticmethod
    def combine(summaries):
        """The summary of the union of blocks of rows."""
        summaries = [summary for summary in summaries if summary is not None]
        if not summaries:
            return None
        distinct = None
        if all(summary[2] is not None for summary in summaries):
            distinct = np.unique(np.concatenate([summary[2] for summary in summaries]))
            distinct = distinct if distinct.size <= MAX_EXACT_NODES else None
        return (min(summary[0] for summary in summaries),
                max(summary[1] for summary in summaries), distinct)

    @classmethod
    def spanning(cls, summary):
        """The nodes for size factors with this :meth:`summary`."""
        if summary is None:
            return cls(np.ones(1), True)
        if summary[2] is not None:
            return cls(summary[2], True)
        low, high = np.log(summary[0]), np.log(summary[1])
        half_width = (high - low) / 2
        b = np.pi / half_width
        n_nodes = int(min(MAX_NODES, np.ceil(37.0 / np.log(b + np.sqrt(1 + b * b))) + 4))
        points = np.cos(np.pi * np.arange(n_nodes) / (n_nodes - 1))
        center = (high + low) / 2
        return cls(np.exp(center + half_width * points), False, center, half_width)

    @property
    def size(self):
        return self.values.size

    @cached_property
    def barycentric(self):
        """The nodes' positions ``(log value - center) / half_width`` in [-1, 1] and the signs
        of their barycentric weights (halved at both ends), (M,) each."""
        points = (np.log(self.values) - self.center) / self.half_width
        sign = (-1.0) ** np.arange(self.size)
        sign[[0, -1]] *= 0.5
        return points, sign

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
        points, sign = self.barycentric
        difference = t[:, None] - points[None, :]
        hit = difference == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = sign / difference
        terms = np.where(hit.any(axis=1, keepdims=True), hit.astype(float), terms)
        out[positive] = terms / terms.sum(axis=1, keepdims=True)
        return out


def log_zero_probability(mu, phi):
    """``log NB(0; mu, phi)``: ``-log1p(phi mu) / phi``, and ``-mu`` where phi = 0 (Poisson).
    Broadcasts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(phi > 0, -np.log1p(phi * mu) / np.where(phi > 0, phi, 1.0), -mu)


def zero_remainder(mu, phi, s):
    """``s mu - log1p(phi s mu) / phi`` (0 where phi = 0): what the all-zero terms of a row
    with size factor ``s`` subtract from the Poisson ones. Broadcasts."""
    a = phi * mu * s
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(phi > 0, (a - np.log1p(a)) / np.where(phi > 0, phi, 1.0), 0.0)


def split_zero_terms(mu, phi, node_values):
    """``sum_d log NB(0; s mu_kd, phi_kd)`` of a row with size factor ``s``, as
    ``-s linear[k] + sum_m L_m(s) at_nodes[k, m]`` (``L`` the interpolation weights at the
    size nodes): the linear part exact for every row, the rest interpolated.

    A cell whose ``phi s mu`` stays at most 1 over the nodes puts ``-s mu`` in the
    linear part and only :func:`zero_remainder`, at most a third of it, at the nodes
    (all of a Poisson cell is linear). A cell where ``phi s mu`` is larger puts its
    whole term ``-log1p(phi s mu) / phi`` at the nodes: its remainder would be nearly
    ``s mu`` itself, and the difference of the two would lose ``log10(phi s mu)``
    digits (millions of nats at ``mu = 1e21``).

    Returns
    -------
    linear : ndarray of shape (K,)
    at_nodes : ndarray of shape (K, M)
    """
    split = phi * mu * node_values.max() <= 1.0
    linear = np.where(split, mu, 0.0).sum(axis=1)
    # One component at a time: (D, M) temporaries rather than (K, D, M); each cell's own form.
    at_nodes = np.stack([
        zero_remainder(mu_k[split_k, None], phi_k[split_k, None], node_values).sum(axis=0)
        + log_zero_probability(mu_k[~split_k, None] * node_values, phi_k[~split_k, None]).sum(axis=0)
        for mu_k, phi_k, split_k in zip(mu, phi, split)])
    return linear, at_nodes


#: Entries processed at a time while indexing, to bound temporary memory.
_INDEX_BLOCK = 2**20


def direct_table_pays(column_max, n_entries):
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


def entry_summary(X):
    """What the choice of pair table needs from ``X``: per-feature maxima, whether
    all entries are integers, and the number of entries. Maxima and counts
    combine over blocks of rows (max, all, sum), so dask input is summarized
    block by block."""
    entries, _ = _entries(X)
    column_max = X.max(axis=0).toarray().ravel() if sp.issparse(X) else X.max(axis=0, initial=0.0)
    column_max = column_max.astype(np.float64)
    integer = all(np.all(np.mod(entries[block], 1.0) == 0) for block in _entry_blocks(entries.size))
    return column_max, integer, entries.size


def direct_table(column_max):
    """The consecutive table: values ``1 .. column_max[d]`` of each feature, then the zero pair."""
    counts = column_max.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    values = np.concatenate([np.arange(1, c + 1, dtype=float) for c in counts] + [[0.0]])
    value_feature = np.concatenate([np.repeat(np.arange(counts.size), counts), [0]])
    return PairTable(values, value_feature.astype(np.intp), counts.size, offsets)


def distinct_pairs(X):
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
    return sorted_features[new], sorted_values[new].astype(np.float64), index


def sorted_table(features, values, n_features):
    """The general table: the distinct pairs among the given ones, sorted by feature then value."""
    order = np.lexsort((values, features))
    features, values = features[order], values[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (features[1:] != features[:-1]) | (values[1:] != values[:-1])
    return PairTable(values[new], features[new].astype(np.intp), n_features)


def index_against(X, pairs):
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


def index_entries(X):
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
    column_max, integer, n_entries = entry_summary(X)
    if integer and direct_table_pays(column_max, n_entries):
        pairs = direct_table(column_max)
        value_index = index_against(X, pairs)
    else:
        features, values, index = distinct_pairs(X)
        pairs = PairTable(values, features.astype(np.intp), X.shape[1])
        value_index = _index_like(X, index)
    return value_index, pairs


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


#: Non-zero entries per block of the E-step with size factors: (block, K) work arrays stay in cache.
_ENTRY_BLOCK = 4096


@cache
def compiled_kernels():
    """The compiled kernels (:mod:`skem._negbin_compiled`) if numba is installed, its JIT is
    enabled and the environment variable ``SKEM_NUMBA`` is not ``0``; else None (the NumPy
    path). The first call imports numba and loads (or, once per machine, compiles and
    caches) the kernels; ``compiled_kernels.cache_clear()`` makes the next call decide again."""
    if os.environ.get("SKEM_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None
    if numba.config.DISABLE_JIT:  # the kernels' bit casts exist only in compiled code
        return None
    from . import _negbin_compiled

    return _negbin_compiled


_UNSET = object()


def max_factors(phi_mu, size_factors):
    """How many factors ``1 + phi s mu`` (at most the largest one, ``u``) a product that starts
    below 2 can take without overflow: ``floor(1000 / (log2(u) + 1))``, 0 if ``u > 2**500``."""
    largest = 1.0 + float(np.max(phi_mu, initial=0.0)) * float(np.max(size_factors, initial=0.0))
    bits = np.log2(largest) + 1.0
    return int(1000 // bits) if bits <= 500 else 0


def stored_entries(value_index, pairs):
    """The stored entries of a chunk in CSR form: row pointer, features and pair indices.
    Sparse input gives its own arrays; dense input its non-zero entries."""
    if sp.issparse(value_index):
        return value_index.indptr, value_index.indices, value_index.data
    rows, columns = np.nonzero(pairs.values[value_index])
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=value_index.shape[0]))])
    return indptr, columns, value_index[rows, columns]


def entry_log_terms(rows, columns, values, size_factors, phi_mu):
    """The NumPy path's per-entry terms with size factors: ``x log(1 + phi s mu)`` and
    ``x s / (1 + phi s mu)`` at each stored entry and component.

    Parameters
    ----------
    rows, columns, values : ndarray of shape (nnz,)
        Row, feature and count of each stored entry.
    size_factors : ndarray of shape (n,)
    phi_mu : ndarray of shape (D, K)
        ``phi_kd mu_kd``, laid out by feature.

    Returns
    -------
    log_terms, slope_terms : ndarray of shape (nnz, K)
    """
    entry_size = size_factors[rows]
    size_x = entry_size * values
    log_terms = np.empty((values.size, phi_mu.shape[1]))
    slope_terms = np.empty_like(log_terms)
    # Block by block, so that the (block, K) temporaries stay in cache: a few elementwise
    # passes per entry and component, bound by memory traffic otherwise.
    for start in range(0, values.size, _ENTRY_BLOCK):
        block = slice(start, start + _ENTRY_BLOCK)
        u = np.take(phi_mu, columns[block], axis=0)
        u *= entry_size[block, None]
        u += 1.0
        # log(u) rather than log1p: its error is absolute (~1e-16), which is all a sum of
        # log-likelihood terms needs, and numpy's log is vectorized where log1p is not.
        np.log(u, out=log_terms[block])
        log_terms[block] *= values[block, None]
        np.divide(size_x[block, None], u, out=slope_terms[block])
    return log_terms, slope_terms


@dataclass(frozen=True)
class OffsetEntries:
    """The stored entries of one chunk with size factors ``s``, and what the log-density and
    the statistics share: per-entry terms of ``1 + phi s mu`` at the current parameters.

    :meth:`log_density` gives each row's sum of its entries' pair terms minus
    ``x log(1 + phi s mu)``; :meth:`statistics` the pair histogram, the count sums
    and the M-step's slope ``sum_i w q x s / (1 + phi s mu)``. ``node_weights``
    are the rows' interpolation weights at the size nodes (n, M).

    ``kernels`` is the compiled module (:func:`compiled_kernels`), which reads
    each entry once per pass and keeps nothing per entry, or None for NumPy,
    which keeps the per-entry terms (two (nnz, K) arrays) from
    :meth:`of` for both passes.
    """

    indptr: np.ndarray
    columns: np.ndarray
    pair_index: np.ndarray
    pairs: PairTable
    size_factors: np.ndarray
    phi_mu: np.ndarray
    node_weights: np.ndarray
    kernels: object = None
    # NumPy only: per-entry terms (nnz, K) and the entries' rows.
    log_terms: np.ndarray | None = None
    slope_terms: np.ndarray | None = None
    rows: np.ndarray | None = None

    @classmethod
    def of(cls, phi_mu_by_feature, chunk, kernels=_UNSET):
        """The entries of ``chunk`` (a :class:`skem.negbin.NegBinData` with size factors) given
        ``phi * means`` laid out (D, K); ``kernels`` defaults to :func:`compiled_kernels`."""
        kernels = compiled_kernels() if kernels is _UNSET else kernels
        s = chunk.size_factors
        indptr, columns, pair_index = stored_entries(chunk.value_index, chunk.pairs)
        phi_mu = np.ascontiguousarray(phi_mu_by_feature, dtype=np.float64)
        entries = cls(indptr, columns, pair_index, chunk.pairs, s, phi_mu, chunk.nodes.weights(s),
                      kernels)
        if kernels is not None:
            return entries
        rows = np.repeat(np.arange(s.size), np.diff(indptr))
        log_terms, slope_terms = entry_log_terms(rows, columns, chunk.pairs.values[pair_index], s,
                                                 phi_mu)
        return replace(entries, log_terms=log_terms, slope_terms=slope_terms, rows=rows)

    def log_density(self, pair_table):
        """``sum_e pair_table[k, pair_e] - x_e log(1 + phi_mu[d_e, k] s_i)`` over each row's
        entries (n, K), and the rows' totals of counts (n,)."""
        n, values = self.size_factors.size, self.pairs.values
        if self.kernels is not None:
            out, totals = np.empty((n, self.phi_mu.shape[1])), np.empty(n)
            self.kernels.entry_sums(
                self.indptr, self.columns, self.pair_index, values, self.size_factors, self.phi_mu,
                np.ascontiguousarray(pair_table.T), max_factors(self.phi_mu, self.size_factors),
                out, totals)
            return out, totals
        # Row sums: products with the (n, nnz) matrix of ones in CSR order (entries in row order).
        by_row = sp.csr_matrix((np.ones(self.columns.size), np.arange(self.columns.size), self.indptr),
                               shape=(n, self.columns.size))
        by_pair = sp.csr_matrix((np.ones(self.columns.size), self.pair_index, self.indptr),
                                shape=(n, self.pairs.size))
        return (np.asarray(by_pair @ pair_table.T) - by_row @ self.log_terms,
                by_row @ values[self.pair_index])

    def statistics(self, weighted_resp):
        """Given the rows' ``w_i q_ik`` (n, K): the pair histogram ``sum w q [entry is pair u]``
        (K, U), the count sums ``sum w q x`` (K, D) and the slope ``sum w q x s / (1 + phi s
        mu)`` (K, D) of the tangent that bounds the ``x log1p(phi s mu)`` terms."""
        n_features, K = self.phi_mu.shape
        if self.kernels is not None:
            hist, slope = np.zeros((self.pairs.size, K)), np.zeros((n_features, K))
            self.kernels.entry_statistics(
                self.indptr, self.columns, self.pair_index, self.pairs.values, self.size_factors,
                self.phi_mu, np.ascontiguousarray(weighted_resp), hist, slope)
            hist = np.ascontiguousarray(hist.T)
            return hist, self.pairs.per_feature(hist * self.pairs.values), slope.T
        n_entries = self.columns.size
        by_pair = sp.csr_matrix((np.ones(n_entries), self.pair_index, self.indptr),
                                shape=(self.size_factors.size, self.pairs.size))
        hist = np.asarray(by_pair.T @ weighted_resp).T
        values = np.take(weighted_resp, self.rows, axis=0)
        values *= self.slope_terms
        # Column sums: a product with a (D, nnz) matrix of ones, one entry per column.
        by_feature = sp.csc_matrix((np.ones(n_entries), self.columns, np.arange(n_entries + 1)),
                                   shape=(n_features, n_entries))
        return hist, self.pairs.per_feature(hist * self.pairs.values), np.asarray(by_feature @ values).T


#: ``log(2 pi) / 2``.
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def stirling_error(n):
    """``log Gamma(n + 1) - (n + 1/2) log n + n - log(2 pi) / 2`` for ``n > 0`` (0 at infinity):
    the remainder of Stirling's formula, small where the terms it replaces are huge (Loader's
    ``stirlerr``)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore"):
        inverse = 1.0 / n
    inverse2 = inverse * inverse
    # The asymptotic series: its first omitted term is below 1e-17 relative for n > 15.
    out = inverse * (1 / 12 - inverse2 * (1 / 360 - inverse2 * (
        1 / 1260 - inverse2 * (1 / 1680 - inverse2 / 1188))))
    small = n <= 15.0
    if small.any():
        m = n[small]
        # Terms of order n log n <= 45 here: absolute error ~1e-14.
        out[small] = gammaln(m + 1.0) - (m + 0.5) * np.log(m) + m - _LOG_SQRT_2PI
    return out


def count_part(x, phi, stirling_x=None, stirling_r=None):
    """The part of ``log NB(x; mu, phi) - log NB(0; mu, phi)`` that does not depend on the mean,
    in Loader's saddle-point form (R's ``dbinom_raw``, ``dnbinom_mu``): with ``r = 1/phi``,
    ``n = x + r`` and ``e`` the Stirling error (:func:`stirling_error`) ::

        e(n) - e(r) - e(x) + r log1p(x / r) - [log1p(x / r) + log(2 pi x)] / 2

    for ``x > 0``; at ``phi = 0``, ``x - e(x) - log(2 pi x) / 2``. Each term is of the order of
    the result or smaller. Broadcasts. ``stirling_x`` and ``stirling_r``: ``e(x)`` and ``e(r)``
    if known (a pair table has them per value and per cell, cheaper than per pair)."""
    x, phi = np.asarray(x, float), np.asarray(phi, float)
    log1p_x_phi = np.log1p(x * phi)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 / phi
        # r log1p(x / r) is x at r = infinity, where e(n) - e(r) vanishes.
        out = np.where(phi > 0, log1p_x_phi * r, x)
    out += stirling_error(x + r)
    out -= stirling_error(r) if stirling_r is None else stirling_r
    out -= stirling_error(x) if stirling_x is None else stirling_x
    out -= 0.5 * (log1p_x_phi + np.log(x)) + _LOG_SQRT_2PI
    return out


def mean_part(x, mu, phi):
    """The rest of ``log NB(x; mu, phi) - log NB(0; mu, phi)`` (:func:`count_part`):
    ``x log(m / x)`` for ``x > 0``, with ``m = mu (1 + phi x) / (1 + phi mu)`` the mean of
    ``x`` given ``x + 1/phi``. It is of order ``(x - mu) / (1 + phi mu)`` near ``x = mu``,
    where ``log1p`` of the relative difference ``(m - x) / x``, computed directly, keeps its
    digits (the lgamma form leaves it to cancel from terms of order ``x log x``). Broadcasts."""
    x, mu, phi = np.broadcast_arrays(*(np.asarray(a, float) for a in (x, mu, phi)))
    inverse = 1.0 / (1.0 + phi * mu)
    relative = (mu - x) * inverse / x
    log_ratio = np.log1p(relative)
    # Where m << x, 1 + relative has lost the digits of m / x: the ratio itself.
    far = relative < -0.5
    if far.any():
        with np.errstate(divide="ignore"):
            log_ratio[far] = np.log(mu[far] * (1.0 + x[far] * phi[far]) * inverse[far] / x[far])
    return x * log_ratio


def log_ratio_to_zero(x, mu, phi):
    """``log NB(x; mu, phi) - log NB(0; mu, phi) = B(x, phi) - log x! + x log(mu / (1 + phi mu))``
    without cancellation at any ``x``: :func:`count_part` plus :func:`mean_part` (0 at
    ``x = 0``). Broadcasts."""
    x, mu, phi = np.broadcast_arrays(*(np.asarray(a, float) for a in (x, mu, phi)))
    out = np.zeros(x.shape)
    nonzero = x > 0
    x, mu, phi = x[nonzero], mu[nonzero], phi[nonzero]
    out[nonzero] = count_part(x, phi) + mean_part(x, mu, phi)
    return out


def compiled_e_step(kernels, chunk, phi_mu, pair_table, log_weights, linear, at_nodes):
    """The E-step of a chunk with size factors in one compiled pass
    (:func:`skem._negbin_compiled.e_step_sums`): each row's log-density, responsibilities and
    statistics, with no (n, K) or per-entry array.

    Parameters
    ----------
    kernels : module
        :func:`compiled_kernels`.
    chunk : skem.negbin.NegBinData
        Rows with size factors.
    phi_mu : ndarray of shape (D, K)
        ``phi * means`` laid out by feature (C-contiguous).
    pair_table : ndarray of shape (U, K)
        The per-pair terms of the log-density (C-contiguous).
    log_weights, linear : ndarray of shape (K,)
    at_nodes : ndarray of shape (K, M)
        The zero terms (:func:`split_zero_terms`).

    Returns
    -------
    hist : ndarray of shape (K, U)
        ``sum_i w q [entry is pair u]``.
    slope : ndarray of shape (K, D)
        ``sum_i w q x s / (1 + phi s mu)`` over the stored entries.
    node_mass : ndarray of shape (K, M)
    size_sum, resp_sum : ndarray of shape (K,)
    loglik : float
        ``sum_i w_i log p(x_i)``.
    """
    indptr, columns, pair_index = stored_entries(chunk.value_index, chunk.pairs)
    nodes = chunk.nodes
    points, signs = nodes.barycentric
    n_features, K = phi_mu.shape
    feature_work = np.zeros((n_features, 2 * K))
    feature_work[:, :K] = phi_mu
    pair_work = np.zeros((chunk.pairs.size, 2 * K))
    pair_work[:, :K] = pair_table
    node_mass, size_sum, resp_sum = np.zeros((K, nodes.size)), np.zeros(K), np.zeros(K)
    s = np.ascontiguousarray(chunk.size_factors, dtype=np.float64)
    loglik = kernels.e_step_sums(
        indptr, columns, pair_index, chunk.pairs.values, s,
        np.ascontiguousarray(chunk.weights, dtype=np.float64), feature_work, pair_work,
        max_factors(phi_mu, s), np.ascontiguousarray(log_weights, dtype=np.float64),
        np.ascontiguousarray(linear, dtype=np.float64), np.ascontiguousarray(at_nodes.T),
        bool(nodes.exact), nodes.values, points, signs, float(nodes.center),
        float(nodes.half_width), node_mass, size_sum, resp_sum)
    hist, slope = np.ascontiguousarray(pair_work[:, K:].T), np.ascontiguousarray(feature_work[:, K:].T)
    return hist, slope, node_mass, size_sum, resp_sum, float(loglik)

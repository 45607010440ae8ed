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

from dataclasses import dataclass, field, fields, replace
from functools import partial
from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln
from sklearn.utils.validation import check_array, check_is_fitted, check_non_negative, validate_data

from ._base import BaseMixture
from ._compat import Interval, StrOptions
from ._dask import import_dask, is_dask_array, row_weights
from ._em import AdditiveStats, RowData, chunk_rows
from ._mixture import MixtureModel, init_sample, mixing_weights
from ._params import param
from ._rows import check_sample_weight
from ._negbin_kernels import (
    MEAN_FLOOR,
    PHI_MAX,
    PHI_MIN,
    TIED_AXES,
    OffsetEntries,
    PairTable,
    SizeNodes,
    compiled_e_step,
    compiled_kernels,
    direct_table,
    direct_table_pays,
    distinct_pairs,
    entry_summary,
    index_against,
    index_entries,
    log_ratio_to_zero,
    log_zero_probability,
    sorted_table,
    split_zero_terms,
)
from ._negbin_mstep import offset_m_step, solve_dispersion
from ._negbin_start import projected_kmeans_labels

__all__ = ["NegBinMixture", "NegBinModel"]



@dataclass(frozen=True, eq=False)
class NegBinParams:
    weights: np.ndarray = param("simplex")  # (K,)
    means: np.ndarray = param("positive", floor=MEAN_FLOOR)  # (K, D)
    dispersion: np.ndarray = param("nonnegative", floor=PHI_MIN, ceiling=PHI_MAX)  # (K, D), phi >= 0
    # Tables of these parameters on a data set's shared tables (the pair table, the size
    # nodes): computed by the first chunk of a pass, reused by the others. Parameters are
    # immutable, so an entry never goes stale.
    _tables: dict = field(default_factory=dict, init=False, repr=False)

    def table(self, name, source, compute):
        """``compute()``, memoized per ``name`` and ``source`` object (kept alive with it)."""
        cached = self._tables.get(name)
        if cached is None or cached[0] is not source:
            cached = self._tables[name] = (source, compute())
        return cached[1]


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
    the current parameters (see :func:`~skem._negbin_mstep.offset_m_step`).
    """

    size_sum: np.ndarray
    node_mass: np.ndarray
    entry_slope: np.ndarray | float
    nodes: SizeNodes  # shared
    _shared = ("nodes",)


@dataclass(frozen=True)
class NegBinData(RowData):
    """Counts, held as the index of each entry's (feature, value) pair.

    ``value_index`` has the layout of the count matrix: a dense int32 array of
    the same shape, or a CSR matrix whose data are int32 pair indices into
    ``pairs``. The counts themselves are not kept beside it (``X`` rebuilds a
    chunk's from the pairs' values), so a fit holds 8 bytes per stored entry
    of sparse input.
    """

    value_index: np.ndarray | sp.csr_matrix = None
    pairs: PairTable = None
    size_factors: np.ndarray | None = None  # (n,), None: all ones (no size factors)
    nodes: SizeNodes | None = None
    _shared = ("pairs", "nodes")

    def take(self, rows):
        return replace(
            self,
            **{f.name: _take_rows(getattr(self, f.name), rows) for f in fields(self)
               if f.name not in self._shared and getattr(self, f.name) is not None},
        )

    @property
    def X(self):
        """The counts (float64), rebuilt from the pair indices."""
        index = self.value_index
        if sp.issparse(index):
            return sp.csr_matrix((self.pairs.values[index.data], index.indices, index.indptr),
                                 shape=index.shape)
        return self.pairs.values[index]

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


def _take_rows(values, rows):
    """``values[rows]``; a slice of a CSR matrix shares its entries (views of ``data`` and
    ``indices``) instead of copying them, as scipy's slicing does."""
    if not (sp.issparse(values) and isinstance(rows, slice) and rows.step in (None, 1)):
        return values[rows]
    start, stop, _ = rows.indices(values.shape[0])
    stop = max(start, stop)
    indptr = values.indptr[start:stop + 1]
    low, high = indptr[0], indptr[-1]
    data, indices = values.data[low:high], values.indices[low:high]
    chunk = sp.csr_matrix((data, indices, indptr - low), shape=(stop - start, values.shape[1]))
    # scipy copies views of less than half their base ("pruning"): set them afterwards.
    chunk.data, chunk.indices = data, indices
    return chunk


def _block_pairs(model, X, weights):
    """Distinct (feature, value) pairs of one dask block."""
    features, values, _ = distinct_pairs(model.check_block(X))
    return features, values


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
    return log_ratio_to_zero(x, mean, phi) + log_zero_probability(mean, phi)


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
        value_index, pairs = index_entries(X)
        size_factors = self.row_size_factors(X, size_factors)
        if size_factors is not None and np.all(size_factors == 1.0):
            size_factors = None  # the model without size factors, and its exact M-step
        return NegBinData(
            weights=weights, value_index=value_index, pairs=pairs,
            size_factors=size_factors,
            nodes=None if size_factors is None else SizeNodes.of(size_factors),
        )

    def row_size_factors(self, X, given=None):
        """The size factor of each row of ``X``: ``given``, or by this model's rule (None: none)."""
        if given is not None:
            return np.asarray(given, dtype=np.float64)
        if self.size_factors == "library":
            totals = np.asarray(X.sum(axis=1, dtype=np.float64)).reshape(-1)
            return totals / self.library_reference
        if self.size_factors == "given":
            raise ValueError(
                "This NegBinMixture was fitted with explicit size_factors: pass size_factors= "
                "for these rows too."
            )
        return None

    def work_per_row(self, data):
        index = data.value_index
        entries_per_row = index.nnz / max(data.n_rows, 1) if sp.issparse(index) else index.shape[1]
        if data.size_factors is not None:
            if compiled_kernels() is not None:
                # The E-step keeps nothing per entry (the chunk's entries are views of the
                # data's), but the start rebuilds each chunk's counts (float64 values and
                # int32 features, and a transformed copy): about 3 words per entry. Per row,
                # the (n, K) arrays of scoring and the interpolation weights at the size nodes.
                return int(4 * self.n_components + data.nodes.size + 4 + 10 * entries_per_row)
            # Per non-zero entry: three (nnz, K) arrays of OffsetEntries (log terms, slope
            # terms, and the slope's weighted copy) and about ten vectors; per row, the
            # interpolation weights at the size nodes.
            return int(4 * self.n_components + entries_per_row * (3 * self.n_components + 10)
                       + data.nodes.size)
        return int(4 * self.n_components + 3 * entries_per_row)

    # Dask blocks share one pair table, built from all blocks in the first pass.

    def check_block(self, X):
        X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32], ensure_min_samples=0)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model is expecting {self.n_features}."
            )
        return _check_counts(X)

    def summarize_block(self, X):
        X = self.check_block(X)
        size_factors = self.row_size_factors(X)
        return entry_summary(X), None if size_factors is None else SizeNodes.summary(size_factors)

    def dask_layout(self, summaries, map_blocks):
        """The pair table of all blocks and, with library size factors, the size nodes of all rows
        (the nodes an in-memory fit of the same rows would use)."""
        entries = [entry_summary for entry_summary, _ in summaries]
        column_max = np.max([summary[0] for summary in entries], axis=0)
        n_entries = sum(summary[2] for summary in entries)
        nodes = None
        if self.size_factors == "library":
            nodes = SizeNodes.spanning(SizeNodes.combine([size for _, size in summaries]))
        if all(summary[1] for summary in entries) and direct_table_pays(column_max, n_entries):
            return direct_table(column_max), nodes
        # The general table needs the distinct pairs of all blocks: a second pass.
        pairs = map_blocks(partial(_block_pairs, self))
        return sorted_table(
            np.concatenate([features for features, _ in pairs]),
            np.concatenate([values for _, values in pairs]),
            self.n_features,
        ), nodes

    def prepare_block(self, X, weights, layout):
        X = self.check_block(X)
        pairs, nodes = layout
        return NegBinData(
            weights=weights, value_index=index_against(X, pairs), pairs=pairs,
            size_factors=None if nodes is None else self.row_size_factors(X), nodes=nodes,
        )

    # -------------------------------------------------------------- kernels

    @staticmethod
    def pair_log_terms(params, pairs, with_offsets=False):
        """``log NB(x_u; mu, phi) - log NB(0; mu, phi)`` of each pair (K, U): the part of an
        entry's log-pmf that depends on its (feature, value) pair. With size factors, the
        part free of ``s`` (``B - log x! + x log mu``). 0 at value 0."""
        phi, mu = params.dispersion, params.means
        if not with_offsets:
            # Its terms of order x log x cancel: the saddle-point form keeps every digit.
            return pairs.log_ratio_to_zero(mu, phi)
        with np.errstate(divide="ignore"):
            log_mu = np.log(mu)
        values = pairs.values
        table = values * log_mu[:, pairs.feature] - gammaln(values + 1.0)
        if np.any(phi > 0):
            table += pairs.rising(phi)
        return table

    def _has_entry_terms(self, params, chunk):
        """Whether the chunk's non-zero entries have terms ``log(1 + phi s mu)``: not without
        size factors, at the start (no parameters) or for a Poisson mixture (every phi fixed
        at 0)."""
        return chunk.size_factors is not None and params is not None and (
            self.estimates_dispersion or np.any(params.dispersion > 0))

    def chunk_work(self, params, chunk):
        """The chunk's per-entry terms of the size factors (they serve both the log-likelihood
        and the statistics), or None (see :meth:`_has_entry_terms`)."""
        if not self._has_entry_terms(params, chunk):
            return None
        phi_mu = params.table("phi_mu", None, lambda: (params.dispersion * params.means).T.copy())
        return OffsetEntries.of(phi_mu, chunk)

    def fused_e_step(self, params, chunk):
        """With size factors and the compiled kernels, the E-step in one compiled pass over the
        chunk (:func:`~skem._negbin_kernels.compiled_e_step`), which computes the same sums as
        :meth:`estimate_log_prob` and :meth:`accumulate` (the reference in the tests)."""
        kernels = compiled_kernels() if self._has_entry_terms(params, chunk) else None
        if kernels is None:
            return None
        mu, phi = params.means, params.dispersion
        phi_mu = params.table("phi_mu", None, lambda: (phi * mu).T.copy())
        pair_table = params.table(
            ("pairs by pair", True), chunk.pairs,
            lambda: np.ascontiguousarray(self.pair_log_terms(params, chunk.pairs, True).T))
        linear, at_nodes = params.table("zero_terms", chunk.nodes,
                                        lambda: split_zero_terms(mu, phi, chunk.nodes.values))
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        hist, slope, node_mass, size_sum, resp_sum, loglik = compiled_e_step(
            kernels, chunk, phi_mu, pair_table, log_weights, linear, at_nodes)
        pairs = chunk.pairs
        stats = NegBinStats(
            resp_sum, pairs.per_feature(hist * pairs.values),
            hist if self.estimates_dispersion else 0.0, pairs,
            OffsetStats(size_sum, node_mass, slope, chunk.nodes))
        return stats, loglik

    def estimate_log_prob(self, params, chunk, entries):
        """``sum_d log NB(x_id; s_i mu_kd, phi_kd)``, (n, K): one product with the pair table
        (every term that depends on an entry's pair), per-component constants for the zero
        entries and, with size factors, the rows' ``s`` terms (non-zero entries: ``entries``;
        zero terms: at the size nodes). The tables that depend only on the parameters are
        computed once per pass (:meth:`NegBinParams.table`)."""
        phi, mu = params.dispersion, params.means
        with_offsets = chunk.size_factors is not None
        table = params.table(("pairs", with_offsets), chunk.pairs,
                             lambda: self.pair_log_terms(params, chunk.pairs, with_offsets))
        if entries is None:
            log_prob = np.asarray(chunk.entry_pairs @ table.T)
        else:
            # The pair terms and the non-zero entries' log1p(phi s mu), in one pass over them.
            log_prob, x_total = entries.log_density(table)
        if not with_offsets:
            zero_terms = params.table("zero", None, lambda: log_zero_probability(mu, phi).sum(axis=1))
            return log_prob + zero_terms
        s = chunk.size_factors
        if entries is None:
            x_total = np.asarray(chunk.X.sum(axis=1)).reshape(-1)
        # s = 0 only for rows that are all 0 (library size factors), whose x log s is 0.
        log_s = np.log(np.where(s > 0, s, 1.0))
        linear, at_nodes = params.table("zero_terms", chunk.nodes,
                                        lambda: split_zero_terms(mu, phi, chunk.nodes.values))
        log_prob += (x_total * log_s)[:, None] - s[:, None] * linear
        if entries is not None:
            log_prob += entries.node_weights @ at_nodes.T
        return log_prob

    def accumulate(self, params, chunk, weighted_resp, entries):
        pairs = chunk.pairs
        if entries is None:
            # One product gives the histogram of the pairs; the count sums follow from it.
            hist = np.asarray(chunk.entry_pairs.T @ weighted_resp).T
            x_sum = pairs.per_feature(hist * pairs.values)
            slope = 0.0
        else:
            hist, x_sum, slope = entries.statistics(weighted_resp)
        offsets = 0.0
        if chunk.size_factors is not None:
            s = chunk.size_factors
            node_weights = chunk.nodes.weights(s) if entries is None else entries.node_weights
            offsets = OffsetStats(weighted_resp.T @ s, weighted_resp.T @ node_weights, slope,
                                  chunk.nodes)
        value_hist = hist if self.estimates_dispersion else 0.0
        return NegBinStats(weighted_resp.sum(axis=0), x_sum, value_hist, pairs, offsets)

    def m_step(self, stats, params):
        resp_sum = stats.resp_sum
        total = resp_sum.sum()
        # An empty component keeps a tiny weight, its previous means and dispersions.
        weights, occupied = mixing_weights(resp_sum)
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

        if with_offsets and params is not None and (self.estimates_dispersion
                                                    or np.any(params.dispersion > 0)):
            # (Estimated dispersions that are all 0 are Poisson parameters of this M-step too.)
            tied = TIED_AXES[self.dispersion] if self.estimates_dispersion else None
            means, dispersion = offset_m_step(
                stats.x_sum, offsets.entry_slope, offsets.node_mass, offsets.nodes.values,
                stats.value_hist, stats.pairs, params.means, params.dispersion, occupied, tied)
        elif not self.estimates_dispersion:
            dispersion = np.full(means.shape, float(self.dispersion))
        elif with_offsets:
            # The start: the exact solution that ignores the size factors.
            with np.errstate(divide="ignore", invalid="ignore"):
                plain = stats.x_sum / resp_sum[:, None]
            plain = np.maximum(np.where(occupied[:, None], plain, means), MEAN_FLOOR)
            dispersion = np.maximum(
                solve_dispersion(stats.resp_sum, stats.x_sum, stats.value_hist, stats.pairs, plain,
                                 TIED_AXES[self.dispersion], None), PHI_MIN
            )
        else:
            dispersion = solve_dispersion(
                stats.resp_sum, stats.x_sum, stats.value_hist, stats.pairs, means,
                TIED_AXES[self.dispersion],
                None if params is None else params.dispersion,
            )
        return NegBinParams(weights, means, dispersion)

    # -------------------------------------------------------- initialization

    def initialize(self, data, random_state, controls):
        if self.means_init is None and self.init_params == "kmeans" and data.n_rows >= self.n_components:
            # The default: k-means on principal components of residuals under the size factors
            # (skem._negbin_start), so that depth does not decide the start.
            sample = data.take(init_sample(data.n_rows, random_state))
            step = chunk_rows(data, self, controls.chunk_size)
            labels = projected_kmeans_labels(
                (sample.X, sample.size_factors, sample.weights),
                ((chunk.X, chunk.size_factors) for chunk in data.chunks(step)),
                self.n_components, random_state,
            )
            resp = np.zeros((data.n_rows, self.n_components))
            resp[np.arange(data.n_rows), labels] = 1.0
            params = self.params_from_resp(data, resp, controls.chunk_size)
        elif self.means_init is None:
            # The mixture's generic starts on init_features; "kmeans-raw" is its k-means.
            generic = replace(self, init_params="kmeans") if self.init_params == "kmeans-raw" else self
            params = MixtureModel.initialize(generic, data, random_state, controls)
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
        X = data.take(rows).X
        if sp.issparse(X):  # rebuilt from the pair indices: transform its values in place
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

    def sample_component(self, params, k, n, random_state, size_factors=None):
        # Row i's means are s_i * means_[k] (s = 1 without size factors).
        mu = np.broadcast_to(params.means[k], (n, self.n_features))
        if size_factors is not None:
            mu = size_factors[:, None] * mu
        phi = np.broadcast_to(params.dispersion[k], mu.shape)
        poisson = random_state.poisson(mu)
        with np.errstate(divide="ignore"):
            size = np.where(phi > 0, 1.0 / np.where(phi > 0, phi, 1.0), 1.0)
        negbin = random_state.negative_binomial(size, size / (size + mu))
        return np.where(phi > 0, negbin, poisson).astype(float)

    # ------------------------------------------------------------ SQUAREM

    @property
    def fixed_fields(self):
        # A known dispersion is not extrapolated.
        return () if self.estimates_dispersion else ("dispersion",)


def library_reference(X, sample_weight):
    """The (weighted) mean row total of ``X``: library size factors are row totals over it.

    Weighted by multiplicity, as weights are repeated rows. Dask ``X`` (and
    weights) take one pass over the blocks.
    """
    if is_dask_array(X):
        reference = _dask_mean_row_total(X, sample_weight)
    else:
        totals = np.asarray(X.sum(axis=1, dtype=np.float64)).reshape(-1)
        reference = float(np.average(totals, weights=check_sample_weight(sample_weight, X)))
    if not reference > 0:
        raise ValueError('size_factors="library" needs rows with counts; all rows are 0.')
    return reference


def _dask_mean_row_total(X, sample_weight):
    """The weighted mean row total of dask ``X`` (one pass over its blocks)."""
    dask = import_dask()
    weights = row_weights(sample_weight, X)
    totals = X.map_blocks(_row_totals, drop_axis=1, dtype=np.float64, meta=np.empty((0,)))
    weighted_sum, weight_sum = dask.compute((totals * weights).sum(), weights.sum())
    return float(weighted_sum / weight_sum) if weight_sum > 0 else 0.0


def _row_totals(block):
    return np.asarray(block.sum(axis=1, dtype=np.float64)).reshape(-1)


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
        Number of starts. With more than one, each candidate runs 20 EM steps
        on one common sample of at most 10 000 rows, and the best there is
        fitted on all rows (``n_init`` short runs plus one fit; see :meth:`fit`).
    init_params : {"kmeans", "kmeans-raw", "k-means++", "random", "random_from_data"}, \
            default="kmeans"
        How the starting responsibilities are chosen: k-means (30 seeds) on
        the top 30 principal components of ``log1p`` of the counts divided by
        the size factors (so depth does not decide the start; see the user
        guide); k-means (3 seeds) on ``log1p(X)`` of the raw counts (the
        earlier default); k-means++ seeding on ``log1p(X)``; random
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
        Runs the ``n_init`` candidate starts in parallel through joblib; results are
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
        Explicit values given to :meth:`fit` (``size_factors=``, an array of
        shape (n_samples,), positive) override this; every method that takes
        rows (``score``, ``score_samples``, ``predict``, ``predict_proba``,
        ``bic``, ``aic``) then takes them for its rows too, and :meth:`sample`
        for the drawn rows. Routed by scikit-learn's metadata routing:
        ``set_fit_request(size_factors=True)``, ``set_score_request(...)``.

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
            StrOptions(set(TIED_AXES)),
        ],
        "means_init": ["array-like", None],
        "weights_init": ["array-like", None],
        "size_factors": [StrOptions({"none", "library"})],
        "init_params": [StrOptions({"kmeans", "kmeans-raw", "k-means++", "random", "random_from_data"})],
    }
    _row_metadata = {"size_factors": "positive"}

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

    def component_means(self):
        """The fitted means as a table: one row per component, one column per feature.

        Returns
        -------
        means : pandas.DataFrame of shape (n_components, n_features)
            ``means_``, with columns named by ``feature_names_in_`` (``x0``,
            ``x1``... when the training data had no feature names).
        """
        check_is_fitted(self)
        return self._component_frame(self.means_)

    def component_dispersions(self):
        """The fitted dispersions as a table: one row per component, one column per feature.

        Returns
        -------
        dispersions : pandas.DataFrame of shape (n_components, n_features)
            ``dispersion_``, labelled as in :meth:`component_means`.
        """
        check_is_fitted(self)
        return self._component_frame(self.dispersion_)

    def _component_frame(self, values):
        import pandas as pd

        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = [f"x{d}" for d in range(self.n_features_in_)]
        # The fitted components, whatever n_components has been set to since.
        index = pd.RangeIndex(values.shape[0], name="component")
        return pd.DataFrame(values, index=index, columns=pd.Index(names, name="feature"))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        return tags

    def _validate_X(self, X, reset):
        # float32 counts (AnnData's .X) are read as they are, not copied to float64: the model
        # keeps only pair indices, and its tables are float64.
        X = validate_data(
            self, X, reset=reset, accept_sparse="csr", dtype=[np.float64, np.float32],
            ensure_min_samples=1,
        )
        return _check_counts(X)

    def _build_model(self, X, sample_weight, size_factors=None):
        self._check_n_samples(X)
        K, D = self.n_components, X.shape[1]
        means_init = weights_init = None
        if self.means_init is not None:
            means_init = np.asarray(self.means_init, dtype=float)
            if means_init.shape != (K, D):
                raise ValueError(
                    f"means_init must have shape (n_components, n_features) = ({K}, {D}), "
                    f"got {means_init.shape}."
                )
            if not np.all(np.isfinite(means_init)) or np.any(means_init < 0):
                raise ValueError("means_init must be finite and non-negative.")
        if self.weights_init is not None:
            weights_init = np.asarray(self.weights_init, dtype=float)
            if weights_init.shape != (K,):
                raise ValueError(
                    f"weights_init must have shape (n_components,) = ({K},), got "
                    f"{weights_init.shape}."
                )
            if np.any(weights_init < 0) or not np.isclose(weights_init.sum(), 1.0):
                raise ValueError("weights_init must be non-negative and sum to 1.")
        mode, reference = self.size_factors, 1.0
        if size_factors is not None:
            mode = "given"
        elif mode == "library":
            # Size factors relative to the mean row total, so that means_ are counts of an
            # average row.
            reference = library_reference(X, sample_weight)
        return NegBinModel(
            n_components=K, init_params=self.init_params, n_features=D,
            dispersion=self.dispersion, means_init=means_init, weights_init=weights_init,
            size_factors=mode, library_reference=reference,
        )

    def _get_fitted_params(self):
        return NegBinParams(self.weights_, self.means_, self.dispersion_)

    def _set_fitted_params(self, params):
        self.weights_ = params.weights
        self.means_ = params.means
        self.dispersion_ = params.dispersion

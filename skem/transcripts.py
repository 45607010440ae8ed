"""Transcript abundance from RNA-seq reads by EM (kallisto / salmon style).

Only this model's math lives here: :class:`TranscriptModel` is the engine's
model (:class:`skem._em.EMModel`), and :class:`TranscriptQuantifier` the
scikit-learn estimator that builds it from its parameters and publishes the
abundances. The EM loop, SQUAREM, restarts and chunking come from
:mod:`skem._em` and :mod:`skem._base`; many samples at once are
:func:`skem.samples.quantify_samples`.

Model. Transcripts ``k = 1..M`` have effective lengths ``l_k``. A read picks
transcript ``k`` with probability ``nu_k`` (nucleotide abundance) and a start
uniformly among its ``l_k`` positions, so with ``X[n, k]`` the compatibility
(0/1) or alignment likelihood of read ``n`` on transcript ``k`` ::

    p(read n) = sum_k nu_k A[n, k],        A[n, k] = X[n, k] / l_k.

Numerics. The E-step is two sparse products over the rows (reads or
equivalence classes): ``Z = A @ theta`` and ``c = theta * (A.T @ (w / Z))``,
where ``c`` are the expected reads per transcript, ``w`` the row weights and
``theta = nu`` (EM, MAP) or ``exp(E[log nu])`` (variational Bayes). That is
O(nnz) per iteration with no ``(n, M)`` dense array and no Python loop over
rows. Each row of ``A`` is divided by its largest entry once (its log is
added back to the log-likelihood), so tiny alignment likelihoods cannot
underflow.

Parameters are the expected read counts ``c`` (without prior pseudo-counts),
the quantity kallisto and salmon iterate on. The M-step is the E-step's
counts for all three methods; they differ only in ``theta`` and the
objective:

- ML: ``nu = c / sum(c)``; objective = log-likelihood.
- MAP (``prior = a > 0``): ``nu = (c + a) / sum(c + a)``; objective adds
  ``log Dirichlet(nu; a + 1)``.
- VBEM: ``q(nu) = Dirichlet(c + a)``, ``theta = exp(psi(c + a) - psi(sum(c + a)))``;
  objective = evidence lower bound ``sum_n w_n log Z_n - KL(q(nu) || Dirichlet(a))``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed
from scipy.special import digamma, gammaln, xlogy
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_non_negative, validate_data

from ._base import BaseEM, lazy_on_dask
from ._compat import Interval, StrOptions
from ._em import AdditiveStats, EMModel, RowData, run_em
from ._rows import compress_rows

__all__ = [
    "TranscriptQuantifier",
    "effective_lengths",
    "effective_lengths_from_pmf",
    "equivalence_classes",
    "fragment_log_pmf",
]

#: Expected read counts below this many reads are set to zero at the end of a fit (as kallisto
#: and salmon do). A read is the smallest positive row weight, so that the estimates do not
#: depend on the scale of the weights.
TRUNCATE_BELOW = 1e-8
#: Fragment lengths are modelled up to at least this (kallisto's and salmon's maximum).
MAX_FRAGMENT_LENGTH = 1000
#: SQUAREM extrapolates log(counts + PACK_FLOOR reads): counts far below one read do not steer
#: the step.
PACK_FLOOR = 1e-10


# ----------------------------------------------------------------- kernels


def effective_lengths(lengths, fragment_length=None, fragment_length_sd=None):
    """Effective transcript lengths: the expected number of fragment start positions.

    kallisto's and salmon's definition: with a fragment-length distribution
    ``P`` on ``1..F``, truncated at the transcript length ``L`` and
    renormalized (a fragment longer than its transcript cannot be sequenced) ::

        eff_length(L) = sum_{f <= min(L, F)} P(f) (L - f + 1) / sum_{f <= min(L, F)} P(f)
                      = L + 1 - E[f | f <= L].

    ``P`` is a normal density with mean ``fragment_length`` and standard
    deviation ``fragment_length_sd``, discretized on ``1..F`` with
    ``F = max(1000, ceil(mean + 10 sd))`` (1000 is salmon's and kallisto's
    maximum fragment length). Without a standard deviation every fragment
    has the mean length (the limit ``sd -> 0``): ``eff_length =
    max(L - mean + 1, 1)``. The result is at least 1, never decreases with
    ``L`` and grows by at most 1 per base, so transcripts shorter than the
    fragments get small effective lengths instead of their full length.

    Parameters
    ----------
    lengths : array-like of shape (n_transcripts,)
        Transcript lengths (> 0).
    fragment_length : float, default=None
        Mean fragment length; None returns ``lengths`` unchanged.
    fragment_length_sd : float, default=None
        Standard deviation of the fragment length; None or 0 means every
        fragment has the mean length. Needs ``fragment_length``.

    Returns
    -------
    eff_lengths : ndarray of shape (n_transcripts,)
        Effective lengths, each >= 1.

    Raises
    ------
    ValueError
        For lengths that are not finite and positive (naming the first such
        transcript by its index), a non-positive mean, a negative standard
        deviation, or a standard deviation without a mean.

    Examples
    --------
    >>> from skem.transcripts import effective_lengths
    >>> effective_lengths([1000, 300, 50], fragment_length=200)
    array([801., 101.,   1.])
    """
    lengths = np.asarray(lengths, dtype=float)
    if lengths.ndim != 1:
        raise ValueError("lengths must be a 1-D array of finite positive numbers.")
    bad = ~np.isfinite(lengths) | (lengths <= 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"lengths must be finite and positive; transcript {k} has length {lengths[k]:g}."
        )
    if fragment_length is None:
        if fragment_length_sd is not None:
            raise ValueError("fragment_length_sd needs fragment_length (the mean).")
        return lengths.copy()
    if not (np.isfinite(fragment_length) and fragment_length > 0):
        raise ValueError(f"fragment_length must be positive, got {fragment_length!r}.")
    if fragment_length_sd is not None and not (
        np.isfinite(fragment_length_sd) and fragment_length_sd >= 0
    ):
        raise ValueError(f"fragment_length_sd must be >= 0, got {fragment_length_sd!r}.")
    if not fragment_length_sd or fragment_length_sd < 1e-6:
        # (below 1e-6 the discretized normal is a point mass up to rounding; its square overflows)
        return np.maximum(lengths - fragment_length + 1.0, 1.0)
    return effective_lengths_from_pmf(lengths, fragment_log_pmf(fragment_length, fragment_length_sd))


def fragment_log_pmf(mean, sd):
    """Log of the discretized normal fragment-length distribution, unnormalized.

    Parameters
    ----------
    mean, sd : float
        Mean (> 0) and standard deviation (> 0) of the fragment length.

    Returns
    -------
    log_pmf : ndarray of shape (F + 1,)
        ``log P(f)`` up to a constant for ``f = 0..F`` (``-inf`` at 0), with
        ``F = max(1000, ceil(mean + 10 sd))``.
    """
    support = max(MAX_FRAGMENT_LENGTH, int(np.ceil(mean + 10 * sd)))
    frag = np.arange(support + 1, dtype=float)
    log_pmf = -0.5 * ((frag - mean) / sd) ** 2
    log_pmf[0] = -np.inf
    return log_pmf


def effective_lengths_from_pmf(lengths, log_pmf):
    """Effective lengths ``L + 1 - E[f | f <= L]`` for any fragment-length distribution.

    Parameters
    ----------
    lengths : ndarray of shape (n_transcripts,)
        Transcript lengths (> 0).
    log_pmf : ndarray of shape (F + 1,)
        ``log P(f)`` up to a constant for ``f = 0..F`` (``-inf`` where ``P`` is 0).

    Returns
    -------
    eff_lengths : ndarray of shape (n_transcripts,)
        Effective lengths, each >= 1 (a length below every possible fragment gets 1).
    """
    support = log_pmf.shape[0] - 1
    # starts[L] = E[L - f | f <= L] = eff_length(L) - 1 for L = 1..F, by the recursion
    # starts[L] = q(L) (starts[L - 1] + 1) with q(L) = P(f <= L - 1) / P(f <= L): each
    # fragment that fits L - 1 has one more start on L. The cumulative masses are kept in
    # log space (far below the mean they underflow, their ratio does not), and the
    # recursion adds small numbers to small numbers, so the tail keeps full precision.
    # Lengths that no fragment fits (P(f <= L) = 0) have q = 0: one start.
    log_mass = np.logaddexp.accumulate(log_pmf)
    with np.errstate(invalid="ignore"):
        kept = np.exp(log_mass[1:-1] - log_mass[2:])
    kept = np.nan_to_num(kept, nan=0.0).tolist()
    starts = [0.0, 0.0]  # index 0 unused; a transcript of length 1 has one start whatever P
    for q in kept:  # F steps (1000 for the usual means), once per fit
        starts.append(q * (starts[-1] + 1.0))
    starts = np.asarray(starts)
    upto = np.clip(np.floor(lengths), 1, support).astype(np.intp)
    return np.maximum(lengths - upto + 1.0 + starts[upto], 1.0)


def equivalence_classes(X, sample_weight=None, *, return_inverse=False):
    """Collapse identical rows of a reads x transcripts matrix into equivalence classes.

    Exact (rows are compared entry by entry, not by hash alone) and
    O(nnz log nnz) for sparse input. Fitting the classes with their counts
    as ``sample_weight`` gives the same model as fitting the reads.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_reads, n_transcripts)
        Compatibility (0/1) or alignment likelihood of each read on each transcript.
    sample_weight : array-like of shape (n_reads,), default=None
        Read multiplicities; ones if None.
    return_inverse : bool, default=False
        Also return the class of each read.

    Returns
    -------
    classes : csr_matrix of shape (n_classes, n_transcripts)
        The distinct rows, in an order that depends only on their content
        (so not on the order of the reads).
    counts : ndarray of shape (n_classes,)
        Summed weight of the reads in each class.
    inverse : ndarray of shape (n_reads,)
        ``classes[inverse[i]]`` equals ``X[i]``; only if ``return_inverse``.

    Examples
    --------
    >>> import numpy as np
    >>> from skem.transcripts import equivalence_classes
    >>> X = np.array([[1, 1, 0], [0, 1, 0], [1, 1, 0]])
    >>> classes, counts = equivalence_classes(X)
    >>> classes.toarray(), counts
    (array([[0., 1., 0.],
           [1., 1., 0.]]), array([1., 2.]))
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=float)
        if sample_weight.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight must have shape ({X.shape[0]},), got {sample_weight.shape}."
            )
    classes, counts, inverse = compress_rows(X, sample_weight)
    classes = sp.csr_matrix(classes)
    return (classes, counts, inverse) if return_inverse else (classes, counts)


def _length_scaled_rows(X, eff_lengths, divide_by_length):
    """``A = X / eff_lengths`` (columns), each row divided by its largest entry.

    Returns
    -------
    A : csr_matrix of shape (n, M)
    log_scale : ndarray of shape (n,)
        Log of each row's divisor (0 for rows without entries).
    empty : ndarray of shape (n,)
        1.0 for rows without a positive entry (reads compatible with no transcript), else 0.0.
    """
    A = sp.csr_matrix(X, dtype=np.float64, copy=True)
    A.eliminate_zeros()
    A.sort_indices()
    if divide_by_length:
        A.data /= eff_lengths[A.indices]
    nnz = np.diff(A.indptr)
    assigned = nnz > 0
    row_max = np.zeros(A.shape[0])
    if A.nnz:
        row_max[assigned] = np.maximum.reduceat(A.data, A.indptr[:-1][assigned])
    scale = np.where(assigned, row_max, 1.0)
    A.data /= np.repeat(scale, nnz)
    return A, np.log(scale), (~assigned).astype(np.float64)


def _e_step_kernel(A, AT, weights, log_scale, empty, theta):
    """Expected reads per transcript and the summed log normalizer of the rows.

    Parameters
    ----------
    A : csr_matrix of shape (n, M)
        Row-scaled compatibilities divided by effective lengths.
    AT : csr_matrix of shape (M, n)
        ``A.T`` in CSR form.
    weights : ndarray of shape (n,)
        Positive row weights.
    log_scale, empty : ndarray of shape (n,)
        See ``_length_scaled_rows``.
    theta : ndarray of shape (M,)
        Per-transcript factor of the posterior (``nu``, or ``exp(E log nu)``).

    Returns
    -------
    counts : ndarray of shape (M,)
        ``sum_n w_n q_nk`` with ``q_nk = theta_k A_nk / Z_n``, ``Z = A @ theta``.
    log_norm_sum : float
        ``sum_n w_n (log Z_n + log_scale_n)``: -inf if a row compatible with
        some transcript has ``Z_n = 0``; rows compatible with none contribute 0.
    """
    Z = A @ theta
    Z += empty  # rows compatible with nothing: Z = 1, log Z = 0, and no entries to pass on
    if Z.min() > 0:
        ratio = weights / Z
        counts = AT @ ratio
        counts *= theta
        np.log(Z, out=Z)
    else:  # some read is impossible under theta (a zero abundance where it needs one)
        ratio = np.divide(weights, Z, out=np.zeros_like(Z), where=Z > 0)
        counts = theta * (AT @ ratio)
        with np.errstate(divide="ignore"):
            np.log(Z, out=Z)
    Z += log_scale
    Z *= weights
    # pairwise summation, never BLAS: the result does not depend on the thread count
    return counts, float(Z.sum())


def _posterior_mean(counts, prior):
    """``nu``: the ML / MAP estimate or the posterior mean, ``(c + a) / sum(c + a)``."""
    alpha = counts + prior
    return alpha / alpha.sum()


def _log_dirichlet_density(nu, pseudo_counts):
    """``log Dirichlet(nu; pseudo_counts + 1)``; 0 when there are no pseudo-counts."""
    a = np.broadcast_to(pseudo_counts, nu.shape)
    return float(
        gammaln(np.sum(a + 1.0)) - np.sum(gammaln(a + 1.0)) + np.sum(xlogy(a, nu))
    )


def _dirichlet_kl(gamma, alpha):
    """``KL(Dirichlet(gamma) || Dirichlet(alpha))``."""
    alpha = np.broadcast_to(alpha, gamma.shape)
    gamma_sum = gamma.sum()
    expected_log = digamma(gamma) - digamma(gamma_sum)
    return float(
        gammaln(gamma_sum) - np.sum(gammaln(gamma))
        - gammaln(alpha.sum()) + np.sum(gammaln(alpha))
        + np.sum((gamma - alpha) * expected_log)
    )


def _tau(counts, eff_lengths):
    """Transcript (molecule) fractions ``tau_k ∝ counts_k / l_k``."""
    per_base = counts / eff_lengths
    return per_base / per_base.sum()


# --------------------------------------------------------- engine objects


@dataclass(frozen=True)
class TranscriptParams:
    counts: np.ndarray  # (M,) expected reads per transcript, without prior pseudo-counts


@dataclass(frozen=True)
class TranscriptStats(AdditiveStats):
    counts: np.ndarray  # (M,) sum_n w_n q_nk


@dataclass(frozen=True)
class TranscriptData(RowData):
    """Reads or classes as row-scaled, length-divided compatibilities (see ``_length_scaled_rows``).

    ``AT`` is ``A.T`` stored as CSR, so the E-step's transposed product does
    not rebuild a transposed matrix on every pass; a chunk takes its columns.
    """

    A: sp.csr_matrix = None
    AT: sp.csr_matrix = None
    log_scale: np.ndarray = None
    empty: np.ndarray = None

    @classmethod
    def from_rows(cls, weights, A, log_scale, empty):
        return cls(weights=weights, A=A, AT=sp.csr_matrix(A.T), log_scale=log_scale, empty=empty)

    @property
    def assigned(self):
        return self.empty == 0

    def take(self, rows):
        """The given rows (a slice or an index array); ``AT`` by its columns."""
        return TranscriptData(
            weights=self.weights[rows], A=self.A[rows], AT=self.AT[:, rows],
            log_scale=self.log_scale[rows], empty=self.empty[rows],
        )

    def select(self, rows):
        """The rows where the boolean mask ``rows`` is true."""
        return TranscriptData.from_rows(
            self.weights[rows], self.A[rows], self.log_scale[rows], self.empty[rows]
        )


# ``eq=False``: the fields are arrays, whose ``==`` has no single truth value.
@dataclass(frozen=True, kw_only=True, eq=False)
class TranscriptModel(EMModel):
    """The engine's model of one quantification: transcript lengths, prior and method.

    Built by :class:`TranscriptQuantifier` from its validated parameters; every
    hook is a pure function of its arguments (see :class:`skem._em.EMModel`).

    Parameters
    ----------
    eff_lengths : ndarray of shape (n_transcripts,)
        Effective lengths (> 0).
    lengths : ndarray of shape (n_transcripts,)
        Transcript lengths, reported in the abundance table only.
    prior : ndarray of shape () or (n_transcripts,)
        Dirichlet pseudo-counts (>= 0; > 0 for VBEM).
    method : {"em", "vbem"}
        Maximum likelihood / MAP EM, or variational Bayes EM.
    x_includes_length : bool
        Whether the rows already include the ``1 / eff_length`` factor.
    rel_tol, rel_tol_cutoff : float
        The field's stopping rule (see :meth:`params_converged`).
    read_weight : float
        The weight of one read (the smallest positive row weight): the cutoff of the
        stopping rule, the truncation of tiny counts and SQUAREM's floor are in reads
        of this weight, so the estimates do not depend on the scale of the weights.
    init_params : {"uniform", "random"}
        Equal starting counts, or counts drawn from a flat Dirichlet.
    min_iter : int
        Engine option: no stopping rule applies before this many iterations.
    """

    eff_lengths: np.ndarray
    lengths: np.ndarray
    prior: np.ndarray
    method: str = "em"
    x_includes_length: bool = False
    rel_tol: float = 0.0
    rel_tol_cutoff: float = 0.01
    read_weight: float = 1.0
    init_params: str = "uniform"
    min_iter: int = 50

    @property
    def n_outputs(self):
        """Columns of ``predict_proba``: one per transcript."""
        return self.eff_lengths.shape[0]

    # ---------------------------------------------------------------- data

    def prepare(self, X, weights):
        A, log_scale, empty = _length_scaled_rows(
            X, self.eff_lengths, divide_by_length=not self.x_includes_length
        )
        return TranscriptData.from_rows(weights, A, log_scale, empty)

    def work_per_row(self, data):
        return 4 + 2 * data.A.nnz // max(1, data.n_rows)

    # ------------------------------------------------------------------ EM

    def initialize(self, data, random_state, controls):
        total = float(np.sum(data.weights, where=data.assigned))
        if not total > 0:
            raise ValueError(
                "No read is compatible with any transcript (every row of X with a positive "
                "weight is all zeros): there is nothing to fit."
            )
        M = self.n_outputs
        if self.init_params == "random":
            return TranscriptParams(total * random_state.dirichlet(np.ones(M)))
        return TranscriptParams(np.full(M, total / M))

    def theta(self, params):
        """The per-transcript factor of the E-step's posterior (``nu`` or ``exp(E log nu)``)."""
        alpha = params.counts + self.prior
        if self.method == "vbem":
            return np.exp(digamma(alpha) - digamma(alpha.sum()))
        return alpha / alpha.sum()

    def e_step(self, params, chunk):
        counts, log_norm_sum = _e_step_kernel(
            chunk.A, chunk.AT, chunk.weights, chunk.log_scale, chunk.empty, self.theta(params)
        )
        return TranscriptStats(counts), log_norm_sum

    def m_step(self, stats, params):
        return TranscriptParams(stats.counts)

    def log_prior(self, params):
        if self.method == "vbem":
            prior = np.broadcast_to(self.prior, params.counts.shape)
            return -_dirichlet_kl(params.counts + prior, prior)
        if not np.any(self.prior > 0):  # maximum likelihood: no Dirichlet density at all
            return 0.0
        return _log_dirichlet_density(_posterior_mean(params.counts, self.prior), self.prior)

    def params_converged(self, old, new):
        """The field's rule: no count above ``rel_tol_cutoff`` moved by more than ``rel_tol``."""
        new, old = new.counts, old.counts
        settled = (np.abs(new - old) <= self.rel_tol * new) | (
            new <= self.rel_tol_cutoff * self.read_weight
        )
        return bool(settled.all())

    def pack(self, params):
        return np.log(params.counts + PACK_FLOOR * self.read_weight)

    def unpack(self, vector, params):
        total = params.counts.sum()
        shift = float(vector.max())  # NaN if any coordinate is
        if not math.isfinite(shift):
            return params
        # counts ∝ exp(vector) - PACK_FLOOR, computed relative to the largest coordinate
        floor = math.exp(min(math.log(PACK_FLOOR * self.read_weight) - shift, 700.0))
        counts = np.exp(vector - shift)
        counts -= floor
        np.maximum(counts, 0.0, out=counts)
        scale = counts.sum()
        if not (np.isfinite(scale) and scale > 0):
            return params
        return TranscriptParams(counts * (total / scale))

    # ----------------------------------------------------- inference on rows

    def score_samples(self, params, chunk):
        nu = _posterior_mean(params.counts, self.prior)
        Z = chunk.A @ nu
        with np.errstate(divide="ignore"):
            return np.log(Z) + chunk.log_scale

    def predict_proba(self, params, chunk):
        """Sparse posteriors (as sparse as the rows); all-zero rows stay zero, never NaN."""
        nu = _posterior_mean(params.counts, self.prior)
        A = chunk.A
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        values = A.data * nu[A.indices]
        Z = np.bincount(rows, weights=values, minlength=A.shape[0])
        values = np.divide(values, Z[rows], out=np.zeros_like(values), where=Z[rows] > 0)
        proba = sp.csr_matrix((values, A.indices.copy(), A.indptr.copy()), shape=A.shape)
        proba.eliminate_zeros()
        return proba

    def n_parameters(self, params):
        return self.n_outputs - 1  # the abundances sum to 1


# ------------------------------------------------------------- end of a fit


def _read_weight(X, sample_weight):
    """The weight of one read: the smallest positive weight of a row compatible with some
    transcript (1 for dask input, whose weights are not in memory)."""
    if not isinstance(sample_weight, np.ndarray):
        return 1.0
    compatible = np.asarray((X != 0).sum(axis=1)).reshape(-1) > 0
    weights = sample_weight[compatible & (sample_weight > 0)]
    return float(weights.min()) if weights.size else 1.0


def _truncate(params, read_weight):
    """Zero counts below TRUNCATE_BELOW reads (of weight ``read_weight``) and rescale the others
    to keep the total."""
    small = params.counts < TRUNCATE_BELOW * read_weight
    if not small.any() or small.all():
        return params
    counts = np.where(small, 0.0, params.counts)
    return TranscriptParams(counts * (params.counts.sum() / counts.sum()))


def _bootstrap_one(model, controls, params, data):
    """The truncated counts of one refit on resampled rows, started from the point estimate.

    A module-level function of the model (not a method of the estimator), so that
    parallel workers receive the model and the rows only.
    """
    start = TranscriptParams(params.counts * (data.weights.sum() / params.counts.sum()))
    return _truncate(run_em(model, data, start, controls).params, model.read_weight).counts


class TranscriptQuantifier(BaseEM):
    """Transcript abundances from RNA-seq reads by EM, as kallisto and salmon estimate them.

    Each read comes from transcript ``k`` with probability ``nu_k`` (the
    fraction of nucleotides, i.e. of reads) and starts uniformly among the
    ``eff_length_k`` positions of the transcript. ``X[n, k]`` says how
    compatible read ``n`` is with transcript ``k``: 1/0 from a
    pseudo-alignment, or an alignment likelihood. Rows may be single reads
    or equivalence classes of reads, whose read counts are passed as
    ``sample_weight``.

    Parameters
    ----------
    lengths : array-like of shape (n_transcripts,), default=None
        Transcript lengths. None means all transcripts have the same length
        (then only relative abundances of reads matter and ``tau_ == nu_``).
    fragment_length : float, default=None
        Mean fragment length, for the effective lengths (see
        :func:`effective_lengths`); None uses the lengths themselves.
    fragment_length_sd : float, default=None
        Standard deviation of the fragment length; None or 0 means fixed-length fragments.
    effective_lengths : array-like of shape (n_transcripts,), default=None
        Known effective lengths (for example salmon's ``EffectiveLength``);
        they override ``lengths`` and ``fragment_length`` for the model.
    x_includes_length : bool, default=False
        Whether ``X`` already includes the ``1 / eff_length`` factor, as the
        weights of salmon's ``--dumpEqWeights`` dump do. The E-step then uses
        ``nu_k X[n, k]`` as it is; effective lengths still convert ``nu_``
        into ``tau_`` and TPM.
    transcript_names : array-like of str of shape (n_transcripts,), default=None
        Names for ``abundance_``; by default the column names of a DataFrame
        ``X``, else ``"t0", "t1", ...``.
    prior : float or array-like of shape (n_transcripts,), default=0.0
        Dirichlet pseudo-counts per transcript (in reads). 0 with
        ``method="em"`` is maximum likelihood; > 0 gives the MAP estimate
        with ``method="em"`` and is the prior of ``method="vbem"`` (salmon's
        default is 0.01).
    method : {"em", "vbem"}, default="em"
        Plain EM (maximum likelihood or MAP), or variational Bayes EM
        (salmon's default inference), which needs ``prior > 0``.
    rel_tol : float, default=0.0
        The field's stopping rule, off by default: ``rel_tol=0.01`` stops,
        as kallisto and salmon do, when no transcript with more than
        ``rel_tol_cutoff`` expected reads changes by more than ``rel_tol``
        (relative) in one iteration. It stops before the optimum (transcripts
        without reads are still decaying; see Notes), so it is an option for
        reproducing those tools, not the default. 0 disables it.
    rel_tol_cutoff : float, default=0.01
        Expected reads above which a transcript is checked by ``rel_tol``.
    min_iter : int, default=50
        No stopping rule applies before this many iterations (kallisto runs
        at least 50 rounds, salmon 100). Without it the rules stop at the
        start where EM moves slowly from there.
    n_bootstraps : int, default=0
        Bootstrap replicates: the class counts are resampled multinomially
        and the model refitted from the point estimate; the standard
        deviations are reported in ``abundance_``.
    init_params : {"uniform", "random"}, default="uniform"
        Start from equal counts for every transcript (kallisto's start), or
        from counts drawn from a flat Dirichlet.
    n_init : int, default=1
        Number of starts (only useful with ``init_params="random"``). With
        more than one, each candidate runs 20 EM steps on one common sample
        of at most 10 000 rows, and the best there is fitted on all rows
        (``n_init`` short runs plus one fit; see :meth:`fit`).
    max_iter : int, default=10000
        Maximum number of EM iterations (kallisto's and salmon's cap).
    tol : float, default=1e-12
        Stop when the objective per read changes by less than
        ``tol * max(1, |objective|)`` in one iteration (a relative change:
        the objective per read is of the order of ``-log(eff_length)``).
        The default ends at the optimum (see Notes).
    accelerate : {"squarem", "none"} or None, default="squarem"
        SQUAREM extrapolation (in log counts, monotone); None (or "none") is plain EM.
    chunk_size : int, default=None
        Rows per E-step chunk; None sizes chunks automatically. The fit does
        not depend on it (up to rounding).
    n_jobs : int, default=None
        Parallel runs of the ``n_init`` starts and of the bootstraps; the
        result is bit-identical to a serial fit.
    warm_start : bool, default=False
        Start from the previous fit's counts.
    random_state : int, RandomState instance or None, default=None
        Seeds random starts and bootstrap resampling.
    verbose : int, default=0
        1 prints a line per run, 2 also the objective every ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between two printed lines.

    Attributes
    ----------
    est_counts_ : ndarray of shape (n_transcripts,)
        Expected number of reads from each transcript (kallisto's
        ``est_counts``, salmon's ``NumReads``); values below 1e-8 are 0.
    nu_ : ndarray of shape (n_transcripts,)
        Nucleotide abundances (fraction of reads): the ML or MAP estimate,
        or the variational posterior mean.
    tau_ : ndarray of shape (n_transcripts,)
        Transcript abundances (fraction of molecules),
        ``∝ est_counts_ / effective_lengths_`` (equal to ``∝ nu_ / effective_lengths_``
        for maximum likelihood; see Notes for priors).
    tpm_ : ndarray of shape (n_transcripts,)
        Transcripts per million, ``1e6 * tau_``.
    effective_lengths_ : ndarray of shape (n_transcripts,)
        Effective lengths used by the model.
    abundance_ : pandas.DataFrame
        kallisto's columns ``target_id, length, eff_length, est_counts, tpm``,
        plus ``est_counts_sd, tpm_sd`` when ``n_bootstraps > 0``.
    bootstrap_est_counts_ : ndarray of shape (n_bootstraps, n_transcripts)
        ``est_counts_`` of each bootstrap replicate.
    bootstrap_tpm_ : ndarray of shape (n_bootstraps, n_transcripts)
        ``tpm_`` of each bootstrap replicate.
    n_unassigned_ : float
        Reads (weighted) compatible with no transcript: they are left out of
        every estimate (and reported here, with a warning).
    converged_ : bool
        Whether the best run met a stopping rule.
    n_iter_ : int
        EM iterations of the best run (with SQUAREM, data passes).
    lower_bound_ : float
        Objective per read at the end of EM: log-likelihood, plus the log
        prior for MAP, or the evidence lower bound for VBEM (before the
        final truncation, which changes it by less than 1e-8 reads' worth).
    lower_bounds_ : ndarray of shape (`n_iter_`,)
        The objective after each EM iteration of the best run.
    n_features_in_ : int
        Number of transcripts seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Transcript names, when ``X`` was a DataFrame with string column names.

    See Also
    --------
    equivalence_classes : Collapse identical reads before fitting.
    effective_lengths : The effective-length computation.
    skem.io.read_salmon_eq_classes, skem.io.read_kallisto_tcc : Inputs from the field's tools.
    skem.io.write_kallisto_abundance, skem.io.write_salmon_quant : Outputs for tximport and friends.

    Notes
    -----
    EM updates: ``q_nk ∝ theta_k X_nk / l_k`` and ``c_k = sum_n w_n q_nk``,
    with ``theta = nu = (c + a) / sum(c + a)`` for EM/MAP and
    ``theta_k = exp(psi(c_k + a_k) - psi(sum(c + a)))`` for VBEM.
    The likelihood of a read is ``sum_k nu_k X_nk / l_k``; the constant
    factor of the two orientations of an unstranded read is left out.

    Stopping: after ``max_iter`` iterations (with a ConvergenceWarning), or
    after at least ``min_iter`` iterations when the objective per read
    changes by less than ``tol`` (relative) or, if ``rel_tol > 0``, by
    kallisto's and salmon's rule. The defaults (SQUAREM, ``tol=1e-12``,
    ``rel_tol=0``) end within 1e-9 (relative) of the maximum: on 2 x 10^6
    simulated reads of 3 000 transcripts, 188 iterations, where the field's
    rule (``rel_tol=0.01``) stops after 50 with 104 truly absent
    transcripts still above 1e-8 reads (the optimum: 8; the default: 9).
    Plain EM (``accelerate=None``) can creep along nearly flat directions
    of the likelihood for 10^5 iterations; use it with a looser ``tol`` or
    the field's rule.

    Priors: ``nu_`` includes the pseudo-counts (it is the MAP estimate or the
    posterior mean), while ``est_counts_``, ``tau_`` and ``tpm_`` are the
    reads assigned by the posterior, as salmon's ``NumReads`` and TPM are,
    so a prior alone never makes an absent transcript look expressed.

    Truncation: as kallisto and salmon do, expected counts below 1e-8 reads
    are set to zero at the end of the fit (and of each bootstrap), and the
    others rescaled to keep the total. Left in, such remnants make every
    absent transcript look expressed.

    Reads compatible with no transcript (all-zero rows) cannot be explained
    by the model: they are left out of the estimates and counted in
    ``n_unassigned_`` with a warning; their ``score_samples`` is ``-inf``,
    ``predict`` gives -1 and ``predict_proba`` a row of zeros. Nothing is
    ever NaN. A fit where no read is compatible with any transcript raises
    ValueError.

    Determinism: the same input gives bit-identical output whatever
    ``n_jobs`` and the number of BLAS threads (reductions never use BLAS;
    parallel work is seeded up front and collected in order).

    ``predict_proba`` returns a sparse matrix for sparse input (posteriors
    are as sparse as ``X``), a dense array for dense input.

    References
    ----------
    N. Bray, H. Pimentel, P. Melsted and L. Pachter (2016). Near-optimal
    probabilistic RNA-seq quantification. Nat. Biotechnol. 34:525-527.
    R. Patro, G. Duggal, M. Love, R. Irizarry and C. Kingsford (2017).
    Salmon provides fast and bias-aware quantification of transcript
    expression. Nat. Methods 14:417-419.

    Examples
    --------
    >>> import numpy as np
    >>> from skem import TranscriptQuantifier
    >>> X = np.array([[1, 1], [1, 0], [0, 1]])  # read classes x transcripts
    >>> model = TranscriptQuantifier(lengths=[1000, 2000]).fit(X, sample_weight=[60, 30, 10])
    >>> np.round(model.est_counts_, 2)
    array([85.21, 14.79])
    >>> list(model.abundance_.columns)
    ['target_id', 'length', 'eff_length', 'est_counts', 'tpm']
    """

    _parameter_constraints: dict = {
        **BaseEM._parameter_constraints,
        "lengths": ["array-like", None],
        "fragment_length": [Interval(Real, 0.0, None, closed="neither"), None],
        "fragment_length_sd": [Interval(Real, 0.0, None, closed="left"), None],
        "effective_lengths": ["array-like", None],
        "x_includes_length": ["boolean"],
        "transcript_names": ["array-like", None],
        "prior": [Interval(Real, 0.0, None, closed="left"), "array-like"],
        "method": [StrOptions({"em", "vbem"})],
        "rel_tol": [Interval(Real, 0.0, None, closed="left")],
        "rel_tol_cutoff": [Interval(Real, 0.0, None, closed="left")],
        "min_iter": [Interval(Integral, 0, None, closed="left")],
        "n_bootstraps": [Interval(Integral, 0, None, closed="left")],
        "init_params": [StrOptions({"uniform", "random"})],
    }

    def __init__(
        self,
        *,
        lengths=None,
        fragment_length=None,
        fragment_length_sd=None,
        effective_lengths=None,
        x_includes_length=False,
        transcript_names=None,
        prior=0.0,
        method="em",
        rel_tol=0.0,
        rel_tol_cutoff=0.01,
        min_iter=50,
        n_bootstraps=0,
        init_params="uniform",
        n_init=1,
        max_iter=10000,
        tol=1e-12,
        accelerate="squarem",
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
        self.lengths = lengths
        self.fragment_length = fragment_length
        self.fragment_length_sd = fragment_length_sd
        self.effective_lengths = effective_lengths
        self.x_includes_length = x_includes_length
        self.transcript_names = transcript_names
        self.prior = prior
        self.method = method
        self.rel_tol = rel_tol
        self.rel_tol_cutoff = rel_tol_cutoff
        self.min_iter = min_iter
        self.n_bootstraps = n_bootstraps

    # ------------------------------------------------------------- the model

    def _validate_X(self, X, reset):
        X = validate_data(
            self, X, reset=reset, accept_sparse="csr", dtype=np.float64, ensure_min_samples=1
        )
        check_non_negative(X, f"{type(self).__name__} (compatibilities must be >= 0)")
        return X

    def _build_model(self, X, sample_weight):
        M = X.shape[1]
        lengths, eff_lengths = self._resolve_lengths(M)
        prior = np.asarray(self.prior, dtype=float)
        if prior.ndim > 1 or (prior.ndim == 1 and prior.shape != (M,)):
            raise ValueError(f"prior must be a number or have shape (n_transcripts,) = ({M},).")
        if not np.all(np.isfinite(prior)) or np.any(prior < 0):
            raise ValueError("prior must be finite and >= 0.")
        if self.method == "vbem" and not np.all(prior > 0):
            raise ValueError(
                "method='vbem' needs a positive prior for every transcript "
                "(salmon's default is prior=0.01)."
            )
        if self.transcript_names is not None and len(self.transcript_names) != M:
            raise ValueError(
                f"transcript_names has {len(self.transcript_names)} entries for {M} transcripts."
            )
        return TranscriptModel(
            eff_lengths=eff_lengths,
            lengths=lengths,
            prior=prior,
            method=self.method,
            x_includes_length=self.x_includes_length,
            rel_tol=self.rel_tol,
            rel_tol_cutoff=self.rel_tol_cutoff,
            read_weight=_read_weight(X, sample_weight),
            init_params=self.init_params,
            min_iter=self.min_iter,
        )

    def _resolve_lengths(self, M):
        """Validated ``(lengths, effective_lengths)`` for ``M`` transcripts."""

        def as_lengths(values, name):
            values = np.asarray(values, dtype=float)
            if values.shape != (M,):
                raise ValueError(
                    f"{name} must have shape (n_transcripts,) = ({M},), got {values.shape}."
                )
            if not np.all(np.isfinite(values)) or np.any(values <= 0):
                raise ValueError(f"{name} must be finite and positive.")
            return values

        if self.effective_lengths is not None:
            eff = as_lengths(self.effective_lengths, "effective_lengths")
            lengths = eff if self.lengths is None else as_lengths(self.lengths, "lengths")
            return lengths, eff
        if self.lengths is None:
            if self.fragment_length is not None:
                raise ValueError("fragment_length needs lengths.")
            ones = np.ones(M)
            return ones, ones
        lengths = as_lengths(self.lengths, "lengths")
        return lengths, effective_lengths(lengths, self.fragment_length, self.fragment_length_sd)

    # ------------------------------------------------------- end of the fit

    def _finish_fit(self, params, data):
        params = _truncate(params, self._model.read_weight)
        self.n_unassigned_ = float(np.sum(data.weights, where=~data.assigned))
        if self.n_unassigned_ > 0:
            warnings.warn(
                f"{self.n_unassigned_:g} of {data.weights.sum():g} reads are compatible with no "
                "transcript; they are left out of the estimates (see n_unassigned_).",
                UserWarning,
                stacklevel=4,  # the user's call to fit
            )
        self.bootstrap_est_counts_, self.bootstrap_tpm_ = self._bootstrap(params, data)
        return params

    def _bootstrap(self, params, data):
        """Refit on multinomially resampled class counts; returns (est_counts, tpm) per replicate."""
        M = params.counts.shape[0]
        if self.n_bootstraps == 0:
            return np.empty((0, M)), np.empty((0, M))
        rng = check_random_state(self.random_state)
        data = data.select(data.assigned)
        n_reads = int(round(data.weights.sum()))
        if n_reads < 1:
            raise ValueError(
                f"n_bootstraps={self.n_bootstraps} needs at least one read to resample; the reads "
                f"compatible with some transcript weigh {data.weights.sum():g} in total."
            )
        probabilities = data.weights / data.weights.sum()
        resampled = rng.multinomial(n_reads, probabilities, size=self.n_bootstraps).astype(float)
        model, controls = self._model, self._controls()
        replicates = Parallel(n_jobs=self.n_jobs)(
            delayed(_bootstrap_one)(
                model, controls, params, replace(data.select(w > 0), weights=w[w > 0])
            )
            for w in resampled
        )
        counts = np.stack(replicates)
        tpm = np.stack([1e6 * _tau(c, model.eff_lengths) for c in counts])
        return counts, tpm

    # ------------------------------------------------------ fitted attributes

    def _get_fitted_params(self):
        return TranscriptParams(self.est_counts_)

    def _set_fitted_params(self, params):
        model = self._model
        self.est_counts_ = params.counts
        self.nu_ = _posterior_mean(params.counts, model.prior)
        self.tau_ = _tau(params.counts, model.eff_lengths)
        self.tpm_ = 1e6 * self.tau_
        self.effective_lengths_ = model.eff_lengths
        self.abundance_ = self._abundance_table()

    def _abundance_table(self):
        table = pd.DataFrame(
            {
                "target_id": self._names(),
                "length": self._model.lengths,
                "eff_length": self.effective_lengths_,
                "est_counts": self.est_counts_,
                "tpm": self.tpm_,
            }
        )
        if self.n_bootstraps > 0:
            ddof = 1 if self.n_bootstraps > 1 else 0
            table["est_counts_sd"] = self.bootstrap_est_counts_.std(axis=0, ddof=ddof)
            table["tpm_sd"] = self.bootstrap_tpm_.std(axis=0, ddof=ddof)
        return table

    def _names(self):
        if self.transcript_names is not None:
            return np.asarray(self.transcript_names, dtype=object)
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.array([f"t{k}" for k in range(self.n_features_in_)], dtype=object)

    # ------------------------------------------------------------ public API

    @lazy_on_dask("posterior")
    def predict_proba(self, X):
        """Posterior probability that each read comes from each transcript.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_reads, n_transcripts), or dask array
            Reads to evaluate.

        Returns
        -------
        posterior : ndarray or csr_matrix of shape (n_reads, n_transcripts)
            Sparse for sparse ``X``. Rows sum to 1, except rows of reads
            compatible with no transcript, which are all zero. A lazy dask
            array for dask ``X`` (its blocks sparse where ``X``'s are).
        """
        posterior = super().predict_proba(X)
        return posterior if sp.issparse(X) else posterior.toarray()

    @lazy_on_dask("labels")
    def predict(self, X):
        """Most probable transcript of origin of each read.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_reads, n_transcripts), or dask array
            Reads to label.

        Returns
        -------
        labels : ndarray of shape (n_reads,)
            Transcript index (the first one on ties), or -1 for reads
            compatible with no transcript. A lazy dask array for dask ``X``.
        """
        posterior = sp.csr_matrix(super().predict_proba(X))
        posterior.sort_indices()
        labels = np.asarray(posterior.argmax(axis=1)).reshape(-1)
        labels[posterior.getnnz(axis=1) == 0] = -1
        return labels

    @lazy_on_dask("values")
    def score_samples(self, X):
        """Log-likelihood of each read under the fitted abundances.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_reads, n_transcripts), or dask array
            Reads to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_reads,)
            ``log sum_k nu_k X_nk / eff_length_k``; ``-inf`` for reads that no
            transcript with positive abundance can explain. A lazy dask array
            for dask ``X``.
        """
        return super().score_samples(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        return tags

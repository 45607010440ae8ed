"""Motif finding as a mixture of position-specific letter distributions.

:class:`MotifModel` is the model's math, a small frozen object that the EM
engine (:mod:`skem._em`) fits; :class:`MotifMixture` is its scikit-learn
face. Letter codes, one-hot windows, reverse complements and windows cut from
long sequences are in :mod:`skem.sequences` (re-exported here); the
MEME-style start search is in :mod:`skem._motif_search`.

Encoding. Windows of width ``w`` over an alphabet of ``A`` letters are coded
as integers ``0..A-1`` (``-1`` for a missing letter: 'N' or another wildcard)
and expanded once into a one-hot matrix ``E`` of shape ``(n, w*A)``; a missing
letter is a row of zeros at its position. With ``L_k = log pwms[k]`` flattened
to length ``w*A``, the E-step is one matrix product, ``log p(x | k) = E @ L_k``
(a missing letter contributes ``log 1 = 0``, which marginalizes it exactly),
and the M-step's expected letter counts are another, ``(w q)^T @ E``.

Both strands (``revcomp=True``). The reverse complement of a one-hot window
is the same window with its positions reversed and its letters complemented:
a fixed permutation ``perm`` of the ``w*A`` columns, an involution. So
``log p(rc(x) | k) = E @ L_k[perm]``, and with the strand as a hidden state
the E-step is still one matrix product, over the columns ``[L_k..., L_k[perm]
for the motif components]``; the reverse-strand counts are folded back with
the same permutation (:func:`_state_log_prob`, :func:`_fold_states`).
"""

from __future__ import annotations

import string
import warnings
from dataclasses import dataclass
from functools import partial
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._base import BaseMixture
from ._compat import Interval, StrOptions
from ._dask import is_dask_array
from ._em import AdditiveStats, RowData
from ._mixture import MixtureModel, normalize_log_prob
from .sequences import __all__ as _SEQUENCE_NAMES
from .sequences import (
    SequenceWindows,
    encode_ragged,
    _as_codes,
    _check_alphabet,
    _code_dtype,
    _is_nucleotide,
    decode_sequences,
    encode_sequences,
    one_hot,
    reverse_complement,
    revcomp_permutation,
    sequence_windows,
)

# The sequence names lived here before skem.sequences; they stay importable from here.
__all__ = ["MotifMixture", *_SEQUENCE_NAMES]

#: Letter probabilities are kept at or above this (only SQUAREM's extrapolation can approach it).
PROB_FLOOR = 1e-300
#: The one-hot matrix is stored for all rows when it takes at most this many bytes, else built per chunk.
ONEHOT_BYTES = 2 * 2**30
#: log 2: the prior probability of each strand of a strand-aware component is 1/2.
LOG2 = float(np.log(2.0))
#: The default alphabet's letters: of strings, and of integer codes up to 3.
DNA = "ACGT"
#: With the default alphabet, integer codes 0..A-1 beyond DNA's four are letters named by these.
CODE_LETTERS = string.digits + string.ascii_uppercase


# ----------------------------------------------------------------- kernels


@dataclass(frozen=True)
class MotifParams:
    weights: np.ndarray  # (K,)
    pwms: np.ndarray  # (K, w, A), rows sum to 1


@dataclass(frozen=True)
class MotifStats(AdditiveStats):
    resp_sum: np.ndarray  # (K,)       sum_i w_i q_ik
    counts: np.ndarray  # (K, w * A)     sum_i w_i q_ik [x_i at position p is letter a]


@dataclass(frozen=True)
class MotifData(RowData):
    """Windows as letter codes (n, w) and, when it fits in memory, their one-hot matrix.

    ``onehot`` has shape (n, w * A), or (n, 0) when it is built chunk by chunk instead.
    """

    codes: np.ndarray = None
    onehot: np.ndarray = None
    n_letters: int = 0
    _shared = ("n_letters",)

    def expanded(self):
        """The one-hot matrix of these rows, (n, w * A)."""
        if self.onehot.shape[1]:
            return self.onehot
        return one_hot(self.codes, self.n_letters)


def _normalize(counts):
    """Rows of the last axis scaled to sum to 1."""
    return counts / counts.sum(axis=-1, keepdims=True)


def motif_m_step(resp_sum, counts, pseudocount, tied_background):
    """MAP M-step of the motif mixture, or of independent mixtures stacked along leading axes.

    Parameters
    ----------
    resp_sum : ndarray of shape (..., K)
        ``sum_i w_i q_ik``.
    counts : ndarray of shape (..., K, w, A)
        Expected letter counts per component and position (missing letters excluded).
    pseudocount : float
        Dirichlet pseudocount ``beta`` added to each letter count.
    tied_background : bool
        Whether component 0 has one letter distribution for all positions.

    Returns
    -------
    weights : ndarray of shape (..., K)
        ``resp_sum / sum``; a component without rows keeps 1e-10 of the total.
    pwms : ndarray of shape (..., K, w, A)
        ``theta[k, i, a] = (counts[k, i, a] + beta) / (sum_a counts[k, i, a] + A beta)``;
        for a tied background the counts are pooled over positions first.
    """
    total = resp_sum.sum(axis=-1, keepdims=True)
    weights = np.maximum(resp_sum, 1e-10 * total)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    pwms = _normalize(counts + pseudocount)
    if tied_background:
        pooled = counts[..., 0, :, :].sum(axis=-2, keepdims=True)
        pwms[..., 0, :, :] = _normalize(pooled + pseudocount)
    return weights, pwms


def _state_log_prob(onehot, log_pwms, perm=None, n_plain=0, log_weights=None):
    """Log joint probability of each row and hidden (component, strand) state, laid out (S, n).

    State ``c < C`` is log-PWM ``c`` read on the window's strand; with ``perm``,
    state ``C + j`` is log-PWM ``n_plain + j`` read on the reverse complement
    (its columns permuted by ``perm``), and both strand states of these
    strand-aware components carry the strand's prior ``log 1/2``. One matrix
    product computes all states.

    Parameters
    ----------
    onehot : ndarray of shape (n, w * A)
    log_pwms : ndarray of shape (C, w * A)
    perm : ndarray of shape (w * A,) or None
        :func:`revcomp_permutation`; None means every component is single-strand.
    n_plain : int
        Components ``0..n_plain-1`` are single-strand even with ``perm``.
    log_weights : ndarray of shape (C,), default=None
        Log mixing proportions added to each state (None adds nothing).

    Returns
    -------
    ndarray of shape (C + (C - n_plain if perm is not None else 0), n)
    """
    columns = log_pwms if perm is None else np.concatenate([log_pwms, log_pwms[n_plain:, perm]])
    log_prob = np.ascontiguousarray((onehot @ columns.T).T)
    if perm is None and log_weights is None:
        return log_prob
    offsets = np.zeros(log_pwms.shape[0]) if log_weights is None else np.asarray(log_weights, float)
    if perm is not None:
        offsets = np.concatenate([offsets, offsets[n_plain:]])
        offsets[n_plain:] -= LOG2
    log_prob += offsets[:, None]
    return log_prob


def _n_states_to_components(n_states, n_plain, stranded):
    return (n_states + n_plain) // 2 if stranded else n_states


def _component_log_prob(state_log_prob, n_plain, stranded):
    """Per-component log-likelihoods (C, n) from the states': log-sum-exp over the two strands."""
    C = _n_states_to_components(state_log_prob.shape[0], n_plain, stranded)
    if not stranded:
        return state_log_prob
    log_prob = state_log_prob[:C].copy()
    log_prob[n_plain:] = np.logaddexp(state_log_prob[n_plain:C], state_log_prob[C:])
    return log_prob


def _fold_states(state_values, n_plain, stranded, perm=None):
    """Per-component sums (C, ...) from per-state sums (S, ...): a reverse-strand state's sums are
    added to its component's. With ``perm``, the values are letter counts (S, w * A), and those of
    reverse complements are first mapped back onto the motif's strand (columns permuted)."""
    if not stranded:
        return state_values
    C = _n_states_to_components(state_values.shape[0], n_plain, True)
    folded = state_values[:C].copy()
    reverse = state_values[C:]
    folded[n_plain:] += reverse if perm is None else reverse[:, perm]
    return folded


# ------------------------------------------------------------------- model


@dataclass(frozen=True, kw_only=True)
class MotifModel(MixtureModel):
    """The motif mixture's math, for the engine (see :class:`MotifMixture`).

    The EM and inference hooks take the number of components from their
    parameters, so that the motif search can run the model on mixtures with
    fewer components than ``n_components`` while it adds them.

    Parameters
    ----------
    n_components, init_params
        See :class:`~skem._mixture.MixtureModel`; ``"random_from_data"`` (with
        more than one component) is the motif search of :mod:`skem._motif_search`.
    letters : str
        The alphabet, upper case: the letters of codes ``0..A-1``.
    wildcards : str
        Letters read as missing (code -1) in string input.
    pseudocount : float
        Dirichlet pseudocount added to every expected letter count.
    tied_background : bool, default=False
        Whether component 0 has one letter distribution for all positions.
    revcomp : bool, default=False
        Whether the components (but a tied background) lie on either strand.
    """

    letters: str
    wildcards: str
    pseudocount: float
    tied_background: bool = False
    revcomp: bool = False

    fits_dask = True

    @property
    def n_letters(self):
        return len(self.letters)

    @property
    def n_plain(self):
        """Components 0..n_plain-1 are single-strand even with revcomp=True: the tied background."""
        return 1 if self.tied_background else 0

    def stranded(self, k):
        """Whether component ``k`` lies on either strand."""
        return self.revcomp and k >= self.n_plain

    def revcomp_perm(self, params):
        """The reverse-complement column permutation when some component is strand-aware, else None."""
        if not self.revcomp or params.pwms.shape[0] <= self.n_plain:
            return None
        return revcomp_permutation(params.pwms.shape[1], self.letters)

    # ---------------------------------------------------------------- data

    def prepare(self, X, weights):
        n, w = X.shape
        if n * w * self.n_letters * 8 <= ONEHOT_BYTES:
            onehot = one_hot(X, self.n_letters)
        else:
            onehot = np.zeros((n, 0))
        return MotifData(weights=weights, codes=X, onehot=onehot, n_letters=self.n_letters)

    def work_per_row(self, data):
        lazy = 0 if data.onehot.shape[1] else data.codes.shape[1] * data.n_letters
        states = 2 * self.n_components - self.n_plain if self.revcomp else self.n_components
        return 4 * states + lazy

    def check_block(self, X):
        validate = partial(check_array, ensure_min_samples=0)
        return _as_codes(X, self.letters, self.wildcards, validate)

    # -------------------------------------------------------------- kernels

    def estimate_log_prob(self, params, chunk, work=None):
        K = params.pwms.shape[0]
        perm = self.revcomp_perm(params)
        states = _state_log_prob(
            chunk.expanded(), np.log(params.pwms).reshape(K, -1), perm, self.n_plain
        )
        return _component_log_prob(states, self.n_plain, perm is not None).T

    def e_step(self, params, chunk):
        # MixtureModel's E-step laid out as (states, n): the log-sum-exp over states
        # then runs along contiguous rows and shares one exponential with the
        # responsibilities, so that it costs less than the two matrix products.
        # With revcomp the states are (component, strand): still one product each way.
        onehot = chunk.expanded()
        K = params.pwms.shape[0]
        perm = self.revcomp_perm(params)
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        log_prob = _state_log_prob(
            onehot, np.log(params.pwms).reshape(K, -1), perm, self.n_plain, log_weights
        )
        resp, log_norm = normalize_log_prob(log_prob, axis=0)
        resp *= chunk.weights
        stranded = perm is not None
        stats = MotifStats(
            _fold_states(resp.sum(axis=1), self.n_plain, stranded),
            _fold_states(resp @ onehot, self.n_plain, stranded, perm),
        )
        return stats, float(chunk.weights @ log_norm)

    def accumulate(self, params, chunk, weighted_resp, work=None):
        # Starting responsibilities (k-means, random) say nothing about the strand: the windows
        # count as read. (Half on each strand would start a motif rc-symmetric, which EM keeps.)
        counts = weighted_resp.T @ chunk.expanded()
        return MotifStats(weighted_resp.sum(axis=0), counts)

    def m_step(self, stats, params):
        K = stats.resp_sum.shape[0]
        counts = stats.counts.reshape(K, -1, self.n_letters)
        weights, pwms = motif_m_step(stats.resp_sum, counts, self.pseudocount, self.tied_background)
        return MotifParams(weights, pwms)

    def log_prior(self, params):
        log_pwms = np.log(params.pwms)
        total = log_pwms.sum()
        if self.tied_background:
            total -= log_pwms[0, 1:].sum()  # the tied background counts once
        return float(self.pseudocount * total)

    def strand_proba(self, k, params, chunk):
        """Posterior of each strand ("+", "-") of the rows as sites of component ``k``, (n, 2)."""
        if not self.stranded(k):
            proba = np.zeros((chunk.n_rows, 2))
            proba[:, 0] = 1.0
            return proba
        log_pwm = np.log(params.pwms[k]).reshape(1, -1)
        perm = revcomp_permutation(params.pwms.shape[1], self.letters)
        states = _state_log_prob(chunk.expanded(), log_pwm, perm, 0)  # (2, n)
        return normalize_log_prob(states, axis=0)[0].T

    # -------------------------------------------------------- initialization

    def initialize(self, data, random_state, controls):
        if self.n_components == 1 or self.init_params != "random_from_data":
            return super().initialize(data, random_state, controls)
        # Imported here: the search module builds on this one's kernels.
        from ._motif_search import search_motifs

        return search_motifs(self, data, random_state, controls)

    def init_features(self, data, rows):
        return data.take(rows).expanded()

    # ------------------------------------------------- sampling and selection

    def sample_component(self, params, k, n, random_state):
        cumulative = np.cumsum(params.pwms[k], axis=1)  # (w, A)
        u = random_state.uniform(size=(n, cumulative.shape[0], 1))
        codes = (u > cumulative[None, :, :-1]).sum(axis=2)
        if self.stranded(k):
            # Each draw lies on a random strand: half are read as their reverse complement.
            complement = revcomp_permutation(1, self.letters)
            minus = random_state.uniform(size=n) < 0.5
            codes[minus] = complement[codes[minus, ::-1]]
        return codes.astype(_code_dtype(cumulative.shape[1]))

    def n_parameters(self, params):
        K, w, A = params.pwms.shape
        per_component = w * (A - 1)
        n_pwm = (A - 1) + (K - 1) * per_component if self.tied_background else K * per_component
        return (K - 1) + n_pwm

    # ------------------------------------------------------------ SQUAREM

    def pack(self, params):
        return np.concatenate([np.log(params.weights), np.log(params.pwms).ravel()])

    def unpack(self, vector, params):
        K = params.weights.shape[0]
        log_weights = vector[:K]
        weights = np.exp(log_weights - log_weights.max())
        log_pwms = vector[K:].reshape(params.pwms.shape)
        if self.tied_background:
            log_pwms = log_pwms.copy()
            log_pwms[0] = log_pwms[0].mean(axis=0)
        pwms = np.exp(log_pwms - log_pwms.max(axis=2, keepdims=True))
        pwms = np.maximum(_normalize(pwms), PROB_FLOOR)
        return MotifParams(weights / weights.sum(), _normalize(pwms))


# --------------------------------------------------------------- estimator


class MotifMixture(BaseMixture):
    """Mixture of position-specific letter distributions: DNA (or protein) motif finding by EM.

    Each window of ``w`` letters comes from one of ``n_components``
    components; within component ``k`` its positions are independent, letter
    ``a`` at position ``i`` having probability ``pwms_[k, i, a]`` (a position
    weight matrix, PWM). With the default two components this is the
    motif-versus-background model; over all windows of longer sequences (see
    :func:`sequence_windows`) it is MEME's TCM model. Parameters are fitted by
    maximum a posteriori EM with a pseudocount.

    Parameters
    ----------
    n_components : int, default=2
        Number of components. With the default start, component 0 is the
        background and components 1.. are motifs.
    alphabet : str or None, default=None
        The letters (case-insensitive), coded ``0..A-1`` in this order. Any
        alphabet works, e.g. the 20 amino acids; a letter outside it and its
        wildcards, or an integer code outside ``-1..A-1``, is an error that
        names it and its position. None (the default) reads strings as DNA
        (``"ACGT"``) and fits integer codes whatever they are: the letters
        are the codes ``0..A-1`` with ``A = max(4, largest code + 1)``, found
        by ``fit`` and published as :attr:`alphabet_`. Four letters are
        DNA's, ``"ACGT"`` (the codes :func:`encode_sequences` gives by
        default); more are named by the digits and then the capitals,
        ``"0123456789AB..."`` (at most 36 letters: name larger alphabets).
        After ``fit``, new windows (``predict``, a warm start) are read in
        the fitted alphabet.
    wildcards : str, default=None
        Letters that mean "unknown": they are missing data, marginalized out.
        None means 'N' and the IUPAC ambiguity codes (R, Y, ...; their partial
        information is not used) for nucleotide alphabets, and 'X' otherwise.
    pseudocount : float > 0, default=0.1
        Added to the expected count of every letter at every position of every
        component (a Dirichlet prior, so the objective is the log posterior).
        It keeps every probability positive.
    background : {None, "position-independent"}, default=None
        None fits every component position by position. "position-independent"
        ties component 0 to one letter distribution for all positions (MEME's
        zero-order background).
    revcomp : bool, default=False
        Whether a motif may lie on either strand (MEME's ``-revcomp``): a
        component explains a window as its PWM or as the PWM's reverse
        complement, the strand being one more hidden variable (see Notes and
        :meth:`predict_strand_proba`). This applies to the motif components
        1, 2, ... and, with ``background=None``, to component 0 as well (all
        components are then alike, and the background cannot gain over a
        motif by being the only single-strand one). A tied background
        (``"position-independent"``) is read on the windows' strand only: it
        is invariant under reversal already, and converges faster: the strand
        of a near-uniform position-specific background is almost
        unidentifiable, a flat direction for EM. Needs a nucleotide alphabet
        (ACGT or ACGU in any order). Fit it to forward-strand windows
        (:func:`sequence_windows` with ``both_strands=False``).
    width : int, pair of int or None, default=None
        None fits the window model above (X: equal-length windows). An integer
        ``w`` fits MEME's sequence models to whole sequences of any lengths (X:
        a 1-D array-like of strings or bytes, a dict of name to sequence, a
        Series or one-column DataFrame of letters, or a list of integer code
        arrays): the site position (and strand) in each sequence is hidden;
        ``pwms_[0]`` is the zero-order background tiled over ``w`` positions
        and ``pwms_[1:]`` the motifs (see :mod:`skem._motif_sequences` and the
        motifs user guide). A pair ``(min_width, max_width)`` tries every width
        in the range and keeps, per motif, the one of smallest E-value.
    mode : {"zoops", "oops", "tcm"}, default="zoops"
        With ``width``: MEME's site distribution, zero or one site per
        sequence, exactly one, or any number of non-overlapping sites.
    n_motifs : int or None, default=None
        With ``width``: motifs found one after another by probabilistic
        erasing (MEME); None means ``n_components - 1``.
    palindromic : bool, default=False
        With ``width``: tie each PWM to its reverse complement (MEME's
        ``-pal``); implies both strands.
    n_init : int, default=1
        Number of EM runs from different starts; the best final objective is kept.
    init_params : {"random_from_data", "kmeans", "k-means++", "random"}, default="random_from_data"
        How EM starts. "random_from_data" searches for motifs among observed
        windows as MEME does (see Notes). "kmeans" and "k-means++" cluster the
        one-hot windows; "random" draws random responsibilities. All respect
        ``sample_weight``.
    max_iter : int, default=200
        Maximum number of EM iterations per run.
    tol : float, default=1e-9
        Stop when the objective per (weighted) window or sequence changes by
        less than ``tol * max(1, |objective|)``. The default ends within
        1e-8 (relative) of the optimum on the tested data, where 1e-7 left
        ZOOPS fits up to 7e-7 below it, for a few more iterations (see the
        motifs user guide, "Stopping").
    accelerate : {"auto", "squarem"} or None, default="auto"
        Plain EM, or SQUAREM extrapolation (fewer iterations on slowly
        converging data). "auto" is SQUAREM with ``width`` set (the sequence
        models, where plain EM stops short of the optimum: TCM's site
        probability converges slowly) and plain EM for windows.
    chunk_size : int, default=None
        Windows per E-step chunk, in the fit and in its start search; None
        sizes chunks to about 32 MiB of work arrays. The fit does not depend
        on it.
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
        Mixing proportions (for a motif: the fraction of windows that are sites).
    pwms_ : ndarray of shape (n_components, w, A)
        Letter probabilities per component and position; ``pwms_[k, i]`` sums to 1.
    background_ : ndarray of shape (A,)
        Zero-order background letter distribution: component 0 averaged over positions.
    log_odds_ : ndarray of shape (n_components, w, A)
        ``log2(pwms_ / background_)`` in bits (MEME's log-odds matrix).
    information_content_ : ndarray of shape (n_components, w)
        Information content of each position in bits, ``log2(A) - entropy``
        (the total height of a sequence-logo column).
    consensus_ : ndarray of str of shape (n_components,)
        Most probable letter at each position, per component.
    site_probs_ : ndarray of shape (n_motifs,)
        With ``width``: ZOOPS's probability that a sequence holds a site, 1
        for OOPS, TCM's probability that a site starts where one fits.
    widths_ : ndarray of int of shape (n_motifs,)
        With ``width``: each motif's width (``pwms_`` is a list when they differ).
    nsites_ : ndarray of shape (n_motifs,)
        With ``width``: expected number of sites of each motif in the training data.
    log10_evalues_, evalues_ : ndarray of shape (n_motifs,)
        With ``width``: E-value of each motif after MEME's (the site
        alignment's log-likelihood ratio, its p-value by Wilks' chi-square
        approximation, times the number of possible alignments; see
        :func:`skem._motif_sequences.log10_evalue`), and its log10.
    alphabet_ : str
        The alphabet of the fit, upper case: ``alphabet``, or for the default
        one the letters found from the data (see ``alphabet``).
    converged_ : bool
        Whether the best run met the stopping rule.
    n_iter_ : int
        EM iterations of the best run.
    lower_bound_ : float
        Objective per window of the training data at the fitted parameters:
        mean log-likelihood plus the log prior of the pseudocounts divided by
        the total weight.
    lower_bounds_ : ndarray of shape (`n_iter_`,)
        The same after each iteration of the best run.
    n_features_in_ : int
        The window width ``w``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame of codes with string column names.

    See Also
    --------
    skem.sequences.sequence_windows : Cut long sequences into windows and map sites back.
    skem.datasets.make_motif_sequences : Sequences with a planted motif.
    skem.io.write_meme, skem.io.write_jaspar : Save the fitted PWMs.
    skem.plotting.plot_logo : Sequence logo of a component.

    Notes
    -----
    The model is ``z_j ~ Categorical(weights)``, ``x_ji | z_j = k ~
    Categorical(pwms[k, i, :])`` independently over positions ``i``. EM
    updates: ``q_jk ∝ weights_k prod_i pwms[k, i, x_ji]`` (missing letters
    contribute 1); ``weights_k = sum_j w_j q_jk / sum_j w_j``;
    ``pwms[k, i, a] ∝ sum_j w_j q_jk [x_ji = a] + pseudocount``. In matrix
    form both steps are products with the one-hot matrix of the windows, of
    shape ``(n, w * A)``, which is stored once (8 w A bytes per distinct
    window; above 2 GiB it is rebuilt for each chunk instead).

    The default start (``init_params="random_from_data"``) is a motif search
    after MEME (Bailey & Elkan 1994). Component 0 starts as the letter
    frequencies of the data. Then, on a weighted draw of at most 20 000
    windows: up to 1000 distinct observed windows become candidate PWMs
    (probability 0.5 on the observed letter plus half of the background);
    all are scored at once by the likelihood of the data under the current
    mixture plus the candidate; the best 50 take 10 EM steps side by side
    (the rest of the mixture held fixed). The best 3 distinct results and
    their phase shifts by up to 3 positions (a start half-covering the
    motif otherwise stays shifted) are refined the same way; the best 3
    distinct ones are continued for 50 full EM steps, then for 5 steps on
    all windows, and the best starts the fit. Further motif components are
    added one at a time the same way. A motif in a fraction ``f`` of the
    windows is among the candidates with probability ``1 - exp(-1000 f)``;
    ``n_init`` repeats the search with other candidates. Every EM run of the
    search, the candidates' side-by-side steps included, is one of the
    engine's, with the same kernels, ``chunk_size`` and check that the
    objective never decreases as the fit.

    Both strands (``revcomp=True``). For a strand-aware component ``k``
    (every component but a tied background) the strand ``s_j`` of window
    ``j`` is hidden, each strand having probability
    1/2: ``p(x | k) = (p(x | pwms[k]) + p(rc(x) | pwms[k])) / 2``, where
    ``rc(x)`` is the reverse complement. The one-hot matrix of the reverse
    complements is the one-hot matrix with its ``w * A`` columns permuted
    (positions reversed, letters complemented; see
    :func:`~skem.sequences.revcomp_permutation`), so ``log p(rc(x) | k) = E @
    L_k[perm]``: the E-step is one matrix product over the columns of the
    ``2K`` (``2K - 1`` with a tied background) (component, strand) states,
    whose posteriors ``q_jk+`` and
    ``q_jk-`` sum to ``q_jk``. The M-step's expected letter counts are
    ``(w q_k+)^T E + ((w q_k-)^T E)[perm]``, a second product, so the counts
    stay additive over chunks and EM stays monotone. The motif search scores
    and refines its candidates under the same two-strand likelihood, and a
    candidate and its reverse complement count as the same optimum. The
    fitted PWM is in whichever orientation the search found;
    :meth:`predict_strand_proba` gives each window's strand posterior.

    Windows of both strands as separate rows (:func:`sequence_windows` with
    ``both_strands=True``, without ``revcomp``) hold each site once as the
    motif and once as its reverse complement; one component may then settle
    on a blend of the two orientations.

    Windows overlap (TCM without MEME's non-overlap constraint): a motif
    whose shifted copy resembles its reverse complement (a core such as
    CCGG) can explain one site by two or three overlapping windows, on either
    strand or with either ``revcomp``, and the fit may then prefer a blend of
    the shifts with a larger ``weights_[1]``.

    Identical windows are fitted once with their summed weight, which changes
    nothing but the speed.

    References
    ----------
    T. L. Bailey and C. Elkan (1994). Fitting a mixture model by expectation
    maximization to discover motifs in biopolymers. ISMB 2:28-36.

    Examples
    --------
    >>> from skem import MotifMixture
    >>> from skem.datasets import make_motif_windows
    >>> X, y, pwm = make_motif_windows(2000, width=8, motif_fraction=0.1, random_state=0)
    >>> model = MotifMixture(random_state=0).fit(X)
    >>> model.consensus_[1] == "".join("ACGT"[i] for i in pwm.argmax(axis=1))
    True
    >>> model.pwm().shape
    (8, 4)

    Integer codes with the default alphabet fit whatever their range:

    >>> import numpy as np
    >>> codes = np.random.default_rng(0).integers(0, 6, size=(100, 5))
    >>> MotifMixture(random_state=0).fit(codes).alphabet_
    '012345'
    """

    _parameter_constraints: dict = {
        **BaseMixture._parameter_constraints,
        "alphabet": [str, None],
        "wildcards": [str, None],
        "pseudocount": [Interval(Real, 0.0, None, closed="neither")],
        "background": [StrOptions({"position-independent"}), None],
        "revcomp": ["boolean"],
        "width": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "mode": [StrOptions({"oops", "zoops", "tcm"})],
        "n_motifs": [Interval(Integral, 1, None, closed="left"), None],
        "palindromic": ["boolean"],
        "accelerate": [StrOptions({"none", "squarem", "auto"}), None],
    }

    def __init__(
        self,
        n_components=2,
        *,
        alphabet=None,
        wildcards=None,
        pseudocount=0.1,
        background=None,
        revcomp=False,
        width=None,
        mode="zoops",
        n_motifs=None,
        palindromic=False,
        n_init=1,
        init_params="random_from_data",
        max_iter=200,
        tol=1e-9,
        accelerate="auto",
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
        self.alphabet = alphabet
        self.wildcards = wildcards
        self.pseudocount = pseudocount
        self.background = background
        self.revcomp = revcomp
        self.width = width
        self.mode = mode
        self.n_motifs = n_motifs
        self.palindromic = palindromic

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        return tags

    # ---------------------------------------------------------------- model

    def _validate_X(self, X, reset):
        if self.width is not None:
            return self._validate_sequences(X, reset)
        validate = partial(validate_data, self, reset=reset, ensure_min_samples=1)
        if not reset:  # read like the training windows: new rows, or a warm start
            return _as_codes(X, self._model.letters, self._model.wildcards, validate)
        if self.alphabet is not None:
            return _as_codes(X, *_check_alphabet(self.alphabet, self.wildcards), validate)
        # The default alphabet: strings are DNA, integer codes letters of their own (_build_model).
        return _as_codes(X, *_check_alphabet(DNA, self.wildcards), validate, bounded=False)

    # ------------------------------------------------- the sequence models

    def _sequence_alphabet(self):
        if self.width is not None and self.warm_start and hasattr(self, "converged_"):
            return self._model.letters, self._model.wildcards
        return _check_alphabet(DNA if self.alphabet is None else self.alphabet, self.wildcards)

    def _validate_sequences(self, X, reset):
        """Whole sequences as a padded code matrix (see :func:`encode_ragged`); sets ``_names``."""
        if hasattr(X, "shape") and len(getattr(X, "shape")) == 2 and not isinstance(X, pd.DataFrame):
            if np.asarray(X).dtype.kind in "US":
                raise ValueError(
                    "With width= set, X is a 1-D array of whole sequences; got a 2-D array of "
                    "letters. Pass one string per sequence."
                )
        letters, wildcards = (
            self._sequence_alphabet() if reset else (self._model.letters, self._model.wildcards)
        )
        codes, names = encode_ragged(X, letters, wildcards)
        if reset:
            self.n_features_in_ = 1
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        self._names = names
        return codes

    def _widths(self):
        width = self.width
        if isinstance(width, tuple):
            if (len(width) != 2 or not all(isinstance(v, (Integral, np.integer)) for v in width)
                    or not 1 <= width[0] <= width[1]):
                raise ValueError(
                    f"width must be a positive integer or a pair (min_width, max_width) of "
                    f"integers with 1 <= min_width <= max_width, got {width!r}."
                )
            return int(width[0]), int(width[1])
        return int(width), int(width)

    def _n_motifs(self):
        return self.n_components - 1 if self.n_motifs is None else self.n_motifs

    def _build_sequence_model(self, X):
        from ._motif_sequences import SequenceMotifModel

        min_width, max_width = self._widths()
        letters, wildcards = self._sequence_alphabet()
        if (self.revcomp or self.palindromic) and not _is_nucleotide(letters):
            raise ValueError(
                f"revcomp=True and palindromic=True need a nucleotide alphabet (ACGT or ACGU, in "
                f"any order), got alphabet={self.alphabet!r}: only DNA and RNA have a reverse "
                "complement."
            )
        if self._n_motifs() < 1:
            raise ValueError("n_motifs (or n_components - 1) must be at least 1 with width= set.")
        lengths = (X != len(letters) + 1).sum(axis=1)
        if not np.any(lengths >= min_width):
            raise ValueError(
                f"No sequence is at least {min_width} letters long (the longest has "
                f"{int(lengths.max())}): no motif site fits."
            )
        if self.mode == "oops" and np.any(lengths < max_width):
            i = int(np.argmax(lengths < max_width))
            raise ValueError(
                f"mode='oops' puts one site in every sequence, but sequence {self._names[i]!r} "
                f"has {lengths[i]} letters, fewer than the width {max_width}; use mode='zoops'."
            )
        return SequenceMotifModel(
            width=min_width, min_width=min_width, max_width=max_width, mode=self.mode,
            letters=letters, wildcards=wildcards, pseudocount=self.pseudocount,
            revcomp=self.revcomp or self.palindromic, palindromic=self.palindromic,
            n_outputs=self._n_motifs() + 1,
        )

    def _controls(self, **changes):
        # "auto": SQUAREM for the sequence models, where plain EM crawls (TCM's site probability,
        # ZOOPS near gamma = 1) and stops short of the optimum; plain EM for windows, as before.
        if self.accelerate == "auto" and "accelerate" not in changes:
            changes["accelerate"] = "squarem" if self.width is not None else None
        return super()._controls(**changes)

    def _finish_fit(self, params, data):
        if self.width is None:
            return params
        self._train_lengths = np.repeat(data.lengths, 1)
        return _more_motifs(self, params, data)

    def _build_model(self, X, sample_weight):
        if self.width is not None:
            return self._build_sequence_model(X)
        self._check_n_samples(X)
        if self.warm_start and hasattr(self, "converged_"):
            # A warm start continues the fitted PWMs, whose columns are the fitted letters.
            letters, wildcards = self._model.letters, self._model.wildcards
        else:
            alphabet = _default_letters(X) if self.alphabet is None else self.alphabet
            letters, wildcards = _check_alphabet(alphabet, self.wildcards)
        if self.revcomp and not _is_nucleotide(letters):
            found = "" if self.alphabet is not None else f" (letters {letters!r} for the codes)"
            raise ValueError(
                f"revcomp=True needs a nucleotide alphabet (ACGT or ACGU, in any order), got "
                f"alphabet={self.alphabet!r}{found}: only DNA and RNA have a reverse complement."
            )
        return MotifModel(
            n_components=self.n_components,
            init_params=self.init_params,
            letters=letters,
            wildcards=wildcards,
            pseudocount=self.pseudocount,
            tied_background=self.background == "position-independent",
            revcomp=self.revcomp,
        )

    def _get_fitted_params(self):
        if self.width is not None:
            return self._sequence_params
        return MotifParams(self.weights_, self.pwms_)

    def _set_fitted_params(self, params):
        if self.width is not None:
            return self._set_sequence_params(params)
        self.weights_ = params.weights
        self.pwms_ = params.pwms
        self.alphabet_ = self._model.letters
        self.background_ = self.pwms_[0].mean(axis=0)
        self.log_odds_ = np.log2(self.pwms_ / self.background_)
        self.information_content_ = _information(self.pwms_)
        symbols = np.array(list(self.alphabet_))
        self.consensus_ = np.array(["".join(symbols[row]) for row in self.pwms_.argmax(axis=2)])

    def _set_sequence_params(self, params):
        self._sequence_params = params
        self.alphabet_ = self._model.letters
        self.background_ = params.background
        self.site_probs_ = params.site_probs
        self.weights_ = np.concatenate([[np.prod(1.0 - params.site_probs)], params.site_probs])
        widths = {pwm.shape[0] for pwm in params.pwms}
        tiled = [np.tile(params.background, (pwm.shape[0], 1)) for pwm in params.pwms[:1]]
        matrices = tiled + list(params.pwms)
        self.widths_ = np.array([pwm.shape[0] for pwm in params.pwms])
        self.pwms_ = np.stack(matrices) if len(widths) == 1 else matrices
        self.log_odds_ = [np.log2(pwm / self.background_) for pwm in matrices]
        self.information_content_ = [_information(pwm) for pwm in matrices]
        if len(widths) == 1:
            self.log_odds_ = np.stack(self.log_odds_)
            self.information_content_ = np.stack(self.information_content_)
        symbols = np.array(list(self.alphabet_))
        self.consensus_ = np.array(["".join(symbols[pwm.argmax(axis=1)]) for pwm in matrices])
        with np.errstate(over="ignore", under="ignore"):
            self.evalues_ = 10.0 ** params.log10_evalues
        self.log10_evalues_ = params.log10_evalues
        self.nsites_ = params.nsites

    # --------------------------------------------------------- results

    def _component(self, component):
        check_is_fitted(self)
        K = len(self.pwms_)
        if component is None:
            return 1 if K > 1 else 0
        if not isinstance(component, (Integral, np.integer)) or not -K <= component < K:
            raise ValueError(f"component must be an integer in 0..{K - 1}, got {component!r}.")
        return int(component) % K

    def predict_strand_proba(self, X, component=None):
        """Posterior probability of each strand for a window that is a site of ``component``.

        With ``revcomp=True`` the strand of a motif component is a hidden
        variable: ``P(- | x, z = k) = p(rc(x) | pwms_[k]) / (p(x | pwms_[k]) +
        p(rc(x) | pwms_[k]))``, where "-" means the window holds the motif as
        its reverse complement. For a single-strand component (the tied
        background, or any component when ``revcomp=False``) it is 1 for "+".

        Parameters
        ----------
        X : array-like of shape (n_samples, w)
            Windows, as for :meth:`predict_proba`.
        component : int, default=None
            Which component; None means 1 (the first motif).

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns "+" (the motif as read) and "-" (its reverse complement);
            rows sum to 1. Pass ``proba[:, 1]`` as ``minus_strand`` to
            :meth:`SequenceWindows.sites`.
        """
        if self.width is not None:
            raise ValueError(
                "predict_strand_proba is for the window model (width=None); with width= set, "
                "sites(X) reports each site's strand."
            )
        k = self._component(component)
        return self._per_row(X, partial(self._model.strand_proba, k))

    def sites(self, X, threshold=0.5):
        """Motif sites in whole sequences: positions whose site posterior reaches ``threshold``.

        Only with ``width`` set (the sequence models). Each motif is read on
        its own (no erasing): the posterior of a site of motif ``k`` at a start
        and strand is the exact E-step posterior of the fitted mode.

        Parameters
        ----------
        X : dict of str to str, or 1-D array-like of sequences
            Sequences, as for :meth:`fit`; a dict's keys (or a Series' index)
            name them, else their positions do.
        threshold : float, default=0.5
            Smallest posterior reported. At 0.5 or above, OOPS and ZOOPS
            report at most one site per sequence and TCM no overlapping sites.

        Returns
        -------
        sites : DataFrame
            Columns ``motif`` (1, 2, ...), ``sequence`` (name), ``start``
            (0-based, forward strand), ``end`` (exclusive), ``strand`` ("+" or
            "-"), ``posterior`` and ``site`` (the letters as read on the site's
            strand, wildcards as 'N'), ordered by motif, sequence and start.
        """
        check_is_fitted(self)
        if self.width is None:
            raise ValueError(
                "sites(X) needs the sequence model (width= set); for windows use "
                "skem.sequences.sequence_windows(...).sites(...)."
            )
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}.")
        codes = self._validate_X(X, reset=False)
        return _site_table(self._model, self._get_fitted_params(), codes, self._names,
                           threshold, self.chunk_size)

    def pwm(self, component=None, kind="probability"):
        """A component's matrix as a DataFrame (positions x letters, logomaker's layout).

        Parameters
        ----------
        component : int, default=None
            Which component; None means 1 (the first motif; 0 when there is one component).
        kind : {"probability", "log-odds", "information"}, default="probability"
            Letter probabilities; log-odds in bits against :attr:`background_`;
            or letter heights of a sequence logo in bits (probability times the
            position's information content).

        Returns
        -------
        DataFrame of shape (w, A)
            Index: positions 0..w-1; columns: the letters.
        """
        k = self._component(component)
        if kind == "probability":
            values = self.pwms_[k]
        elif kind == "log-odds":
            values = self.log_odds_[k]
        elif kind == "information":
            values = self.pwms_[k] * self.information_content_[k][:, None]
        else:
            raise ValueError(
                f"kind must be 'probability', 'log-odds' or 'information', got {kind!r}."
            )
        frame = pd.DataFrame(values, columns=list(self.alphabet_))
        frame.index.name = "position"
        return frame

    def sample(self, n_samples=1):
        """Draw from the fitted model: windows (width=None) or whole sequences (width set).

        Parameters
        ----------
        n_samples : int, default=1
            Number of windows or sequences to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, w), or ndarray of str of shape (n_samples,)
            Windows as letter codes grouped by component; with ``width`` set,
            sequences as strings, their lengths drawn from the training
            sequences' lengths.
        y : ndarray of shape (n_samples,), or of shape (n_samples, n_motifs)
            The component of each window; with ``width`` set, the number of
            sites of each motif planted in each sequence.
        """
        if self.width is None:
            return super().sample(n_samples)
        check_is_fitted(self)
        if not (isinstance(n_samples, (Integral, np.integer)) and n_samples >= 1):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(self.random_state)
        lengths = rng.choice(self._train_lengths, size=n_samples)
        codes, planted = self._model.sample(self._get_fitted_params(), lengths, rng)
        symbols = np.array(list(self.alphabet_))
        sequences = np.array(["".join(symbols[row[:n]]) for row, n in zip(codes, lengths)])
        return sequences, planted


def _information(pwms):
    """Information content in bits of each position (last axis: letters)."""
    A = pwms.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(pwms > 0, pwms * np.log2(pwms), 0.0), axis=-1)
    return np.log2(A) - entropy


def _more_motifs(estimator, params, data):
    """All motifs of a sequence-model fit: the first (``params``), then more by erasing.

    Each further motif is searched and fitted on the sequences with the
    erasing weights of the earlier ones (MEME's probabilistic erasing: each
    position keeps ``1 - P(it lies in a site)`` of its weight per motif).
    Returns the parameters of all motifs with their E-values and expected
    numbers of sites, each computed on the sequences as erased when it was found.
    """
    from ._em import e_pass, run_em
    from ._motif_sequences import SequenceMotifParams, log10_evalue

    model = estimator._model
    controls = estimator._controls()
    random_state = check_random_state(estimator.random_state)
    found = [params]
    erased = np.ones(data.codes.shape)
    evalues, nsites = [], []
    for k in range(estimator._n_motifs()):
        current = model.with_erased(data, erased) if k else data
        if k:
            start = model.initialize(current, random_state, controls)
            result = run_em(model, current, start, controls)
            if not result.converged and controls.max_iter > 0:
                warnings.warn(
                    f"The EM run of motif {k + 1} did not converge in max_iter={controls.max_iter} "
                    "iterations.", ConvergenceWarning,
                )
            found.append(result.params)
        motif = found[k]
        w = motif.pwms[0].shape[0]
        stats, _ = e_pass(model, motif, current, controls.chunk_size)
        positions = model.n_strands * float(data.weights @ np.maximum(data.lengths - w + 1, 0))
        dof = (model.n_letters - 1) / (2 if model.palindromic else 1)
        evalues.append(log10_evalue(_hard_site_counts(model, motif, current, controls.chunk_size),
                                    motif.background, positions, dof))
        nsites.append(stats.n_sites)
        if k + 1 < estimator._n_motifs():
            erased = erased * (1.0 - _coverage(model, motif, current, controls.chunk_size))
    return SequenceMotifParams(
        background=params.background,
        pwms=tuple(motif.pwms[0] for motif in found),
        site_probs=np.array([float(motif.site_probs[0]) for motif in found]),
        log10_evalues=np.array(evalues),
        nsites=np.array(nsites),
    )


def _hard_site_counts(model, params, data, chunk_size):
    """Letter counts (w, A) of the sites whose posterior exceeds 1/2: the aligned sites whose
    log-likelihood ratio MEME's E-value assesses."""
    from ._em import chunk_rows

    w = params.pwms[0].shape[0]
    counts = np.zeros((w, model.n_letters))
    for chunk in data.chunks(chunk_rows(data, model, chunk_size)):
        post = model.posteriors(params, chunk)[0]
        hard = (post > 0.5) * chunk.weights[:, None, None]
        counts += model._site_letter_counts(hard, chunk, w)[0]
    return counts


def _coverage(model, params, data, chunk_size):
    """Posterior probability (n, max_length) that each position lies in a site of the motif."""
    from ._em import chunk_rows

    w = params.pwms[0].shape[0]
    pieces = []
    for chunk in data.chunks(chunk_rows(data, model, chunk_size)):
        starts = model.posteriors(params, chunk)[0].sum(axis=2)  # (n, M)
        n, length = chunk.codes.shape
        padded = np.zeros((n, length))
        padded[:, : starts.shape[1]] = starts
        cumulative = np.concatenate([np.zeros((n, 1)), np.cumsum(padded, axis=1)], axis=1)
        t = np.arange(length)
        pieces.append(cumulative[:, t + 1] - cumulative[:, np.maximum(t - w + 1, 0)])
    return np.clip(np.concatenate(pieces), 0.0, 1.0)


def _site_table(model, params, codes, names, threshold, chunk_size):
    """The sites of every motif whose posterior reaches ``threshold`` (see MotifMixture.sites)."""
    from ._em import chunk_rows
    from ._motif_sequences import SequenceMotifParams

    data = model.prepare(codes, np.ones(codes.shape[0]))
    symbols = np.array(list(model.letters) + ["N", ""])
    step = chunk_rows(data, model, chunk_size)
    rows = []
    for k, pwm in enumerate(params.pwms):
        single = SequenceMotifParams(params.background, (pwm,), params.site_probs[k : k + 1])
        w = pwm.shape[0]
        for offset in range(0, data.n_rows, step):
            chunk = data.take(slice(offset, offset + step))
            post = model.posteriors(single, chunk)[0]
            for i, j, s in np.argwhere(post >= max(threshold, 1e-300)):
                letters = "".join(symbols[codes[offset + i, j : j + w]])
                if s == 1:
                    letters = reverse_complement(letters, model.letters)
                rows.append((k + 1, names[offset + i], int(j), int(j + w), "+-"[s],
                             float(post[i, j, s]), letters, offset + i))
    columns = ["motif", "sequence", "start", "end", "strand", "posterior", "site", "_row"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.sort_values(["motif", "_row", "start", "strand"], kind="stable")
    return table.drop(columns="_row").reset_index(drop=True)


def _default_letters(X):
    """The default alphabet's letters for validated codes ``X`` (or a dask array of rows).

    DNA's for codes up to 3 (strings are DNA: their codes are), else one
    letter per code ``0..max``, named by :data:`CODE_LETTERS`.
    """
    if X.dtype.kind not in "biuf":  # dask blocks of strings, read as DNA
        return DNA
    largest = X.max()
    if is_dask_array(X):
        largest = largest.compute()  # a pass over the blocks, before the model exists
    n_letters = int(largest) + 1 if np.isfinite(largest) else 0  # the blocks' check reports NaN
    if n_letters <= len(DNA):
        return DNA
    if n_letters > len(CODE_LETTERS):
        raise ValueError(
            f"Integer codes up to {n_letters - 1} need an alphabet of {n_letters} letters: "
            f"pass alphabet= (the default names at most {len(CODE_LETTERS)} letters)."
        )
    return CODE_LETTERS[:n_letters]

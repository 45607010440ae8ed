"""The window model: a mixture of position-specific letter distributions over aligned rows.

:class:`MotifModel` is the math of :class:`skem.MotifMixture`, a small frozen
object that the EM engine (:mod:`skem._em`) fits.

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
the same permutation (:func:`skem._pwm.state_log_prob`,
:func:`skem._pwm.fold_states`). The default start is the search of
:mod:`skem._window_search`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from sklearn.utils.validation import check_array

from ._em import AdditiveStats, RowData
from ._letters import as_codes, code_dtype
from ._mixture import MixtureModel, normalize_log_prob
from ._pwm import (
    MotifParams,
    component_log_prob,
    fold_states,
    motif_m_step,
    normalize_rows,
    state_log_prob,
)
from ._window_search import search_motifs
from .sequences import one_hot, revcomp_permutation

__all__ = ["MotifData", "MotifModel", "MotifStats"]

#: Letter probabilities are kept at or above this (only SQUAREM's extrapolation can approach it).
PROB_FLOOR = 1e-300
#: The one-hot matrix is stored for all rows when it takes at most this many bytes, else built per chunk.
ONEHOT_BYTES = 2 * 2**30


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
        more than one component) is the motif search of :mod:`skem._window_search`.
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
        return as_codes(X, self.letters, self.wildcards, validate)

    # -------------------------------------------------------------- kernels

    def estimate_log_prob(self, params, chunk, work=None):
        K = params.pwms.shape[0]
        perm = self.revcomp_perm(params)
        states = state_log_prob(
            chunk.expanded(), np.log(params.pwms).reshape(K, -1), perm, self.n_plain
        )
        return component_log_prob(states, self.n_plain, perm is not None).T

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
        log_prob = state_log_prob(
            onehot, np.log(params.pwms).reshape(K, -1), perm, self.n_plain, log_weights
        )
        resp, log_norm = normalize_log_prob(log_prob, axis=0)
        resp *= chunk.weights
        stranded = perm is not None
        stats = MotifStats(
            fold_states(resp.sum(axis=1), self.n_plain, stranded),
            fold_states(resp @ onehot, self.n_plain, stranded, perm),
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
        states = state_log_prob(chunk.expanded(), log_pwm, perm, 0)  # (2, n)
        return normalize_log_prob(states, axis=0)[0].T

    # -------------------------------------------------------- initialization

    def initialize(self, data, random_state, controls):
        if self.n_components == 1 or self.init_params != "random_from_data":
            return super().initialize(data, random_state, controls)
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
        return codes.astype(code_dtype(cumulative.shape[1]))

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
        pwms = np.maximum(normalize_rows(pwms), PROB_FLOOR)
        return MotifParams(weights / weights.sum(), normalize_rows(pwms))

"""Position weight matrices: the math the motif models and their start searches share.

* Window kernels. A window of width ``w`` over ``A`` letters is a one-hot
  row of ``w * A`` columns (:func:`skem.sequences.one_hot`); with a log-PWM
  flattened the same way, the log-likelihood of every window under every
  (component, strand) state is one matrix product (:func:`state_log_prob`),
  and the expected letter counts another (folded back onto each motif's
  strand by :func:`fold_states`). The reverse complement of a one-hot window
  is a fixed permutation of its columns
  (:func:`skem.sequences.revcomp_permutation`). :func:`motif_m_step` is the
  MAP M-step of PWMs and mixing proportions. The window model
  (:mod:`skem._motif_windows`) and its start search (:mod:`skem._window_search`)
  use them.
* Starting PWMs. Both start searches (windows and whole sequences) refine
  candidate PWMs side by side (:class:`CandidateParams`), try their phase
  shifts (:func:`shift_log_pwm`) and keep the best distinct ones
  (:func:`distinct_candidates`).
* Fitted PWMs: information content, log-odds and consensus
  (:func:`pwm_summaries`), and :class:`PWMResultsMixin` (``pwm()``), shared
  by both estimators.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "CandidateParams",
    "DUPLICATE_DISTANCE",
    "LOG2",
    "MAX_SHIFT",
    "MotifParams",
    "N_CONTINUE",
    "PWMResultsMixin",
    "START_FUZZ",
    "component_log_prob",
    "distinct_candidates",
    "fold_states",
    "information_content",
    "motif_m_step",
    "normalize_rows",
    "pwm_summaries",
    "shift_log_pwm",
    "state_log_prob",
    "weighted_draw",
]

#: log 2: the prior probability of each strand of a strand-aware component is 1/2.
LOG2 = float(np.log(2.0))
#: A start puts this much of each position's probability on the background (MEME's spfuzz).
START_FUZZ = 0.5
#: Largest phase shift tried on the best candidates.
MAX_SHIFT = 3
#: Candidates kept by :func:`distinct_candidates`.
N_CONTINUE = 3
#: Refined candidates whose probabilities all differ by less than this are the same optimum.
DUPLICATE_DISTANCE = 0.2


# ------------------------------------------------------------ window kernels


@dataclass(frozen=True)
class MotifParams:
    weights: np.ndarray  # (K,)
    pwms: np.ndarray  # (K, w, A), rows sum to 1


def normalize_rows(counts):
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
    pwms = normalize_rows(counts + pseudocount)
    if tied_background:
        pooled = counts[..., 0, :, :].sum(axis=-2, keepdims=True)
        pwms[..., 0, :, :] = normalize_rows(pooled + pseudocount)
    return weights, pwms


def state_log_prob(onehot, log_pwms, perm=None, n_plain=0, log_weights=None):
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
    # (S, n) directly: BLAS is faster at this shape than at (n, S) transposed and copied.
    log_prob = columns @ onehot.T
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


def component_log_prob(state_log_prob, n_plain, stranded):
    """Per-component log-likelihoods (C, n) from the states': log-sum-exp over the two strands."""
    C = _n_states_to_components(state_log_prob.shape[0], n_plain, stranded)
    if not stranded:
        return state_log_prob
    log_prob = state_log_prob[:C].copy()
    log_prob[n_plain:] = np.logaddexp(state_log_prob[n_plain:C], state_log_prob[C:])
    return log_prob


def fold_states(state_values, n_plain, stranded, perm=None):
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


# ------------------------------------------------------------ starting PWMs


@dataclass(frozen=True)
class CandidateParams:
    log_pwms: np.ndarray  # (C, w * A)
    alpha: np.ndarray  # (C,) mixing proportion of each candidate against the fixed mixture

    @property
    def n_candidates(self):
        return self.alpha.shape[0]

    def take(self, index):
        """The candidates at ``index``, in its order."""
        return CandidateParams(self.log_pwms[index], self.alpha[index])


def shift_log_pwm(log_pwm, background, shift):
    """A log-PWM (w * A,) moved by ``shift`` positions (column i takes column i + shift); the
    positions moved in are the background's."""
    w, A = background.shape
    pwm = np.log(background).copy()
    source = log_pwm.reshape(w, A)
    if shift >= 0:
        pwm[: w - shift] = source[shift:]
    else:
        pwm[-shift:] = source[: w + shift]
    return pwm.reshape(-1)



def distinct_candidates(params, score, perm):
    """The N_CONTINUE best candidates, skipping any within DUPLICATE_DISTANCE of a better one.

    Many starts reach the same optimum; with ``perm`` (revcomp), possibly as
    each other's reverse complement.
    """
    pwms = np.exp(params.log_pwms)
    flipped = pwms[:, perm] if perm is not None else pwms

    def distance(c, other):
        gap = np.abs(pwms[c] - pwms[other]).max()
        return min(gap, np.abs(pwms[c] - flipped[other]).max()) if perm is not None else gap

    kept: list[int] = []
    for c in np.argsort(-score, kind="stable"):
        if all(distance(c, other) > DUPLICATE_DISTANCE for other in kept):
            kept.append(c)
            if len(kept) == N_CONTINUE:
                break
    return params.take(np.array(kept, dtype=np.intp))


def weighted_draw(data, size, random_state):
    """At most ``size`` rows of ``data`` for a start search: all of them, or a multinomial draw
    of ``size`` in proportion to the row weights, the counts drawn becoming the weights (so a
    weight stays a multiplicity)."""
    if data.n_rows <= size:
        return data
    draws = random_state.multinomial(size, data.weights / data.weights.sum())
    chosen = np.flatnonzero(draws)
    return replace(data.take(chosen), weights=draws[chosen].astype(float))


# ------------------------------------------------------------ fitted PWMs


def information_content(pwms):
    """Information content in bits of each position (last axis: letters)."""
    A = pwms.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(pwms > 0, pwms * np.log2(pwms), 0.0), axis=-1)
    return np.log2(A) - entropy




def pwm_summaries(matrices, background, letters):
    """Log-odds, information content and consensus of fitted PWMs.

    Parameters
    ----------
    matrices : sequence of ndarray of shape (w_k, A)
        The PWMs (rows sum to 1).
    background : ndarray of shape (A,)
        Letter frequencies the log-odds are taken against.
    letters : str
        The alphabet, one letter per column.

    Returns
    -------
    log_odds : ndarray of shape (K, w, A), or list of (w_k, A)
        ``log2(pwm / background)`` in bits; stacked when all widths are equal.
    information : ndarray of shape (K, w), or list of (w_k,)
        Information content of each position in bits (:func:`information_content`).
    consensus : ndarray of str of shape (K,)
        The most probable letter of each position.
    """
    log_odds = [np.log2(pwm / background) for pwm in matrices]
    information = [information_content(pwm) for pwm in matrices]
    if len({pwm.shape[0] for pwm in matrices}) == 1:
        log_odds, information = np.stack(log_odds), np.stack(information)
    symbols = np.array(list(letters))
    consensus = np.array(["".join(symbols[pwm.argmax(axis=1)]) for pwm in matrices])
    return log_odds, information, consensus


class PWMResultsMixin:
    """``pwm()`` for a fitted estimator with ``pwms_``, ``log_odds_``,
    ``information_content_`` and ``alphabet_`` (component 0 the background)."""

    def _component(self, component):
        """The index of ``component`` (None: the first motif, or 0 when there is one matrix)."""
        check_is_fitted(self)
        K = len(self.pwms_)
        if component is None:
            return 1 if K > 1 else 0
        if not isinstance(component, (Integral, np.integer)) or not -K <= component < K:
            raise ValueError(f"component must be an integer in 0..{K - 1}, got {component!r}.")
        return int(component) % K

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

"""The motif search that starts :class:`skem.MotifMixture` (``init_params="random_from_data"``).

The likelihood of a window mixture has many local optima: a start that
half-covers the motif converges to a *shifted* copy of it. MEME's remedy
(Bailey & Elkan 1994) is to start from observed windows. :func:`search_motifs`
does so, adding the motif components one at a time to a mixture whose
component 0 starts as the letter frequencies of the data:

1. Up to :data:`N_CANDIDATES` distinct observed windows become candidate PWMs
   (:data:`START_FUZZ` of each position's probability spread like the background).
2. Candidate ``c`` is the new component of the two-part mixture
   ``(1 - alpha_c) p_rest + alpha_c p_c``, ``p_rest`` being the mixture found
   so far, held fixed. :class:`CandidateBatch` is the engine model of all
   candidates side by side: independent two-part mixtures whose objective is
   the sum of theirs. All candidates are scored at once (one matrix product
   per chunk of rows); the best :data:`N_SHORTLIST` take :data:`SHORT_ITER`
   EM steps.
3. The :data:`N_CONTINUE` best distinct results and their phase shifts by up
   to :data:`MAX_SHIFT` positions are refined the same way, and the
   :data:`N_CONTINUE` best distinct ones take :data:`CONTINUE_ITER` EM steps
   of the full model (then :data:`FINAL_ITER` on all rows when the search
   worked on a draw of them); the best one is kept.

Every EM run here is :func:`skem._em.run_em` with the fit's chunk size: the
candidates' M-step is the model's kernel :func:`skem.motifs.motif_m_step`, and
the engine warns if any objective decreases, as in the fit itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from scipy.special import logsumexp

from ._em import AdditiveStats, EMControls, EMModel, best_result, run_em
from .motifs import (
    MotifModel,
    MotifParams,
    _component_log_prob,
    _fold_states,
    _state_log_prob,
    motif_m_step,
)
from .sequences import revcomp_permutation

__all__ = ["CandidateBatch", "CandidateParams", "search_motifs"]

#: Weighted draws of rows the search works on (all rows when there are fewer).
SEARCH_ROWS = 20_000
#: Observed windows tried as starts: a motif in a fraction f of windows is among
#: them with probability 1 - exp(-f * N_CANDIDATES) (99 % at f = 0.5 %).
N_CANDIDATES = 1000
#: Candidates kept after scoring, refined by SHORT_ITER side-by-side EM steps.
N_SHORTLIST, SHORT_ITER = 50, 10
#: The best refined candidates, continued for CONTINUE_ITER full EM steps.
N_CONTINUE, CONTINUE_ITER = 3, 50
#: Above this log-likelihood ratio, log1p(a expm1(d)) is computed as log(a) + d.
LOG_RATIO_MAX = 300.0
#: Refined candidates whose probabilities all differ by less than this are the same optimum.
DUPLICATE_DISTANCE = 0.2
#: Largest phase shift tried on the best candidates.
MAX_SHIFT = 3
#: EM steps on all rows that decide between the continued candidates (when the search used fewer).
FINAL_ITER = 5
#: Objectives closer than this (relative) are the same up to rounding.
#: A start puts this much of each position's probability on the background (MEME's spfuzz).
START_FUZZ = 0.5
#: Starting mixing proportion of a candidate motif.
START_WEIGHT = 0.02


def search_motifs(model, data, random_state, controls):
    """Starting parameters of a motif mixture, found among observed windows.

    Parameters
    ----------
    model : skem.motifs.MotifModel
        The mixture to start, with ``n_components >= 2``.
    data : skem.motifs.MotifData
        The rows that initialization sees (in memory).
    random_state : numpy.random.RandomState
        Draws the search rows and the candidates.
    controls : EMControls
        The fit's controls: every pass uses its chunk size, and ``verbose``
        prints a line per motif found.

    Returns
    -------
    MotifParams
        ``model.n_components`` components: the background, then the motifs in
        the order found.
    """
    search = _search_rows(data, random_state)
    resp = np.zeros((search.n_rows, model.n_components))
    resp[:, 0] = 1.0
    stats = model.accumulate(None, search, resp * search.weights[:, None])
    background = model.initial_m_step(stats).pwms[0]
    w, A = background.shape
    params = MotifParams(np.ones(1), background[None])
    chunk_size = controls.chunk_size
    continued = EMControls(max_iter=CONTINUE_ITER, tol=0.0, chunk_size=chunk_size)
    final = EMControls(max_iter=FINAL_ITER, tol=0.0, chunk_size=chunk_size)
    for _ in range(1, model.n_components):
        batch = CandidateBatch(mixture=model, fixed=params, background=background)
        candidates = batch.initialize(search, random_state, controls)
        best = _refine(batch, search, candidates, N_SHORTLIST, chunk_size)
        # Phase shifts: the best candidates moved by up to MAX_SHIFT positions,
        # so that a start half-covering the motif can still reach it.
        shifted = [
            (_shift(log_pwm, background, shift), alpha)
            for log_pwm, alpha in zip(best.log_pwms, best.alpha)
            for shift in range(-MAX_SHIFT, MAX_SHIFT + 1)
            if 0 < abs(shift) < w
        ]
        family = CandidateParams(
            np.stack([*best.log_pwms, *(log_pwm for log_pwm, _ in shifted)]),
            np.concatenate([best.alpha, [alpha for _, alpha in shifted]]),
        )
        best = _refine(batch, search, family, family.n_candidates, chunk_size)
        starts = [
            _with_candidate(params, log_pwm.reshape(1, w, A), alpha)
            for log_pwm, alpha in zip(best.log_pwms, best.alpha)
        ]
        runs = [run_em(model, search, start, continued) for start in starts]
        if search is not data:
            # The search rows hold few sites of a rare motif: all the rows decide
            # between the continued candidates.
            runs = [run_em(model, data, run.params, final) for run in runs]
        result = best_result(runs)
        if controls.verbose:
            print(f"  motif search: component {params.weights.size} from "
                  f"{candidates.n_candidates} candidates, objective {result.lower_bound:.6g}")
        params = result.params
    return params


def _with_candidate(params, log_pwm, alpha):
    """The mixture ``params`` with one more component, ``exp(log_pwm)`` (1, w, A), of weight ``alpha``."""
    return MotifParams(
        np.append(params.weights * (1.0 - alpha), alpha),
        np.concatenate([params.pwms, np.exp(log_pwm)]),
    )


def _search_rows(data, random_state):
    """At most SEARCH_ROWS distinct rows: all of them, or a weighted draw with counts as weights."""
    if data.n_rows <= SEARCH_ROWS:
        return data
    draws = random_state.multinomial(SEARCH_ROWS, data.weights / data.weights.sum())
    chosen = np.flatnonzero(draws)
    return replace(data.take(chosen), weights=draws[chosen].astype(float))


def _candidate_pwms(data, background, random_state):
    """Log-PWMs (C, w * A) made from up to N_CANDIDATES distinct observed windows.

    Each puts ``1 - START_FUZZ`` on the observed letter and spreads the rest
    like the background; a missing letter gives the background itself.
    """
    n = data.n_rows
    size = min(N_CANDIDATES, n)
    chosen = random_state.choice(n, size=size, replace=False, p=data.weights / data.weights.sum())
    w, A = background.shape
    observed = data.take(chosen).expanded().reshape(size, w, A)
    pwms = (1.0 - START_FUZZ) * observed + (
        1.0 - (1.0 - START_FUZZ) * observed.sum(axis=2, keepdims=True)
    ) * background[None]
    return np.log(pwms).reshape(size, w * A)


def _shift(log_pwm, background, shift):
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


def _refine(batch, rows, params, shortlist, chunk_size):
    """The N_CONTINUE best distinct candidates after SHORT_ITER EM steps of the ``shortlist`` best."""
    if params.n_candidates > shortlist:
        score = batch.candidate_objectives(params, rows, chunk_size)
        params = params.take(np.argsort(-score, kind="stable")[:shortlist])
    controls = EMControls(max_iter=SHORT_ITER, tol=0.0, chunk_size=chunk_size)
    params = run_em(batch, rows, params, controls).params
    score = batch.candidate_objectives(params, rows, chunk_size)
    return _distinct(params, score, batch.perm(params))


def _distinct(params, score, perm):
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


# ------------------------------------------------------------------- model


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


@dataclass(frozen=True)
class CandidateStats(AdditiveStats):
    resp_sum: np.ndarray  # (C,)        sum_i w_i r_ic
    counts: np.ndarray  # (C, w * A)      expected letter counts of each candidate
    total: float  # sum_i w_i


@dataclass(frozen=True, kw_only=True, eq=False)
class CandidateBatch(EMModel):
    """Candidate motifs side by side, each the new component of a two-part mixture.

    Candidate ``c`` with log-PWM ``L_c`` and proportion ``alpha_c`` explains
    window ``x`` by ``(1 - alpha_c) p_rest(x) + alpha_c p_c(x)``, where
    ``p_rest`` is the fixed mixture and ``p_c`` the candidate read as a
    component of ``mixture`` would be (on either strand with revcomp). EM
    updates ``(alpha_c, L_c)`` with ``p_rest`` fixed, every candidate
    independently; the objective is the sum of the candidates' log posteriors.

    Parameters
    ----------
    mixture : skem.motifs.MotifModel
        The model being started: its rows, alphabet, pseudocount and strands.
    fixed : MotifParams
        The mixture found so far, ``p_rest``.
    background : ndarray of shape (w, A)
        What candidates from observed windows are fuzzed towards.
    """

    # eq=False: the fields hold arrays, so batches compare (and hash) by identity.
    mixture: MotifModel
    fixed: MotifParams
    background: np.ndarray

    def perm(self, params):
        """The reverse-complement permutation of the candidates' columns with revcomp, else None."""
        if not self.mixture.revcomp:
            return None
        width = params.log_pwms.shape[1] // self.mixture.n_letters
        return revcomp_permutation(width, self.mixture.letters)

    # ---------------------------------------------------------------- data

    def prepare(self, X, weights):
        return self.mixture.prepare(X, weights)

    def work_per_row(self, data):
        # Sized for the most candidates a batch holds (the fixed mixture is scored too).
        return self.mixture.work_per_row(data) + 4 * (1 + self.mixture.revcomp) * N_CANDIDATES

    # ------------------------------------------------------------------- EM

    def initialize(self, data, random_state, controls):
        log_pwms = _candidate_pwms(data, self.background, random_state)
        return CandidateParams(log_pwms, np.full(log_pwms.shape[0], START_WEIGHT))

    def _log_densities(self, params, chunk):
        """The (candidate, strand) states' log-likelihoods (S, n), the candidates' (C, n), and
        those of the candidates' two-part mixtures (C, n)."""
        perm = self.perm(params)
        states = _state_log_prob(chunk.expanded(), params.log_pwms, perm)
        log_lik = _component_log_prob(states, 0, perm is not None)
        rest = self.mixture.score_samples(self.fixed, chunk)
        # log((1 - a) p_rest + a p_c) = log p_rest + log1p(a expm1(d)), d = log(p_c / p_rest);
        # beyond LOG_RATIO_MAX the second term is log(a) + d to machine precision.
        ratio = log_lik - rest
        alpha = params.alpha[:, None]
        log_gain = np.log1p(alpha * np.expm1(np.minimum(ratio, LOG_RATIO_MAX)))
        large = ratio > LOG_RATIO_MAX
        if large.any():
            log_gain = np.where(large, np.log(alpha) + ratio, log_gain)
        return states, log_lik, rest + log_gain

    def _resp(self, params, log_lik, log_mix):
        """Posterior (C, n) that each row is a site of each candidate, in its two-part mixture."""
        return np.exp(np.log(params.alpha)[:, None] + log_lik - log_mix)

    def e_step(self, params, chunk):
        onehot = chunk.expanded()
        states, log_lik, log_mix = self._log_densities(params, chunk)
        resp = self._resp(params, log_lik, log_mix) * chunk.weights
        resp_sum = resp.sum(axis=1)
        perm = self.perm(params)
        if perm is not None:
            # Split each candidate's responsibility between its strands, as the model's E-step does.
            resp = np.exp(states - np.concatenate([log_lik, log_lik])) * np.tile(resp, (2, 1))
        counts = _fold_states(resp @ onehot, 0, perm is not None, perm)
        stats = CandidateStats(resp_sum, counts, float(chunk.weights.sum()))
        return stats, float(log_mix.sum(axis=0) @ chunk.weights)

    def m_step(self, stats, params):
        # Each candidate's two-part mixture (fixed part, candidate) takes the motif M-step;
        # the fixed part has no letter counts here, and its PWM is not used.
        C, A = stats.resp_sum.shape[0], self.mixture.n_letters
        resp_sum = np.stack([stats.total - stats.resp_sum, stats.resp_sum], axis=1)
        counts = np.stack([np.zeros_like(stats.counts), stats.counts], axis=1).reshape(C, 2, -1, A)
        weights, pwms = motif_m_step(
            resp_sum, counts, self.mixture.pseudocount, tied_background=False
        )
        return CandidateParams(np.log(pwms[:, 1]).reshape(C, -1), weights[:, 1])

    def log_prior(self, params):
        return float(self.mixture.pseudocount * params.log_pwms.sum())

    def candidate_objectives(self, params, data, chunk_size):
        """Each candidate's objective: log-likelihood of ``data`` under its two-part mixture plus
        its log prior, shape (C,). They sum to the objective's numerator."""
        (loglik,) = data.reduce_chunks(partial(_candidate_loglik, self, params), self, chunk_size)
        return loglik + self.mixture.pseudocount * params.log_pwms.sum(axis=1)

    # ----------------------------------------------------- inference on rows

    def score_samples(self, params, chunk):
        """``sum_c log((1 - alpha_c) p_rest + alpha_c p_c)`` of each row (independent candidates)."""
        return self._log_densities(params, chunk)[2].sum(axis=0)

    def predict_proba(self, params, chunk):
        _, log_lik, log_mix = self._log_densities(params, chunk)
        return self._resp(params, log_lik, log_mix).T

    def n_parameters(self, params):
        A = self.mixture.n_letters
        return params.n_candidates * (1 + params.log_pwms.shape[1] // A * (A - 1))


def _candidate_loglik(batch, params, chunk):
    return (batch._log_densities(params, chunk)[2] @ chunk.weights,)


# ------------------------------------------------- the sequence models' search


#: Sequences the sequence models' search scores its candidates on (a weighted draw).
SEQUENCE_SEARCH_ROWS = 64
#: Substrings of the search sequences tried as starts.
N_SEQUENCE_CANDIDATES = 256
#: Full EM steps on all sequences that decide between the best distinct candidates.
SEQUENCE_CONTINUE_ITER = 4
#: Float64 work values of the candidates' E-step held at once (rows are processed in groups).
CANDIDATE_WORK = 2**22


def search_sequence_motif(model, data, random_state, controls):
    """Starting parameters of a sequence model, found among substrings of the sequences (MEME).

    For each width from ``model.min_width`` to ``model.max_width``:
    :data:`N_SEQUENCE_CANDIDATES` substrings of a weighted draw of
    :data:`SEQUENCE_SEARCH_ROWS` sequences become candidate PWMs
    (:data:`START_FUZZ` of each position like the background); all take one
    EM step side by side on those sequences (:class:`SiteCandidateBatch`,
    TCM scored as ZOOPS) and are scored by their objective after it, as MEME
    scores its starts. The :data:`N_CONTINUE` best distinct ones and their
    shifts by up to :data:`MAX_SHIFT` positions take one more step; the
    :data:`N_CONTINUE` best distinct ones then take
    :data:`SEQUENCE_CONTINUE_ITER` EM steps of the full model on all
    sequences, and the best is kept. With several widths, each width's best
    is run to convergence and the width of the smallest E-value
    (:func:`skem._motif_sequences.log10_evalue`) wins.

    Parameters
    ----------
    model : skem._motif_sequences.SequenceMotifModel
    data : skem._motif_sequences.SequenceData
        All sequences (with any erasing weights).
    random_state : numpy.random.RandomState
    controls : EMControls
        The fit's controls (chunk size, tolerance, printing).

    Returns
    -------
    SequenceMotifParams
        One motif.
    """
    from ._motif_sequences import SequenceMotifParams, log10_evalue

    A = model.n_letters
    beta = model.pseudocount
    background = data.weights @ data.letter_counts + beta
    background /= background.sum()
    search = _search_sequences(data, random_state)
    widths = range(model.min_width or model.width, (model.max_width or model.width) + 1)
    short = EMControls(max_iter=SEQUENCE_CONTINUE_ITER, tol=controls.tol, chunk_size=controls.chunk_size)
    best = None
    for w in widths:
        batch = SiteCandidateBatch(model=model, background=background, width=w)
        candidates = batch.initialize(search, random_state, controls)
        top = _best_after_one_step(batch, search, candidates)
        shifted = [
            _shift(log_pwm, np.tile(background, (w, 1)), shift)
            for log_pwm in top.log_pwms
            for shift in range(-MAX_SHIFT, MAX_SHIFT + 1)
            if 0 < abs(shift) < w
        ]
        family = CandidateParams(
            np.concatenate([top.log_pwms, np.array(shifted).reshape(-1, w * A)]),
            np.concatenate([top.alpha, np.repeat(top.alpha, len(shifted) // max(len(top.alpha), 1))]),
        )
        top = _best_after_one_step(batch, search, family)
        starts = [
            SequenceMotifParams(background.copy(), (np.exp(log_pwm).reshape(w, A),), np.array([alpha]))
            for log_pwm, alpha in zip(top.log_pwms, top.alpha)
        ]
        result = best_result([run_em(model, data, start, short) for start in starts])
        if len(widths) > 1:
            # Widths compete on converged fits: an E-value of a half-fitted motif says little.
            result = run_em(model, data, result.params, replace(short, max_iter=controls.max_iter))
            from .motifs import _hard_site_counts

            counts = _hard_site_counts(model, result.params, data, controls.chunk_size)
            n_positions = model.n_strands * float(data.weights @ np.maximum(data.lengths - w + 1, 0))
            dof = (A - 1) / (2 if model.palindromic else 1)
            score = -log10_evalue(counts, result.params.background, n_positions, dof)
        else:
            score = 0.0
        if controls.verbose:
            print(f"  motif search: width {w}, objective {result.lower_bound:.6g}"
                  + (f", log10 E-value {-score:.3g}" if len(widths) > 1 else ""))
        if best is None or score > best[0]:
            best = (score, result.params)
    return best[1]


def _search_sequences(data, random_state):
    """At most SEQUENCE_SEARCH_ROWS sequences: all, or a weighted draw with counts as weights."""
    if data.n_rows <= SEQUENCE_SEARCH_ROWS:
        return data
    draws = random_state.multinomial(SEQUENCE_SEARCH_ROWS, data.weights / data.weights.sum())
    chosen = np.flatnonzero(draws)
    return replace(data.take(chosen), weights=draws[chosen].astype(float))


def _best_after_one_step(batch, rows, params):
    """The N_CONTINUE best distinct candidates after one EM step, by their objective then."""
    from ._em import e_pass

    stats, _ = e_pass(batch, params, rows)
    params = batch.m_step(stats, params)
    stats, _ = e_pass(batch, params, rows)
    score = stats.loglik + batch.model.pseudocount * params.log_pwms.sum(axis=1)
    perm = revcomp_permutation(batch.width, batch.model.letters) if batch.model.revcomp else None
    return _distinct(params, score, perm)


@dataclass(frozen=True)
class SiteCandidateStats(AdditiveStats):
    counts: np.ndarray  # (C, w * A) expected site letters of each candidate, on its strand
    n_sites: np.ndarray  # (C,)
    n_trials: float  # sequences where a site fits
    loglik: np.ndarray  # (C,) sum_i w_i log p(x_i | candidate) / p_b(x_i)


@dataclass(frozen=True, kw_only=True, eq=False)
class SiteCandidateBatch(EMModel):
    """Candidate motifs of one width side by side, each in its own sequence model (background fixed).

    Candidate ``c`` (log-PWM ``L_c``, site probability ``gamma_c``) explains a
    sequence by the OOPS or ZOOPS likelihood of :mod:`skem._motif_sequences`
    (TCM is scored as ZOOPS). The site scores of all candidates at all start
    positions are one matrix product of the one-hot windows of a group of
    sequences with the candidates' log-ratio columns (and their reverse
    complements); the expected letter counts are another.

    Parameters
    ----------
    model : skem._motif_sequences.SequenceMotifModel
    background : ndarray of shape (A,)
    width : int
    """

    model: EMModel
    background: np.ndarray
    width: int

    def prepare(self, X, weights):
        return self.model.prepare(X, weights)

    def work_per_row(self, data):
        return self.model.work_per_row(data) * 4

    def initialize(self, data, random_state, controls):
        """Substrings of the rows (weighted), fuzzed towards the background, as log-PWMs."""
        w, A = self.width, self.model.n_letters
        starts = np.maximum(data.lengths - w + 1, 0)
        p = data.weights * (starts > 0)
        if not p.sum() > 0:
            raise ValueError(f"No sequence is at least {w} letters long: no site fits.")
        rows = random_state.choice(data.n_rows, size=N_SEQUENCE_CANDIDATES, p=p / p.sum())
        offsets = (random_state.uniform(size=rows.size) * starts[rows]).astype(np.intp)
        codes = data.codes[rows[:, None], offsets[:, None] + np.arange(w)]  # A: missing letter
        observed = np.zeros((rows.size, w, A + 1))
        np.put_along_axis(observed, codes[:, :, None], 1.0, axis=2)
        observed = observed[:, :, :A]
        pwms = (1.0 - START_FUZZ) * observed + (
            1.0 - (1.0 - START_FUZZ) * observed.sum(axis=2, keepdims=True)
        ) * self.background
        gamma = 1.0 if self.model.mode == "oops" else 0.5
        return CandidateParams(np.log(pwms).reshape(rows.size, -1), np.full(rows.size, gamma))

    def _windows(self, chunk):
        """One-hot windows (n, M, w * A) of the chunk's rows and their log site priors (n, M)."""
        w, A = self.width, self.model.n_letters
        n, length = chunk.codes.shape
        M = max(length - w + 1, 0)
        onehot = np.zeros((n, length, A + 1))
        np.put_along_axis(onehot, chunk.codes[:, :, None], 1.0, axis=2)
        view = np.lib.stride_tricks.sliding_window_view(onehot[:, :, :A], w, axis=1)
        windows = np.ascontiguousarray(view[:, :M].transpose(0, 1, 3, 2)).reshape(n, M, w * A)
        starts = np.maximum(chunk.lengths - w + 1, 0)
        with np.errstate(divide="ignore"):
            prior = np.where(np.arange(M) < starts[:, None], -np.log(np.maximum(starts, 1))[:, None],
                             -np.inf)
        if chunk.erased.shape[1]:
            log_erased = np.log(np.maximum(chunk.erased, 1e-12))
            cumulative = np.concatenate([np.zeros((n, 1)), np.cumsum(log_erased, axis=1)], axis=1)
            prior = prior + (cumulative[:, w : w + M] - cumulative[:, :M])
        return windows, prior - np.log(self.model.n_strands)

    def _group_stats(self, params, chunk):
        windows, prior = self._windows(chunk)
        n, M, D = windows.shape
        C = params.n_candidates
        perm = revcomp_permutation(self.width, self.model.letters) if self.model.revcomp else None
        log_pwms = params.log_pwms
        if perm is not None:
            log_pwms = np.concatenate([log_pwms, log_pwms[:, perm]])
        # Log-ratios against the background of the letters as read (on either strand).
        columns = log_pwms - np.tile(np.log(self.background), self.width)  # (S C, D)
        flat = windows.reshape(n * M, D)
        scores = (flat @ columns.T).reshape(n, M, -1, C) + prior[:, :, None, None]  # (n, M, S, C)
        log_site = logsumexp(scores.reshape(n, -1, C), axis=1)  # (n, C)
        gamma = params.alpha
        if self.model.mode == "oops":
            log_norm = log_site
        else:
            with np.errstate(divide="ignore"):
                log_norm = np.logaddexp(np.log1p(-np.minimum(gamma, 1.0)), np.log(gamma) + log_site)
        fits = np.isfinite(log_site)
        log_norm = np.where(fits, log_norm, 0.0)
        with np.errstate(invalid="ignore"):
            post = np.exp(np.log(np.maximum(gamma, 1e-300)) + scores - log_norm[:, None, None, :])
        post = np.where(fits[:, None, None, :], post, 0.0) * chunk.weights[:, None, None, None]
        post = post.reshape(n * M, -1, C)
        counts = post[:, 0].T @ flat
        if perm is not None:
            counts += (post[:, 1].T @ flat)[:, perm]
        trials = float(chunk.weights @ fits[:, 0])
        return SiteCandidateStats(counts, post.sum(axis=(0, 1)), trials, chunk.weights @ log_norm)

    def e_step(self, params, chunk):
        length = chunk.codes.shape[1]
        per_row = max(1, length * params.n_candidates * self.model.n_strands * 3)
        group = max(1, CANDIDATE_WORK // per_row)
        stats = None
        for start in range(0, chunk.n_rows, group):
            part = self._group_stats(params, chunk.take(slice(start, start + group)))
            stats = part if stats is None else stats + part
        return stats, float(stats.loglik.sum())

    def m_step(self, stats, params):
        beta = self.model.pseudocount
        C, A = stats.counts.shape[0], self.model.n_letters
        counts = stats.counts
        if self.model.palindromic:
            perm = revcomp_permutation(self.width, self.model.letters)
            counts = (counts + counts[:, perm]) / 2
        pwms = (counts + beta).reshape(C, self.width, A)
        pwms /= pwms.sum(axis=2, keepdims=True)
        if self.model.mode == "oops":
            gamma = np.ones(C)
        else:
            gamma = np.clip(stats.n_sites / max(stats.n_trials, 1e-300), 1e-6, 1.0)
        return CandidateParams(np.log(pwms).reshape(C, -1), gamma)

    def log_prior(self, params):
        return float(self.model.pseudocount * params.log_pwms.sum())

    def score_samples(self, params, chunk):
        raise NotImplementedError("The candidates are scored by their objectives only.")

    def predict_proba(self, params, chunk):
        raise NotImplementedError("The candidates are scored by their objectives only.")

    def n_parameters(self, params):
        A = self.model.n_letters
        return params.n_candidates * (1 + self.width * (A - 1))

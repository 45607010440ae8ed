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

The sequence models (``MotifMixture(width=...)``) start from
:func:`search_sequence_motif`: enriched k-mers and substrings scored after one
EM step, MEME's way (see its docstring).

Every EM run here is :func:`skem._em.run_em` with the fit's chunk size: the
candidates' M-step is the model's kernel :func:`skem.motifs.motif_m_step`, and
the engine warns if any objective decreases, as in the fit itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from ._em import AdditiveStats, EMControls, EMModel, best_result, run_em
from .motifs import (
    MotifModel,
    MotifParams,
    _component_log_prob,
    _fold_states,
    _state_log_prob,
    motif_m_step,
)
from ._motif_sequences import log_erased_windows
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


#: Longest and shortest k-mers counted to seed the sequence models' search (k is also at most
#: the motif width, and about log_A of the number of positions, so that a k-mer is expected
#: about once by chance).
KMER_MAX, KMER_MIN = 8, 3
#: The most enriched k-mers, each extended to a candidate PWM.
N_KMER_SEEDS = 24
#: Occurrences of one k-mer that its extension reads (a frequent k-mer's first ones).
MAX_OCCURRENCES = 2000
#: Substrings of the search sequences also tried as starts (MEME's seeds: weak motifs, whose
#: exact k-mers are rare, are found from their sites).
N_SUBSTRINGS = 128
#: Sequences all candidates take their first EM step on (a weighted draw).
SEQUENCE_SEARCH_ROWS = 64
#: Sequences that decide between the best candidates and their shifts (a weighted draw).
SEQUENCE_DECIDE_ROWS = 256
#: Float64 work values of the candidates' E-step held at once (rows are processed in groups).
CANDIDATE_WORK = 2**22


def search_sequence_motif(model, data, random_state, controls):
    """Starting parameters of a sequence model, seeded by enriched k-mers and scored as MEME does.

    For each width ``w`` from ``model.min_width`` to ``model.max_width``:

    1. K-mer seeds: the :data:`N_KMER_SEEDS` k-mer classes most enriched in
       the sequences (:func:`kmer_enrichment`: both strands with revcomp,
       erasing weights honoured), each extended to width ``w`` by the letters
       around its occurrences (:func:`kmer_candidates`), take one EM step side
       by side (:class:`SiteCandidateBatch`, TCM scored as ZOOPS) on a
       weighted draw of :data:`SEQUENCE_DECIDE_ROWS` sequences and are ranked
       by their objective after it, as MEME ranks its starts.
    2. Substring seeds (MEME's): :data:`N_SUBSTRINGS` substrings of a draw of
       :data:`SEQUENCE_SEARCH_ROWS` sequences do the same on those sequences.
    3. The :data:`N_CONTINUE` best distinct of each kind and their shifts by
       up to :data:`MAX_SHIFT` positions take one more step on the decision
       rows (palindromic candidates are tied only now), and the best starts the fit.

    All candidates put :data:`START_FUZZ` of each position's probability on
    the background. Apart from counting k-mers (integer arithmetic, one pass), the
    work does not grow with the data.
    With several widths, each width's start is run to convergence and the
    width of the smallest E-value (:func:`skem._motif_sequences.log10_evalue`)
    wins. Every step is an engine E-pass (:func:`skem._em.e_pass`) of the
    candidate batch (and :func:`skem._em.run_em` of the model between widths).

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
    min_width = model.min_width or model.width
    widths = range(min_width, (model.max_width or model.width) + 1)
    if not np.any(data.lengths >= min_width):
        raise ValueError(f"No sequence is at least {min_width} letters long: no site fits.")
    kmers = kmer_enrichment(model, data, background, kmer_length(data, A, min_width))
    search = _draw_sequences(data, SEQUENCE_SEARCH_ROWS, random_state)
    decide = _draw_sequences(data, SEQUENCE_DECIDE_ROWS, random_state)
    best = None
    for w in widths:
        batch = SiteCandidateBatch(model=model, background=background, width=w)
        # The k-mer seeds are few and carry their whole motif: the decision rows score them.
        # The substrings are many, each from one sequence: the smaller search rows do.
        # The first step leaves candidates free of the palindromic tie: tied off-centre, a
        # candidate would be folded onto a mirror image of itself before its shifts are tried.
        seeds = kmer_candidates(batch, data, kmers)
        n_seeds = seeds.n_candidates
        if n_seeds:  # none when no k-mer is free of missing letters
            seeds = _best_after_steps(batch, decide, seeds, 1, controls.chunk_size)
        substrings = _best_after_steps(
            batch, search, substring_candidates(batch, search, N_SUBSTRINGS, random_state), 1,
            controls.chunk_size,
        )
        top = CandidateParams(np.concatenate([seeds.log_pwms, substrings.log_pwms]),
                              np.concatenate([seeds.alpha, substrings.alpha]))
        batch = replace(batch, palindromic=model.palindromic)
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
        top = _best_after_steps(batch, decide, family, 1, controls.chunk_size, keep=1)
        gamma = float(top.alpha[0])
        if model.mode == "tcm":
            # The batch's site probability is per sequence (ZOOPS); TCM's is per start position.
            starts = data.weights @ np.maximum(data.lengths - w + 1, 0) / data.weights.sum()
            gamma = min(gamma / max(starts, 1.0), 0.5)
        start = SequenceMotifParams(background.copy(), (np.exp(top.log_pwms[0]).reshape(w, A),),
                                    np.array([gamma]))
        if len(widths) > 1:
            # Widths compete on converged fits: an E-value of a half-fitted motif says little.
            full = EMControls(max_iter=controls.max_iter, tol=controls.tol,
                              accelerate=controls.accelerate, chunk_size=controls.chunk_size)
            result = run_em(model, data, start, full)
            from .motifs import _hard_site_counts

            counts = _hard_site_counts(model, result.params, data, controls.chunk_size)
            n_positions = model.n_strands * float(data.weights @ np.maximum(data.lengths - w + 1, 0))
            dof = (A - 1) / (2 if model.palindromic else 1)
            score = -log10_evalue(counts, result.params.background, n_positions, dof)
            start = result.params
        else:
            score = 0.0
        if controls.verbose:
            print(f"  motif search: width {w}, {n_seeds} k-mer seeds (k = {kmers.k}) and "
                  f"{N_SUBSTRINGS} substrings, best start "
                  f"{_consensus(top.log_pwms[0], w, model.letters)}"
                  + (f", log10 E-value {-score:.3g}" if len(widths) > 1 else ""))
        if best is None or score > best[0]:
            best = (score, start)
    return best[1]


def _consensus(log_pwm, width, letters):
    return "".join(np.array(list(letters))[log_pwm.reshape(width, -1).argmax(axis=1)])


def _draw_sequences(data, size, random_state):
    """At most ``size`` sequences: all, or a weighted draw with counts as weights."""
    if data.n_rows <= size:
        return data
    draws = random_state.multinomial(size, data.weights / data.weights.sum())
    chosen = np.flatnonzero(draws)
    return replace(data.take(chosen), weights=draws[chosen].astype(float))


def _best_after_steps(batch, rows, params, n_steps, chunk_size, keep=N_CONTINUE):
    """The ``keep`` best distinct candidates after ``n_steps`` EM steps, by their objective then."""
    from ._em import e_pass

    stats, _ = e_pass(batch, params, rows, chunk_size)
    for _ in range(n_steps):
        params = batch.m_step(stats, params)
        stats, _ = e_pass(batch, params, rows, chunk_size)
    score = stats.loglik + batch.model.pseudocount * params.log_pwms.sum(axis=1)
    perm = revcomp_permutation(batch.width, batch.model.letters) if batch.model.revcomp else None
    best = _distinct(params, score, perm)
    return best.take(np.arange(min(keep, best.n_candidates)))


# ---------------------------------------------------------------------- k-mer seeds


def kmer_length(data, n_letters, width):
    """The k-mer length of the seeds: about ``log_A`` of the number of letters, within
    [KMER_MIN, KMER_MAX] and at most ``width``."""
    letters = max(float(data.weights @ data.lengths), 1.0)
    k = int(np.floor(np.log(letters) / np.log(n_letters)))
    return int(min(max(k, KMER_MIN), KMER_MAX, width))


@dataclass(frozen=True)
class KmerTable:
    """Every k-mer position of the sequences, its (strand-merged) class and the classes' enrichment.

    ``index`` (n, M) is each position's k-mer code in base A (-1 where it holds
    a missing letter or padding), ``canonical`` the code of its class (the
    smaller of it and its reverse complement's with revcomp), ``weight`` the
    position's erasing weight; ``classes`` the distinct classes by decreasing
    ``enrichment`` (the signed binomial G statistic of the sequences that
    hold the class against its expectation under the background).
    """

    k: int
    index: np.ndarray
    canonical: np.ndarray
    weight: np.ndarray
    classes: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    enrichment: np.ndarray


def kmer_enrichment(model, data, background, k):
    """Count the k-mer classes of ``data`` (sequences holding each) and rank them by enrichment.

    A sequence holds a class when a k-mer of the class occurs in it (on either
    strand with revcomp), counted with the row's weight and, after erasing, the
    largest erasing weight of its occurrences (at most 1 per sequence, so a
    repeat does not count many times). Under the zero-order ``background``
    a class of probability ``q`` per position (summed over its orientations) is
    held by a sequence with ``m`` k-mer positions with probability
    ``1 - exp(-m q)``; with ``m`` the weighted mean over sequences, the
    expected number of holders is ``W (1 - exp(-m q))`` for ``W`` sequences.
    The enrichment is the binomial log-likelihood ratio (G) statistic, with
    the sign of ``observed - expected``.

    Parameters
    ----------
    model : skem._motif_sequences.SequenceMotifModel
    data : skem._motif_sequences.SequenceData
    background : ndarray of shape (A,)
    k : int

    Returns
    -------
    KmerTable
    """
    A = model.n_letters
    codes = data.codes
    n, length = codes.shape
    M = max(length - k + 1, 0)
    index = np.zeros((n, M), dtype=np.int64)
    valid = np.ones((n, M), dtype=bool)
    for p in range(k):
        window = codes[:, p : p + M]
        valid &= window < A
        index = index * A + np.minimum(window, A - 1)
    canonical = index
    if model.revcomp:
        complement = revcomp_permutation(1, model.letters)
        reverse = _reverse_complement_index(index, k, A, complement)
        canonical = np.minimum(index, reverse)
    index = np.where(valid, index, -1)
    canonical = np.where(valid, canonical, -1)
    weight = valid.astype(float)
    if data.erased.shape[1]:
        weight = weight * np.exp(log_erased_windows(data.erased, k, M))
    rows, starts = np.nonzero(valid)
    # A sequence holds a class once: the largest erasing weight of its occurrences.
    keys = canonical[rows, starts] * n + rows
    order = np.lexsort((weight[rows, starts], keys))
    keys, held = keys[order], weight[rows, starts][order]
    last = np.ones(keys.size, dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    keys, held = keys[last], held[last] * data.weights[keys[last] % n]
    classes, position = np.unique(keys // n, return_inverse=True)
    observed = np.bincount(position, weights=held, minlength=classes.size)
    log_q = _kmer_log_prob(classes, k, A, np.log(background))
    if model.revcomp:
        reverse = _reverse_complement_index(classes, k, A, complement)
        log_q = np.where(reverse != classes,
                         np.logaddexp(log_q, _kmer_log_prob(reverse, k, A, np.log(background))),
                         log_q)
    sites = valid.sum(axis=1)
    total = float(data.weights @ (sites > 0))
    mean_sites = float(data.weights @ sites) / max(total, 1e-300)
    expected = total * -np.expm1(-mean_sites * np.exp(log_q))
    enrichment = np.sign(observed - expected) * _binomial_g(observed, expected, total)
    order = np.argsort(-enrichment, kind="stable")
    return KmerTable(k, index, canonical, weight, classes[order], observed[order],
                     expected[order], enrichment[order])


def _reverse_complement_index(index, k, A, complement):
    """The base-A codes of the reverse complements of k-mers with codes ``index``."""
    reverse = np.zeros_like(index)
    rest = index.copy()
    for _ in range(k):
        reverse = reverse * A + complement[rest % A]
        rest //= A
    return reverse


def _kmer_log_prob(index, k, A, log_background):
    """Log-probability of each k-mer (base-A codes ``index``) under a zero-order background."""
    total = np.zeros(index.shape)
    rest = index.copy()
    for _ in range(k):
        total += log_background[rest % A]
        rest //= A
    return total


def _binomial_g(observed, expected, total):
    """Binomial log-likelihood ratio of ``observed`` successes in ``total`` trials against
    success probability ``expected / total``."""
    def term(x, e):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log(x / np.maximum(e, 1e-300)), 0.0)

    observed = np.minimum(observed, total)
    return term(observed, expected) + term(total - observed, total - expected)


def kmer_candidates(batch, data, kmers):
    """Candidate PWMs (log, (C, w * A)) of ``batch``'s width, one per most enriched k-mer class.

    The occurrences of a class (up to :data:`MAX_OCCURRENCES`, each read in the
    orientation of the class's representative, weighted by row and erasing
    weight) are aligned on the k-mer, ``w - k`` letters on either side; of
    the ``w - k + 1`` windows of width ``w`` that contain the k-mer, the one
    whose letter frequencies have the largest log-likelihood ratio against the
    background (MEME's alignment statistic, summed over columns) is kept.
    Its frequencies, fuzzed by :data:`START_FUZZ` towards the background, are
    the candidate: a motif's k-mer carries the rest of the motif with it, a
    chance k-mer only background letters.
    """
    model = batch.model
    A, w, k = model.n_letters, batch.width, kmers.k
    classes = kmers.classes[:N_KMER_SEEDS]
    C, span = classes.size, 2 * w - k
    rows, starts = np.nonzero(np.isin(kmers.canonical, classes))
    seed = np.searchsorted(np.sort(classes), kmers.canonical[rows, starts])
    seed = np.argsort(classes)[seed]
    # The first MAX_OCCURRENCES occurrences of each class.
    order = np.argsort(seed, kind="stable")
    rows, starts, seed = rows[order], starts[order], seed[order]
    first = np.searchsorted(seed, np.arange(C))
    keep = np.arange(seed.size) - first[seed] < MAX_OCCURRENCES
    rows, starts, seed = rows[keep], starts[keep], seed[keep]
    minus = kmers.index[rows, starts] != classes[seed]
    offsets = np.arange(span) - (w - k)
    # On the minus strand, letter t of the class's orientation is the complement of the
    # forward letter at start + k - 1 - t.
    position = np.where(minus[:, None], starts[:, None] + k - 1 - offsets, starts[:, None] + offsets)
    inside = (position >= 0) & (position < data.codes.shape[1])
    letters = np.where(inside, data.codes[rows[:, None], np.clip(position, 0, data.codes.shape[1] - 1)], A)
    if model.revcomp:
        complement = np.append(revcomp_permutation(1, model.letters), A)
        letters = np.where(minus[:, None], complement[letters], letters)
    weights = kmers.weight[rows, starts] * data.weights[rows]
    cells = (seed[:, None] * span + np.arange(span)) * (A + 1) + letters
    counts = np.bincount(cells.ravel(), weights=np.repeat(weights, span),
                         minlength=C * span * (A + 1)).reshape(C, span, A + 1)[:, :, :A]
    beta = model.pseudocount
    frequencies = (counts + beta) / (counts.sum(axis=2, keepdims=True) + A * beta)
    llr = (counts * np.log(frequencies / batch.background)).sum(axis=2)  # (C, span)
    cumulative = np.concatenate([np.zeros((C, 1)), np.cumsum(llr, axis=1)], axis=1)
    window = np.argmax(cumulative[:, w:] - cumulative[:, : span - w + 1], axis=1)
    chosen = frequencies[np.arange(C)[:, None], window[:, None] + np.arange(w)]  # (C, w, A)
    pwms = (1.0 - START_FUZZ) * chosen + START_FUZZ * batch.background
    gamma = 1.0 if model.mode == "oops" else 0.5
    return CandidateParams(np.log(pwms).reshape(C, w * A), np.full(C, gamma))


def substring_candidates(batch, data, size, random_state):
    """``size`` substrings of width ``w`` of the rows (weighted draws), fuzzed towards the
    background (:data:`START_FUZZ`), as candidate log-PWMs."""
    model = batch.model
    w, A = batch.width, model.n_letters
    starts = np.maximum(data.lengths - w + 1, 0)
    p = data.weights * (starts > 0)
    rows = random_state.choice(data.n_rows, size=size, p=p / p.sum())
    offsets = (random_state.uniform(size=rows.size) * starts[rows]).astype(np.intp)
    codes = data.codes[rows[:, None], offsets[:, None] + np.arange(w)]  # A: missing letter
    observed = np.eye(A + 1)[codes][:, :, :A]
    pwms = (1.0 - START_FUZZ) * observed + (
        1.0 - (1.0 - START_FUZZ) * observed.sum(axis=2, keepdims=True)
    ) * batch.background
    gamma = 1.0 if model.mode == "oops" else 0.5
    return CandidateParams(np.log(pwms).reshape(size, -1), np.full(size, gamma))


# ---------------------------------------------------------------- candidate batch


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
    palindromic : bool, default=False
        Whether the M-step ties each PWM to its reverse complement (the model's
        ``palindromic``; the search's first step leaves candidates free, so that
        a candidate off the palindrome's centre can still be shifted onto it).
    """

    model: EMModel
    background: np.ndarray
    width: int
    palindromic: bool = False

    def prepare(self, X, weights):
        return self.model.prepare(X, weights)

    def work_per_row(self, data):
        return self.model.work_per_row(data) * 4

    def initialize(self, data, random_state, controls):
        """The k-mer seeds of :func:`kmer_candidates`."""
        k = kmer_length(data, self.model.n_letters, self.width)
        return kmer_candidates(self, data, kmer_enrichment(self.model, data, self.background, k))

    def _windows(self, chunk):
        """One-hot windows (n * M, w * A) (float32) of the chunk's rows and their log site
        priors (n, M)."""
        w, A = self.width, self.model.n_letters
        n, length = chunk.codes.shape
        M = max(length - w + 1, 0)
        onehot = np.eye(A + 1, dtype=np.float32)[chunk.codes][:, :, :A]
        view = np.lib.stride_tricks.sliding_window_view(onehot, w, axis=1)
        windows = np.ascontiguousarray(view[:, :M].transpose(0, 1, 3, 2)).reshape(n * M, w * A)
        starts = np.maximum(chunk.lengths - w + 1, 0)
        with np.errstate(divide="ignore"):
            prior = np.where(np.arange(M) < starts[:, None], -np.log(np.maximum(starts, 1))[:, None],
                             -np.inf)
        if chunk.erased.shape[1]:
            prior = prior + log_erased_windows(chunk.erased, w, M)
        return windows, (prior - np.log(self.model.n_strands)).astype(np.float32)

    def _group_stats(self, params, chunk):
        # Single precision: the candidates only need ranking, and the products and
        # exponentials over (positions x candidates x strands) dominate the search.
        windows, prior = self._windows(chunk)
        n, M = prior.shape
        C = params.n_candidates
        perm = revcomp_permutation(self.width, self.model.letters) if self.model.revcomp else None
        log_pwms = params.log_pwms
        if perm is not None:
            log_pwms = np.concatenate([log_pwms, log_pwms[:, perm]])
        S = log_pwms.shape[0] // C
        # Log-ratios against the background of the letters as read (on either strand).
        columns = (log_pwms - np.tile(np.log(self.background), self.width)).astype(np.float32)
        scores = windows @ columns.T  # (n M, S C): strand-major columns
        scores.reshape(n, M, S * C)[...] += prior[:, :, None]
        # One exponential serves the likelihood and the posteriors (scaled by each row's maximum).
        top = scores.reshape(n, M * S, C).max(axis=1)  # (n, C)
        fits = np.isfinite(top)
        top = np.where(fits, top, 0.0).astype(np.float32)
        scores.reshape(n, M * S, C)[...] -= top[:, None, :]
        np.exp(scores, out=scores)
        site_sum = scores.reshape(n, M * S, C).sum(axis=1, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_site = np.log(site_sum) + top  # (n, C)
            log_gamma = np.log(params.alpha)
            if self.model.mode == "oops":
                log_norm = log_site
            else:
                log_norm = np.logaddexp(np.log1p(-np.minimum(params.alpha, 1.0)), log_gamma + log_site)
        log_norm = np.where(fits, log_norm, 0.0)
        scale = np.where(fits, np.exp(log_gamma + top - log_norm), 0.0) * chunk.weights[:, None]
        scores.reshape(n, M * S, C)[...] *= scale.astype(np.float32)[:, None, :]  # posteriors
        counts = (scores.T @ windows).astype(np.float64)  # (S C, D)
        n_sites = (scale * site_sum).sum(axis=0)  # the posteriors' sums, both strands
        if perm is not None:
            counts = counts[:C] + counts[C:][:, perm]
        trials = float(chunk.weights @ fits[:, 0]) if C else 0.0
        return SiteCandidateStats(counts, n_sites, trials, chunk.weights @ log_norm)

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
        if self.palindromic:
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

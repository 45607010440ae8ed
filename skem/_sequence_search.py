"""The start search of the sequence models (:class:`skem.SequenceMotifMixture`).

MEME's way: enriched k-mers (:func:`kmer_enrichment`, :func:`kmer_candidates`)
and substrings of the sequences (:func:`substring_candidates`) become
candidate PWMs, all scored side by side after one EM step
(:class:`SiteCandidateBatch`); the best and their phase shifts take another
step, and the best of all starts the fit (see :func:`search_sequence_motif`).
With a range of widths, each width's start is fitted to convergence and the
width of the smallest E-value wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._em import AdditiveStats, EMControls, EMModel, e_pass, run_em
from ._pwm import (
    MAX_SHIFT,
    N_CONTINUE,
    START_FUZZ,
    CandidateParams,
    distinct_candidates,
    shift_log_pwm,
    weighted_draw,
)
from ._sequence_sites import SequenceMotifParams, log_erased_windows
from .sequences import revcomp_permutation

__all__ = [
    "KmerTable",
    "SiteCandidateBatch",
    "kmer_candidates",
    "kmer_enrichment",
    "kmer_length",
    "search_sequence_motif",
    "substring_candidates",
]

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
    With ``model.init_params == "random"`` the start of each width is instead
    one substring of the sequences drawn at random (a weighted draw), fuzzed
    towards the background. With several widths, each width's start is run to
    convergence and the width of the smallest E-value
    (:func:`skem._sequence_sites.log10_evalue`) wins: its *start* is returned,
    so that the fit's own run is the chosen width's. Every step is an engine
    E-pass (:func:`skem._em.e_pass`) of the candidate batch in automatic chunks
    (its single-precision sums must not depend on ``chunk_size``), and every
    run between widths :func:`skem._em.run_em` with the fit's controls.

    Parameters
    ----------
    model : skem._motif_sequences.SequenceMotifModel
    data : skem._sequence_sites.SequenceData
        All sequences (with any erasing weights).
    random_state : numpy.random.RandomState
    controls : EMControls
        The fit's controls (chunk size, tolerance, printing).

    Returns
    -------
    SequenceMotifParams
        One motif: the start of the chosen width.
    """
    A = model.n_letters
    beta = model.pseudocount
    background = data.weights @ data.letter_counts + beta
    background /= background.sum()
    widths = range(model.min_width, model.max_width + 1)
    if not np.any(data.lengths >= model.min_width):
        raise ValueError(f"No sequence is at least {model.min_width} letters long: no site fits.")
    if model.init_params == "random":
        search = None
    else:
        kmers = kmer_enrichment(model, data, background, kmer_length(data, A, model.min_width))
        search = (kmers, weighted_draw(data, SEQUENCE_SEARCH_ROWS, random_state),
                  weighted_draw(data, SEQUENCE_DECIDE_ROWS, random_state))
    best = None
    for w in widths:
        batch = SiteCandidateBatch(model=model, background=background, width=w)
        if search is None:
            top = substring_candidates(batch, data, 1, random_state)
            found = "a random substring"
        else:
            # The candidates' passes are in single precision, whose sums depend on how the
            # rows are grouped: they take automatic chunks (sized by the data alone), so
            # that the start, and the fit, do not depend on chunk_size.
            top, found = _searched_candidate(batch, data, *search, random_state, None)
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
            score = -model.log10_evalue(result.params, data, controls.chunk_size)
        else:
            score = 0.0
        if controls.verbose:
            print(f"  motif search: width {w}, {found}, best start "
                  f"{_consensus(top.log_pwms[0], w, model.letters)}"
                  + (f", log10 E-value {-score:.3g}" if len(widths) > 1 else ""))
        if best is None or score > best[0]:
            best = (score, start)
    return best[1]


def _searched_candidate(batch, data, kmers, search, decide, random_state, chunk_size):
    """The best candidate of width ``batch.width`` (steps 1 to 3 of :func:`search_sequence_motif`)
    and a description of the seeds."""
    model, w, A = batch.model, batch.width, batch.model.n_letters
    # The k-mer seeds are few and carry their whole motif: the decision rows score them.
    # The substrings are many, each from one sequence: the smaller search rows do.
    # The first step leaves candidates free of the palindromic tie: tied off-centre, a
    # candidate would be folded onto a mirror image of itself before its shifts are tried.
    seeds = kmer_candidates(batch, data, kmers)
    n_seeds = seeds.n_candidates
    if n_seeds:  # none when no k-mer is free of missing letters
        seeds = _best_after_steps(batch, decide, seeds, 1, chunk_size)
    substrings = _best_after_steps(
        batch, search, substring_candidates(batch, search, N_SUBSTRINGS, random_state), 1,
        chunk_size,
    )
    top = CandidateParams(np.concatenate([seeds.log_pwms, substrings.log_pwms]),
                          np.concatenate([seeds.alpha, substrings.alpha]))
    batch = replace(batch, palindromic=model.palindromic)
    shifted = [
        shift_log_pwm(log_pwm, np.tile(batch.background, (w, 1)), shift)
        for log_pwm in top.log_pwms
        for shift in range(-MAX_SHIFT, MAX_SHIFT + 1)
        if 0 < abs(shift) < w
    ]
    family = CandidateParams(
        np.concatenate([top.log_pwms, np.array(shifted).reshape(-1, w * A)]),
        np.concatenate([top.alpha, np.repeat(top.alpha, len(shifted) // max(len(top.alpha), 1))]),
    )
    top = _best_after_steps(batch, decide, family, 1, chunk_size, keep=1)
    return top, f"{n_seeds} k-mer seeds (k = {kmers.k}) and {N_SUBSTRINGS} substrings"


def _consensus(log_pwm, width, letters):
    return "".join(np.array(list(letters))[log_pwm.reshape(width, -1).argmax(axis=1)])


def _best_after_steps(batch, rows, params, n_steps, chunk_size, keep=N_CONTINUE):
    """The ``keep`` best distinct candidates after ``n_steps`` EM steps, by their objective then."""
    stats, _ = e_pass(batch, params, rows, chunk_size)
    for _ in range(n_steps):
        params = batch.m_step(stats, params)
        stats, _ = e_pass(batch, params, rows, chunk_size)
    score = stats.loglik + batch.model.pseudocount * params.log_pwms.sum(axis=1)
    perm = revcomp_permutation(batch.width, batch.model.letters) if batch.model.revcomp else None
    best = distinct_candidates(params, score, perm)
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
    data : skem._sequence_sites.SequenceData
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

"""The motif search that starts :class:`skem.MotifMixture` (``init_params="random_from_data"``).

The likelihood of a window mixture has many local optima: a start that
half-covers the motif converges to a *shifted* copy of it. MEME's remedy
(Bailey & Elkan 1994) is to start from observed windows. :func:`search_motifs`
does so, adding the motif components one at a time to a mixture whose
component 0 starts as the letter frequencies of the data:

1. Up to :data:`N_CANDIDATES` distinct observed windows of a weighted draw
   of at most :data:`SEARCH_ROWS` rows become candidate PWMs
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
   :data:`N_CONTINUE` best distinct ones are continued by EM of the full
   model; the objective on all rows decides between them.

Steps 2 and 3 run in levels (:func:`_search_level`), on growing draws. The
first scores and refines on :data:`SCORE_ROWS` rows and continues on
:data:`CONTINUE_ROWS` (EM to :data:`CONTINUE_TOL`, at most
:data:`CONTINUE_ITER` steps). It decides when its best mixture, continued by EM on all rows
until it converges (to :data:`CONTINUE_TOL`, within :data:`CONTINUE_ITER`
steps), puts at least :data:`MIN_SITES` of the scored rows in each
component: a common motif is found on a small draw, and the fit's own EM (to
its strict ``tol``) then converges from there. (On a small draw, a shifted
blend of a rare motif can take more of the rows than the motif has sites, as
it also fits background rows by chance; on all rows its weight falls, at
times only after tens of steps, so the count waits for convergence.) Otherwise the next level draws
:data:`LEVEL_GROWTH` times more rows. The last level works on the whole
search draw as the search did before levels (which shortlisted 50):
:data:`CONTINUE_ITER` steps of each continued candidate, then
:data:`FINAL_ITER` on all rows. So a motif too rare for a small draw costs
about what it did, and a common one a fraction of it.

The sequence models (:class:`skem.SequenceMotifMixture`) start from
:func:`skem._sequence_search.search_sequence_motif`.

Every EM run here is :func:`skem._em.run_em` with the fit's chunk size: the
candidates' M-step is the model's kernel :func:`skem._pwm.motif_m_step`, and
the engine warns if any objective decreases, as in the fit itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ._em import AdditiveStats, EMControls, EMModel, best_result, run_em
from ._pwm import (
    MAX_SHIFT,
    START_FUZZ,
    CandidateParams,
    MotifParams,
    component_log_prob,
    distinct_candidates,
    fold_states,
    motif_m_step,
    shift_log_pwm,
    state_log_prob,
    weighted_draw,
)
from .sequences import revcomp_permutation

__all__ = ["CandidateBatch", "CandidateStats", "search_motifs"]

#: Most rows the search works on: a weighted draw of them (all rows when there are fewer).
SEARCH_ROWS = 20_000
#: Rows of that draw on which the candidates are first scored, take their side-by-side steps
#: and are continued; LEVEL_GROWTH times more at each level that does not decide.
SCORE_ROWS = 1500
LEVEL_GROWTH = 4
#: Fewest rows the candidates are continued on below the last level.
CONTINUE_ROWS = 5000
#: Fewest rows a level's best mixture puts in each component (its weight times the rows
#: scored) for the level to decide: fewer sites of a rare motif cannot tell the candidates
#: apart, and the next level draws LEVEL_GROWTH times more rows.
MIN_SITES = 100
#: Observed windows tried as starts: a motif in a fraction f of windows is among
#: them with probability 1 - exp(-f * N_CANDIDATES) (99 % at f = 0.5 %).
N_CANDIDATES = 1000
#: Candidates kept after scoring, refined by SHORT_ITER side-by-side EM steps.
N_SHORTLIST, SHORT_ITER = 20, 10
#: Full EM steps of the N_CONTINUE best refined candidates (skem._pwm): at most CONTINUE_ITER,
#: stopping when their objective per window changes by less than CONTINUE_TOL (relative)
#: below the last level, all CONTINUE_ITER at the last.
CONTINUE_ITER, CONTINUE_TOL = 50, 1e-8
#: Above this log-likelihood ratio, log1p(a expm1(d)) is computed as log(a) + d.
LOG_RATIO_MAX = 300.0
#: EM steps on all rows that decide between the continued candidates at the last level, when
#: the search used fewer rows (below it, the objective on all rows decides).
FINAL_ITER = 5
#: Starting mixing proportion of a candidate motif.
START_WEIGHT = 0.02


def search_motifs(model, data, random_state, controls):
    """Starting parameters of a motif mixture, found among observed windows.

    Parameters
    ----------
    model : skem._motif_windows.MotifModel
        The mixture to start, with ``n_components >= 2``.
    data : skem._motif_windows.MotifData
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
    search = weighted_draw(data, SEARCH_ROWS, random_state)
    resp = np.zeros((search.n_rows, model.n_components))
    resp[:, 0] = 1.0
    stats = model.accumulate(None, search, resp * search.weights[:, None], None)
    background = model.initial_m_step(stats).pwms[0]
    params = MotifParams(np.ones(1), background[None])
    for _ in range(1, model.n_components):
        batch = CandidateBatch(mixture=model, fixed=params, background=background)
        candidates = batch.initialize(search, random_state, controls)
        size = SCORE_ROWS
        while True:
            rows = weighted_draw(search, size, random_state)
            result, decided = _search_level(batch, candidates, data, search, rows, random_state,
                                            controls.chunk_size)
            if decided or rows is search:
                break
            size *= LEVEL_GROWTH
        if controls.verbose:
            print(f"  motif search: component {params.weights.size} from "
                  f"{candidates.n_candidates} candidates on {rows.n_rows} rows, "
                  f"objective {result.lower_bound:.6g}")
        params = result.params
    return params


def _search_level(batch, candidates, data, search, rows, random_state, chunk_size):
    """One level of the search: the candidates scored and refined on ``rows``, the best
    continued and compared on all rows.

    Returns the best run and whether it is decided: always at the last level (``rows`` is
    ``search``); below it, when the best run, continued on all rows until EM converges to
    CONTINUE_TOL within CONTINUE_ITER steps (the run returned), puts at least MIN_SITES of
    the scored rows in each component.
    """
    model, params, background = batch.mixture, batch.fixed, batch.background
    w, A = background.shape
    best = _refine(batch, rows, candidates, N_SHORTLIST, chunk_size)
    # Phase shifts: the best candidates moved by up to MAX_SHIFT positions,
    # so that a start half-covering the motif can still reach it.
    shifted = [
        (shift_log_pwm(log_pwm, background, shift), alpha)
        for log_pwm, alpha in zip(best.log_pwms, best.alpha)
        for shift in range(-MAX_SHIFT, MAX_SHIFT + 1)
        if 0 < abs(shift) < w
    ]
    family = CandidateParams(
        np.stack([*best.log_pwms, *(log_pwm for log_pwm, _ in shifted)]),
        np.concatenate([best.alpha, [alpha for _, alpha in shifted]]),
    )
    best = _refine(batch, rows, family, family.n_candidates, chunk_size)
    starts = [
        _with_candidate(params, log_pwm.reshape(1, w, A), alpha)
        for log_pwm, alpha in zip(best.log_pwms, best.alpha)
    ]
    last = rows is search
    scored = rows.total_weight
    if last:
        continued = EMControls(max_iter=CONTINUE_ITER, tol=0.0, chunk_size=chunk_size)
        final = EMControls(max_iter=FINAL_ITER, tol=0.0, chunk_size=chunk_size)
    else:
        rows = weighted_draw(search, max(CONTINUE_ROWS, rows.n_rows), random_state)
        continued = EMControls(max_iter=CONTINUE_ITER, tol=CONTINUE_TOL, chunk_size=chunk_size)
        final = EMControls(max_iter=0, chunk_size=chunk_size)
    runs = [run_em(model, rows, start, continued) for start in starts]
    if rows is not data:
        # The continued candidates saw a draw of the rows, which holds few sites of a
        # rare motif: all the rows decide between them.
        runs = [run_em(model, data, run.params, final) for run in runs]
    result = best_result(runs)
    if last:
        return result, True
    # Decided when the draw holds enough sites of each component of the best mixture. On a
    # small draw, a shifted blend of a rare motif takes more rows than the motif's sites (it
    # also fits background rows by chance); on all rows its weight falls, sometimes only
    # after tens of steps, so the sites are counted once EM on all rows has converged.
    if result.params.weights.min() * scored < MIN_SITES:
        return result, False
    result = run_em(model, data, result.params,
                    EMControls(max_iter=CONTINUE_ITER, tol=CONTINUE_TOL, chunk_size=chunk_size))
    return result, result.converged and result.params.weights.min() * scored >= MIN_SITES


def _with_candidate(params, log_pwm, alpha):
    """The mixture ``params`` with one more component, ``exp(log_pwm)`` (1, w, A), of weight ``alpha``."""
    return MotifParams(
        np.append(params.weights * (1.0 - alpha), alpha),
        np.concatenate([params.pwms, np.exp(log_pwm)]),
    )


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


def _refine(batch, rows, params, shortlist, chunk_size):
    """The N_CONTINUE best distinct candidates after SHORT_ITER EM steps of the ``shortlist`` best."""
    if params.n_candidates > shortlist:
        score = batch.candidate_objectives(params, rows, chunk_size)
        params = params.take(np.argsort(-score, kind="stable")[:shortlist])
    controls = EMControls(max_iter=SHORT_ITER, tol=0.0, chunk_size=chunk_size)
    params = run_em(batch, rows, params, controls).params
    score = batch.candidate_objectives(params, rows, chunk_size)
    return distinct_candidates(params, score, batch.perm(params))


# ------------------------------------------------------------------- model


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
    mixture : skem._motif_windows.MotifModel
        The model being started: its rows, alphabet, pseudocount and strands.
    fixed : MotifParams
        The mixture found so far, ``p_rest``.
    background : ndarray of shape (w, A)
        What candidates from observed windows are fuzzed towards.
    """

    # eq=False: the fields hold arrays, so batches compare (and hash) by identity.
    mixture: EMModel
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
        """The (candidate, strand) states' log-likelihoods (S, n), the candidates' (C, n), the
        log-likelihoods of the candidates' two-part mixtures (C, n), and the odds (C, n)
        ``alpha_c p_c / p_rest`` (``d = log(p_c / p_rest)`` capped at LOG_RATIO_MAX)."""
        perm = self.perm(params)
        states = state_log_prob(chunk.expanded(), params.log_pwms, perm)
        log_lik = component_log_prob(states, 0, perm is not None)
        rest = self.mixture.score_samples(self.fixed, chunk)
        # log((1 - a) p_rest + a p_c) = log p_rest + log1p(a e^d - a); beyond LOG_RATIO_MAX
        # the second term is log(a) + d to machine precision.
        ratio = log_lik - rest
        alpha = params.alpha[:, None]
        odds = np.exp(np.minimum(ratio, LOG_RATIO_MAX))
        odds *= alpha
        log_gain = np.log1p(odds - alpha)
        large = ratio > LOG_RATIO_MAX
        if large.any():
            log_gain = np.where(large, np.log(alpha) + ratio, log_gain)
        log_gain += rest
        return states, log_lik, log_gain, odds

    def _resp(self, params, odds):
        """Posterior (C, n) that each row is a site of each candidate, in its two-part mixture."""
        return odds / (odds + (1.0 - params.alpha)[:, None])

    def e_step(self, params, chunk):
        onehot = chunk.expanded()
        states, log_lik, log_mix, odds = self._log_densities(params, chunk)
        resp = self._resp(params, odds) * chunk.weights
        resp_sum = resp.sum(axis=1)
        perm = self.perm(params)
        if perm is not None:
            # Split each candidate's responsibility between its strands, as the model's E-step does.
            resp = np.exp(states - np.concatenate([log_lik, log_lik])) * np.tile(resp, (2, 1))
        counts = fold_states(resp @ onehot, 0, perm is not None, perm)
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
        return self._resp(params, self._log_densities(params, chunk)[3]).T

    def n_parameters(self, params):
        A = self.mixture.n_letters
        return params.n_candidates * (1 + params.log_pwms.shape[1] // A * (A - 1))


def _candidate_loglik(batch, params, chunk):
    return (batch._log_densities(params, chunk)[2] @ chunk.weights,)

"""MotifMixture against references computed by hand: the window model's
objective (with a position-independent background's prior counted once),
weighted letter frequencies for one component, and the EM fixed point.
"""

import numpy as np
import pytest
from scipy.special import logsumexp

from skem import MotifMixture

WIDTH, A = 6, 4


def _windows(n, seed, missing=0.0):
    """Windows over ACGT as integer codes: a background with skewed letters, 25 % sites."""
    rng = np.random.default_rng(seed)
    background = np.array([0.4, 0.1, 0.2, 0.3])
    codes = rng.choice(A, size=(n, WIDTH), p=background)
    motif = rng.dirichlet(np.full(A, 0.3), size=WIDTH)
    sites = rng.random(n) < 0.25
    for i in range(WIDTH):
        codes[sites, i] = rng.choice(A, size=sites.sum(), p=motif[i])
    if missing:
        codes[rng.random(codes.shape) < missing] = -1
    return codes


def _log_likelihood(codes, weights, mixing, pwms):
    """``sum_j w_j log sum_k pi_k prod_i pwms[k, i, x_ji]`` (missing letters contribute 1)."""
    positions = np.arange(codes.shape[1])
    per_component = np.stack([
        np.where(codes >= 0, np.log(pwm[positions, np.maximum(codes, 0)]), 0.0).sum(axis=1)
        for pwm in pwms
    ], axis=1)
    return float(weights @ logsumexp(per_component + np.log(mixing), axis=1))


def _log_prior(pwms, pseudocount, tied_background):
    """Dirichlet pseudocounts: ``beta * sum log theta`` over the free distributions --
    one per position and component, and one only for a tied background."""
    motifs = pwms[1:] if tied_background else pwms
    total = np.log(motifs).sum()
    if tied_background:
        total += np.log(pwms[0, 0]).sum()
    return float(pseudocount * total)


def _fit(codes, weights=None, **params):
    defaults = dict(n_components=2, init_params="kmeans", tol=1e-12, max_iter=2000, random_state=0)
    return MotifMixture(**{**defaults, **params}).fit(codes, sample_weight=weights)


@pytest.mark.parametrize("background", [None, "position-independent"])
def test_objective_computed_by_hand(background):
    codes = _windows(400, seed=1, missing=0.02)
    weights = np.random.default_rng(1).uniform(0.2, 2.0, size=len(codes))
    model = _fit(codes, weights, background=background, pseudocount=0.5)
    tied = background is not None
    if tied:  # the tied background is one distribution, repeated at every position
        np.testing.assert_allclose(model.pwms_[0], np.tile(model.pwms_[0, :1], (WIDTH, 1)))
    expected = (
        _log_likelihood(codes, weights, model.weights_, model.pwms_)
        + _log_prior(model.pwms_, 0.5, tied)
    ) / weights.sum()
    assert model.lower_bound_ == pytest.approx(expected, abs=1e-10)


def test_position_independent_background_prior_counts_once():
    """The objective's prior term counts the tied background's pseudocounts once, not once per
    position. Checked on differences between the states of one run (max_iter = 0, 1, 2, 5), so
    that a constant normalizer would not matter while the prior's dependence on the
    background does."""
    codes = _windows(300, seed=2)
    objectives, by_hand = [], []
    for max_iter in (0, 1, 2, 5):
        model = MotifMixture(
            n_components=2, background="position-independent", pseudocount=2.0,
            init_params="random", max_iter=max_iter, random_state=3,
        )
        with pytest.warns(Warning) if max_iter else _no_warning():
            model.fit(codes)
        objectives.append(model.lower_bound_)
        by_hand.append(
            (_log_likelihood(codes, np.ones(len(codes)), model.weights_, model.pwms_)
             + _log_prior(model.pwms_, 2.0, tied_background=True)) / len(codes)
        )
    objectives, by_hand = np.array(objectives), np.array(by_hand)
    assert np.ptp(by_hand) > 1e-3  # the states differ
    np.testing.assert_allclose(np.diff(objectives), np.diff(by_hand), rtol=1e-9, atol=1e-12)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("background", [None, "position-independent"])
def test_one_component_is_weighted_letter_frequencies(background):
    codes = _windows(250, seed=4, missing=0.05)
    codes[:, 0] = np.arange(250) % A  # no compression of duplicate rows can hide the weights
    weights = np.random.default_rng(4).uniform(0.05, 5.0, size=len(codes))
    beta = 0.3
    model = _fit(codes, weights, n_components=1, background=background, pseudocount=beta)
    onehot = (codes[:, :, None] == np.arange(A)).astype(float)  # (n, w, A), missing = all zero
    counts = np.einsum("n,nwa->wa", weights, onehot)
    if background is not None:
        counts = np.tile(counts.sum(axis=0), (WIDTH, 1))
    expected = (counts + beta) / (counts + beta).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.pwms_[0], expected, rtol=1e-12)
    unweighted = _fit(codes, None, n_components=1, background=background, pseudocount=beta)
    assert np.max(np.abs(unweighted.pwms_[0] - expected)) > 1e-3


@pytest.mark.parametrize("background", [None, "position-independent"])
def test_fit_is_a_fixed_point_of_em_written_here(background):
    """One EM step computed by hand from the fitted parameters returns them (a slightly
    wrong M-step, e.g. counts blurred across letters, moves them)."""
    codes = _windows(500, seed=5, missing=0.01)
    weights = np.random.default_rng(5).uniform(0.5, 1.5, size=len(codes))
    beta = 0.1
    model = _fit(codes, weights, background=background, pseudocount=beta, accelerate="squarem")
    onehot = (codes[:, :, None] == np.arange(A)).astype(float)
    log_joint = np.log(model.weights_) + np.einsum("nwa,kwa->nk", onehot, np.log(model.pwms_))
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True)) * weights[:, None]
    mixing = resp.sum(axis=0) / weights.sum()
    counts = np.einsum("nk,nwa->kwa", resp, onehot)
    if background is not None:
        counts[0] = counts[0].sum(axis=0)
    pwms = (counts + beta) / (counts + beta).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(model.weights_, mixing, rtol=1e-6)
    np.testing.assert_allclose(model.pwms_, pwms, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("background", [None, "position-independent"])
def test_scores_posteriors_and_criteria_by_hand(background):
    codes = _windows(300, seed=6, missing=0.02)
    model = _fit(codes, None, n_components=3, background=background, max_iter=50)
    positions = np.arange(WIDTH)
    log_joint = np.log(model.weights_) + np.stack([
        np.where(codes >= 0, np.log(pwm[positions, np.maximum(codes, 0)]), 0.0).sum(axis=1)
        for pwm in model.pwms_
    ], axis=1)
    per_row = logsumexp(log_joint, axis=1)
    np.testing.assert_allclose(model.score_samples(codes), per_row, rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(codes), np.exp(log_joint - per_row[:, None]), atol=1e-10)
    K = 3
    free_pwm = (A - 1) + (K - 1) * WIDTH * (A - 1) if background else K * WIDTH * (A - 1)
    p = (K - 1) + free_pwm
    assert model.bic(codes) == pytest.approx(-2 * per_row.sum() + p * np.log(len(codes)), rel=1e-10)
    # Reported summaries, by their definitions.
    np.testing.assert_allclose(model.background_, model.pwms_[0].mean(axis=0))
    entropy = -np.sum(model.pwms_ * np.log2(model.pwms_), axis=2)
    np.testing.assert_allclose(model.information_content_, np.log2(A) - entropy, atol=1e-12)
    assert list(model.consensus_) == ["".join("ACGT"[i] for i in pwm.argmax(axis=1)) for pwm in model.pwms_]


@pytest.mark.parametrize("tied", [False, True])
def test_motif_m_step_against_its_formulas(tied):
    # The docstring's MAP M-step, element by element, on two stacked independent mixtures:
    # weights resp_sum / sum with an empty component kept at 1e-10 of the total;
    # theta[k, i, a] = (counts + beta) / (sum_a counts + A beta), the background's counts
    # pooled over positions when tied.
    from skem._pwm import motif_m_step

    rng = np.random.default_rng(2)
    resp_sum = np.array([[0.0, 4.0, 6.0], [3.0, 0.0, 2.5]])
    counts = rng.gamma(1.0, 2.0, size=(2, 3, 5, 4))
    beta = 0.3
    weights, pwms = motif_m_step(resp_sum, counts, beta, tied)
    for m in range(2):
        total = resp_sum[m].sum()
        floored = [max(r, 1e-10 * total) for r in resp_sum[m]]
        np.testing.assert_allclose(weights[m], np.array(floored) / sum(floored), rtol=1e-12)
        for k in range(3):
            for i in range(5):
                row = counts[m, k].sum(axis=0) if (tied and k == 0) else counts[m, k, i]
                np.testing.assert_allclose(pwms[m, k, i], (row + beta) / (row.sum() + 4 * beta),
                                           rtol=1e-12)
    assert weights[0, 0] == pytest.approx(1e-10 * 10 / (10 + 1e-9), rel=1e-12)

"""Tests of the window model's motif search (skem._window_search): its candidates' model alone against the engine,
its pieces, and the motifs it finds through MotifMixture's default start."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import skem._window_search as search
from skem._pwm import N_CONTINUE, CandidateParams, distinct_candidates, shift_log_pwm
from skem import MotifMixture
from skem._em import EMControls, in_memory_rows, run_em
from skem._window_search import CandidateBatch, search_motifs
from skem.sequences import revcomp_permutation
from skem.datasets import make_motif_sequences, make_motif_windows
from skem._motif_windows import MotifModel
from skem._pwm import MotifParams
from skem.sequences import encode_sequences, one_hot, revcomp_permutation, sequence_windows
from test_motifs import _distance_to, _motif_component


def _model(revcomp=False, **params):
    return MotifModel(
        n_components=2, init_params="random_from_data", letters="ACGT", wildcards="N",
        pseudocount=0.1, revcomp=revcomp, **params,
    )


def _batch(X, revcomp=False, weights=None):
    """A batch of candidates against the data's letter frequencies, with its rows."""
    model = _model(revcomp)
    codes = encode_sequences(X)
    rows = in_memory_rows(model, codes, np.ones(len(codes)) if weights is None else weights)
    resp = np.zeros((rows.n_rows, 2))
    resp[:, 0] = 1.0
    stats = model.accumulate(None, rows, resp * rows.weights[:, None], None)
    background = model.initial_m_step(stats).pwms[0]
    fixed = MotifParams(np.ones(1), background[None])
    return CandidateBatch(mixture=model, fixed=fixed, background=background), rows


# ------------------------------------------------------------------ the candidates' model


@pytest.mark.parametrize("revcomp", [False, True])
def test_candidate_model_alone_through_the_engine_never_decreases(revcomp):
    X, _, _ = make_motif_windows(600, width=6, motif_fraction=0.1, random_state=40)
    X = np.array([s[:2] + "N" + s[3:] if i % 7 == 0 else s for i, s in enumerate(X)])
    weights = np.random.default_rng(1).integers(1, 4, size=len(X)).astype(float)
    batch, rows = _batch(X, revcomp, weights)
    start = batch.initialize(rows, np.random.RandomState(0), EMControls())
    assert start.n_candidates == rows.n_rows  # fewer distinct windows than N_CANDIDATES
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the engine warns on any decrease
        result = run_em(batch, rows, start, EMControls(max_iter=30, tol=0.0, chunk_size=97))
    assert result.n_iter == len(result.lower_bounds) == 30
    steps = np.diff(result.lower_bounds)
    assert np.all(steps >= -1e-12 * np.abs(result.lower_bounds[1:]))
    assert result.lower_bounds[-1] > result.lower_bounds[0]
    # The objective is the sum of the candidates' own, per unit of weight.
    objectives = batch.candidate_objectives(result.params, rows, chunk_size=None)
    assert result.lower_bound == pytest.approx(objectives.sum() / rows.total_weight, rel=1e-12)
    # ... and the same chunk by chunk.
    np.testing.assert_allclose(
        batch.candidate_objectives(result.params, rows, chunk_size=13), objectives, rtol=1e-12
    )


def test_candidate_step_is_the_two_part_mixture_update_by_hand():
    X, _, _ = make_motif_windows(300, width=5, motif_fraction=0.2, random_state=41)
    batch, rows = _batch(X)
    params = batch.initialize(rows, np.random.RandomState(1), EMControls()).take(np.arange(4))
    onehot, weights = one_hot(rows.codes, 4), rows.weights
    p_rest = np.exp(onehot @ np.log(batch.fixed.pwms[0]).reshape(-1))
    new = batch.m_step(batch.e_step(params, rows)[0], params)
    for c in range(4):
        p_c = np.exp(onehot @ params.log_pwms[c])
        alpha = params.alpha[c]
        r = alpha * p_c / ((1 - alpha) * p_rest + alpha * p_c)
        assert new.alpha[c] == pytest.approx(weights @ r / weights.sum(), rel=1e-10)
        counts = ((weights * r) @ onehot).reshape(5, 4) + 0.1
        np.testing.assert_allclose(
            np.exp(new.log_pwms[c]).reshape(5, 4), counts / counts.sum(axis=1, keepdims=True),
            rtol=1e-10,
        )
    # Its posterior and row scores are those of the same two-part mixtures.
    proba = batch.predict_proba(params, rows)
    assert proba.shape == (rows.n_rows, 4) and np.all((proba >= 0) & (proba <= 1))
    loglik = batch.e_step(params, rows)[1]
    assert batch.score_samples(params, rows) @ weights == pytest.approx(loglik, rel=1e-12)
    assert batch.n_parameters(params) == 4 * (1 + 5 * 3)


# ------------------------------------------------------------------ pieces


def test_shift_moves_positions_and_fills_with_the_background():
    background = np.full((4, 4), 0.25)
    pwm = np.log(np.eye(4)[[0, 1, 2, 3]] * 0.9 + 0.025)
    moved = np.exp(shift_log_pwm(pwm.reshape(-1), background, 1)).reshape(4, 4)
    np.testing.assert_allclose(moved[:3], np.exp(pwm[1:]))
    np.testing.assert_allclose(moved[3], 0.25)
    back = np.exp(shift_log_pwm(pwm.reshape(-1), background, -2)).reshape(4, 4)
    np.testing.assert_allclose(back[2:], np.exp(pwm[:2]))
    np.testing.assert_allclose(back[:2], 0.25)


def test_distinct_candidates_skip_copies_and_reverse_complements():
    rng = np.random.default_rng(42)
    pwms = rng.dirichlet(np.ones(4), size=(3, 5))
    perm = revcomp_permutation(5)
    log_pwms = np.log(pwms.reshape(3, -1))
    flipped = log_pwms[0, perm]
    params = CandidateParams(
        np.stack([log_pwms[0], flipped, log_pwms[1], log_pwms[2]]), np.full(4, 0.1)
    )
    score = np.array([4.0, 3.0, 2.0, 1.0])
    np.testing.assert_array_equal(distinct_candidates(params, score, perm).log_pwms, log_pwms)
    kept = distinct_candidates(params, score, None).log_pwms  # one strand: the flip is another motif
    np.testing.assert_array_equal(kept, [log_pwms[0], flipped, log_pwms[1]])


def test_every_run_of_the_search_goes_through_the_engine_with_the_chunk_size(monkeypatch):
    X, _, _ = make_motif_windows(3000, width=6, motif_fraction=0.05, random_state=43)
    monkeypatch.setattr(search, "SEARCH_ROWS", 1000)  # a draw of the rows, then all rows decide
    calls = []

    def recording_run_em(model, data, params, controls):
        calls.append((type(model).__name__, data.n_rows, controls))
        return run_em(model, data, params, controls)

    monkeypatch.setattr(search, "run_em", recording_run_em)
    model = _model()
    data = in_memory_rows(model, encode_sequences(X), np.ones(len(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        params = search_motifs(model, data, np.random.RandomState(0), EMControls(chunk_size=111))
    assert params.pwms.shape == (2, 6, 4)
    assert {controls.chunk_size for _, _, controls in calls} == {111}
    batches = [controls for name, _, controls in calls if name == "CandidateBatch"]
    assert len(batches) == 2 and all(c.max_iter == search.SHORT_ITER for c in batches)
    continued = [(n, c.max_iter) for name, n, c in calls if name == "MotifModel"]
    assert len(continued) == 2 * N_CONTINUE
    assert {max_iter for _, max_iter in continued} == {search.CONTINUE_ITER, search.FINAL_ITER}
    assert {n for n, max_iter in continued if max_iter == search.FINAL_ITER} == {data.n_rows}


@pytest.mark.parametrize("revcomp", [False, True])
def test_search_does_not_depend_on_the_chunk_size(revcomp):
    X, _, _ = make_motif_windows(800, width=7, motif_fraction=0.1, random_state=44)
    model = _model(revcomp, tied_background=True)
    data = in_memory_rows(model, encode_sequences(X), np.ones(len(X)))
    whole = search_motifs(model, data, np.random.RandomState(3), EMControls())
    for chunk_size in (7, 100):
        chunked = search_motifs(model, data, np.random.RandomState(3), EMControls(chunk_size=chunk_size))
        np.testing.assert_allclose(chunked.pwms, whole.pwms, rtol=1e-9)
        np.testing.assert_allclose(chunked.weights, whole.weights, rtol=1e-9)


# ------------------------------------------------------------------ what it finds


def test_finds_a_motif_in_two_percent_of_windows_with_the_defaults():
    X, y, pwm = make_motif_windows(5000, motif_fraction=0.02, random_state=7)
    model = MotifMixture(random_state=0).fit(X)
    assert _distance_to(model, pwm) < 0.5
    assert roc_auc_score(y, model.predict_proba(X)[:, 1]) > 0.95


def test_recovers_one_site_per_sequence_from_overlapping_windows():
    """500 sequences of 150 nt, one site each, all windows: shifted copies are local optima."""
    sequences, sites, pwm = make_motif_sequences(500, 150, width=10, random_state=8)
    windows = sequence_windows(sequences, 10)
    model = MotifMixture(random_state=0).fit(windows.windows)
    assert _distance_to(model, pwm) < 0.5
    found = windows.sites(model.predict_proba(windows.windows)[:, 1])
    planted = set(zip(sites["sequence"], sites["start"]))
    hits = set(zip(found["sequence"], found["start"]))
    assert len(planted & hits) > 0.8 * len(planted)
    assert len(hits - planted) < 0.2 * len(hits)


def test_two_motifs_with_three_components():
    X1, _, pwm1 = make_motif_windows(3000, width=8, motif_fraction=0.05, random_state=9)
    X2, y2, pwm2 = make_motif_windows(3000, width=8, motif_fraction=0.05, random_state=10)
    model = MotifMixture(3, random_state=0).fit(np.concatenate([X1, X2[y2 == 1]]))
    assert _distance_to(model, pwm1) < 0.5 and _distance_to(model, pwm2) < 0.5
    assert _motif_component(model, pwm1) != _motif_component(model, pwm2)


def test_a_rare_motif_is_found_when_the_search_works_on_a_draw(monkeypatch):
    X, y, pwm = make_motif_windows(6000, motif_fraction=0.03, random_state=45)
    monkeypatch.setattr(search, "SEARCH_ROWS", 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = MotifMixture(random_state=0, chunk_size=500).fit(X)
    assert _distance_to(model, pwm) < 0.5
    assert roc_auc_score(y, model.predict_proba(X)[:, 1]) > 0.95


def _sharp_log_pwm(consensus):
    """A flattened log-PWM with 0.91 on each consensus letter, 0.03 on the others."""
    pwm = np.full((len(consensus), 4), 0.03)
    pwm[np.arange(len(consensus)), ["ACGT".index(letter) for letter in consensus]] = 0.91
    return np.log(pwm).reshape(-1)


@pytest.mark.parametrize("revcomp", [False, True])
def test_distinct_candidates_skip_copies_and_reverse_complements(revcomp):
    # Best first: AAACCG, a near copy of it, its reverse complement CGGTTT, then two others.
    perm = revcomp_permutation(6)
    base = _sharp_log_pwm("AAACCG")
    near_copy = np.log(np.exp(base) * 0.95 + 0.05 * 0.25)
    log_pwms = np.stack([base, near_copy, base[perm], _sharp_log_pwm("GATTAC"),
                         _sharp_log_pwm("TGCATG")])
    assert np.allclose(base[perm], _sharp_log_pwm("CGGTTT"))
    params = CandidateParams(log_pwms, np.full(5, 0.1))
    kept = distinct_candidates(params, np.array([5.0, 4.0, 3.0, 2.0, 1.0]),
                               perm if revcomp else None)
    # Without strands the reverse complement is a motif of its own; N_CONTINUE = 3 are kept.
    expected = [0, 3, 4] if revcomp else [0, 2, 3]
    np.testing.assert_array_equal(kept.log_pwms, log_pwms[expected])

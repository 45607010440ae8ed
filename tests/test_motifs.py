"""Tests of MotifMixture and its model: kernels by hand, recovery of planted motifs, both strands,
the alphabet, results, bad input. Encoding and windows: test_sequences; the start search:
test_motif_search."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from skem import MotifMixture
from skem.datasets import make_motif_pwm, make_motif_sequences, make_motif_windows
from skem._pwm import motif_m_step
from skem.sequences import (
    decode_sequences,
    encode_sequences,
    one_hot,
    reverse_complement,
    sequence_windows,
)

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


def _distance_to(model, pwm):
    """Frobenius (L2) distance from the planted PWM to the closest fitted component."""
    return min(np.linalg.norm(component - pwm) for component in model.pwms_)


def _motif_component(model, pwm):
    return int(np.argmin([np.linalg.norm(component - pwm) for component in model.pwms_]))


# ------------------------------------------------------------------ kernels


def test_log_probability_is_sum_of_log_letter_probabilities():
    rng = np.random.default_rng(0)
    model = MotifMixture(random_state=0).fit(make_motif_windows(200, width=5, random_state=0)[0])
    X = rng.integers(0, 4, size=(7, 5))
    weights, pwms = model.weights_, model.pwms_
    by_hand = np.array(
        [
            logsumexp([np.log(weights[k]) + sum(np.log(pwms[k, i, x[i]]) for i in range(5))
                       for k in range(2)])
            for x in X
        ]
    )
    np.testing.assert_allclose(model.score_samples(X), by_hand, rtol=1e-12)


def test_missing_letter_is_marginalized():
    """p(window with N at i) = sum over the letters a of p(window with a at i)."""
    X, _, _ = make_motif_windows(300, width=6, random_state=1)
    model = MotifMixture(random_state=0).fit(X)
    window = "ACNTGA"
    filled = [window.replace("N", letter) for letter in "ACGT"]
    assert model.score_samples([window])[0] == pytest.approx(
        logsumexp(model.score_samples(filled)), rel=1e-12
    )
    # Every wildcard of the alphabet means the same: unknown.
    for wildcard in "NRYn":
        assert model.score_samples([window.replace("N", wildcard)])[0] == pytest.approx(
            model.score_samples([window])[0], rel=1e-14
        )
    np.testing.assert_array_equal(
        model.score_samples(np.array([[0, 1, -1, 3, 2, 0]])), model.score_samples([window])
    )


def test_m_step_is_weighted_letter_frequencies_plus_pseudocount_not_a_weighted_mean():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 4, size=(50, 3))
    resp = rng.dirichlet([1.0, 1.0], size=50)
    counts = (resp.T @ one_hot(codes, 4)).reshape(2, 3, 4)
    weights, pwms = motif_m_step(resp.sum(axis=0), counts, 0.5, tied_background=False)
    for k, i, a in itertools.product(range(2), range(3), range(4)):
        numerator = resp[codes[:, i] == a, k].sum() + 0.5
        assert pwms[k, i, a] == pytest.approx(numerator / (resp[:, k].sum() + 4 * 0.5))
    np.testing.assert_allclose(weights, resp.mean(axis=0))
    _, tied = motif_m_step(resp.sum(axis=0), counts, 0.5, tied_background=True)
    pooled = counts[0].sum(axis=0) + 0.5
    np.testing.assert_allclose(tied[0], np.tile(pooled / pooled.sum(), (3, 1)))
    np.testing.assert_allclose(tied[1], pwms[1])


# ------------------------------------------------------------------ input and alphabets


def test_strings_of_any_case_equal_codes():
    X, _, _ = make_motif_windows(400, width=8, random_state=3)
    codes = encode_sequences(X)
    mixed = [s.lower() if i % 2 else s for i, s in enumerate(X)]
    from_strings = MotifMixture(random_state=0).fit(mixed)
    from_codes = MotifMixture(random_state=0).fit(codes)
    np.testing.assert_array_equal(from_strings.pwms_, from_codes.pwms_)
    np.testing.assert_array_equal(from_strings.lower_bounds_, from_codes.lower_bounds_)
    np.testing.assert_array_equal(from_strings.predict_proba(X), from_codes.predict_proba(codes))
    # A 2-D array of letters and a one-column DataFrame of sequences are strings too.
    letters = np.array([list(s) for s in X])
    np.testing.assert_array_equal(from_codes.score_samples(letters), from_codes.score_samples(codes))
    frame = pd.DataFrame({"window": X})
    np.testing.assert_array_equal(from_codes.score_samples(frame), from_codes.score_samples(codes))


def test_any_alphabet_works():
    X, y, pwm = make_motif_windows(
        2000, width=8, motif_fraction=0.1, alphabet=PROTEIN, random_state=4
    )
    model = MotifMixture(alphabet=PROTEIN, random_state=0).fit(X)
    assert model.pwms_.shape == (2, 8, 20)
    assert _distance_to(model, pwm) < 0.5
    assert "X" not in PROTEIN and np.isfinite(model.score_samples(["XXXXXXXX"])).all()


def test_default_alphabet_fits_integer_codes_whatever_their_range():
    codes = np.random.default_rng(23).integers(-1, 6, size=(300, 5))
    model = MotifMixture(random_state=0).fit(codes)
    assert model.alphabet_ == "012345" and model.pwms_.shape == (2, 5, 6)
    assert list(model.pwm().columns) == list("012345")
    assert all(set(consensus) <= set("012345") for consensus in model.consensus_)
    # The same codes with six named letters are the same fit.
    named = MotifMixture(alphabet="ABCDEF", random_state=0).fit(codes)
    np.testing.assert_array_equal(named.pwms_, model.pwms_)
    # New windows are read in the fitted alphabet: its letters, and codes of its letters only.
    np.testing.assert_array_equal(
        model.score_samples(["01234", "5X5x5"]),
        model.score_samples([[0, 1, 2, 3, 4], [5, -1, 5, -1, 5]]),
    )
    with pytest.raises(ValueError, match=r"0\.\.5 for the alphabet '012345'.*X\[0, 2\] = .*6"):
        model.predict(np.array([[0, 1, 6, 0, 0]]))
    # Codes up to 3 are DNA's, as encode_sequences makes them (and strings are DNA).
    dna = MotifMixture(random_state=0).fit(np.where(codes > 3, codes - 4, codes))
    assert dna.alphabet_ == "ACGT" and dna.pwms_.shape == (2, 5, 4)
    # Past 36 letters the default has no names for them: the error asks for an alphabet.
    with pytest.raises(ValueError, match="up to 40 need an alphabet of 41 letters: pass alphabet="):
        MotifMixture().fit(np.array([[0, 40], [1, 2]]))


def test_an_explicit_alphabet_rejects_codes_outside_it():
    with pytest.raises(ValueError, match=r"0\.\.3.*X\[1, 0\] = .*4"):
        MotifMixture(alphabet="ACGT").fit(np.array([[0, 1], [4, 0]]))
    model = MotifMixture(random_state=0).fit(make_motif_windows(100, width=2, random_state=0)[0])
    with pytest.raises(ValueError, match=r"0\.\.3 for the alphabet 'ACGT'.*X\[1, 0\] = .*4"):
        model.predict(np.array([[0, 1], [4, 0]]))


def test_default_alphabet_on_dask_codes_equals_the_in_memory_fit():
    da = pytest.importorskip("dask.array")
    codes = np.random.default_rng(25).integers(0, 7, size=(400, 5))
    memory = MotifMixture(random_state=0).fit(codes)
    blocks = MotifMixture(random_state=0).fit(da.from_array(codes, chunks=(100, -1)))
    assert blocks.alphabet_ == memory.alphabet_ == "0123456"
    np.testing.assert_allclose(blocks.pwms_, memory.pwms_, rtol=1e-9)


# ------------------------------------------------------------------ recovery


def test_l2_distance_to_the_planted_motif_shrinks_with_n():
    pwm = make_motif_pwm(8, random_state=5)
    distances = []
    for n in (300, 3000, 30000):
        X, _, _ = make_motif_windows(n, pwm=pwm, motif_fraction=0.2, random_state=n)
        distances.append(_distance_to(MotifMixture(random_state=0).fit(X), pwm))
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.15


def test_predict_proba_separates_sites_from_background():
    X, y, pwm = make_motif_windows(2000, random_state=6)
    model = MotifMixture(random_state=0).fit(X)
    motif = _motif_component(model, pwm)
    assert motif == 1  # the search puts the background first
    assert roc_auc_score(y, model.predict_proba(X)[:, motif]) > 0.95
    assert model.weights_[motif] == pytest.approx(y.mean(), abs=0.03)


@pytest.mark.parametrize("init_params", ["random", "kmeans", "k-means++"])
def test_other_starts_find_an_abundant_motif(init_params):
    X, _, pwm = make_motif_windows(2000, motif_fraction=0.3, random_state=11)
    model = MotifMixture(init_params=init_params, random_state=0).fit(X)
    assert _distance_to(model, pwm) < 0.5


def test_position_independent_background_is_tied():
    sequences, _, pwm = make_motif_sequences(200, 100, width=8, random_state=12)
    windows = sequence_windows(sequences, 8).windows
    model = MotifMixture(background="position-independent", random_state=0).fit(windows)
    np.testing.assert_allclose(model.pwms_[0], np.tile(model.pwms_[0, 0], (8, 1)))
    np.testing.assert_allclose(model.background_, model.pwms_[0, 0])
    assert _distance_to(model, pwm) < 0.5
    free = MotifMixture(random_state=0).fit(windows)
    assert model._model.n_parameters(model._get_fitted_params()) == 1 + 3 + 8 * 3
    assert free._model.n_parameters(free._get_fitted_params()) == 1 + 2 * 8 * 3


# ------------------------------------------------------------------ EM contract


@pytest.mark.parametrize("revcomp", [False, True])
@pytest.mark.parametrize("background", [None, "position-independent"])
def test_log_likelihood_never_decreases_with_missing_letters(background, revcomp):
    X, _, _ = make_motif_windows(500, width=7, random_state=13)
    X = np.array([s[:3] + "N" + s[4:] if i % 5 == 0 else s for i, s in enumerate(X)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MotifMixture(
            background=background, revcomp=revcomp, init_params="random", max_iter=60, tol=0,
            random_state=1,
        ).fit(X)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bounds_[1:]))


@settings(deadline=None)
@given(
    seed=hst.integers(0, 2**31 - 1),
    n=hst.integers(3, 40),
    w=hst.integers(1, 6),
    K=hst.integers(1, 3),
    pseudocount=hst.floats(1e-3, 2.0),
    revcomp=hst.booleans(),
)
def test_em_is_monotone_on_arbitrary_data(seed, n, w, K, pseudocount, revcomp):
    rng = np.random.default_rng(seed)
    X = rng.integers(-1, 4, size=(n, w))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MotifMixture(
            K, pseudocount=pseudocount, revcomp=revcomp, max_iter=20, tol=0,
            random_state=seed % 1000,
        ).fit(X)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-10 * np.abs(model.lower_bounds_[1:]))
    assert np.isfinite(model.score_samples(X)).all()


@pytest.mark.parametrize("revcomp", [False, True])
def test_sample_weight_equals_repeated_strings(revcomp):
    X, _, _ = make_motif_windows(300, width=6, random_state=14)
    counts = np.random.default_rng(0).integers(0, 4, size=300)
    weighted = MotifMixture(revcomp=revcomp, random_state=0).fit(X, sample_weight=counts)
    repeated = MotifMixture(revcomp=revcomp, random_state=0).fit(np.repeat(X, counts))
    np.testing.assert_allclose(weighted.pwms_, repeated.pwms_, rtol=1e-10)
    np.testing.assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize("revcomp", [False, True])
def test_one_hot_built_per_chunk_when_too_large_to_store(monkeypatch, revcomp):
    import skem._motif_windows

    X, _, _ = make_motif_windows(600, width=7, random_state=22)
    stored = MotifMixture(revcomp=revcomp, random_state=0).fit(X)
    monkeypatch.setattr(skem._motif_windows, "ONEHOT_BYTES", 0)
    lazy = MotifMixture(revcomp=revcomp, random_state=0, chunk_size=50).fit(X)
    assert lazy._model.prepare(encode_sequences(X), np.ones(600)).onehot.shape == (600, 0)
    np.testing.assert_allclose(lazy.pwms_, stored.pwms_, rtol=1e-9)
    np.testing.assert_allclose(lazy.lower_bounds_, stored.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(lazy.predict_proba(X), stored.predict_proba(X), rtol=1e-9)


def test_no_underflow_or_nan_at_width_500():
    X, y, pwm = make_motif_windows(300, width=500, motif_fraction=0.3, random_state=15)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = MotifMixture(random_state=0).fit(X)
    assert np.isfinite(model.lower_bounds_).all()
    assert np.isfinite(model.pwms_).all() and np.isfinite(model.log_odds_).all()
    log_likelihood = model.score_samples(X)
    # Background windows have probability near 4**-500 = 1e-301: only log space is safe.
    assert np.isfinite(log_likelihood).all() and log_likelihood.min() < -680
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all()
    assert roc_auc_score(y, proba[:, _motif_component(model, pwm)]) > 0.99


def test_sample_draws_windows_from_the_fitted_model():
    X, _, pwm = make_motif_windows(3000, width=6, motif_fraction=0.5, random_state=16)
    model = MotifMixture(random_state=0).fit(X)
    codes, labels = model.sample(20000)
    assert codes.shape == (20000, 6) and codes.min() >= 0 and codes.max() <= 3
    k = _motif_component(model, pwm)
    frequencies = one_hot(codes[labels == k], 4).mean(axis=0).reshape(6, 4)
    np.testing.assert_allclose(frequencies, model.pwms_[k], atol=0.03)


# ------------------------------------------------------------------ results


def test_results_people_read():
    X, _, pwm = make_motif_windows(3000, width=7, motif_fraction=0.2, random_state=17)
    model = MotifMixture(random_state=0).fit(X)
    frame = model.pwm()
    assert list(frame.columns) == list("ACGT") and list(frame.index) == list(range(7))
    np.testing.assert_allclose(frame.to_numpy(), model.pwms_[1])
    np.testing.assert_allclose(frame.sum(axis=1), 1.0)
    assert model.consensus_[1] == "".join("ACGT"[i] for i in pwm.argmax(axis=1))
    p = model.pwms_
    np.testing.assert_allclose(
        model.information_content_, 2.0 + np.sum(p * np.log2(p), axis=2), rtol=1e-12
    )
    assert np.all(model.information_content_ >= 0) and np.all(model.information_content_ <= 2)
    np.testing.assert_allclose(model.background_, p[0].mean(axis=0))
    np.testing.assert_allclose(model.pwm(kind="log-odds"), np.log2(p[1] / model.background_))
    np.testing.assert_allclose(
        model.pwm(kind="information").sum(axis=1), model.information_content_[1]
    )
    np.testing.assert_allclose(model.pwm(0), p[0])
    with pytest.raises(ValueError, match="kind"):
        model.pwm(kind="bits")
    with pytest.raises(ValueError, match="component"):
        model.pwm(2)


def test_bic_prefers_the_motif_model_when_there_is_a_motif():
    X, _, _ = make_motif_windows(2000, width=8, motif_fraction=0.1, random_state=18)
    one = MotifMixture(1).fit(X)
    two = MotifMixture(2, random_state=0).fit(X)
    assert two.bic(X) < one.bic(X)
    noise, _, _ = make_motif_windows(2000, width=8, motif_fraction=0.0, random_state=19)
    assert MotifMixture(1).fit(noise).bic(noise) < MotifMixture(2, random_state=0).fit(noise).bic(
        noise
    )


# ------------------------------------------------------------------ both strands


def _flip(pwm):
    """The reverse complement of an ACGT PWM (positions and letters reversed)."""
    return pwm[::-1, ::-1]


def test_revcomp_likelihood_averages_both_strands_by_hand():
    X, _, _ = make_motif_windows(400, width=5, motif_fraction=0.2, random_state=30)
    model = MotifMixture(revcomp=True, random_state=0).fit(X)
    weights, pwms = model.weights_, model.pwms_
    windows = ["ACGTA", "TTGCA", "ACNTT", "CCCCC"]
    codes = encode_sequences(windows)
    rc_codes = encode_sequences([reverse_complement(x) for x in windows])

    def log_p(k, row):
        return sum(np.log(pwms[k, i, a]) for i, a in enumerate(row) if a >= 0)

    forward = np.array([log_p(1, row) for row in codes])
    reverse = np.array([log_p(1, row) for row in rc_codes])
    background = np.logaddexp(
        [log_p(0, row) for row in codes], [log_p(0, row) for row in rc_codes]
    ) - np.log(2)
    by_hand = np.logaddexp(
        np.log(weights[0]) + background,
        np.log(weights[1]) + np.logaddexp(forward, reverse) - np.log(2),
    )
    np.testing.assert_allclose(model.score_samples(windows), by_hand, rtol=1e-12)
    strand = model.predict_strand_proba(windows)
    np.testing.assert_allclose(strand[:, 1], 1 / (1 + np.exp(forward - reverse)), rtol=1e-12)
    # The motif component is strand-blind: a window and its reverse complement are alike to it.
    np.testing.assert_allclose(
        model.predict_strand_proba(rc_codes), strand[:, ::-1], rtol=1e-12
    )
    # With background=None the background is strand-aware too; a tied one is single-strand.
    assert (model.predict_strand_proba(windows, component=0)[:, 0] < 1.0).all()
    tied = MotifMixture(background="position-independent", revcomp=True, random_state=0).fit(X)
    np.testing.assert_array_equal(tied.predict_strand_proba(windows, component=0)[:, 0], 1.0)
    plain = MotifMixture(random_state=0).fit(X)
    np.testing.assert_array_equal(plain.predict_strand_proba(windows)[:, 0], 1.0)


def _strand_recovery(seed, n_sequences=300, length=80, width=10):
    sequences, planted, pwm = make_motif_sequences(
        n_sequences, length, width=width, both_strands=True, random_state=seed
    )
    windows = sequence_windows(sequences, width)
    model = MotifMixture(revcomp=True, random_state=0).fit(windows.windows)
    motif = model.pwms_[1]
    flipped = np.linalg.norm(motif - _flip(pwm)) < np.linalg.norm(motif - pwm)
    found = windows.sites(
        model.predict_proba(windows.windows)[:, 1],
        minus_strand=model.predict_strand_proba(windows.windows)[:, 1],
    )
    return model, pwm, flipped, planted, found


# Seeds 35, 36 and 39 draw motifs with a palindromic core (GATC, TTAA, ...): overlapping
# windows then let a shifted motif explain each site twice and score higher than the truth
# (TCM without MEME's non-overlap constraint), with or without revcomp.
@pytest.mark.parametrize("seed", [31, 34, 38])
def test_revcomp_recovers_a_motif_planted_on_either_strand(seed):
    model, pwm, flipped, planted, found = _strand_recovery(seed)
    assert set(planted["strand"]) == {"+", "-"}
    motif = _flip(model.pwms_[1]) if flipped else model.pwms_[1]
    assert np.linalg.norm(motif - pwm) < 0.5
    # Sites at the planted offsets, on the planted strands up to the model's orientation.
    truth = {(row.sequence, row.start): row.strand for row in planted.itertuples()}
    hits = {(row.sequence, row.start): row.strand for row in found.itertuples()}
    common = set(truth) & set(hits)
    assert len(common) > 0.8 * len(truth)
    opposite = {"+": "-", "-": "+"}
    agree = [hits[key] == (opposite[truth[key]] if flipped else truth[key]) for key in common]
    assert np.mean(agree) > 0.95
    # A site is reported as the motif instance read on its strand.
    for row in found.itertuples():
        assert len(row.site) == 10 and row.end - row.start == 10


def test_revcomp_beats_separate_strand_windows_on_the_site_fraction():
    """One site is one window (not two) under revcomp: the fraction of sites is right."""
    sequences, planted, pwm = make_motif_sequences(
        200, 100, width=10, both_strands=True, random_state=34
    )
    windows = sequence_windows(sequences, 10)
    model = MotifMixture(revcomp=True, random_state=0).fit(windows.windows)
    assert model.weights_[1] == pytest.approx(len(planted) / len(windows), rel=0.25)


def test_revcomp_samples_both_strands():
    pwm = np.full((6, 4), 0.01)
    pwm[np.arange(6), [0, 0, 0, 1, 1, 1]] = 0.97  # AAACCC, reverse complement GGGTTT
    X, _, _ = make_motif_windows(3000, pwm=pwm, motif_fraction=0.1, random_state=35)
    model = MotifMixture(revcomp=True, random_state=0).fit(X)
    assert model.consensus_[1] in ("AAACCC", "GGGTTT")
    codes, labels = model.sample(4000)
    motif = decode_sequences(codes[labels == 1])
    forward = np.mean([window == model.consensus_[1] for window in motif])
    reverse = np.mean([window == reverse_complement(model.consensus_[1]) for window in motif])
    assert 0.3 < forward < 0.55 and 0.3 < reverse < 0.55


@pytest.mark.parametrize("alphabet", [PROTEIN, "ACGX", "01"])
def test_revcomp_needs_a_nucleotide_alphabet(alphabet):
    with pytest.raises(ValueError, match=r"revcomp=True needs a nucleotide alphabet.*alphabet="):
        MotifMixture(alphabet=alphabet, revcomp=True).fit(np.zeros((5, 3), dtype=int))


def test_revcomp_with_the_default_alphabet_needs_dna_codes():
    model = MotifMixture(revcomp=True, random_state=0).fit(np.array([[0, 3], [1, 2], [3, 3]]))
    assert model.alphabet_ == "ACGT"
    with pytest.raises(ValueError, match=r"revcomp=True needs a nucleotide alphabet.*'01234'"):
        MotifMixture(revcomp=True).fit(np.array([[0, 4], [1, 2], [3, 3]]))


def test_revcomp_works_for_rna():
    X, _, _ = make_motif_windows(500, width=6, motif_fraction=0.2, random_state=36)
    rna = np.char.replace(X, "T", "U")
    dna = MotifMixture(revcomp=True, random_state=0).fit(X)
    model = MotifMixture(alphabet="ACGU", revcomp=True, random_state=0).fit(rna)
    np.testing.assert_allclose(model.pwms_, dna.pwms_, rtol=1e-12)


# ------------------------------------------------------------------ plotting


def test_logo_is_drawn_with_logomaker():
    pytest.importorskip("logomaker")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from skem.plotting import plot_logo

    X, _, _ = make_motif_windows(500, width=6, random_state=21)
    model = MotifMixture(random_state=0).fit(X)
    logo = plot_logo(model)
    assert len(logo.ax.patches) or len(logo.glyph_df)
    plot_logo(model.pwm(), kind="probability")
    plot_logo(model.pwms_[1], kind="log-odds")
    matplotlib.pyplot.close("all")


def test_logo_without_logomaker_names_the_plot_extra(monkeypatch):
    import builtins

    from skem import plotting

    real_import = builtins.__import__

    def no_logomaker(name, *args, **kwargs):
        if name == "logomaker":
            raise ImportError("No module named 'logomaker'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_logomaker)
    with pytest.raises(ImportError, match=r"skem\[plot\]"):
        plotting.plot_logo(np.full((3, 4), 0.25))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "X, message",
    [
        (["ACGT", "ACG"], "same length: sequence 1 has length 3"),
        (["ACGT", "ACZT"], "Unknown letter 'Z' in sequence 1 at position 2"),
        (["ACGT", "AC-T"], "Unknown letter '-' in sequence 1 at position 2"),
        ([], "empty"),
        (["", ""], "length 0"),
        (np.zeros((5, 0), dtype=int), "0 feature"),
        (np.array([[0, 1], [-2, 0]]), r"X\[1, 0\]"),
        (np.array([[0.0, 1.5], [1.0, 0.0]]), "integers"),
        ("ACGT", "single string"),
    ],
)
def test_bad_input_is_a_clear_error(X, message):
    with pytest.raises(ValueError, match=message):
        MotifMixture().fit(X)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(alphabet="ACGA"), "repeated letters.*'A'"),
        (dict(alphabet="ACgc"), "repeated letters"),
        (dict(alphabet="A"), "at least 2 letters"),
        (dict(alphabet="ACGT", wildcards="NA"), "overlap"),
    ],
)
def test_bad_alphabet_is_a_clear_error(params, message):
    with pytest.raises(ValueError, match=message):
        MotifMixture(**params).fit(["ACGT", "CCGT"])


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="pseudocount"):
        MotifMixture(pseudocount=0.0).fit(["ACGT", "CCGT"])
    with pytest.raises(ValueError, match="background"):
        MotifMixture(background="uniform").fit(["ACGT", "CCGT"])


def test_new_windows_must_have_the_fitted_width():
    model = MotifMixture(random_state=0).fit(make_motif_windows(100, width=6, random_state=0)[0])
    with pytest.raises(ValueError, match="6 features"):
        model.predict(["ACGTA"])
    with pytest.raises(ValueError, match="Unknown letter 'U'"):
        model.predict(["ACGTAU"])


@pytest.mark.parametrize(
    "change",
    [{"n_components": 3}, {"alphabet": "ACGT"}, {"background": "position-independent"},
     {"revcomp": True}, {"wildcards": "NX"}],
    ids=lambda change: next(iter(change)),
)
def test_warm_start_after_a_structural_change_warns_and_starts_afresh(change):
    # Issue 19 item 3: the window model kept K and the alphabet of the previous fit.
    X, _, _ = make_motif_windows(300, width=6, motif_fraction=0.3, random_state=40)
    model = MotifMixture(warm_start=True, random_state=0).fit(X)
    name = next(iter(change))
    with pytest.warns(UserWarning, match=rf"{name}=.* -> "):
        model.set_params(**change).fit(X)
    fresh = MotifMixture(**{**model.get_params(), "warm_start": False}).fit(X)
    np.testing.assert_allclose(model.pwms_, fresh.pwms_, rtol=1e-12)
    np.testing.assert_allclose(model.lower_bounds_, fresh.lower_bounds_, rtol=1e-12)


def test_warm_start_on_codes_with_other_letters_warns_and_starts_afresh():
    rng = np.random.default_rng(41)
    model = MotifMixture(warm_start=True, random_state=0).fit(rng.integers(0, 6, size=(200, 5)))
    assert model.alphabet_ == "012345"
    other = rng.integers(0, 5, size=(200, 5))
    with pytest.warns(UserWarning, match="letters '01234'"):
        model.fit(other)
    assert model.alphabet_ == "01234" and model.pwms_.shape == (2, 5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(other)  # the same letters: continues

"""SequenceMotifMixture as an estimator: palindromic sites, erasing between motifs, widths the
sequences cannot hold, names read from each X, and what sample draws from.

The model's likelihood and EM are tested in test_motif_sequences; references here are
brute-force enumerations of site configurations and planted truth from skem.datasets.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import sparse

from skem import SequenceMotifMixture
from skem._letters import encode_ragged
from skem._motif_sequences import SequenceMotifModel
from skem._sequence_search import resize_start
from skem._sequence_sites import SequenceMotifParams
from skem.datasets import make_motif_pwm, make_motif_sequences
from skem._motif_erasing import erasing_weights
from skem.sequences import revcomp_permutation

DNA = "ACGT"


def _rc_pwm(pwm):
    w = pwm.shape[0]
    return pwm.reshape(-1)[revcomp_permutation(w)].reshape(w, 4)


def _distance(found, true):
    """Smallest L2 distance between two PWMs over orientations and shifts of up to 2 positions
    (the overlapping positions, per position)."""
    best = np.inf
    for option in (found, _rc_pwm(found)):
        for shift in range(-2, 3):
            a = option[max(shift, 0):]
            b = true[max(-shift, 0):]
            n = min(len(a), len(b))
            best = min(best, np.linalg.norm(a[:n] - b[:n]) / np.sqrt(n))
    return best


# ------------------------------------------------------------------ palindromic sites


def _palindromic_data(seed=4, n=40, length=100):
    pwm = make_motif_pwm(10, palindromic=True, concentration=0.1, random_state=3)
    sequences, sites, _ = make_motif_sequences(n, length, pwm=pwm, both_strands=True,
                                               random_state=seed)
    return sequences, sites, pwm


@pytest.mark.parametrize("mode", ["tcm", "zoops"])
def test_palindromic_sites_are_reported_once_with_their_whole_posterior(mode):
    # Issue 20 item 4: the posterior of a palindromic site was split between its strands, so
    # no strand reached 0.5, sites() reported nothing and the E-value was exactly 1.
    sequences, planted, pwm = _palindromic_data()
    model = SequenceMotifMixture(width=10, mode=mode, revcomp=True, palindromic=True,
                                 random_state=0).fit(sequences)
    assert _distance(model.pwms_[1], pwm) < 0.15
    found = model.sites(sequences)
    # One row per site: never the same start twice, always on "+".
    assert not found.duplicated(["sequence", "start"]).any()
    assert set(found["strand"]) == {"+"}
    hits = found.merge(planted, on=["sequence", "start"])
    assert len(hits) >= 0.95 * len(planted)
    assert model.log10_evalues_[0] < -20
    # The posterior reported is the sum of the model's two strand posteriors.
    codes, _ = encode_ragged(sequences, DNA, "N")
    data = model._model.prepare(codes, np.ones(codes.shape[0]))
    post = model._model.posteriors(model._get_fitted_params(), data)[0]
    names = list(sequences)
    for row in found.itertuples():
        both = post[names.index(row.sequence), row.start].sum()
        assert row.posterior == pytest.approx(both, rel=1e-12)


def test_a_palindromic_site_counts_once_towards_the_evalue():
    # The hard sites of the E-value are those whose whole posterior exceeds 1/2.
    sequences, planted, _ = _palindromic_data()
    model = SequenceMotifMixture(width=10, mode="zoops", revcomp=True, palindromic=True,
                                 random_state=0).fit(sequences)
    codes, _ = encode_ragged(sequences, DNA, "N")
    data = model._model.prepare(codes, np.ones(codes.shape[0]))
    counts = model._model.hard_site_counts(model._get_fitted_params(), data, None)
    n_sites = int((model.sites(sequences)["posterior"] > 0.5).sum())
    np.testing.assert_allclose(counts.sum(axis=1), n_sites)
    np.testing.assert_allclose(counts, _rc_pwm(counts))  # both readings, half each


# ------------------------------------------------------------------------- erasing


def _configurations(L, w, S, mode):
    """Every allowed set of sites ((start, strand) pairs) of a sequence of length L."""
    starts = [(j, s) for j in range(L - w + 1) for s in range(S)]
    if mode == "oops":
        return [[site] for site in starts]
    if mode == "zoops":
        return [[]] + [[site] for site in starts]
    configurations = []
    for r in range(len(starts) + 1):
        for chosen in itertools.combinations(starts, r):
            positions = sorted(j for j, _ in chosen)
            if all(b - a >= w for a, b in zip(positions, positions[1:])):
                configurations.append(list(chosen))
    return configurations


def _brute_force_posteriors(sequence, params, mode, erased):
    """P(site at (j, s) | x) (L - w + 1, 2) by enumerating site configurations, each site's
    prior multiplied by the erasing weights of its positions (MEME's erasing)."""
    b, pwm, gamma = params.background, params.pwms[0], float(params.site_probs[0])
    w, L = pwm.shape[0], len(sequence)
    x = [DNA.index(c) for c in sequence]
    strands = [pwm, _rc_pwm(pwm)]
    m = L - w + 1
    post = np.zeros((m, 2))
    total = 0.0
    for configuration in _configurations(L, w, 2, mode):
        covered = {j + p for j, _ in configuration for p in range(w)}
        weight = np.prod([b[x[t]] for t in range(L) if t not in covered])
        for j, s in configuration:
            weight *= np.prod([strands[s][p, x[j + p]] * erased[j + p] for p in range(w)])
            weight *= gamma / (m * 2) if mode != "tcm" else gamma / 2
        if mode == "zoops":
            weight *= (1 - gamma) if not configuration else 1.0
        if mode == "tcm":  # a letter where a site could start was a (1 - lambda) choice
            starts_taken = {j for j, _ in configuration}
            t, choices = 0, 0
            while t < L:
                if t in starts_taken:
                    t += w
                    continue
                choices += t <= L - w
                t += 1
            weight *= (1 - gamma) ** choices
        total += weight
        for j, s in configuration:
            post[j, s] += weight
    return post / total


@pytest.mark.parametrize("mode", ["oops", "zoops", "tcm"])
def test_erasing_weights_are_the_product_of_one_minus_coverage_by_enumeration(mode):
    rng = np.random.default_rng(7)
    sequences = ["ACGTTGCA", "TTGACGA", "GGCATG"]
    w = 3
    motifs = [
        SequenceMotifParams(rng.dirichlet(np.ones(4)), (rng.dirichlet(np.ones(4) * 0.3, size=w),),
                            np.array([1.0 if mode == "oops" else 0.3]))
        for _ in range(2)
    ]
    model = SequenceMotifModel(width=w, mode=mode, letters=DNA, wildcards="N",
                               pseudocount=0.1, revcomp=True)
    codes, _ = encode_ragged(sequences, DNA, "N")
    data = model.prepare(codes, np.ones(len(sequences)))
    ours = erasing_weights(model, motifs, data)
    for i, sequence in enumerate(sequences):
        L = len(sequence)
        expected = np.ones(L)
        for motif in motifs:
            post = _brute_force_posteriors(sequence, motif, mode, expected).sum(axis=1)
            coverage = np.array([post[max(t - w + 1, 0): t + 1].sum() for t in range(L)])
            expected = expected * (1.0 - coverage)
        np.testing.assert_allclose(ours[i, :L], expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(ours[i, L:], 1.0)  # padding is never covered


@pytest.mark.parametrize("mode", ["oops", "zoops", "tcm"])
def test_each_motifs_expected_sites_are_counted_on_the_sequences_erased_before_it(mode):
    # nsites_[k]: the expected number of sites of motif k on the sequences erased by the motifs
    # before it, from enumerating site configurations with the fitted parameters (the starts:
    # max_iter=0 leaves the second motif sites to count on such short sequences).
    sequences = ["ACGTTGCA", "TTGACGA", "GGCATG", "ACGTTG"]
    w = 3
    model = SequenceMotifMixture(width=w, mode=mode, n_motifs=2, revcomp=True, max_iter=0,
                                 random_state=0).fit(sequences)
    assert model.nsites_.shape == (2,) and model.nsites_.min() > 1e-3
    erased = [np.ones(len(s)) for s in sequences]
    for k in range(2):
        motif = SequenceMotifParams(model.background_, (np.asarray(model.pwms_[k + 1]),),
                                    model.site_probs_[k : k + 1])
        expected = 0.0
        for i, sequence in enumerate(sequences):
            post = _brute_force_posteriors(sequence, motif, mode, erased[i])
            expected += post.sum()
            starts = post.sum(axis=1)
            coverage = np.array([starts[max(t - w + 1, 0): t + 1].sum()
                                 for t in range(len(sequence))])
            erased[i] = erased[i] * (1.0 - coverage)
        np.testing.assert_allclose(model.nsites_[k], expected, rtol=1e-9)


@pytest.mark.parametrize("mode", ["zoops", "tcm"])
def test_a_third_motif_asked_of_two_planted_ones_is_neither_again(mode):
    # Issue 20 item 5: erasing must keep a later motif from re-finding an earlier one.
    pwms = [make_motif_pwm(10, concentration=0.05, random_state=10),
            make_motif_pwm(10, concentration=0.05, random_state=20)]
    sequences, _, _ = make_motif_sequences(50, 150, pwm=pwms, site_probability=[1.0, 0.7],
                                           both_strands=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SequenceMotifMixture(width=10, mode=mode, n_motifs=3, revcomp=True,
                                     random_state=0).fit(sequences)
    found = [model.pwms_[k] for k in (1, 2, 3)]
    # The two planted motifs, in some order, then a third that is neither.
    assert sorted(min(_distance(f, p) for f in found[:2]) for p in pwms)[-1] < 0.15
    assert all(_distance(found[2], p) > 0.3 for p in pwms)
    assert model.log10_evalues_[2] > max(model.log10_evalues_[:2]) + 20



@pytest.mark.parametrize("mode, revcomp, palindromic, width", [
    ("zoops", False, False, 10),  # sites planted on the forward strand only
    ("tcm", True, False, (8, 12)),
    ("zoops", True, True, (8, 12)),  # motif 1 planted as a palindrome
    ("tcm", True, True, 10),
])
def test_a_third_motif_takes_none_of_the_earlier_motifs_sites(mode, revcomp, palindromic, width):
    # Issue 20 item 5 over strands, palindromes and width ranges: after erasing, motif 3 is
    # neither earlier motif (on either strand), hardly sits on their sites (sites() reads each
    # motif without erasing, so a weak site may overlap; a motif found again would overlap
    # nearly all), and is less significant than motif 1 (a palindromic fit cannot find the
    # planted motif 2, which is not palindromic).
    pwms = [make_motif_pwm(10, concentration=0.05, palindromic=palindromic, random_state=11),
            make_motif_pwm(10, concentration=0.05, random_state=21)]
    sequences, _, _ = make_motif_sequences(50, 120, pwm=pwms, site_probability=[0.9, 0.6],
                                           both_strands=revcomp, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SequenceMotifMixture(width=width, mode=mode, n_motifs=3, revcomp=revcomp,
                                     palindromic=palindromic, random_state=0).fit(sequences)
    sites = model.sites(sequences)
    earlier, third = sites[sites["motif"] < 3], sites[sites["motif"] == 3]
    merged = third.merge(earlier, on="sequence", suffixes=("", "_earlier"))
    overlapping = (merged["start"] < merged["end_earlier"]) & (merged["end"] > merged["start_earlier"])
    assert merged.loc[overlapping, "start"].size <= 0.2 * len(third), merged[overlapping]
    found = [np.asarray(model.pwms_[k]) for k in (1, 2, 3)]
    assert all(_distance(found[2], f) > 0.3 for f in found[:2])
    assert model.log10_evalues_[2] > model.log10_evalues_[0] + 20

# --------------------------------------------------------------------------- widths


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_widths_longer_than_the_sequences_are_dropped_with_a_warning():
    # Issue 20: default widths on 12-18 nt sequences raised numpy's "window shape cannot be
    # larger than input array shape".
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list(DNA), size=n)) for n in rng.integers(12, 19, size=30)]
    with pytest.warns(UserWarning, match=r"Widths above 18 cannot fit.*trying widths 8\.\.18"):
        model = SequenceMotifMixture(width=(8, 20), random_state=0).fit(sequences)
    assert 8 <= model.widths_[0] <= 18
    long_enough, _, _ = make_motif_sequences(30, 80, width=8, random_state=0)
    with pytest.warns(UserWarning, match="Widths above 80"):
        SequenceMotifMixture(width=(6, 100), random_state=0, max_iter=5).fit(long_enough)


def test_oops_widths_are_capped_at_the_shortest_sequence():
    sequences = ["ACGTACGTACGT", "ACGTACGTAC", "TTGACGTACGTTT"]
    with pytest.warns(UserWarning, match="the shortest sequence has 10 letters"):
        model = SequenceMotifMixture(width=(6, 12), mode="oops", random_state=0).fit(sequences)
    assert model.widths_[0] <= 10


@pytest.mark.parametrize("n, length, planted, widths, options", [
    (40, 60, 6, (4, 9), {}),
    (60, 80, 8, (6, 11), {"revcomp": True}),
    (30, 60, 7, (5, 10), {"mode": "tcm"}),
])
def test_a_width_range_chooses_what_fitting_every_width_chooses(n, length, planted, widths,
                                                                 options):
    # Issue 21 item 5: a range ranks widths after a few EM steps and refines only the best
    # two; it must still choose the width, and reach the objective, of fitting each width fully.
    sequences, _, _ = make_motif_sequences(n, length, width=planted, random_state=1)
    each = {w: SequenceMotifMixture(width=w, random_state=0, **options).fit(sequences)
            for w in range(widths[0], widths[1] + 1)}
    best = min(each, key=lambda w: (each[w].log10_evalues_[0], w))
    ranged = SequenceMotifMixture(width=widths, random_state=0, **options).fit(sequences)
    assert ranged.widths_[0] == best
    assert ranged.log10_evalues_[0] == pytest.approx(each[best].log10_evalues_[0], rel=1e-3)
    assert ranged.lower_bound_ == pytest.approx(each[best].lower_bound_, rel=1e-6)


def test_a_start_is_trimmed_to_its_most_informative_columns():
    background = np.full(4, 0.25)
    core = np.eye(4)[[0, 1, 2]] * 0.9 + 0.025
    pwm = np.vstack([np.tile(background, (3, 1)), core, np.tile(background, (2, 1))])
    start = SequenceMotifParams(background, (pwm,), np.array([0.5]))
    trimmed = resize_start(start, 3).pwms[0]
    np.testing.assert_allclose(trimmed, core)
    widened = resize_start(start, 10).pwms[0]
    np.testing.assert_allclose(widened[1:9], pwm)
    np.testing.assert_allclose(widened[[0, 9]], np.tile(background, (2, 1)))


def test_a_width_range_reports_the_chosen_widths_run():
    # Issue 20: width ranges reported n_iter_ = 1 and a one-value lower_bounds_.
    sequences, _, _ = make_motif_sequences(60, 80, width=8, random_state=0)
    ranged = SequenceMotifMixture(width=(7, 9), random_state=0).fit(sequences)
    assert ranged.n_iter_ > 1 and len(ranged.lower_bounds_) == ranged.n_iter_
    assert ranged.lower_bounds_[-1] == ranged.lower_bound_
    # The first value is one EM step from the start, far below the end.
    assert ranged.lower_bounds_[0] < ranged.lower_bound_ - 1e-6 * abs(ranged.lower_bound_)


# ---------------------------------------------------------- state read from each X


def test_sites_are_named_by_the_x_given_to_sites():
    sequences, _, _ = make_motif_sequences(40, 60, width=6, random_state=1)
    model = SequenceMotifMixture(width=6, random_state=0).fit(sequences)
    renamed = {f"other{i}": s for i, s in enumerate(sequences.values())}
    assert set(model.sites(renamed)["sequence"]) <= set(renamed)
    listed = model.sites(list(sequences.values()))
    assert set(listed["sequence"]) <= set(range(len(sequences)))


def test_each_site_row_reads_its_letters_from_its_sequence_and_strand():
    # The site column against the sequences themselves: sequence[start:end] on "+", its
    # reverse complement on "-", end - start the motif's width, for motifs of two widths
    pwms = [make_motif_pwm(7, concentration=0.1, random_state=1),
            make_motif_pwm(11, concentration=0.1, random_state=2)]
    sequences, _, _ = make_motif_sequences(30, 50, pwm=pwms, both_strands=True, random_state=3)
    model = SequenceMotifMixture(width=(7, 11), n_motifs=2, revcomp=True,
                                 random_state=0).fit(sequences)
    sites = model.sites(sequences, threshold=0.2)
    assert set(sites["strand"]) == {"+", "-"} and sites["sequence"].nunique() > 10
    for row in sites.itertuples():
        assert row.end - row.start == model.widths_[row.motif - 1]
        letters = sequences[row.sequence][row.start:row.end]
        if row.strand == "-":
            letters = letters[::-1].translate(str.maketrans("ACGT", "TGCA"))
        assert row.site == letters


def test_sample_draws_lengths_from_the_weighted_training_lengths():
    sequences = {"a": "ACGTACGTAA", "b": "ACGTACGTACGTACGTACGT"}
    model = SequenceMotifMixture(width=4, random_state=0).fit(
        list(sequences.values()), sample_weight=[3.0, 1.0]
    )
    np.testing.assert_array_equal(model.lengths_, [10, 20])
    np.testing.assert_allclose(model.length_probs_, [0.75, 0.25])
    drawn, planted = model.sample(2000)
    share = np.mean([len(s) == 10 for s in drawn])
    assert abs(share - 0.75) < 0.04
    assert planted.shape == (2000, 1)


# ------------------------------------------------------------------------- warm start


@pytest.mark.parametrize(
    "change",
    [{"width": 7}, {"mode": "tcm"}, {"n_motifs": 2}, {"alphabet": "ACGU"},
     {"revcomp": False}, {"palindromic": True}],
    ids=lambda change: next(iter(change)),
)
def test_a_warm_start_after_a_structural_change_warns_and_starts_afresh(change):
    # Issue 19 item 3: a warm fit kept width 8 after width=10.
    sequences, _, _ = make_motif_sequences(40, 60, width=6, both_strands=True, random_state=2)
    if "alphabet" in change:
        sequences = {k: v.replace("T", "U") for k, v in sequences.items()}
    model = SequenceMotifMixture(width=6, revcomp=True, warm_start=True, random_state=0)
    model.fit(make_motif_sequences(40, 60, width=6, both_strands=True, random_state=2)[0])
    name = next(iter(change))
    with pytest.warns(UserWarning, match=rf"{name}=.* -> "):
        model.set_params(**change).fit(sequences)
    fresh = SequenceMotifMixture(**{**model.get_params(), "warm_start": False}).fit(sequences)
    np.testing.assert_allclose(model.lower_bounds_, fresh.lower_bounds_, rtol=1e-12)
    assert len(model.pwms_) == len(fresh.pwms_) and model.widths_.tolist() == fresh.widths_.tolist()


def test_a_warm_start_with_the_same_structure_continues_without_a_warning():
    sequences, _, _ = make_motif_sequences(40, 60, width=6, random_state=2)
    model = SequenceMotifMixture(width=6, max_iter=3, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(sequences)
    first = model.lower_bound_
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.set_params(max_iter=200, tol=1e-9).fit(sequences)
    assert model.lower_bounds_[0] >= first - 1e-12


# ------------------------------------------------------------------------------ input


def test_a_column_of_sequences_is_one_sequence_per_row():
    sequences, _, _ = make_motif_sequences(30, 40, width=5, random_state=3)
    values = list(sequences.values())
    flat = SequenceMotifMixture(width=5, random_state=0).fit(values)
    column = SequenceMotifMixture(width=5, random_state=0).fit(np.array(values, dtype=object)[:, None])
    assert flat.n_features_in_ == column.n_features_in_ == 1
    np.testing.assert_allclose(column.lower_bounds_, flat.lower_bounds_, rtol=0)
    np.testing.assert_allclose(column.score_samples(np.array(values)[:, None]),
                               flat.score_samples(values), rtol=0)
    with pytest.raises(ValueError, match="X has 2 features, but SequenceMotifMixture is expecting 1"):
        flat.score_samples(np.array([values, values], dtype=object).T)
    with pytest.raises(TypeError, match="sparse input is not supported"):
        flat.fit(sparse.csr_matrix(np.ones((3, 3))))


@pytest.mark.parametrize("width", [(5,), (5, 6, 7), (0, 4), (6, 5), (5.0, 6)])
def test_a_bad_width_pair_is_a_clear_error(width):
    with pytest.raises(ValueError, match="pair \\(min_width, max_width\\)"):
        SequenceMotifMixture(width=width).fit(["ACGTACGTAC"] * 3)


def test_dask_input_is_refused_before_any_work():
    da = pytest.importorskip("dask.array")
    X = da.from_array(np.zeros((10, 8), dtype=int), chunks=5)
    with pytest.raises(TypeError, match="does not fit dask arrays.*compute X first"):
        SequenceMotifMixture(width=5).fit(X)


def test_fitted_attributes_agree_with_each_other():
    pwms = [make_motif_pwm(6, concentration=0.1, random_state=1),
            make_motif_pwm(8, concentration=0.1, random_state=2)]
    sequences, _, _ = make_motif_sequences(40, 60, pwm=pwms, site_probability=0.6,
                                           random_state=1)
    model = SequenceMotifMixture(width=(6, 8), n_motifs=2, random_state=0).fit(sequences)
    np.testing.assert_allclose(model.weights_,
                               [np.prod(1 - model.site_probs_), *model.site_probs_])
    np.testing.assert_allclose(model.evalues_, 10.0 ** model.log10_evalues_)
    assert model.widths_.tolist() == [len(p) for p in model.pwms_[1:]]
    np.testing.assert_allclose(model.pwms_[0], np.tile(model.background_, (model.widths_[0], 1)))
    for k, pwm in enumerate(model.pwms_):
        np.testing.assert_allclose(model.log_odds_[k], np.log2(pwm / model.background_))
        assert model.consensus_[k] == "".join(np.array(list(DNA))[np.asarray(pwm).argmax(1)])
    np.testing.assert_allclose(model.pwm(2).to_numpy(), model.pwms_[2])


def test_boundaries_of_widths_thresholds_and_sample_sizes():
    sequences, _, _ = make_motif_sequences(30, 8, width=8, random_state=4)
    # A width equal to the longest (OOPS: the shortest) sequence fits, without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = SequenceMotifMixture(width=8, mode="oops", random_state=0).fit(sequences)
    assert model.widths_.tolist() == [8]
    every = model.sites(sequences, threshold=0.0)
    assert len(every) == len(sequences)  # one start per sequence, posterior 1 in OOPS
    assert len(model.sites(sequences, threshold=1.0)) <= len(sequences)
    for bad in (-0.1, 1.1, "0.5"):
        with pytest.raises(ValueError, match="threshold"):
            model.sites(sequences, threshold=bad)
    drawn, planted = model.sample(1)
    assert drawn.shape == (1,) and planted.shape == (1, 1)
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


def test_sites_read_x_in_the_fitted_alphabet():
    sequences, _, _ = make_motif_sequences(30, 40, width=6, random_state=6)
    model = SequenceMotifMixture(width=6, random_state=0).fit(sequences)
    before = model.sites(sequences)
    model.set_params(alphabet="ACGU")  # not refitted: the fitted model still reads DNA
    assert before.equals(model.sites(sequences))


def test_a_later_motif_that_does_not_converge_warns():
    pwms = [make_motif_pwm(6, concentration=0.1, random_state=1),
            make_motif_pwm(6, concentration=0.1, random_state=2)]
    sequences, _, _ = make_motif_sequences(30, 50, pwm=pwms, random_state=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SequenceMotifMixture(width=6, n_motifs=2, max_iter=1, tol=0.0,
                             random_state=0).fit(sequences)
    messages = [str(w.message) for w in caught]
    assert any("motif 2 did not converge in max_iter=1" in m for m in messages), messages


def test_later_motifs_warn_only_when_they_stop_short():
    pwms = [make_motif_pwm(6, concentration=0.1, random_state=1),
            make_motif_pwm(6, concentration=0.1, random_state=2)]
    sequences, _, _ = make_motif_sequences(30, 50, pwm=pwms, random_state=1)
    for max_iter in (0, 500):  # max_iter=0 evaluates the starts: nothing to warn about
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            SequenceMotifMixture(width=6, n_motifs=2, max_iter=max_iter,
                                 random_state=0).fit(sequences)


# ---------------------------------------------------------------------- significance


@pytest.mark.parametrize("dof", [2, 10, 30, 96])
@pytest.mark.parametrize("x", [5.0, 300.0, 3000.0, 2e4, 1e6])
def test_log_chi2_tail_against_the_closed_form_for_even_dof(x, dof):
    # For even dof, P(chi2_dof > x) = e^-y sum_{k < dof/2} y^k / k!, y = x / 2 (exact, summed
    # in log space); far in the tail, where scipy's logsf underflows, log_chi2_sf switches to
    # the asymptotic series, good to O((s / y)^2)
    from scipy.special import gammaln, logsumexp
    from scipy.stats import chi2

    from skem._sequence_sites import log_chi2_sf

    y, k = x / 2.0, np.arange(dof // 2)
    exact = -y + logsumexp(k * np.log(y) - gammaln(k + 1))
    if np.isfinite(chi2.logsf(x, dof)):
        assert log_chi2_sf(x, dof) == pytest.approx(exact, rel=1e-9)
    else:  # the next term of the series: (s - 1)(s - 2) / y^2 < (s / y)^2
        assert abs(log_chi2_sf(x, dof) - exact) <= (dof / x) ** 2


@pytest.mark.parametrize("counts, background, n_positions", [
    ([[5, 0, 0, 0], [0, 5, 0, 0], [1, 1, 1, 2], [0, 0, 0, 5]], [0.25] * 4, 400),  # zero counts
    ([[1, 0, 0, 0], [0, 0, 1, 0]], [0.3, 0.2, 0.2, 0.3], 50),  # one site
    ([[30, 10, 5, 5], [0, 50, 0, 0], [10, 10, 10, 20], [5, 5, 20, 20]], [0.25, 0.25, 0.3, 0.2],
     10_000),
    ([[3, 1, 0, 0], [0, 0, 4, 0]], [0.25] * 4, 3),  # fewer positions than sites: as many
])
def test_log10_evalue_against_its_formula(counts, background, n_positions):
    # MEME's E-value as documented: llr = sum n_pa log(f_pa / b_a) (0 log 0 = 0), p-value of
    # 2 llr under chi2(w (A - 1)) (closed form: even w (A - 1) here), times C(n_positions, nsites)
    import math

    from scipy.special import gammaln, logsumexp

    from skem._sequence_sites import log10_evalue

    counts, background = np.asarray(counts, float), np.asarray(background)
    w, A = counts.shape
    nsites = int(counts.sum(axis=1)[0])
    llr = sum(n * math.log(n / nsites / background[a])
              for row in counts for a, n in enumerate(row) if n > 0)
    y, k = llr, np.arange(w * (A - 1) // 2)  # y = (2 llr) / 2
    log_p = -y + logsumexp(k * np.log(y) - gammaln(k + 1))
    log_choices = math.log(math.comb(max(n_positions, nsites), nsites))
    expected = (log_p + log_choices) / math.log(10)
    assert log10_evalue(counts, background, n_positions, A - 1) == pytest.approx(expected,
                                                                                 rel=1e-9)
    assert log10_evalue(np.zeros((w, A)), background, n_positions, A - 1) == 0.0  # no site


def test_pwm_of_a_component_checks_the_fit_and_the_component():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SequenceMotifMixture(width=6).pwm()
    sequences, _, _ = make_motif_sequences(30, 40, width=6, random_state=2)
    model = SequenceMotifMixture(width=6, n_motifs=2, random_state=0).fit(sequences)
    K = len(model.pwms_)
    np.testing.assert_array_equal(model.pwm().to_numpy(), model.pwms_[1])  # the first motif
    np.testing.assert_array_equal(model.pwm(-1).to_numpy(), model.pwms_[K - 1])
    np.testing.assert_array_equal(model.pwm(-K).to_numpy(), model.pwms_[0])
    for bad in (K, -K - 1, 1.5, "1", 1.0):
        with pytest.raises(ValueError, match="component must be an integer"):
            model.pwm(bad)


def test_information_content_and_the_information_matrix_by_hand():
    # bits per position: log2(A) - entropy (0 log 0 = 0); pwm(kind="information") scales each
    # row's probabilities by its position's bits (logomaker's information logo)
    sequences, _, _ = make_motif_sequences(30, 40, width=6, random_state=2)
    model = SequenceMotifMixture(width=6, n_motifs=2, random_state=0).fit(sequences)
    for k in range(len(model.pwms_)):
        pwm = np.asarray(model.pwms_[k])
        bits = np.array([2.0 + sum(p * np.log2(p) for p in row if p > 0) for row in pwm])
        np.testing.assert_allclose(model.information_content_[k], bits, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.pwm(k, kind="information").to_numpy(),
                                   pwm * bits[:, None], rtol=1e-12, atol=1e-15)


def test_information_content_of_stacked_matrices_is_per_matrix():
    from skem._pwm import information_content

    rng = np.random.default_rng(1)
    stacked = rng.dirichlet(np.full(4, 0.5), size=(3, 7))  # (K, w, A), w != A
    stacked[0, 0] = [1.0, 0.0, 0.0, 0.0]
    bits = 2.0 + np.array([[sum(p * np.log2(p) for p in row if p > 0) for row in pwm]
                           for pwm in stacked])
    np.testing.assert_allclose(information_content(stacked), bits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(information_content(stacked[1]), bits[1], rtol=1e-12)


def test_a_weighted_draw_of_at_least_every_row_is_every_row():
    from skem._pwm import weighted_draw

    model = SequenceMotifModel(width=3, mode="zoops", letters=DNA, wildcards="N", pseudocount=0.1)
    codes, _ = encode_ragged(["ACGTTG", "TTGACG", "GGCATG"], DNA, "N")
    data = model.prepare(codes, np.array([1.0, 2.0, 3.0]))
    rng = np.random.RandomState(0)
    for size in (3, 4):
        assert weighted_draw(data, size, rng) is data
    drawn = weighted_draw(data, 2, rng)  # a multinomial draw of 2: the counts are the weights
    assert drawn.weights.sum() == 2 and drawn.n_rows <= 2


def test_sample_checks_the_fit_and_draws_one_sequence_by_default():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SequenceMotifMixture(width=6).sample()
    sequences, _, _ = make_motif_sequences(20, 30, width=6, random_state=2)
    drawn, planted = SequenceMotifMixture(width=6, random_state=0).fit(sequences).sample()
    assert drawn.shape == (1,) and planted.shape == (1, 1) and len(drawn[0]) == 30

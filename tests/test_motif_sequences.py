"""SequenceMotifMixture: MEME's OOPS, ZOOPS and TCM models on whole sequences.

References are independent of the code under test: likelihoods by enumerating
every site configuration of short sequences, recovery of planted motifs (their
PWMs known), and the EM contract (monotone objective, weights = repeats, chunk
and row-order invariance) checked on the engine's own runs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from skem import MotifMixture, SequenceMotifMixture
from skem._em import EMControls, in_memory_rows, run_em
from skem._letters import encode_ragged
from skem._motif_sequences import SequenceMotifModel
from skem._sequence_sites import SequenceMotifParams
from skem.datasets import make_motif_pwm, make_motif_sequences
from skem.sequences import reverse_complement, revcomp_permutation

DNA = "ACGT"


def _rc_pwm(pwm):
    w = pwm.shape[0]
    return pwm.reshape(-1)[revcomp_permutation(w)].reshape(w, 4)


def _l2(found, true, revcomp=True):
    """Frobenius distance to the planted PWM, in the orientation and shift that fit best."""
    if found.shape != true.shape:
        return np.inf
    options = [found, _rc_pwm(found)] if revcomp else [found]
    return min(np.linalg.norm(option - true) for option in options)


def _model(mode, revcomp=False, palindromic=False, width=3):
    return SequenceMotifModel(
        width=width, mode=mode, letters=DNA, wildcards="N", pseudocount=0.1,
        revcomp=revcomp, palindromic=palindromic, min_width=width, max_width=width,
    )


def _params(rng, w=3, gamma=0.4):
    return SequenceMotifParams(
        rng.dirichlet(np.ones(4)), (rng.dirichlet(np.ones(4), size=w),), np.array([gamma])
    )


# ----------------------------------------------------------- likelihood by enumeration


def _brute_force_loglik(sequence, params, mode, revcomp):
    """log p(x) by summing over every allowed set of sites (with strands), straight from the model."""
    b, pwm, gamma = params.background, params.pwms[0], float(params.site_probs[0])
    w, L = pwm.shape[0], len(sequence)
    x = [DNA.index(c) for c in sequence]
    strands = [pwm, _rc_pwm(pwm)] if revcomp else [pwm]
    S = len(strands)

    def site(j, s):
        return np.prod([strands[s][p, x[j + p]] for p in range(w)])

    def background(positions):
        return np.prod([b[x[t]] for t in positions])

    m = L - w + 1
    if mode in ("oops", "zoops"):
        total = sum(
            site(j, s) * background([t for t in range(L) if not j <= t < j + w]) / (m * S)
            for j in range(m) for s in range(S)
        )
        if mode == "zoops":
            return np.log((1 - gamma) * background(range(L)) + gamma * total)
        return np.log(total)

    # TCM: walk left to right; where a site fits, start one (lambda) or emit a letter (1 - lambda).
    def walk(t):
        if t == L:
            return 1.0
        if t <= L - w:
            letter = (1 - gamma) * b[x[t]] * walk(t + 1)
            sites = sum(gamma / S * site(t, s) for s in range(S)) * walk(t + w)
            return letter + sites
        return b[x[t]] * walk(t + 1)

    return np.log(walk(0))


@pytest.mark.parametrize("mode", ["oops", "zoops", "tcm"])
@pytest.mark.parametrize("revcomp", [False, True])
def test_likelihood_equals_enumeration_of_site_configurations(mode, revcomp):
    rng = np.random.default_rng(3)
    params = _params(rng)
    if mode == "oops":
        params = SequenceMotifParams(params.background, params.pwms, np.array([1.0]))
    sequences = ["".join(rng.choice(list(DNA), size=n)) for n in (3, 5, 8, 9)]
    model = _model(mode, revcomp)
    codes, _ = encode_ragged(sequences, DNA, "N")
    data = model.prepare(codes, np.ones(len(sequences)))
    ours = model.score_samples(params, data)
    expected = [_brute_force_loglik(s, params, mode, revcomp) for s in sequences]
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_missing_letters_are_marginalized():
    rng = np.random.default_rng(4)
    params = _params(rng)
    model = _model("zoops", revcomp=True)
    # 'N' at a position: the sum of the likelihoods over its four letters.
    with_n, _ = encode_ragged(["ACNTGA"], DNA, "N")
    each, _ = encode_ragged([f"AC{a}TGA" for a in DNA], DNA, "N")
    ll_n = model.score_samples(params, model.prepare(with_n, np.ones(1)))
    ll_each = model.score_samples(params, model.prepare(each, np.ones(4)))
    np.testing.assert_allclose(ll_n, np.log(np.exp(ll_each).sum()), rtol=1e-12)


# --------------------------------------------------------------- the EM contract


@settings(deadline=None, max_examples=15)
@given(
    seed=hst.integers(0, 10_000),
    mode=hst.sampled_from(["oops", "zoops", "tcm"]),
    revcomp=hst.booleans(),
    palindromic=hst.booleans(),
    chunk=hst.sampled_from([None, 3]),
)
def test_objective_never_decreases(seed, mode, revcomp, palindromic, chunk):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 15, size=12)
    sequences = ["".join(rng.choice(list("ACGTN"), p=[0.24] * 4 + [0.04], size=n)) for n in lengths]
    model = _model(mode, revcomp or palindromic, palindromic, width=4)
    codes, _ = encode_ragged(sequences, DNA, "N")
    data = in_memory_rows(model, codes, rng.integers(1, 3, size=12).astype(float))
    start = _params(rng, w=4, gamma=1.0 if mode == "oops" else 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the engine warns on any decrease
        result = run_em(model, data, start, EMControls(max_iter=25, tol=0.0, chunk_size=chunk))
    steps = np.diff(result.lower_bounds)
    assert np.all(steps >= -1e-10 * np.abs(result.lower_bounds[1:]))


@pytest.mark.parametrize("mode", ["oops", "zoops", "tcm"])
def test_weight_two_equals_the_sequence_twice_and_rows_chunks_and_order_do_not_matter(mode):
    sequences, _, _ = make_motif_sequences(40, 30, width=6, both_strands=True, random_state=1)
    names = list(sequences)
    weights = np.ones(len(names))
    weights[:5] = 2
    repeated = names + names[:5]
    kwargs = dict(width=6, mode=mode, revcomp=True, random_state=0, tol=1e-10, max_iter=500)
    weighted = SequenceMotifMixture(**kwargs).fit([sequences[n] for n in names], sample_weight=weights)
    twice = SequenceMotifMixture(**kwargs).fit([sequences[n] for n in repeated])
    chunked = SequenceMotifMixture(chunk_size=7, **kwargs).fit(
        [sequences[n] for n in names], sample_weight=weights
    )
    order = np.random.default_rng(0).permutation(len(repeated))
    shuffled = SequenceMotifMixture(**kwargs).fit([sequences[repeated[i]] for i in order])
    for other in (twice, chunked, shuffled):
        np.testing.assert_allclose(other.lower_bound_, weighted.lower_bound_, rtol=1e-8)
        np.testing.assert_allclose(other.pwms_, weighted.pwms_, atol=1e-5)


# ------------------------------------------------------------- recovery of planted motifs


def _recover(seed, mode, palindromic=False, n=300, length=120, width=10):
    rng = np.random.RandomState(seed)
    pwm = make_motif_pwm(width, concentration=0.2, random_state=rng)
    if palindromic:
        pwm = (pwm + _rc_pwm(pwm)) / 2
    site_probability = 1.0 if mode == "oops" else 0.6
    if mode == "tcm":
        sequences = {}
        for part in range(2):  # two sites per sequence, in two halves
            half, _, _ = make_motif_sequences(n, length // 2, pwm=pwm, site_probability=0.6,
                                              both_strands=True, random_state=rng)
            sequences = {k: sequences.get(k, "") + v for k, v in half.items()}
    else:
        sequences, _, _ = make_motif_sequences(n, length, pwm=pwm, site_probability=site_probability,
                                               both_strands=True, random_state=rng)
    model = SequenceMotifMixture(width=width, mode=mode, revcomp=True, palindromic=palindromic,
                         random_state=seed).fit(sequences)
    return _l2(model.pwms_[1], pwm), model


@pytest.mark.parametrize("mode", ["oops", "zoops", "tcm"])
@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_a_planted_dirichlet_motif_on_both_strands(mode, seed):
    distance, _ = _recover(seed, mode)
    assert distance < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["oops", "zoops", "tcm"])
def test_recovers_planted_motifs_across_20_seeds(mode):
    distances = [_recover(seed, mode)[0] for seed in range(20)]
    assert max(distances) < 0.5, distances


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_a_palindromic_motif(seed):
    distance, model = _recover(seed, "zoops", palindromic=True)
    assert distance < 0.5
    pwm = model.pwms_[1]
    np.testing.assert_allclose(pwm, _rc_pwm(pwm), atol=1e-12)


@pytest.mark.slow
def test_recovers_palindromes_from_the_simulator_across_20_seeds():
    # Dimer-like palindromes (make_motif_pwm(palindromic=True): sharp half-sites mirrored).
    distances = []
    for seed in range(20):
        rng = np.random.RandomState(seed)
        pwm = make_motif_pwm(10, palindromic=True, random_state=rng)
        sequences, _, _ = make_motif_sequences(300, 120, pwm=pwm, site_probability=0.6,
                                               both_strands=True, random_state=rng)
        model = SequenceMotifMixture(width=10, revcomp=True, palindromic=True, random_state=seed)
        distances.append(_l2(model.fit(sequences).pwms_[1], pwm))
    assert max(distances) < 0.5, distances


def test_simulated_palindromes_equal_their_reverse_complement():
    for width in (6, 7):
        pwm = make_motif_pwm(width, palindromic=True, random_state=width)
        np.testing.assert_allclose(pwm, _rc_pwm(pwm), atol=1e-15)
        np.testing.assert_allclose(pwm.sum(axis=1), 1.0)
        # The drawn half keeps its sharpness: most probable letters well above 1/2 somewhere.
        assert pwm.max() > 0.8


def test_several_simulated_motifs_are_planted_without_overlaps_and_found_with_their_sites():
    rng = np.random.RandomState(5)
    pwms = [make_motif_pwm(8, random_state=rng), make_motif_pwm(12, random_state=rng)]
    sequences, sites, returned = make_motif_sequences(300, 100, pwm=pwms, site_probability=[0.8, 0.6],
                                                      both_strands=True, random_state=rng)
    assert all(np.array_equal(a, b) for a, b in zip(returned, pwms))
    for row in sites.itertuples():
        forward = sequences[row.sequence][row.start : row.end]
        assert row.site == (forward if row.strand == "+" else reverse_complement(forward))
    for _, group in sites.groupby("sequence"):
        spans = sorted(zip(group["start"], group["end"]))
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    counts = sites["motif"].value_counts()
    assert abs(counts[1] - 240) < 4 * np.sqrt(300 * 0.8 * 0.2)
    assert abs(counts[2] - 180) < 4 * np.sqrt(300 * 0.6 * 0.4)
    model = SequenceMotifMixture(width=(8, 12), n_motifs=2, revcomp=True, random_state=0).fit(sequences)
    for k, pwm in enumerate(pwms, start=1):
        found = [j for j, f in enumerate(model.pwms_[1:]) if _l2(f, pwm) < 0.5]
        assert found, k
        calls = model.sites(sequences).query("motif == @found[0] + 1")
        planted = sites[sites["motif"] == k]
        merged = planted.merge(calls, on="sequence", suffixes=("", "_found"))
        assert len(merged) > 0.8 * len(planted)
        assert (merged["start"] == merged["start_found"]).mean() > 0.9


# Consensus of JASPAR MA0139.1 (CTCF), 19 positions; a sharp but not saturated PWM around it.
CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"


def _ctcf_like():
    strength = np.array([0.55, 0.6, 0.6, 0.8, 0.85, 0.6, 0.9, 0.9, 0.7, 0.85,
                         0.85, 0.8, 0.9, 0.85, 0.8, 0.8, 0.6, 0.5, 0.45])
    pwm = np.tile((1 - strength)[:, None] / 3, (1, 4))
    pwm[np.arange(19), [DNA.index(c) for c in CTCF_CONSENSUS]] = strength
    return pwm


def test_no_palindromic_chimera_on_500_sequences_with_one_ctcf_like_site():
    pwm = _ctcf_like()
    sequences, sites, _ = make_motif_sequences(500, 200, pwm=pwm, both_strands=True, random_state=0)
    model = SequenceMotifMixture(width=19, revcomp=True, random_state=0).fit(sequences)
    found = model.pwms_[1]
    assert _l2(found, pwm) < 0.5
    # A chimera is close to its own reverse complement; the CTCF motif is not.
    assert np.linalg.norm(found - _rc_pwm(found)) > 1.5
    assert 450 <= model.nsites_[0] <= 510
    table = model.sites(sequences)
    merged = table.merge(sites, on="sequence", suffixes=("", "_true"))
    assert (merged["start"] == merged["start_true"]).mean() > 0.9
    assert (merged["strand"] == merged["strand_true"]).mean() > 0.9


def test_two_planted_motifs_are_found_by_n_motifs_2():
    rng = np.random.RandomState(5)
    first, second = make_motif_pwm(8, random_state=rng), make_motif_pwm(12, random_state=rng)
    a, _, _ = make_motif_sequences(200, 80, pwm=first, both_strands=True, random_state=rng)
    b, _, _ = make_motif_sequences(200, 80, pwm=second, both_strands=True, random_state=rng)
    sequences = [a[k] + b[k] for k in a]
    model = SequenceMotifMixture(width=(8, 12), n_motifs=2, revcomp=True, random_state=0).fit(sequences)
    found = list(model.pwms_[1:])
    assert min(_l2(f, first) for f in found) < 0.5
    assert min(_l2(f, second) for f in found) < 0.5
    assert sorted(model.widths_) == [8, 12]
    assert np.all(model.log10_evalues_ < 0)


def test_significance_separates_a_motif_from_none():
    rng = np.random.RandomState(2)
    sequences, _, _ = make_motif_sequences(100, 100, width=10, random_state=rng)
    noise = ["".join(rng.choice(list(DNA), size=100)) for _ in range(100)]
    with_motif = SequenceMotifMixture(width=10, random_state=0).fit(sequences)
    without = SequenceMotifMixture(width=10, random_state=0).fit(noise)
    assert with_motif.log10_evalues_[0] < -20
    assert without.log10_evalues_[0] > with_motif.log10_evalues_[0] + 15


# ------------------------------------------------------------------ the default reaches the optimum


def _fitted_objective_and_optimizer(model, data, params):
    """The objective per unit weight at ``params`` and the best a direct optimizer finds from there.

    L-BFGS-B on the model's own unconstrained parameters (``pack``: logits of the site
    probability, log background, log PWM; softmax in ``unpack``), objective from the
    engine's E-pass: an optimizer that knows nothing of EM.
    """
    from scipy.optimize import minimize

    from skem._em import e_pass

    def negative(vector):
        return -e_pass(model, model.unpack(vector, params), data)[1]

    x0 = model.pack(params)
    found = minimize(negative, x0, method="L-BFGS-B",
                     options={"maxiter": 40, "ftol": 1e-15, "gtol": 1e-10})
    return -negative(x0), -found.fun


@pytest.mark.parametrize("width, mode", [(None, None), (6, "oops"), (6, "zoops"), (6, "tcm")])
def test_default_fit_is_at_the_optimum(width, mode):
    # Issue 10: the default fit is within 1e-6 relative of a strict-tolerance fit started
    # from it, and no direct optimizer improves it by more than 1e-6 relative.
    from skem.datasets import make_motif_windows

    if width is None:
        X, _, _ = make_motif_windows(1500, width=6, motif_fraction=0.15, random_state=0)
        kwargs = dict(background="position-independent", revcomp=True)
    else:
        sequences, _, _ = make_motif_sequences(80, 50, width=6, site_probability=0.7,
                                               both_strands=True, random_state=0)
        X = list(sequences.values())
        kwargs = dict(width=width, mode=mode, revcomp=True)
    estimator = MotifMixture if width is None else SequenceMotifMixture
    default = estimator(random_state=0, **kwargs).fit(X)
    assert default.converged_
    strict = estimator(random_state=0, tol=1e-13, max_iter=20_000, warm_start=True, **kwargs)
    strict.fit(X)  # the first fit only sets up the warm start
    strict._set_fitted_params(default._get_fitted_params())
    strict.fit(X)
    scale = abs(strict.lower_bound_)
    assert strict.lower_bound_ - default.lower_bound_ <= 1e-6 * scale
    model = default._model
    if width is None:
        data = in_memory_rows(model, default._validate_X(X, reset=False), np.ones(len(X)))
        params = default._get_fitted_params()
    else:
        codes, _ = encode_ragged(X, DNA, "N")
        data = in_memory_rows(model, codes, np.ones(len(X)))
        fitted = default._get_fitted_params()
        params = SequenceMotifParams(fitted.background, fitted.pwms[:1], fitted.site_probs[:1])
    ours, direct = _fitted_objective_and_optimizer(model, data, params)
    np.testing.assert_allclose(ours, default.lower_bound_, rtol=1e-10)
    assert direct - ours <= 1e-6 * abs(ours), (direct, ours)


# ------------------------------------------------------------------ the start search's pieces


def _rows(sequences, mode="zoops", revcomp=True, width=6):
    model = _model(mode, revcomp, width=width)
    codes, _ = encode_ragged(sequences, DNA, "N")
    return model, in_memory_rows(model, codes, np.ones(len(sequences)))


@pytest.mark.parametrize("revcomp", [False, True])
def test_kmer_enrichment_counts_the_sequences_holding_each_kmer(revcomp):
    from skem._sequence_search import kmer_enrichment

    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGTN"), p=[0.3, 0.2, 0.2, 0.28, 0.02], size=n))
                 for n in rng.integers(3, 40, size=60)]
    model, data = _rows(sequences, revcomp=revcomp)
    background = np.array([0.3, 0.2, 0.2, 0.3])
    k = 3
    table = kmer_enrichment(model, data, background, k)
    decode = {c: "".join(DNA[(c // 4 ** (k - 1 - p)) % 4] for p in range(k)) for c in table.classes}
    for code, observed, expected in zip(table.classes, table.observed, table.expected):
        kmer = decode[code]
        forms = {kmer, reverse_complement(kmer)} if revcomp else {kmer}
        # Counted straight from the strings: sequences holding the k-mer (either strand).
        holders = sum(any(f in s for f in forms) for s in sequences)
        assert observed == holders, kmer
        q = sum(np.prod([background[DNA.index(c)] for c in f]) for f in forms)
        positions = [sum(s[j:j + k].count("N") == 0 for j in range(len(s) - k + 1))
                     for s in sequences]
        fits = [m for m in positions if m > 0]
        assert np.isclose(expected, len(fits) * -np.expm1(-np.mean(fits) * q)), kmer
    assert np.all(np.diff(table.enrichment) <= 0)


def test_kmer_seeds_carry_a_planted_motif_beyond_the_kmer():
    from skem._sequence_search import SiteCandidateBatch, kmer_candidates, kmer_enrichment

    rng = np.random.RandomState(1)
    pwm = _ctcf_like()
    sequences, _, _ = make_motif_sequences(200, 100, pwm=pwm, both_strands=True, random_state=rng)
    model, data = _rows(list(sequences.values()), width=19)
    background = np.full(4, 0.25)
    table = kmer_enrichment(model, data, background, 8)
    seeds = kmer_candidates(SiteCandidateBatch(model=model, background=background, width=19),
                            data, table)
    best = np.exp(seeds.log_pwms[0]).reshape(19, 4)
    # Aligned on the whole motif (not just its 8-mer), in one orientation or the other: the
    # seed's most probable letters are the consensus's, also outside the k-mer.
    agree = max(np.mean(option.argmax(axis=1) == pwm.argmax(axis=1))
                for option in (best, _rc_pwm(best)))
    assert agree >= 17 / 19


@pytest.mark.parametrize("mode", ["oops", "zoops"])
def test_candidate_batch_objective_equals_the_sequence_model(mode):
    from skem._em import e_pass
    from skem._pwm import CandidateParams
    from skem._sequence_search import SiteCandidateBatch

    rng = np.random.default_rng(2)
    sequences = ["".join(rng.choice(list("ACGTN"), p=[0.24] * 4 + [0.04], size=n))
                 for n in rng.integers(2, 30, size=40)]
    model, data = _rows(sequences, mode, width=5)
    background = rng.dirichlet(np.ones(4))
    pwms = rng.dirichlet(np.ones(4), size=(3, 5))
    gammas = np.array([1.0] * 3) if mode == "oops" else np.array([0.2, 0.5, 0.9])
    batch = SiteCandidateBatch(model=model, background=background, width=5)
    stats, _ = e_pass(batch, CandidateParams(np.log(pwms).reshape(3, -1), gammas), data)
    for c in range(3):
        params = SequenceMotifParams(background, (pwms[c],), gammas[c : c + 1])
        fits = data.lengths >= 5
        expected = model.score_samples(params, data) - data.letter_counts @ np.log(background)
        # The batch runs in single precision: it only ranks candidates.
        np.testing.assert_allclose(stats.loglik[c], expected[fits].sum(), rtol=1e-5)
        model_stats, _ = model.e_step(params, data)
        np.testing.assert_allclose(stats.counts[c].reshape(5, 4), model_stats.site_counts,
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(stats.n_sites[c], model_stats.n_sites, rtol=1e-5)


def test_verbose_search_names_its_seeds_and_start(capsys):
    sequences, _, pwm = make_motif_sequences(60, 50, width=6, random_state=0)
    SequenceMotifMixture(width=6, random_state=0, verbose=1).fit(sequences)
    line = next(x for x in capsys.readouterr().out.splitlines() if "motif search" in x)
    assert "k-mer seeds" in line and "substrings" in line


def test_sequences_without_any_whole_kmer_still_start():
    # No k-mer free of missing letters: the substring starts alone seed the search.
    model = SequenceMotifMixture(width=3, random_state=0).fit(["ANNNNA", "ACNNNNGT"] * 5)
    assert np.isfinite(model.lower_bound_)
    np.testing.assert_allclose(model.pwms_[1].sum(axis=1), 1.0)


# ----------------------------------------------------------------------- inputs and outputs


def test_inputs_of_any_kind_give_the_same_fit():
    sequences, _, _ = make_motif_sequences(60, 40, width=6, random_state=3)
    names = list(sequences)
    strings = [sequences[n] for n in names]
    forms = {
        "dict": sequences,
        "list": strings,
        "bytes": [s.encode() for s in strings],
        "series": pd.Series(strings, index=names),
        "frame": pd.DataFrame({"seq": strings}, index=names),
        "codes": [np.array([DNA.index(c) for c in s]) for s in strings],
        "ragged": [s[: 30 + i % 10] for i, s in enumerate(strings)],
    }
    fits = {k: SequenceMotifMixture(width=6, random_state=0).fit(v) for k, v in forms.items()}
    for key in ("list", "bytes", "series", "frame", "codes"):
        np.testing.assert_allclose(fits[key].pwms_, fits["dict"].pwms_)
    assert fits["dict"].sites(sequences)["sequence"].iloc[0] in names


def test_sites_and_predict_proba_and_sample():
    sequences, sites, pwm = make_motif_sequences(200, 60, width=8, site_probability=0.5,
                                                 both_strands=True, random_state=4)
    model = SequenceMotifMixture(width=8, revcomp=True, random_state=0).fit(sequences)
    proba = model.predict_proba(list(sequences.values()))
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    has_site = np.isin(list(sequences), sites["sequence"])
    # A weak motif (8 positions of a Dirichlet(0.2) draw): site calls are right well above chance.
    assert np.mean((proba[:, 1] > 0.5) == has_site) > 0.65
    assert proba[has_site, 1].mean() > proba[~has_site, 1].mean() + 0.2
    table = model.sites(sequences)
    assert list(table.columns) == ["motif", "sequence", "start", "end", "strand", "posterior", "site"]
    for row in table.itertuples():
        forward = sequences[row.sequence][row.start : row.end]
        assert row.site == (forward if row.strand == "+" else reverse_complement(forward))
    drawn, planted = model.sample(50)
    assert drawn.dtype.kind == "U" and len(drawn) == 50 and all(len(s) == 60 for s in drawn)
    assert planted.shape == (50, 1)


@pytest.mark.parametrize(
    "X, params, message",
    [
        (["ACGT", "ACGZ"], {}, "Unknown letter 'Z' in sequence 1 at position 3"),
        ({"a": "ACGTACGT", "b": "AC"}, {"mode": "oops"}, r"sequence 1 \(counting from 0\) has 2 letters"),
        (["ACG", "AC"], {}, "No sequence is at least 5 letters long"),
        (["ACGTAA", ""], {}, "Sequence 1 is empty"),
        ("ACGTACGT", {}, "single string"),
        (["ACGTAC"], {"width": (6, 3)}, "min_width <= max_width"),
        (["ACDEFGHIK"], {"alphabet": "ACDEFGHIKLMNPQRSTVWY", "revcomp": True}, "nucleotide"),
    ],
)
def test_bad_input_is_a_clear_error(X, params, message):
    with pytest.raises(ValueError, match=message):
        SequenceMotifMixture(**{"width": 5, **params}).fit(X)


def test_protein_alphabet():
    rng = np.random.RandomState(0)
    letters = "ACDEFGHIKLMNPQRSTVWY"
    pwm = make_motif_pwm(6, alphabet=letters, concentration=0.1, random_state=rng)
    sequences, _, _ = make_motif_sequences(150, 50, pwm=pwm, alphabet=letters, random_state=rng)
    model = SequenceMotifMixture(width=6, alphabet=letters, random_state=0).fit(sequences)
    assert np.linalg.norm(model.pwms_[1] - pwm) < 0.5


def test_window_model_is_unchanged_without_width():
    X = ["ACGTAC", "ACGTAA", "TTTTTT"] * 10
    assert MotifMixture(random_state=0).fit(X).pwms_.shape == (2, 6, 4)


def test_enumeration_helper_agrees_with_itself_on_oops_vs_zoops_at_gamma_one():
    # Sanity of the reference: ZOOPS with gamma = 1 is OOPS.
    rng = np.random.default_rng(0)
    params = _params(rng, gamma=1.0)
    for sequence in ("ACGTA", "GGCAT"):
        assert np.isclose(_brute_force_loglik(sequence, params, "zoops", True),
                          _brute_force_loglik(sequence, params, "oops", True))


# ------------------------------------------------------------------------- the command


def test_command_fits_sequences_and_names_sites_by_record(tmp_path, capsys):
    from skem.cli import main
    from skem.io import read_meme

    sequences, planted, pwm = make_motif_sequences(120, 80, width=8, both_strands=True,
                                                   random_state=2)
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">{n} description\n{s}\n" for n, s in sequences.items()))
    argv = ["-q", "motif", str(fasta), "--minw", "7", "--maxw", "9", "--revcomp",
            "--mode", "oops", "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    motifs = read_meme(tmp_path / "out" / "motifs.meme")
    assert motifs["motif1"].attrs["nsites"] == 120 and motifs["motif1"].attrs["E"] < 1e-3
    sites = pd.read_csv(tmp_path / "out" / "sites.tsv", sep="\t")
    assert set(sites["sequence"]) <= set(sequences)
    assert "E-value" in capsys.readouterr().out


def test_command_rna_alphabet(tmp_path):
    from skem.cli import main

    sequences, _, _ = make_motif_sequences(60, 50, width=6, alphabet="ACGU", random_state=0)
    fasta = tmp_path / "rna.fa"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in sequences.items()))
    assert main(["-q", "motif", str(fasta), "-w", "6", "--alphabet", "rna",
                 "-o", str(tmp_path / "out")]) == 0
    assert "ALPHABET= ACGU" in (tmp_path / "out" / "motifs.meme").read_text()


def test_command_errors_name_the_record_and_the_file(tmp_path, capsys):
    from skem.cli import main

    fasta = tmp_path / "bad.fa"
    fasta.write_text(">ok\nACGTACGTAC\n>broken\nACGTAJGTAC\n")
    assert main(["-q", "motif", str(fasta), "-w", "5", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "broken" in err and "bad.fa" in err


def test_command_default_widths_on_short_sequences_warn_and_report_the_chosen_run(
        tmp_path, capsys):
    # Issue 20: default widths (8..20) on 12-18 nt sequences raised numpy's "window shape
    # cannot be larger than input array shape"; width ranges printed "fitted in 1 iterations".
    from skem.cli import main

    sequences, _, _ = make_motif_sequences(60, 18, width=8, random_state=5)
    fasta = tmp_path / "short.fa"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in sequences.items()))
    assert main(["motif", str(fasta), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Widths above 18 cannot fit" in text and "Traceback" not in text
    assert "fitted in 1 iterations" not in text

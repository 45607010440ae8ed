"""TranscriptQuantifier: kernels against direct computations, the model's semantics, recovery."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import digamma, gammaln
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from threadpoolctl import threadpool_limits
from hypothesis import given, settings
from hypothesis import strategies as st

from skem import TranscriptQuantifier
from skem._em import EMControls, in_memory_rows, run_em
from skem.datasets import make_transcript_reads
from skem.transcripts import (
    TRUNCATE_BELOW,
    TranscriptModel,
    TranscriptParams,
    _dirichlet_kl,
    _e_step_kernel,
    _length_scaled_rows,
    _truncate,
    effective_lengths,
    equivalence_classes,
)

FRAG = 100


@pytest.fixture(scope="module")
def reads():
    """Default simulator case, as equivalence classes: (X, counts, truth)."""
    return make_transcript_reads(random_state=0)


def quantifier(truth, **params):
    return TranscriptQuantifier(lengths=truth.lengths, fragment_length=FRAG, **params)


def dense_posterior(X, nu, eff):
    """q_nk = nu_k X_nk / l_k normalized per row, written out directly."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X, float)
    joint = X * (nu / eff)[None, :]
    return joint / joint.sum(axis=1, keepdims=True), np.log(joint.sum(axis=1))


# ------------------------------------------------------------ effective lengths


def test_effective_lengths_without_fragment_length_are_lengths():
    np.testing.assert_array_equal(effective_lengths([5, 100.5]), [5, 100.5])


def test_effective_lengths_fixed_fragment_are_continuous():
    eff = effective_lengths([1000, 200, 150, 149, 90], fragment_length=150)
    # L - f + 1, floored at one start position: no jump back to L below the fragment length
    np.testing.assert_array_equal(eff, [851, 51, 1, 1, 1])
    np.testing.assert_array_equal(effective_lengths([199, 200, 201], 200), [1, 1, 2])


def brute_effective_length(L, mean, sd, support=1000):
    """sum_{f <= L} P(f) (L - f + 1) / sum_{f <= L} P(f), term by term in exact fractions' spirit."""
    frag = np.arange(1, support + 1)
    p = np.exp(-0.5 * ((frag - mean) / sd) ** 2)
    keep = frag <= L
    return float(np.sum(p[keep] * (L - frag[keep] + 1)) / np.sum(p[keep]))


@pytest.mark.parametrize("mean, sd", [(200.0, 30.0), (250.0, 25.0), (80.0, 40.0)])
def test_effective_lengths_match_expected_start_positions(mean, sd):
    # lengths where the truncated distribution keeps enough mass for the direct sum
    lengths = np.array([1, 30, 120, 199, 200, 260, 999, 1000, 1001, 5000])
    lengths = lengths[lengths >= mean - 6 * sd]
    eff = effective_lengths(lengths, mean, sd)
    for L, e in zip(lengths, eff):
        assert e == pytest.approx(brute_effective_length(L, mean, sd), rel=1e-10)
    assert np.all(eff >= 1)


def test_effective_lengths_far_below_the_mean_do_not_underflow():
    # P(f <= 50) underflows for N(200, 5); the conditional mean is about 50 - 5**2 / 150 ...
    eff = effective_lengths([1, 2, 50, 150], 200, 5)
    assert np.all(np.isfinite(eff)) and np.all(eff >= 1)
    # ... and for a steep left tail, E[L + 1 - f | f <= L] -> 1 / (1 - exp(-slope)), slope = (mu - L) / sd^2
    slope = (200 - 50) / 25
    assert eff[2] == pytest.approx(1 / (1 - np.exp(-slope)), rel=1e-3)
    assert eff[0] == 1


@settings(deadline=None)
@given(
    mean=st.floats(20, 600),
    sd=st.floats(0.0, 200),
    start=st.integers(1, 3000),
)
def test_effective_lengths_are_monotone_and_grow_at_most_one_per_base(mean, sd, start):
    lengths = np.arange(start, start + 400, dtype=float)
    eff = effective_lengths(lengths, mean, sd)
    steps = np.diff(eff)
    assert np.all(eff >= 1)
    assert np.all(steps >= -1e-9)  # never shorter for a longer transcript
    assert np.all(steps <= 1 + 1e-9)  # continuous: at most one more start position per base


def test_effective_lengths_reject_bad_input():
    with pytest.raises(ValueError, match="transcript 1 has length 0"):
        effective_lengths([100, 0])
    with pytest.raises(ValueError, match="transcript 0 has length -3"):
        effective_lengths([-3.0, 10])
    with pytest.raises(ValueError, match="fragment_length"):
        effective_lengths([100], fragment_length=-5)
    with pytest.raises(ValueError, match="needs fragment_length"):
        effective_lengths([100], fragment_length_sd=20)


# ------------------------------------------------------------ equivalence classes


def test_equivalence_classes_are_exact_and_invertible():
    X = sp.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 0, 1], [0.5, 0, 1], [0, 0, 0]]))
    classes, counts, inverse = equivalence_classes(X, return_inverse=True)
    assert classes.shape == (4, 3)  # [1,0,1] x3, [0,1,0], [0.5,0,1] (a different weight), empty
    np.testing.assert_array_equal(classes[inverse].toarray(), X.toarray())
    np.testing.assert_array_equal(np.bincount(inverse, minlength=4), counts)
    assert counts.sum() == X.shape[0]


def test_equivalence_classes_dense_input_and_weights():
    X = np.array([[1, 1], [0, 1], [1, 1]])
    classes, counts = equivalence_classes(X, sample_weight=[2.0, 3.0, 0.5])
    assert sp.issparse(classes)
    as_dict = {tuple(row): c for row, c in zip(classes.toarray(), counts)}
    assert as_dict == {(1.0, 1.0): 2.5, (0.0, 1.0): 3.0}


def test_classes_with_counts_equal_reads():
    X_reads, _, truth = make_transcript_reads(3000, n_genes=8, collapse=False, random_state=3)
    classes, counts = equivalence_classes(X_reads)
    assert classes.shape[0] < X_reads.shape[0] / 10
    by_read = quantifier(truth).fit(X_reads)
    by_class = quantifier(truth).fit(classes, sample_weight=counts)
    np.testing.assert_allclose(by_class.est_counts_, by_read.est_counts_, rtol=1e-9, atol=1e-9)
    assert by_class.lower_bound_ == pytest.approx(by_read.lower_bound_, rel=1e-12)


# ------------------------------------------------------------ kernels


def test_e_step_kernel_matches_dense_posterior():
    rng = np.random.default_rng(0)
    X = sp.random(50, 7, density=0.4, random_state=1, format="csr") * 1e-200  # tiny likelihoods
    X = X + sp.csr_matrix((np.ones(50), (np.arange(50), rng.integers(0, 7, 50))), shape=(50, 7)) * 1e-200
    eff = rng.uniform(50, 500, 7)
    w = rng.integers(1, 5, 50).astype(float)
    nu = rng.dirichlet(np.ones(7))
    A, log_scale, empty = _length_scaled_rows(X, eff, divide_by_length=True)
    counts, log_norm = _e_step_kernel(A, sp.csr_matrix(A.T), w, log_scale, empty, nu)
    q, log_lik = dense_posterior(X * 1e200, nu, eff)  # same posterior, log-likelihood shifted
    np.testing.assert_allclose(counts, w @ q, rtol=1e-12)
    assert log_norm == pytest.approx(w @ (log_lik + np.log(1e-200)), rel=1e-12)


def test_score_and_posteriors_match_direct_computation(reads):
    X, counts, truth = reads
    model = quantifier(truth).fit(X, sample_weight=counts)
    q, log_lik = dense_posterior(X, model.nu_, model.effective_lengths_)
    with np.errstate(divide="ignore"):  # reads only compatible with zeroed transcripts
        np.testing.assert_allclose(model.score_samples(X), log_lik, rtol=1e-12)
    proba = model.predict_proba(X)
    assert sp.issparse(proba)
    np.testing.assert_allclose(proba.toarray(), np.nan_to_num(q), atol=1e-15)
    dense_proba = model.predict_proba(X.toarray())
    assert isinstance(dense_proba, np.ndarray)
    np.testing.assert_allclose(dense_proba, proba.toarray())
    np.testing.assert_array_equal(model.predict(X), model.predict(X.toarray()))


def test_dirichlet_kl_against_formula():
    gamma, alpha = np.array([3.0, 0.5, 10.0]), np.array([1.0, 0.01, 2.0])
    expected_log = digamma(gamma) - digamma(gamma.sum())
    expected = (
        gammaln(gamma.sum()) - gammaln(gamma).sum() - gammaln(alpha.sum()) + gammaln(alpha).sum()
        + ((gamma - alpha) * expected_log).sum()
    )
    assert _dirichlet_kl(gamma, alpha) == pytest.approx(expected)
    assert _dirichlet_kl(alpha, alpha) == pytest.approx(0.0, abs=1e-12)


def test_two_transcript_maximum_likelihood_in_closed_form():
    # 60 reads on both, 30 only on A (length 1000), 10 only on B (length 2000):
    # c_A solves c^2 - 50 c - 3000 = 0.
    X = np.array([[1, 1], [1, 0], [0, 1]])
    model = TranscriptQuantifier(lengths=[1000, 2000], rel_tol=0, tol=1e-15, max_iter=100000)
    model.fit(X, sample_weight=[60, 30, 10])
    c_a = (50 + np.sqrt(50**2 + 4 * 3000)) / 2
    np.testing.assert_allclose(model.est_counts_, [c_a, 100 - c_a], rtol=1e-9)
    tau = np.array([c_a / 1000, (100 - c_a) / 2000])
    np.testing.assert_allclose(model.tpm_, 1e6 * tau / tau.sum(), rtol=1e-9)


def test_model_alone_reaches_the_em_fixed_point_through_the_engine():
    # The closed-form case above, with no estimator: c_A solves c^2 - 50 c - 3000 = 0.
    X = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    weights = np.array([60.0, 30.0, 10.0])
    lengths = np.array([1000.0, 2000.0])
    model = TranscriptModel(eff_lengths=lengths, lengths=lengths, prior=np.array(0.0), rel_tol=0.0)
    data = in_memory_rows(model, X, weights)
    start = model.initialize(data, np.random.RandomState(0), EMControls())
    np.testing.assert_array_equal(start.counts, [50.0, 50.0])  # uniform start
    controls = EMControls(max_iter=100000, tol=1e-15, accelerate="squarem")
    result = run_em(model, data, start, controls)
    c_a = (50 + np.sqrt(50**2 + 4 * 3000)) / 2
    np.testing.assert_allclose(result.params.counts, [c_a, 100 - c_a], rtol=1e-9)
    np.testing.assert_allclose(np.round(result.params.counts, 2), [85.21, 14.79])
    assert result.converged and result.n_iter >= model.min_iter == 50
    assert len(result.lower_bounds) == result.n_iter
    # a fixed point: one more EM step stays there, and the objective is the log-likelihood per read
    stats, log_likelihood = model.e_step(result.params, data)
    np.testing.assert_allclose(model.m_step(stats, result.params).counts, result.params.counts,
                               rtol=1e-9)
    nu = np.array([c_a, 100 - c_a]) / 100
    by_hand = weights @ np.log(X.toarray() @ (nu / lengths))
    assert log_likelihood == pytest.approx(by_hand, rel=1e-12)
    assert result.lower_bound == pytest.approx(by_hand / weights.sum(), rel=1e-12)
    assert model.log_prior(result.params) == 0.0 and model.n_outputs == 2


def test_accelerate_none_is_plain_em(reads):
    X, counts, truth = reads
    settings = dict(rel_tol=0, tol=1e-10, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        unset = quantifier(truth, accelerate=None, **settings).fit(X, sample_weight=counts)
        plain = quantifier(truth, accelerate="none", **settings).fit(X, sample_weight=counts)
    assert unset.n_iter_ == plain.n_iter_
    np.testing.assert_array_equal(unset.est_counts_, plain.est_counts_)
    np.testing.assert_array_equal(unset.lower_bounds_, plain.lower_bounds_)


# ------------------------------------------------------------ recovery and EM behaviour


def test_recovers_true_counts(reads):
    X, counts, truth = reads
    model = quantifier(truth).fit(X, sample_weight=counts)
    assert spearmanr(model.est_counts_, truth.counts)[0] > 0.95
    assert model.converged_ and model.n_iter_ < 1000
    assert model.est_counts_.sum() == pytest.approx(counts.sum())
    assert model.tpm_.sum() == pytest.approx(1e6)
    np.testing.assert_allclose(model.effective_lengths_, truth.effective_lengths)


@pytest.mark.parametrize("method, prior", [("em", 0.0), ("em", 0.5), ("vbem", 0.01)])
def test_plain_em_objective_never_decreases(reads, method, prior):
    X, counts, truth = reads
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = quantifier(
            truth, method=method, prior=prior, accelerate="none", rel_tol=0, tol=0, max_iter=400
        ).fit(X, sample_weight=counts)
    history = model.lower_bounds_
    assert len(history) == model.n_iter_ == 400  # one objective per iteration
    assert np.all(np.diff(history) >= -1e-13 * np.abs(history[1:]))
    assert history[-1] > history[0]


def test_squarem_reaches_plain_objective_in_fewer_iterations(reads):
    X, counts, truth = reads
    settings = dict(rel_tol=0, tol=1e-11, max_iter=20000)
    plain = quantifier(truth, accelerate="none", **settings).fit(X, sample_weight=counts)
    fast = quantifier(truth, accelerate="squarem", **settings).fit(X, sample_weight=counts)
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-12
    assert np.all(np.diff(fast.lower_bounds_) >= -1e-13 * np.abs(fast.lower_bounds_[1:]))
    assert fast.n_iter_ * 2 < plain.n_iter_


def test_stopping_rule_copes_with_a_flat_direction():
    # Two transcripts share 20000 reads and differ by 1 vs 2 unique reads: from the uniform
    # start plain EM moves c_A by about 0.5 read per iteration towards N/3 while the
    # likelihood per read changes by ~1e-10: it would crawl for ~10^5 iterations.
    X = np.array([[1, 1], [1, 0], [0, 1]])
    w = [20000, 1, 2]
    optimum = 20003 / 3  # c_A = N n_A / (n_A + n_B)
    with pytest.warns(ConvergenceWarning):
        TranscriptQuantifier(accelerate="none", rel_tol=0, tol=0, max_iter=2000).fit(X, sample_weight=w)
    # The field's rules (rel_tol=0.01, an option) stop the crawl, but only after min_iter
    # rounds; without them they would stop at the start (salmon PR 1052's two-transcript toy).
    at_start = TranscriptQuantifier(accelerate="none", rel_tol=0.01, min_iter=0).fit(X, sample_weight=w)
    assert at_start.n_iter_ == 1
    plain = TranscriptQuantifier(accelerate="none", rel_tol=0.01).fit(X, sample_weight=w)
    assert plain.converged_ and plain.n_iter_ == 50
    # SQUAREM with the default rule reaches the optimum in few rounds.
    fast = TranscriptQuantifier().fit(X, sample_weight=w)
    assert fast.converged_ and fast.n_iter_ <= 100
    assert fast.est_counts_[0] == pytest.approx(optimum, rel=1e-6)
    assert fast.lower_bound_ > plain.lower_bound_


def class_log_likelihood(log_nu_free, X, counts, eff):
    """Total log-likelihood of the classes at nu = softmax(log_nu_free), written out directly."""
    log_nu = log_nu_free - np.logaddexp.reduce(log_nu_free)
    return float(counts @ np.log(X @ (np.exp(log_nu) / eff)))


def test_default_fit_is_at_the_optimum(reads):
    """The default stopping rule ends at the maximum: no direct optimizer or strict fit improves it."""
    from scipy.optimize import minimize

    X, counts, truth = reads
    default = quantifier(truth).fit(X, sample_weight=counts)
    eff = default.effective_lengths_
    at_default = class_log_likelihood(np.log(default.nu_ + 1e-300), X, counts, eff)
    assert at_default == pytest.approx(default.lower_bound_ * counts.sum(), rel=1e-9)
    # L-BFGS on all free abundances (softmax coordinates), started from the default fit
    start = np.log(np.maximum(default.nu_, 1e-12))
    direct = minimize(
        lambda z: -class_log_likelihood(z, X, counts, eff), start, method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12},
    )
    assert -direct.fun <= at_default + 1e-6 * abs(at_default)
    # a strict fit (no stopping rule, many more passes) gains no more than 1e-6 relative either
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        strict = quantifier(truth, tol=0, max_iter=20000).fit(X, sample_weight=counts)
    assert strict.lower_bound_ - default.lower_bound_ <= 1e-6 * abs(strict.lower_bound_)
    # ... while the field's rule (an option) stops measurably earlier, on fewer passes
    field = quantifier(truth, rel_tol=0.01).fit(X, sample_weight=counts)
    assert field.n_iter_ < default.n_iter_
    assert strict.lower_bound_ - field.lower_bound_ > strict.lower_bound_ - default.lower_bound_
    # transcripts with no read at all decay to the truncation rule's zero
    absent = truth.counts == 0
    assert np.sum(default.est_counts_[absent] > TRUNCATE_BELOW) <= np.sum(
        strict.est_counts_[absent] > TRUNCATE_BELOW
    ) + 1


def test_truncation_zeroes_tiny_counts(reads):
    X, counts, truth = reads
    X = sp.hstack([X, sp.csr_matrix((X.shape[0], 1))], format="csr")  # a transcript with no reads
    model = TranscriptQuantifier(
        lengths=np.append(truth.lengths, 500), fragment_length=FRAG, rel_tol=0, tol=1e-12
    ).fit(X, sample_weight=counts)
    assert model.est_counts_[-1] == 0.0 and model.tpm_[-1] == 0.0
    positive = model.est_counts_[model.est_counts_ > 0]
    assert positive.min() >= TRUNCATE_BELOW
    assert np.sum(model.est_counts_ == 0) > 1  # absent transcripts are not "expressed" at 1e-30
    assert model.est_counts_.sum() == pytest.approx(counts.sum(), rel=1e-12)


def test_truncate_keeps_the_total():
    params = TranscriptParams(np.array([5.0, 1e-9, 3e-300, 2.0]))
    out = _truncate(params, 1.0)
    assert out.counts[1] == 0 and out.counts[2] == 0
    assert out.counts.sum() == pytest.approx(params.counts.sum(), rel=1e-15)


# ------------------------------------------------------------ prior, MAP and VBEM


def test_prior_pulls_towards_uniform_and_keeps_counts_as_reads(reads):
    X, counts, truth = reads
    ml = quantifier(truth).fit(X, sample_weight=counts)
    map_ = quantifier(truth, prior=1e4).fit(X, sample_weight=counts)
    M = X.shape[1]
    assert np.std(map_.nu_) < np.std(ml.nu_)
    # nu_ includes pseudo-counts; est_counts_ stay reads and sum to the reads
    np.testing.assert_allclose(map_.nu_, (map_.est_counts_ + 1e4) / (counts.sum() + 1e4 * M))
    assert map_.est_counts_.sum() == pytest.approx(counts.sum())
    assert map_._model.log_prior(map_._get_fitted_params()) != 0.0


def test_prior_per_transcript(reads):
    X, counts, truth = reads
    prior = np.zeros(X.shape[1])
    prior[0] = 5000.0
    a = quantifier(truth, prior=prior).fit(X, sample_weight=counts)
    b = quantifier(truth).fit(X, sample_weight=counts)
    assert a.nu_[0] > b.nu_[0]
    with pytest.raises(ValueError, match="prior"):
        quantifier(truth, prior=np.ones(3)).fit(X, sample_weight=counts)


def test_vbem_needs_a_positive_prior_and_agrees_with_em_on_well_covered_transcripts(reads):
    X, counts, truth = reads
    with pytest.raises(ValueError, match="vbem"):
        quantifier(truth, method="vbem").fit(X, sample_weight=counts)
    vb = quantifier(truth, method="vbem", prior=0.01).fit(X, sample_weight=counts)
    em = quantifier(truth).fit(X, sample_weight=counts)
    covered = em.est_counts_ > 200
    np.testing.assert_allclose(vb.est_counts_[covered], em.est_counts_[covered], rtol=0.05)
    assert vb.est_counts_.sum() == pytest.approx(counts.sum())
    # the ELBO is a lower bound on the log-likelihood (per read) at the posterior mean
    assert vb.lower_bound_ <= vb.score(X, sample_weight=counts)


def test_grid_search_over_prior_uses_held_out_likelihood():
    X, _, truth = make_transcript_reads(2000, n_genes=6, collapse=False, random_state=1)
    search = GridSearchCV(
        quantifier(truth), {"prior": [0.0, 0.5, 50.0]}, cv=KFold(3, shuffle=True, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ML may score a held-out read -inf
        search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores[1:]).all()
    assert search.best_params_["prior"] == [0.0, 0.5, 50.0][int(np.nanargmax(scores))]
    assert search.best_estimator_.score(X) == pytest.approx(
        np.mean(search.best_estimator_.score_samples(X))
    )


# ------------------------------------------------------------ lengths and salmon weights


def test_lengths_none_means_equal_lengths(reads):
    X, counts, truth = reads
    # the same plain-EM trajectory (fixed passes): the near-flat directions of this problem
    # leave fits stopped by a rule a fraction of a read apart after different rounding
    fixed = dict(accelerate="none", tol=0, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = TranscriptQuantifier(**fixed).fit(X, sample_weight=counts)
        b = TranscriptQuantifier(lengths=np.full(X.shape[1], 777.0), **fixed).fit(X, sample_weight=counts)
    np.testing.assert_allclose(a.est_counts_, b.est_counts_, rtol=1e-12)
    np.testing.assert_allclose(a.tau_, a.nu_)
    with pytest.raises(ValueError, match="fragment_length needs lengths"):
        TranscriptQuantifier(fragment_length=100).fit(X, sample_weight=counts)


def test_effective_lengths_parameter_overrides_computation(reads):
    X, counts, truth = reads
    a = quantifier(truth).fit(X, sample_weight=counts)
    b = TranscriptQuantifier(effective_lengths=truth.effective_lengths, lengths=truth.lengths)
    b.fit(X, sample_weight=counts)
    np.testing.assert_array_equal(a.est_counts_, b.est_counts_)
    np.testing.assert_array_equal(b.abundance_["length"], truth.lengths)
    with pytest.raises(ValueError, match="effective_lengths"):
        TranscriptQuantifier(effective_lengths=np.zeros(X.shape[1])).fit(X, sample_weight=counts)


def test_weights_that_include_length_are_not_divided_again(reads):
    X, counts, truth = reads
    eff = truth.effective_lengths
    W = sp.csr_matrix(X.multiply(1.0 / eff[None, :]))
    W = sp.csr_matrix(W.multiply(1.0 / W.sum(axis=1)))  # salmon's per-class weights, sum 1
    fixed = dict(accelerate="none", tol=0, max_iter=300)  # one trajectory, see above
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = TranscriptQuantifier(effective_lengths=eff, **fixed).fit(X, sample_weight=counts)
        salmon_like = TranscriptQuantifier(effective_lengths=eff, x_includes_length=True, **fixed)
        salmon_like.fit(W, sample_weight=counts)
    np.testing.assert_allclose(salmon_like.est_counts_, reference.est_counts_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(salmon_like.tpm_, reference.tpm_, rtol=1e-6, atol=1e-6)
    twice = TranscriptQuantifier(effective_lengths=eff).fit(W, sample_weight=counts)
    assert np.max(np.abs(twice.est_counts_ - reference.est_counts_)) > 10


# ------------------------------------------------------------ reads compatible with nothing


def test_reads_compatible_with_no_transcript(reads):
    X, counts, truth = reads
    X_out = sp.vstack([X, sp.csr_matrix((2, X.shape[1]))], format="csr")
    counts_out = np.append(counts, [7, 5])
    with pytest.warns(UserWarning, match="12 of .* compatible with no transcript"):
        model = quantifier(truth).fit(X_out, sample_weight=counts_out)
    reference = quantifier(truth).fit(X, sample_weight=counts)
    assert model.n_unassigned_ == 12
    assert reference.n_unassigned_ == 0
    np.testing.assert_allclose(model.est_counts_, reference.est_counts_, rtol=1e-10)
    scores = model.score_samples(X_out)
    assert np.all(scores[-2:] == -np.inf) and np.isfinite(scores[:-2]).any()
    assert not np.isnan(scores).any()
    proba = model.predict_proba(X_out)
    assert proba[-2:].nnz == 0 and not np.isnan(proba.data).any()
    np.testing.assert_array_equal(model.predict(X_out)[-2:], [-1, -1])
    for attribute in ("est_counts_", "nu_", "tau_", "tpm_"):
        assert np.isfinite(getattr(model, attribute)).all()


def test_no_read_compatible_with_any_transcript_is_an_error():
    with pytest.raises(ValueError, match="No read is compatible"):
        TranscriptQuantifier().fit(np.zeros((4, 3)))


def test_rejects_negative_compatibility():
    with pytest.raises(ValueError, match="Negative values"):
        TranscriptQuantifier().fit(np.array([[1.0, -1.0]]))


# ------------------------------------------------------------ determinism and bootstraps


def test_bit_identical_whatever_threads_and_jobs(reads):
    X, counts, truth = reads
    params = dict(n_bootstraps=4, random_state=0)
    a = quantifier(truth, **params).fit(X, sample_weight=counts)
    with threadpool_limits(1):
        b = quantifier(truth, **params).fit(X, sample_weight=counts)
    c = quantifier(truth, n_jobs=2, **params).fit(X, sample_weight=counts)
    for other in (b, c):
        np.testing.assert_array_equal(a.est_counts_, other.est_counts_)
        np.testing.assert_array_equal(a.bootstrap_est_counts_, other.bootstrap_est_counts_)
        pd.testing.assert_frame_equal(a.abundance_, other.abundance_, check_exact=True)
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.score_samples(X), a.score_samples(X))


def test_bootstraps_report_standard_deviations(reads):
    X, counts, truth = reads
    model = quantifier(truth, n_bootstraps=8, random_state=1).fit(X, sample_weight=counts)
    table = model.abundance_
    assert list(table.columns) == [
        "target_id", "length", "eff_length", "est_counts", "tpm", "est_counts_sd", "tpm_sd"
    ]
    assert model.bootstrap_est_counts_.shape == (8, X.shape[1])
    np.testing.assert_allclose(table["est_counts_sd"], model.bootstrap_est_counts_.std(axis=0, ddof=1))
    np.testing.assert_allclose(model.bootstrap_est_counts_.sum(axis=1), counts.sum())
    expressed = model.est_counts_ > 50
    assert np.all(table["est_counts_sd"][expressed] > 0)
    # sampling noise is at least Poisson-like for clearly expressed transcripts, and not absurd
    ratio = table["est_counts_sd"][expressed] / np.sqrt(model.est_counts_[expressed])
    assert np.median(ratio) > 0.5 and np.median(ratio) < 5
    other_seed = quantifier(truth, n_bootstraps=8, random_state=2).fit(X, sample_weight=counts)
    assert not np.array_equal(other_seed.bootstrap_est_counts_, model.bootstrap_est_counts_)
    plain = quantifier(truth).fit(X, sample_weight=counts)
    assert list(plain.abundance_.columns) == ["target_id", "length", "eff_length", "est_counts", "tpm"]
    np.testing.assert_array_equal(plain.est_counts_, model.est_counts_)


# ------------------------------------------------------------ the abundance table


def test_abundance_table_columns_and_names(reads):
    X, counts, truth = reads
    frame = pd.DataFrame.sparse.from_spmatrix(X, columns=list(truth.transcript_names))
    model = quantifier(truth).fit(frame, sample_weight=counts)
    table = model.abundance_
    assert list(table.columns) == ["target_id", "length", "eff_length", "est_counts", "tpm"]
    assert list(table["target_id"]) == list(truth.transcript_names)
    np.testing.assert_array_equal(table["est_counts"], model.est_counts_)
    np.testing.assert_array_equal(table["eff_length"], truth.effective_lengths)
    named = quantifier(truth, transcript_names=[f"tx{i}" for i in range(X.shape[1])])
    assert named.fit(X, sample_weight=counts).abundance_["target_id"].iloc[2] == "tx2"
    default = quantifier(truth).fit(X, sample_weight=counts)
    assert default.abundance_["target_id"].iloc[0] == "t0"
    with pytest.raises(ValueError, match="transcript_names"):
        quantifier(truth, transcript_names=["a"]).fit(X, sample_weight=counts)


def test_bic_counts_free_abundances(reads):
    X, counts, truth = reads
    model = quantifier(truth).fit(X, sample_weight=counts)
    n = X.shape[0]
    assert model.bic(X) == pytest.approx(-2 * model.score(X) * n + (X.shape[1] - 1) * np.log(n))


@pytest.mark.parametrize("scale", [1e-12, 1e-10, 1e12, 1e300])
def test_estimates_do_not_depend_on_the_scale_of_the_weights(scale):
    # Truncation is in reads of the smallest weight, not in absolute weight: weights scaled
    # by 1e-12 gave NaN, by 1e-10 a TPM of [1e6, 0, 0].
    X = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1]], float)
    w = np.array([30, 5, 1, 20, 3], float)
    reference = TranscriptQuantifier(lengths=[1000, 800, 1200]).fit(X, sample_weight=w)
    scaled = TranscriptQuantifier(lengths=[1000, 800, 1200]).fit(X, sample_weight=w * scale)
    np.testing.assert_allclose(scaled.tpm_, reference.tpm_, rtol=1e-9)
    np.testing.assert_allclose(scaled.est_counts_ / scale, reference.est_counts_, rtol=1e-9)


def test_score_ignores_rows_of_weight_zero():
    # 0 x log(0) made the weighted mean NaN when a zero-weight read was impossible.
    X = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0]], float)
    model = TranscriptQuantifier(lengths=[1000, 800, 1200]).fit(X, sample_weight=[3.0, 2.0, 1.0])
    impossible = np.array([[0, 0, 1.0]])
    assert model.score_samples(impossible)[0] == -np.inf
    with_zero = model.score(np.vstack([X, impossible]), sample_weight=[3.0, 2.0, 1.0, 0.0])
    assert with_zero == model.score(X, sample_weight=[3.0, 2.0, 1.0])


# ------------------------------------------------- the weight of one read (issue 20 item 2)


def test_read_weight_is_the_smallest_positive_weight_of_a_compatible_row():
    from skem.transcripts import _read_weight

    X = sp.csr_matrix(np.array([[1, 0], [0, 0], [1, 1], [0, 1]], dtype=float))
    # row 1 is compatible with nothing and row 3 has weight 0: neither is a read
    assert _read_weight(X, np.array([0.5, 1e-9, 2.0, 0.0])) == 0.5
    assert _read_weight(X.toarray(), np.array([3.0, 1e-9, 2.0, 0.0])) == 2.0
    assert _read_weight(X, np.zeros(4)) == 1.0  # no read at all
    assert _read_weight(X, [0.5, 1.0, 2.0, 3.0]) == 1.0  # not in memory (dask): one read is 1


def test_truncation_and_the_stopping_rule_are_in_reads_of_the_read_weight():
    # _truncate: counts below TRUNCATE_BELOW reads of weight read_weight are zeroed, the others
    # rescaled to keep the total; nothing changes if none or all are small
    r = 1e-6
    counts = np.array([0.5e-8 * r, 3.0, 1.5e-8 * r, 0.0])
    kept = _truncate(TranscriptParams(counts), r).counts
    survivors = np.array([0.0, 3.0, 1.5e-8 * r, 0.0])
    np.testing.assert_allclose(kept, survivors * counts.sum() / survivors.sum(), rtol=1e-14)
    assert kept.sum() == pytest.approx(counts.sum(), rel=1e-15)
    for unchanged in ([2.0, 3.0], [0.5e-8 * r, 0.2e-8 * r]):
        assert _truncate(TranscriptParams(np.array(unchanged)), r).counts.tolist() == unchanged
    # the field's stopping rule: counts at or below rel_tol_cutoff reads never block it
    model = TranscriptModel(eff_lengths=np.ones(3), lengths=np.ones(3), prior=np.zeros(3),
                            rel_tol=0.01, rel_tol_cutoff=0.01, read_weight=r)
    old = TranscriptParams(np.array([100.0, 0.01 * r, 0.02 * r]))
    assert model.params_converged(old, TranscriptParams(np.array([100.5, 0.0, 0.02 * r])))
    assert model.params_converged(old, TranscriptParams(np.array([101.0, 0.0, 0.02 * r])))
    assert not model.params_converged(old, TranscriptParams(np.array([102.0, 0.0, 0.02 * r])))
    assert not model.params_converged(old, TranscriptParams(np.array([100.0, 0.0, 0.011 * r])))
    # both boundaries belong to "settled": a move of exactly rel_tol, a count of exactly the cutoff
    before = TranscriptParams(np.array([99.0, 5 * r, 0.0]))
    assert model.params_converged(before, TranscriptParams(np.array([100.0, 0.01 * r, 0.0])))
    # SQUAREM's coordinates: log(counts + 1e-10 reads); unpack inverts pack, keeping the total
    params = TranscriptParams(np.array([5.0, 1e-3 * r, 0.0]))
    vector = model.pack(params)
    np.testing.assert_allclose(vector, np.log(params.counts + 1e-10 * r), rtol=1e-15)
    np.testing.assert_allclose(model.unpack(vector, params).counts, params.counts, rtol=1e-9,
                               atol=1e-12 * r)
    assert model.unpack(np.array([np.nan, 0.0, 0.0]), params) is params
    other = TranscriptParams(np.array([1.0, 2.0, 2.0]))  # unpack keeps other's total
    single = TranscriptParams(np.array([5.0, 0.0, 0.0]))
    np.testing.assert_allclose(model.unpack(model.pack(single), other).counts, [5.0, 0.0, 0.0],
                               rtol=1e-12)
    nothing = np.full(3, np.log(1e-10 * r))  # every coordinate at the floor: no counts left
    assert model.unpack(nothing, other) is other


def test_posteriors_of_a_row_of_transcripts_truncated_to_zero_are_zero_not_nan():
    X = sp.csr_matrix(np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]]))
    model = TranscriptQuantifier(lengths=np.full(3, 1000.0), random_state=0).fit(
        X, sample_weight=[5.0, 5.0, 2.0])
    assert model.est_counts_[2] == 0.0  # no read is compatible with it: truncated to 0
    proba = model.predict_proba(sp.csr_matrix(np.array([[0, 0, 1.0], [1.0, 0, 1.0]])))
    dense = proba.toarray()
    assert not np.isnan(dense).any()
    np.testing.assert_array_equal(dense, [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])

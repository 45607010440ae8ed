"""TranscriptQuantifier against independent references: a direct optimizer on
the MAP objective with ``scipy.stats.dirichlet.logpdf`` (normalizing constant
included), a VBEM loop written here, and the closed form of two transcripts.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import optimize, stats
from scipy.special import digamma, gammaln, logsumexp

from skem import TranscriptQuantifier

#: Read classes (rows) over four transcripts, with real-valued read counts.
CLASSES = np.array(
    [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
        [1, 0, 1, 1],
        [0, 0, 0, 1],
        [1, 1, 1, 0],
        [0, 0, 1, 0],
    ],
    dtype=float,
)
COUNTS = np.array([13.5, 4.25, 40.0, 22.75, 9.5, 6.0, 0.75, 31.0, 5.5])
LENGTHS = np.array([1200.0, 800.0, 2500.0, 400.0])
PRIOR = np.array([0.5, 2.0, 0.1, 1.5])


def _log_likelihood(nu, X=CLASSES, weights=COUNTS, lengths=LENGTHS):
    """``sum_n w_n log sum_k nu_k X_nk / l_k``."""
    return float(weights @ np.log((X / lengths) @ nu))


def _tight(**params):
    return TranscriptQuantifier(
        lengths=LENGTHS, tol=1e-14, rel_tol=0.0, max_iter=100000, **params
    )


def _softmax(z):
    z = np.concatenate([[0.0], z])
    return np.exp(z - logsumexp(z))


def _maximize(pseudo_counts):
    """argmax over the simplex of the log-likelihood plus ``dirichlet.logpdf(nu, a + 1)``
    (no prior term when ``pseudo_counts`` is None), by BFGS in softmax coordinates with the
    analytic gradient. Returns nu and the maximum per read."""
    A = CLASSES / LENGTHS

    def negative(z):
        nu = _softmax(z)
        value = _log_likelihood(nu)
        gradient = COUNTS @ (A / (A @ nu)[:, None])
        if pseudo_counts is not None:
            value += stats.dirichlet.logpdf(nu, pseudo_counts + 1.0)
            gradient = gradient + pseudo_counts / nu
        jacobian = np.diag(nu) - np.outer(nu, nu)  # d nu / d (0, z)
        return -value / COUNTS.sum(), -(jacobian @ gradient)[1:] / COUNTS.sum()

    best = optimize.minimize(negative, np.zeros(CLASSES.shape[1] - 1), jac=True, method="BFGS",
                             options={"gtol": 1e-13, "maxiter": 10000})
    return _softmax(best.x), -best.fun


def test_map_objective_includes_dirichlet_normalizing_constant():
    """lower_bound_ is the log posterior per read: log-likelihood plus
    ``scipy.stats.dirichlet.logpdf(nu, prior + 1)`` with its normalizing constant."""
    model = _tight(prior=PRIOR).fit(CLASSES, sample_weight=COUNTS)
    expected = (_log_likelihood(model.nu_) + stats.dirichlet.logpdf(model.nu_, PRIOR + 1.0)) / COUNTS.sum()
    assert model.lower_bound_ == pytest.approx(expected, abs=1e-10)


def test_map_matches_direct_optimizer():
    nu, maximum = _maximize(PRIOR)
    model = _tight(prior=PRIOR).fit(CLASSES, sample_weight=COUNTS)
    np.testing.assert_allclose(model.nu_, nu, rtol=1e-6)
    assert model.lower_bound_ == pytest.approx(maximum, abs=1e-10)
    # The MAP is not the maximum-likelihood answer: the prior is used.
    ml = _tight().fit(CLASSES, sample_weight=COUNTS)
    assert np.max(np.abs(ml.nu_ - model.nu_)) > 1e-3


def test_ml_matches_direct_optimizer_and_uses_real_weights():
    nu, maximum = _maximize(None)
    model = _tight().fit(CLASSES, sample_weight=COUNTS)
    np.testing.assert_allclose(model.nu_, nu, rtol=1e-6)
    assert model.lower_bound_ == pytest.approx(maximum, abs=1e-10)
    np.testing.assert_allclose(model.est_counts_, COUNTS.sum() * nu, rtol=1e-6)
    unweighted = _tight().fit(CLASSES)
    assert np.max(np.abs(unweighted.nu_ - model.nu_)) > 1e-2


def _vbem_reference(X, weights, lengths, prior, n_iter=100000, tol=1e-14):
    """Variational Bayes EM written from the model: q(nu) = Dirichlet(c + a),
    q(z_n = k) ∝ exp(E log nu_k) X_nk / l_k, c_k = sum_n w_n q(z_n = k)."""
    A = X / lengths
    counts = np.full(X.shape[1], weights.sum() / X.shape[1])
    for _ in range(n_iter):
        alpha = counts + prior
        theta = np.exp(digamma(alpha) - digamma(alpha.sum()))
        posterior = A * theta
        posterior /= posterior.sum(axis=1, keepdims=True)
        new = weights @ posterior
        if np.max(np.abs(new - counts)) < tol * new.sum():
            counts = new
            break
        counts = new
    return counts


def _elbo(counts, X, weights, lengths, prior):
    """Evidence lower bound at q(nu) = Dirichlet(counts + prior) and the optimal q(z), from
    scipy.stats.dirichlet: E_q log p(x | z, nu) + E_q log p(nu) + H(q(nu)) + H(q(z))."""
    gamma = counts + prior
    expected_log_nu = digamma(gamma) - digamma(gamma.sum())
    data_term = weights @ np.log((X / lengths) @ np.exp(expected_log_nu))
    log_prior_normalizer = gammaln(prior.sum()) - gammaln(prior).sum()
    expected_log_prior = log_prior_normalizer + (prior - 1.0) @ expected_log_nu
    return float(data_term + expected_log_prior + stats.dirichlet.entropy(gamma))


def test_vbem_matches_a_vbem_loop_written_here():
    model = _tight(prior=PRIOR, method="vbem").fit(CLASSES, sample_weight=COUNTS)
    reference = _vbem_reference(CLASSES, COUNTS, LENGTHS, PRIOR)
    np.testing.assert_allclose(model.est_counts_, reference, rtol=1e-6)
    np.testing.assert_allclose(model.nu_, (reference + PRIOR) / (reference + PRIOR).sum(), rtol=1e-6)
    expected = _elbo(reference, CLASSES, COUNTS, LENGTHS, PRIOR) / COUNTS.sum()
    assert model.lower_bound_ == pytest.approx(expected, abs=1e-9)
    # VBEM is not MAP here (a strong prior on few reads): the method is used.
    map_fit = _tight(prior=PRIOR).fit(CLASSES, sample_weight=COUNTS)
    assert np.max(np.abs(map_fit.est_counts_ - model.est_counts_)) > 1e-2


def _two_transcript_solution(n1, n2, n12, l1, l2):
    """The ML ``nu_1`` of two transcripts from reads unique to each (n1, n2) and shared (n12).

    Setting the derivative of ``n1 log p + n2 log(1 - p) + n12 log(p / l1 + (1 - p) / l2)``
    to zero gives ``n1 (1 - p) s - n2 p s + n12 (b - c) p (1 - p) = 0`` with
    ``b = 1/l1, c = 1/l2, s = c + (b - c) p``: a quadratic in ``p`` with one root in (0, 1).
    """
    b, c = 1.0 / l1, 1.0 / l2
    d = b - c
    # n1 (1 - p)(c + d p) - n2 p (c + d p) + n12 d (p - p^2)
    quadratic = [-n1 * d - n2 * d - n12 * d, n1 * d - n1 * c - n2 * c + n12 * d, n1 * c]
    roots = np.roots(quadratic)
    roots = roots[np.isreal(roots)].real
    return float(roots[(roots > 0) & (roots < 1)][0])


@pytest.mark.parametrize("lengths", [(1000.0, 2500.0), (3000.0, 700.0)])
def test_weighted_two_transcripts_closed_form(lengths):
    n1, n2, n12 = 12.5, 30.25, 57.3
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    weights = np.array([n1, n2, n12])
    p = _two_transcript_solution(n1, n2, n12, *lengths)
    model = TranscriptQuantifier(lengths=lengths, tol=1e-14, rel_tol=0.0, max_iter=100000).fit(
        X, sample_weight=weights
    )
    total = weights.sum()
    np.testing.assert_allclose(model.est_counts_, [total * p, total * (1 - p)], rtol=1e-7)
    tau = np.array([p / lengths[0], (1 - p) / lengths[1]])
    np.testing.assert_allclose(model.tpm_, 1e6 * tau / tau.sum(), rtol=1e-7)


def test_default_settings_reach_the_closed_form():
    """The defaults stop at the optimum, not early (to the precision a user reads)."""
    n1, n2, n12, lengths = 12.5, 30.25, 57.3, (1000.0, 2500.0)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = _two_transcript_solution(n1, n2, n12, *lengths)
    model = TranscriptQuantifier(lengths=lengths).fit(X, sample_weight=[n1, n2, n12])
    np.testing.assert_allclose(model.nu_, [p, 1 - p], rtol=1e-4)


def test_equal_lengths_closed_form():
    """Equal lengths: the shared reads split in proportion, ``nu_1 = n1 / (n1 + n2)``."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    model = TranscriptQuantifier(tol=1e-14, rel_tol=0.0, max_iter=100000).fit(
        X, sample_weight=[7.5, 2.5, 10.0]
    )
    np.testing.assert_allclose(model.nu_, [0.75, 0.25], rtol=1e-8)


def test_posteriors_scores_and_abundances_by_hand():
    """What a user reads: posteriors, per-read log-likelihoods, nu_, tau_ and TPM by definition."""
    model = _tight(prior=PRIOR).fit(CLASSES, sample_weight=COUNTS)
    nu = (model.est_counts_ + PRIOR) / (model.est_counts_ + PRIOR).sum()
    np.testing.assert_allclose(model.nu_, nu, rtol=1e-12)
    joint = CLASSES / LENGTHS * nu
    np.testing.assert_allclose(model.predict_proba(CLASSES), joint / joint.sum(axis=1, keepdims=True),
                               rtol=1e-10)
    np.testing.assert_allclose(model.score_samples(CLASSES), np.log(joint.sum(axis=1)), rtol=1e-10)
    tau = model.est_counts_ / LENGTHS / (model.est_counts_ / LENGTHS).sum()
    np.testing.assert_allclose(model.tau_, tau, rtol=1e-12)
    np.testing.assert_allclose(model.tpm_, 1e6 * tau, rtol=1e-12)
    np.testing.assert_allclose(model.est_counts_.sum(), COUNTS.sum(), rtol=1e-12)

"""NegBinMixture's default start (skem/_negbin_start.py) and restarts by short runs (skem/_restarts.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
from poisson_mixture import PoissonModel

from sklearn.metrics import adjusted_rand_score

from skem import NegBinMixture
from skem._em import EMControls, in_memory_rows, run_em
from skem._negbin_start import (
    LogCounts,
    StartProjection,
    fit_start_features,
    merge_clusters,
    projected_kmeans_labels,
    residual_parts,
)
from skem._restarts import best_start, restart_sample


def depth_varying_counts(seed, n=400, n_features=100, n_types=4, fold=2.0, proportions=None):
    """NB counts of ``n_types`` types (each changes 20 % of the features ``fold``-fold, up or
    down; uniform, or in ``proportions``) whose depth varies 25x independently of the type."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.0, n_features)
    means = np.tile(base, (n_types, 1))
    for k in range(n_types):
        changed = rng.choice(n_features, n_features // 5, replace=False)
        means[k, changed] *= rng.choice([1.0 / fold, fold], changed.size)
    y = rng.choice(n_types, n, p=proportions)
    depth = np.exp(rng.uniform(np.log(0.2), np.log(5.0), n))
    mu = depth[:, None] * means[y]
    return rng.negative_binomial(5.0, 5.0 / (5.0 + mu)).astype(float), y


def true_label_start(X, y, n_types):
    """means_init (sum of counts over sum of library size factors per type) and weights_init."""
    s = X.sum(axis=1) / X.sum(axis=1).mean()
    means = np.array([X[y == k].sum(axis=0) / s[y == k].sum() for k in range(n_types)])
    return means, np.bincount(y, minlength=n_types) / y.size


@pytest.mark.slow
def test_default_start_reaches_the_true_label_optimum_despite_depth():
    # Depth varies 25x, markers only 2x: k-means on log1p of the raw counts (the old default,
    # now "kmeans-raw") sorts rows by depth and EM ends 1.1 nats per cell below the optimum
    # that the true labels lead to; the default start finds that optimum.
    X, y = depth_varying_counts(0)
    means, weights = true_label_start(X, y, 4)
    truth = NegBinMixture(4, size_factors="library", means_init=means, weights_init=weights).fit(X)
    default = NegBinMixture(4, size_factors="library", random_state=0).fit(X)
    assert default.lower_bound_ >= truth.lower_bound_ - 1e-3
    raw = NegBinMixture(4, size_factors="library", init_params="kmeans-raw", random_state=0).fit(X)
    assert raw.lower_bound_ < truth.lower_bound_ - 0.5  # the case is one the old start fails


@pytest.mark.slow
def test_default_start_keeps_rare_types():
    # Types in proportions 1:20: k-means into K clusters splits the large types and merges
    # the rare ones (EM then ends 0.4 nats per cell below the true-label optimum here, with
    # OVERCLUSTER = 1); into 3K clusters merged back by likelihood, it keeps them.
    shares = 20.0 ** -np.linspace(0.0, 1.0, 6)
    X, y = depth_varying_counts(3, n=1500, n_features=200, n_types=6, proportions=shares / shares.sum())
    means, weights = true_label_start(X, y, 6)
    truth = NegBinMixture(6, size_factors="library", means_init=means, weights_init=weights).fit(X)
    default = NegBinMixture(6, size_factors="library", random_state=0).fit(X)
    assert default.lower_bound_ >= truth.lower_bound_ - 1e-3


def test_merging_joins_the_pair_that_loses_least_scaled_likelihood():
    # Against the definition, written out with scipy: each cluster's rows at their Poisson
    # means S_c / T_c, each feature's loss divided by 1 + phi_d mu_d at the union's mean
    # (phi_d by moments within the clusters), every pair's union tried, the cheapest merged.
    rng = np.random.default_rng(4)
    means = rng.uniform(0.5, 6.0, (5, 8))
    s = rng.uniform(0.5, 2.0, 150)
    X = rng.negative_binomial(2.0, 2.0 / (2.0 + s[:, None] * means[rng.integers(0, 5, 150)])).astype(float)
    w = rng.integers(1, 4, 150).astype(float)
    labels = rng.integers(0, 5, 150)

    def poisson_fit(rows):
        mu = (w[rows] @ X[rows]) / (w[rows] @ s[rows])
        return mu, w[rows] @ stats.poisson.logpmf(X[rows], s[rows, None] * mu)

    fits = [poisson_fit(labels == c) for c in range(5)]
    fitted = np.array([mu for mu, _ in fits])[labels] * s[:, None]
    phi = np.maximum(0.0, (w @ ((X - fitted) ** 2 - X)) / (w @ fitted**2))
    assert np.all(phi > 0.2)  # over-dispersed: the scaling matters

    def cost(a, b):
        mu, union = poisson_fit((labels == a) | (labels == b))
        return np.sum((fits[a][1] + fits[b][1] - union) / (1.0 + phi * mu))

    costs = {(a, b): cost(a, b) for a, b in itertools.combinations(range(5), 2)}
    a, b = min(costs, key=costs.get)
    mapping = merge_clusters(X, s, w, labels, 4)
    assert mapping[a] == mapping[b]
    assert len(set(mapping.tolist())) == 4
    # Merging all the way gives one cluster; sparse counts give the same map.
    assert set(merge_clusters(X, s, w, labels, 1).tolist()) == {0}
    np.testing.assert_array_equal(merge_clusters(sp.csr_matrix(X), s, w, labels, 2),
                                  merge_clusters(X, s, w, labels, 2))


def test_merging_keeps_a_noisy_feature_from_deciding():
    # One feature, means 2, 20, 120 and 600 at dispersion 0.2: Poisson costs would keep the
    # pieces of the noisy 600 component apart and merge 2 with 20; the scaled costs keep the
    # four components.
    means = np.array([2.0, 20.0, 120.0, 600.0])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 4000)
    X = rng.negative_binomial(5.0, 5.0 / (5.0 + means[y]))[:, None].astype(float)
    fine = y * 3 + (X[:, 0] > np.array([np.median(X[y == k, 0]) for k in range(4)])[y]) + (
        X[:, 0] > np.array([np.quantile(X[y == k, 0], 0.8) for k in range(4)])[y])
    mapping = merge_clusters(X, None, np.ones(4000), fine, 4)
    merged = mapping[fine]
    assert adjusted_rand_score(y, merged) > 0.99


def dense_residuals(X, s, w):
    """Clipped Poisson Pearson residuals of dense X, written out directly."""
    g = w @ X / (w @ s)
    mu = s[:, None] * g[None, :]
    r = np.divide(X - mu, np.sqrt(mu), out=np.zeros_like(X), where=mu > 0)
    return np.minimum(r, np.sqrt(w.sum()))


def test_residuals_and_axes_match_a_dense_weighted_pca():
    X, _ = depth_varying_counts(1, n=120, n_features=60)
    rng = np.random.default_rng(0)
    w = rng.integers(1, 4, X.shape[0]).astype(float)
    s = X.sum(axis=1) / X.sum(axis=1).mean()
    features = fit_start_features(sp.csr_matrix(X), s, w, 5, np.random.RandomState(0))
    assert isinstance(features, StartProjection)
    residuals = dense_residuals(X, s, w)
    sparse_part, root_s = residual_parts(X, s, features.root_means, features.clip)
    np.testing.assert_allclose(sparse_part.toarray() - np.outer(root_s, features.root_means), residuals,
                               atol=1e-12)
    centred = residuals - w @ residuals / w.sum()
    _, _, vt = np.linalg.svd(np.sqrt(w)[:, None] * centred, full_matrices=False)
    # The same subspace (the axes' signs and order are free).
    np.testing.assert_allclose(np.linalg.svd(vt[:5] @ features.axes)[1], 1.0, atol=1e-8)
    np.testing.assert_allclose(features.transform(X, s), centred @ features.axes, atol=1e-10)


def test_few_features_are_clustered_as_log_counts():
    X = np.array([[0.0, 5.0], [100.0, 2.0], [3.0, 3.0]])
    s = np.array([0.5, 2.0, 1.0])
    features = fit_start_features(X, s, np.ones(3), 30, np.random.RandomState(0))
    assert features == LogCounts(scale=s.mean())
    np.testing.assert_allclose(features.transform(X, s), np.log1p(X * s.mean() / s[:, None]))
    np.testing.assert_allclose(features.transform(X, None), np.log1p(X))
    # An all-zero row has library size factor 0: its features are 0, not 0/0.
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(features.transform(np.zeros((1, 2)), np.zeros(1)), 0.0)


def test_labels_respect_weights_chunks_and_sparsity():
    X, _ = depth_varying_counts(2, n=300, n_features=80)
    s = X.sum(axis=1) / X.sum(axis=1).mean()
    repeats = np.arange(300) % 3 + 1
    weighted = projected_kmeans_labels((X, s, repeats.astype(float)), [(X, s)], 4,
                                       np.random.RandomState(0))
    repeated = projected_kmeans_labels(
        (np.repeat(X, repeats, axis=0), np.repeat(s, repeats), np.ones(repeats.sum())),
        [(X, s)], 4, np.random.RandomState(0),
    )
    # Same partition (k-means' seeding draws differ between 300 weighted and 600 unit rows).
    assert np.all((weighted[:, None] == weighted) == (repeated[:, None] == repeated))
    chunked = projected_kmeans_labels(
        (sp.csr_matrix(X), s, repeats.astype(float)),
        [(sp.csr_matrix(X[i:i + 70]), s[i:i + 70]) for i in range(0, 300, 70)],
        4, np.random.RandomState(0),
    )
    np.testing.assert_array_equal(chunked, weighted)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_all_zero_rows_under_library_size_factors():
    X, _ = depth_varying_counts(3, n=100, n_features=40)
    X[:5] = 0.0
    model = NegBinMixture(3, size_factors="library", random_state=0, max_iter=5).fit(X)
    assert np.isfinite(model.lower_bound_)
    assert np.all(np.isfinite(model.means_))


def test_kmeans_raw_is_the_old_start():
    # The mixture's generic k-means on log1p(X): its labels, through the first M-step.
    X, _ = depth_varying_counts(4, n=200, n_features=50)
    raw = NegBinMixture(3, init_params="kmeans-raw", random_state=0, max_iter=0).fit(X)
    new = NegBinMixture(3, init_params="kmeans", random_state=0, max_iter=0).fit(X)
    assert not np.allclose(np.sort(raw.means_, axis=0), np.sort(new.means_, axis=0))


# ------------------------------------------------------------------ restarts


def poisson_rows(seed):
    rng = np.random.default_rng(seed)
    rates = np.array([[1.0, 8.0], [8.0, 1.0], [4.0, 4.0], [20.0, 20.0]])
    y = rng.integers(0, 4, 3000)
    X = rng.poisson(rates[y]).astype(float)
    model = PoissonModel(n_components=4, init_params="random")
    return model, in_memory_rows(model, X, np.ones(X.shape[0]))


def test_best_start_is_the_best_candidate_after_its_short_run():
    model, data = poisson_rows(0)
    controls = EMControls(max_iter=1000, tol=1e-10)
    seeds = [11, 12, 13, 14, 15]
    assert data.n_rows > 200
    chosen = best_start(model, data, seeds, controls, n_steps=3, sample_size=200)
    sample = restart_sample(model, data, np.random.RandomState(seeds[0]), 200)
    assert sample.n_rows == 200
    short = EMControls(max_iter=3, tol=1e-10)
    runs = [run_em(model, sample, model.initialize(sample, np.random.RandomState(seed), short), short)
            for seed in seeds]
    objectives = [run.lower_bound for run in runs]
    assert len(set(np.round(objectives, 6))) > 1  # the candidates differ: the choice matters
    best = runs[int(np.argmax(objectives))].params
    np.testing.assert_array_equal(chosen.rates, best.rates)
    np.testing.assert_array_equal(chosen.weights, best.weights)


def test_best_start_refined_on_all_rows_beats_a_single_random_start():
    model, data = poisson_rows(1)
    controls = EMControls(max_iter=1000, tol=1e-10)
    single = [run_em(model, data, model.initialize(data, np.random.RandomState(seed), controls),
                     controls).lower_bound for seed in range(8)]
    refined = run_em(model, data, best_start(model, data, list(range(8)), controls,
                                             sample_size=200), controls).lower_bound
    assert refined >= max(single) - 1e-9
    assert refined > min(single) + 1e-3  # some single random starts end lower

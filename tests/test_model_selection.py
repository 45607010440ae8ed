"""select_n_components: BIC/AIC over K with one scoring pass, CV on a subsample, in memory and on dask."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.model_selection import KFold

from skem import MotifMixture, NegBinMixture
from skem.datasets import make_motif_windows, make_negbin_mixture
from skem.model_selection import _total_log_likelihoods, select_n_components, subsample_rows

KS = [1, 2, 3]


def counts(n=900, seed=0):
    X, _ = make_negbin_mixture(n, weights=(0.5, 0.5), means=((2.0, 9.0, 1.0), (12.0, 1.0, 5.0)),
                               dispersion=0.2, random_state=seed)
    return X


def nb(**params):
    return NegBinMixture(**{"dispersion": "component", "tol": 1e-7, "max_iter": 500,
                            "random_state": 0, **params})


def test_bic_and_aic_equal_those_of_each_fit():
    X = counts()
    selection = select_n_components(nb(), X, KS, criterion=["bic", "aic"])
    for k in KS:
        model = nb(n_components=k).fit(X)
        row = selection.scores.loc[k]
        assert row["bic"] == pytest.approx(model.bic(X), rel=1e-10)
        assert row["aic"] == pytest.approx(model.aic(X), rel=1e-10)
        assert row["n_parameters"] == (k - 1) + k * 3 + k  # weights, means, dispersions
        assert row["log_likelihood"] == pytest.approx(model.score(X), rel=1e-10)
    assert selection.n_components == selection.scores["bic"].idxmin() == 2
    assert selection.criterion == "bic"
    assert selection.estimator.n_components == 2
    np.testing.assert_allclose(selection.estimator.means_, nb(n_components=2).fit(X).means_)
    assert "BIC/AIC of 3 fits on all 900 rows" in selection.description


def test_weights_count_as_repeated_rows():
    X = counts(300)
    weights = np.random.default_rng(0).integers(0, 4, X.shape[0])
    repeated = np.repeat(X, weights, axis=0)
    weighted = select_n_components(nb(), X, KS, sample_weight=weights.astype(float)).scores
    expected = select_n_components(nb(), repeated, KS).scores
    np.testing.assert_allclose(weighted["bic"], expected["bic"], rtol=1e-8)


def test_motif_mixture_bic_includes_no_prior():
    # MotifMixture's objective has a pseudocount prior: the BIC must come from the
    # likelihood (a scoring pass), not from the fit's objective.
    windows, _, _ = make_motif_windows(400, width=6, motif_fraction=0.3, random_state=1)
    estimator = MotifMixture(random_state=0, pseudocount=1.0)
    selection = select_n_components(estimator, windows, [1, 2])
    model = MotifMixture(n_components=2, random_state=0, pseudocount=1.0).fit(windows)
    assert selection.scores.loc[2, "bic"] == pytest.approx(model.bic(windows), rel=1e-10)


def test_cross_validation_on_a_subsample_is_kfold_by_hand():
    X = counts()
    selection = select_n_components(nb(), X, KS, criterion="cv", cv=3, subsample=600,
                                    random_state=7, refit=False)
    assert list(selection.scores.columns) == ["cv_log_likelihood", "cv_log_likelihood_sd"]
    assert selection.estimator is None
    rng = np.random.RandomState(7)
    rows = np.sort(rng.choice(X.shape[0], 600, replace=False))
    folds = KFold(3, shuffle=True, random_state=rng.randint(np.iinfo(np.int32).max))
    for k in KS:
        held_out = [nb(n_components=k).fit(X[rows][train]).score(X[rows][test])
                    for train, test in folds.split(rows)]
        assert selection.scores.loc[k, "cv_log_likelihood"] == pytest.approx(np.mean(held_out), rel=1e-10)
        assert selection.scores.loc[k, "cv_log_likelihood_sd"] == pytest.approx(np.std(held_out), rel=1e-8)
    assert selection.n_components == selection.scores["cv_log_likelihood"].idxmax() == 2
    assert "3 folds on a uniform subsample of 600 of 900 rows" in selection.description
    refitted = select_n_components(nb(), X, [2], criterion="cv", cv=3, random_state=7)
    np.testing.assert_allclose(refitted.estimator.means_, nb(n_components=2).fit(X).means_)
    assert "all 900 rows" in refitted.description


def test_explicit_size_factors_travel_with_the_rows():
    rng = np.random.default_rng(3)
    factors = np.exp(rng.normal(0, 0.5, 600))
    X, _ = make_negbin_mixture(600, weights=(0.5, 0.5), means=((2.0, 9.0), (12.0, 1.0)),
                               dispersion=0.2, size_factors=factors, random_state=3)
    selection = select_n_components(nb(), X, [1, 2], criterion=["bic", "cv"], cv=2,
                                    subsample=400, fit_params={"size_factors": factors},
                                    random_state=0)
    model = nb(n_components=2).fit(X, size_factors=factors)
    assert selection.scores.loc[2, "bic"] == pytest.approx(model.bic(X, size_factors=factors), rel=1e-10)
    assert selection.n_components == 2


def test_subsample_rows_keeps_weights_and_order():
    X = sp.csr_matrix(counts(50))
    weights, factors = np.arange(50.0), np.linspace(1, 2, 50)
    X_sub, w_sub, params = subsample_rows(X, 10, random_state=0, sample_weight=weights,
                                          fit_params={"size_factors": factors})
    rows = np.sort(np.random.RandomState(0).choice(50, 10, replace=False))
    assert (X_sub != X[rows]).nnz == 0
    np.testing.assert_array_equal(w_sub, weights[rows])
    np.testing.assert_array_equal(params["size_factors"], factors[rows])
    frame = pd.DataFrame(X.toarray())
    assert subsample_rows(frame, None)[0].equals(frame)


def test_errors():
    X = counts(60)
    with pytest.raises(ValueError, match="criterion"):
        select_n_components(nb(), X, KS, criterion="loglik")
    with pytest.raises(ValueError, match="criterion"):
        select_n_components(nb(), X, KS, criterion=[])
    with pytest.raises(ValueError, match="n_components"):
        select_n_components(nb(), X, [0, 1])
    with pytest.raises(ValueError, match="n_components"):
        select_n_components(nb(), X, [])
    with pytest.raises(ValueError, match="cv"):
        select_n_components(nb(), X, KS, criterion="cv", cv=1)


# ------------------------------------------------------------------ dask

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """An in-process cluster of two single-threaded workers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cluster start-up chatter (ports, resources)
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                           dashboard_address=None)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def sparse_blocks(X, rows=250):
    return da.from_array(X, chunks=(rows, -1)).map_blocks(sp.csr_matrix, meta=sp.csr_matrix((0, 0)))


def test_dask_input_gives_the_in_memory_scores(client):
    X = counts(600)
    # (dispersion="feature": a component's dispersion can reach 0 on these folds, which the
    # offset M-step does not handle yet.)
    params = dict(size_factors="library", dispersion="feature")
    options = dict(criterion=["bic", "cv"], cv=2, subsample=400, random_state=0)
    memory = select_n_components(nb(**params), sp.csr_matrix(X), [1, 2], **options)
    for persist in [False, True]:
        blocks = select_n_components(nb(**params), sparse_blocks(X), [1, 2], persist=persist,
                                     **options)
        pd.testing.assert_frame_equal(blocks.scores, memory.scores, rtol=1e-10)
        assert blocks.n_components == memory.n_components
        assert ("persisted" in blocks.description) == persist


def test_subsample_of_dask_rows_equals_the_in_memory_rows(client):
    X = counts(1000)
    weights = np.arange(1000.0)
    got, w_got, _ = subsample_rows(sparse_blocks(X, 300), 77, random_state=4,
                                   sample_weight=da.from_array(weights, chunks=200))
    expected, w_expected, _ = subsample_rows(X, 77, random_state=4, sample_weight=weights)
    np.testing.assert_array_equal(got.toarray(), expected)
    np.testing.assert_array_equal(w_got, w_expected)


def test_all_candidates_are_scored_in_one_read_of_each_block():
    X = counts(1000)
    reads, lock = [], threading.Lock()

    def read(start):
        with lock:
            reads.append(start)
        return X[start : start + 200]

    import dask

    dX = da.concatenate([da.from_delayed(dask.delayed(read)(start), shape=(200, 3), dtype=float)
                         for start in range(0, 1000, 200)])
    models = [nb(n_components=k).fit(X) for k in KS]
    weights = np.linspace(0.5, 1.5, 1000)
    with dask.config.set(scheduler="threads"):
        totals, n = _total_log_likelihoods(models, dX, da.from_array(weights, chunks=300), {})
    assert sorted(reads) == list(range(0, 1000, 200))  # each block once, for three models
    np.testing.assert_allclose(totals, [weights @ m.score_samples(X) for m in models], rtol=1e-12)
    assert n == pytest.approx(weights.sum())

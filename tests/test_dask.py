"""Dask input: fits on a local process cluster equal the in-memory fits; lazy predictions;
GridSearchCV through joblib's dask backend. (Many transcript samples at once: test_samples.py.)"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from joblib import parallel_config  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

import skem._dask  # noqa: E402
from skem import MotifMixture, NegBinMixture, TranscriptQuantifier  # noqa: E402
from skem._dask import DaskRows, import_dask  # noqa: E402
from skem.datasets import (  # noqa: E402
    make_motif_windows,
    make_negbin_mixture,
    make_transcript_reads,
)
from skem.motifs import encode_sequences  # noqa: E402

#: Parameters of the same data fitted in memory and as dask blocks agree to this (relative).
RTOL = 1e-8


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, reachable on the loopback interface only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cluster start-up chatter (ports, resources)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None,
        )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def counts(n=3000, seed=0):
    X, y = make_negbin_mixture(
        n, weights=(0.6, 0.4), means=((2.0, 8.0, 1.0, 20.0), (15.0, 1.0, 6.0, 3.0)),
        dispersion=0.3, random_state=seed,
    )
    return X, y


def windows(n=3000, seed=0):
    X, y, _ = make_motif_windows(n, width=8, motif_fraction=0.1, random_state=seed)
    return encode_sequences(X)


def assert_same_fit(memory, blocks, fields):
    assert blocks.n_iter_ == memory.n_iter_
    assert blocks.converged_ == memory.converged_
    for name in fields:
        np.testing.assert_allclose(getattr(blocks, name), getattr(memory, name), rtol=RTOL)
    np.testing.assert_allclose(blocks.lower_bounds_, memory.lower_bounds_, rtol=1e-12)


def fail_if_computed(block):
    raise AssertionError("a block was computed")


# ------------------------------------------------------------------- fits


@pytest.mark.parametrize("layout", ["dense", "sparse", "weighted"])
def test_negbin_fit_on_the_cluster_equals_the_in_memory_fit(client, layout):
    X, _ = counts()
    weights = np.random.default_rng(1).integers(0, 4, size=X.shape[0]).astype(float)
    sample_weight = weights if layout == "weighted" else None
    dX = da.from_array(X, chunks=(700, -1))
    if layout == "sparse":
        dX = dX.map_blocks(sp.csr_matrix, meta=sp.csr_matrix((0, 0)))
    dweights = None if sample_weight is None else da.from_array(weights, chunks=500)  # rechunked
    params = dict(n_components=2, dispersion="full", tol=1e-10, max_iter=500, random_state=0)
    # Sparse in both for sparse blocks: the start's k-means may part dense and sparse rows
    # differently at rounding level (and EM then ends within its tolerance, not to 1e-8).
    memory = NegBinMixture(**params).fit(sp.csr_matrix(X) if layout == "sparse" else X,
                                         sample_weight=sample_weight)
    blocks = NegBinMixture(**params).fit(dX, sample_weight=dweights)
    assert_same_fit(memory, blocks, ["weights_", "means_", "dispersion_"])
    assert blocks.n_features_in_ == X.shape[1]


def test_negbin_general_pair_table_on_blocks(client):
    # Non-integer values need the sorted pair table, built from the distinct pairs of all blocks.
    X, _ = counts(1500)
    X = X * 0.5
    params = dict(n_components=2, dispersion="component", tol=1e-10, max_iter=500, random_state=0)
    memory = NegBinMixture(**params).fit(X)
    blocks = NegBinMixture(**params).fit(da.from_array(X, chunks=(400, -1)))
    assert_same_fit(memory, blocks, ["weights_", "means_", "dispersion_"])


@pytest.mark.parametrize("n_features", [2, 12, 40])
def test_negbin_library_size_factors_on_blocks(client, n_features):
    # Few distinct row totals (2 features): the size nodes are those values, exactly; many
    # (12, 40): Chebyshev nodes over their range. Either way the blocks share the nodes that the
    # in-memory fit of all rows uses, and the reference row total of all rows. With 40 features
    # the start clusters principal components of residuals (skem._negbin_start), on the blocks
    # from the init sample as in memory.
    rng = np.random.default_rng(5)
    depth = np.exp(rng.normal(0.0, 0.7, 2000))
    means = rng.uniform(1.0, 10.0, (2, n_features))
    X, _ = make_negbin_mixture(2000, weights=(0.5, 0.5), means=means, dispersion=0.3,
                               size_factors=depth, random_state=5)
    params = dict(n_components=2, dispersion="feature", size_factors="library", tol=1e-10,
                  max_iter=500, random_state=0)
    # Sparse in both (k-means, which starts EM, may part dense and sparse rows differently).
    memory = NegBinMixture(**params).fit(sp.csr_matrix(X))
    dX = da.from_array(X, chunks=(600, -1)).map_blocks(sp.csr_matrix, meta=sp.csr_matrix((0, 0)))
    blocks = NegBinMixture(**params).fit(dX)
    assert_same_fit(memory, blocks, ["weights_", "means_", "dispersion_"])
    np.testing.assert_allclose(blocks.predict_proba(dX).compute(), memory.predict_proba(X),
                               rtol=1e-7, atol=1e-12)


def test_negbin_library_size_factors_on_all_zero_blocks_are_refused():
    X = np.zeros((40, 3))
    with pytest.raises(ValueError, match="library.*all rows are 0"):
        NegBinMixture(2, size_factors="library").fit(da.from_array(X, chunks=(20, -1)))


def test_motif_fit_on_the_cluster_equals_the_in_memory_fit(client):
    codes = windows()
    weights = np.random.default_rng(2).uniform(0.5, 2.0, size=codes.shape[0])
    params = dict(random_state=0, tol=1e-10, accelerate="squarem")
    memory = MotifMixture(**params).fit(codes, sample_weight=weights)
    blocks = MotifMixture(**params).fit(
        da.from_array(codes, chunks=(600, -1)), sample_weight=da.from_array(weights, chunks=600)
    )
    assert_same_fit(memory, blocks, ["weights_", "pwms_"])
    assert blocks.consensus_.tolist() == memory.consensus_.tolist()


def test_fit_does_not_depend_on_the_blocks():
    X, _ = counts(2000)
    fits = [
        NegBinMixture(2, tol=1e-10, random_state=0, chunk_size=chunk_size).fit(
            da.from_array(X, chunks=(rows, -1))
        )
        for rows, chunk_size in [(2000, None), (300, None), (1024, 100)]
    ]
    for other in fits[1:]:
        assert_same_fit(fits[0], other, ["weights_", "means_", "dispersion_"])


def test_warm_start_and_restarts_on_blocks():
    X, _ = counts(2000)
    dX = da.from_array(X, chunks=(500, -1))
    params = dict(n_components=2, tol=1e-10, random_state=0, n_init=2)
    memory = NegBinMixture(**params).fit(X)
    blocks = NegBinMixture(**params).fit(dX)
    assert_same_fit(memory, blocks, ["weights_", "means_", "dispersion_"])
    # A warm start continues from the fitted parameters: one pass, no change.
    for model, data in ((memory, X), (blocks, dX)):
        model.set_params(warm_start=True).fit(data)
    assert_same_fit(memory, blocks, ["weights_", "means_", "dispersion_"])


def test_initialization_uses_a_sample_of_blocks(monkeypatch):
    X, y = counts(6000, seed=3)
    dX = da.from_array(X, chunks=(250, -1))  # 24 blocks
    monkeypatch.setattr(skem._dask, "INIT_ROWS", 600)
    monkeypatch.setattr(skem._dask, "INIT_BLOCKS", 4)
    model = NegBinMixture(2, tol=1e-8, random_state=0)
    engine_model = model._build_model(dX, None)
    rows = DaskRows(engine_model, dX).init_rows(engine_model, np.random.RandomState(0))
    assert rows.weights.sum() == 600  # 4 blocks x 150 rows, identical rows merged
    fitted = model.fit(dX)
    memory = NegBinMixture(2, tol=1e-8, random_state=0).fit(X)
    np.testing.assert_allclose(
        np.sort(fitted.means_, axis=0), np.sort(memory.means_, axis=0), rtol=1e-4
    )
    np.testing.assert_allclose(fitted.lower_bound_, memory.lower_bound_, rtol=1e-6)


# ------------------------------------------------------------ predictions


def test_predictions_on_dask_arrays_are_lazy_and_equal(client):
    X, _ = counts(2000)
    model = NegBinMixture(2, random_state=0).fit(X)
    dX = da.from_array(X, chunks=(300, -1))
    never = dX.map_blocks(fail_if_computed, dtype=float, meta=np.empty((0, 0)))
    for method, n_columns in (("predict", None), ("predict_proba", 2), ("score_samples", None)):
        getattr(model, method)(never)  # builds the graph only
        lazy = getattr(model, method)(dX)
        assert isinstance(lazy, da.Array)
        assert lazy.shape == ((X.shape[0],) if n_columns is None else (X.shape[0], n_columns))
        expected = getattr(model, method)(X)
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12)
        assert lazy.dtype == expected.dtype
    assert model.score(dX) == pytest.approx(model.score(X), rel=1e-12)
    codes = windows(1000)
    motifs = MotifMixture(random_state=0).fit(codes)
    np.testing.assert_array_equal(
        motifs.predict(da.from_array(codes, chunks=(300, -1))).compute(), motifs.predict(codes)
    )


def test_transcript_predictions_on_dask_arrays():
    X, counts_, truth = make_transcript_reads(2000, n_genes=4, collapse=False, random_state=0)
    model = TranscriptQuantifier(lengths=truth.lengths).fit(X)
    dX = da.from_array(X.toarray(), chunks=(500, -1))
    np.testing.assert_array_equal(model.predict(dX).compute(), model.predict(X))
    np.testing.assert_allclose(model.predict_proba(dX).compute(), model.predict_proba(X).toarray())
    np.testing.assert_allclose(model.score_samples(dX).compute(), model.score_samples(X))


def test_errors_on_dask_input():
    X, _ = counts(500)
    dX = da.from_array(X, chunks=(100, -1))
    with pytest.raises(NotFittedError):
        NegBinMixture(2).predict(dX)
    with pytest.raises(TypeError, match="dask"):
        TranscriptQuantifier().fit(dX)
    with pytest.raises(ValueError, match="sample_weight"):
        NegBinMixture(2).fit(dX, sample_weight=np.ones(10))
    with pytest.raises(ValueError, match="sample_weight"):
        NegBinMixture(2).fit(dX, sample_weight=-np.ones(500))
    with pytest.raises(ValueError, match="counts must be >= 0"):
        NegBinMixture(2).fit(da.from_array(-X, chunks=(100, -1)))
    with pytest.raises(ValueError, match="2-D"):
        NegBinMixture(2).fit(dX[:, 0])
    model = NegBinMixture(2, random_state=0).fit(dX)
    with pytest.raises(ValueError, match="features"):
        model.predict(dX[:, :2])


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)  # import dask now raises ImportError
    with pytest.raises(ImportError, match=r"skem\[dask\]"):
        import_dask()


# ---------------------------------------------------------- model selection


def test_grid_search_over_n_components_with_joblib_dask_backend(client):
    X, _ = counts(1500)
    grid = dict(param_grid={"n_components": [1, 2, 3]}, cv=KFold(3, shuffle=True, random_state=0))
    estimator = NegBinMixture(random_state=0, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = GridSearchCV(estimator, **grid).fit(X)
        with parallel_config(backend="dask"):
            on_cluster = GridSearchCV(estimator, n_jobs=-1, **grid).fit(X)
    assert on_cluster.best_params_ == {"n_components": 2} == serial.best_params_
    np.testing.assert_allclose(
        on_cluster.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-12
    )


def test_compute_uses_threads_without_a_client():
    # Without a Client the passes run on dask's default scheduler in this process.
    X, _ = counts(1000)
    with dask.config.set(scheduler="threads"):
        model = NegBinMixture(2, random_state=0).fit(da.from_array(X, chunks=(250, -1)))
    assert model.converged_

"""Row blocks of .h5ad files and zarr stores read lazily into dask arrays (AnnData's layout)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
anndata = pytest.importorskip("anndata")
h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

import dask  # noqa: E402

from skem import NegBinMixture  # noqa: E402
from skem.io import read_h5ad_rows, read_zarr_rows, write_zarr_rows  # noqa: E402


def counts(n=230, d=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.negative_binomial(2, 0.6, size=(n, d)) * (rng.random((n, d)) < 0.4)
    X[5] = 0  # an empty row
    return sp.csr_matrix(X.astype(np.float32))


def write_h5ad(X, path, dense=False):
    anndata.settings.allow_write_nullable_strings = True  # pandas 3 string indexes
    adata = anndata.AnnData(X.toarray() if dense else X)
    adata.layers["counts"] = X.copy()
    adata.write_h5ad(path)
    return path


def same(dX, X):
    blocks = dX.compute()
    assert (sp.csr_matrix(blocks) != X).nnz == 0
    return blocks


@pytest.mark.parametrize("key", ["X", "layers/counts"])
def test_h5ad_rows_are_read_block_by_block(tmp_path, key):
    X = counts()
    dX = read_h5ad_rows(write_h5ad(X, tmp_path / "a.h5ad"), key, chunk_rows=60)
    assert dX.chunks == ((60, 60, 60, 50), (7,)) and dX.dtype == np.float32
    block = dX.blocks[2].compute()
    assert sp.isspmatrix_csr(block) and (block != X[120:180]).nnz == 0
    same(dX, X)


def test_dense_h5ad_and_anndata_zarr(tmp_path):
    X = counts()
    dense = read_h5ad_rows(write_h5ad(X, tmp_path / "d.h5ad", dense=True), chunk_rows=100)
    assert isinstance(dense.blocks[0].compute(), np.ndarray)
    same(dense, X)
    anndata.settings.allow_write_nullable_strings = True
    anndata.AnnData(X).write_zarr(tmp_path / "a.zarr")
    same(read_zarr_rows(tmp_path / "a.zarr", chunk_rows=100), X)


def test_zarr_written_block_by_block_from_a_lazy_source(tmp_path):
    X = counts(500)
    source = da.from_array(X.toarray(), chunks=(120, -1)).map_blocks(
        sp.csr_matrix, meta=sp.csr_matrix((0, 0), dtype=np.float32))
    path = write_zarr_rows(source, tmp_path / "c.zarr")
    same(read_zarr_rows(path, chunk_rows=77), X)
    back = anndata.io.read_elem(zarr.open_group(str(path), mode="r")["X"])  # AnnData's layout
    assert (sp.csr_matrix(back) != X).nnz == 0
    write_zarr_rows(X, tmp_path / "m.zarr", chunk_rows=64)
    same(read_zarr_rows(tmp_path / "m.zarr", chunk_rows=1000), X)


def test_a_block_reads_only_its_own_entries(tmp_path, monkeypatch):
    # The lazy array is built from the shape alone; each block reads its slice of the pointers
    # and of the entries, never the whole arrays.
    X = counts(400)
    path = write_h5ad(X, tmp_path / "a.h5ad")
    dX = read_h5ad_rows(path, chunk_rows=100)
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, item):
        reads.append((self.name, item))
        return original(self, item)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    dX.blocks[1].compute()
    assert {name for name, _ in reads} == {"/X/indptr", "/X/data", "/X/indices"}
    assert (("/X/indptr", slice(100, 201)) in reads)
    first, last = X.indptr[100], X.indptr[200]
    assert ("/X/data", slice(first, last)) in reads


def test_fit_on_lazy_h5ad_rows_equals_the_in_memory_fit(tmp_path):
    X = counts(600, seed=3)
    dX = read_h5ad_rows(write_h5ad(X, tmp_path / "a.h5ad"), chunk_rows=150)
    params = dict(n_components=2, dispersion="shared", size_factors="library", tol=1e-10,
                  max_iter=300, random_state=0)
    with dask.config.set(scheduler="threads"):
        blocks = NegBinMixture(**params).fit(dX)
    memory = NegBinMixture(**params).fit(X)
    np.testing.assert_allclose(blocks.means_, memory.means_, rtol=1e-10)
    np.testing.assert_allclose(blocks.lower_bounds_, memory.lower_bounds_, rtol=1e-12)


def test_bad_files_are_named(tmp_path):
    X = counts()
    with pytest.raises(FileNotFoundError, match="nowhere.h5ad"):
        read_h5ad_rows(tmp_path / "nowhere.h5ad")
    (tmp_path / "text.h5ad").write_text("not hdf5\n")
    with pytest.raises(ValueError, match=r"text\.h5ad: not an HDF5"):
        read_h5ad_rows(tmp_path / "text.h5ad")
    path = write_h5ad(X, tmp_path / "a.h5ad")
    with pytest.raises(ValueError, match=r"a\.h5ad: no 'layers/raw' in the file"):
        read_h5ad_rows(path, "layers/raw")
    with pytest.raises(ValueError, match="not a matrix"):
        read_h5ad_rows(path, "obs")
    with pytest.raises(ValueError, match="chunk_rows"):
        read_h5ad_rows(path, chunk_rows=0)
    anndata.settings.allow_write_nullable_strings = True
    anndata.AnnData(X.tocsc()).write_h5ad(tmp_path / "csc.h5ad")
    with pytest.raises(ValueError, match=r"csc\.h5ad: 'X' is stored by columns \(CSC\)"):
        read_h5ad_rows(tmp_path / "csc.h5ad")
    with h5py.File(path, "r+") as handle:
        del handle["X/indices"]
    with pytest.raises(ValueError, match="CSR matrix without indices"):
        read_h5ad_rows(path)
    with pytest.raises(FileNotFoundError, match="no such zarr store"):
        read_zarr_rows(tmp_path / "none.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ValueError, match=r"empty\.zarr: not a zarr store"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_zarr_rows(tmp_path / "empty.zarr")

"""Count matrices on disk as dask arrays of row blocks, read lazily: AnnData's ``.h5ad`` and zarr layout.

A single-cell count matrix is stored by AnnData (``.h5ad``, HDF5; or a
``.zarr`` store) as a compressed sparse row (CSR) group -- ``data``,
``indices`` and ``indptr`` arrays and a ``shape`` attribute -- or as a dense
2-D array. :func:`read_h5ad_rows` and :func:`read_zarr_rows` turn one such
matrix into a dask array of row blocks without reading it: each block is a
task that opens the file by its path (where the task runs: on a cluster's
worker, which must see the file), reads the block's slice of ``indptr`` and
then only its own entries, and returns a ``scipy.sparse.csr_matrix`` (a
NumPy array for a dense matrix). Memory per task is one block.
:func:`write_zarr_rows` writes a matrix in the same layout, block by block.

h5py and zarr are imported only by these functions (h5py comes with
anndata; both with skem's ``anndata`` extra).
"""

from __future__ import annotations

import importlib
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._dask import block_allocator, dask_row_blocks, import_dask, is_dask_array

__all__ = ["read_h5ad_rows", "read_zarr_rows", "write_zarr_rows"]

#: Rows per block unless told otherwise: 10^5 cells x 2 000 genes at 5 % is about
#: 10^7 entries, 80 MB of float32 values and int32 indices.
CHUNK_ROWS = 100_000


def _import(module, what):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{what} needs {module}: install skem's 'h5ad' extra (pip install 'skem[h5ad]')."
        ) from error


def _open_h5ad(path):
    h5py = _import("h5py", "Reading an .h5ad file")
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise
    except OSError as error:  # h5py's "file signature not found" does not name the file
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file") from error
        raise ValueError(f"{path}: not an HDF5 (.h5ad) file ({error})") from error


def _open_zarr(path):
    zarr = _import("zarr", "Reading a zarr store")
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such zarr store")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as error:  # zarr raises several types for a folder that is not a store
        raise ValueError(f"{path}: not a zarr store ({error})") from error


class _Layout:
    """Where a matrix is in its file: its kind ("csr" or "dense"), shape and dtype."""

    def __init__(self, path, key, node):
        attrs = dict(node.attrs)
        encoding = attrs.get("encoding-type", attrs.get("h5sparse_format"))
        if hasattr(node, "shape") and len(node.shape) == 2 and encoding in (None, "array"):
            self.kind, self.shape, self.dtype = "dense", tuple(node.shape), np.dtype(node.dtype)
            return
        if encoding in ("csr_matrix", "csr"):
            shape = attrs.get("shape", attrs.get("h5sparse_shape"))
            missing = [name for name in ("data", "indices", "indptr") if name not in node]
            if shape is None or missing:
                raise ValueError(f"{path}: {key!r} is a CSR matrix without "
                                 f"{', '.join(missing) or 'a shape attribute'}")
            self.kind, self.shape = "csr", tuple(int(n) for n in shape)
            self.dtype = np.dtype(node["data"].dtype)
            if node["indptr"].shape != (self.shape[0] + 1,):
                raise ValueError(f"{path}: {key!r} has {node['indptr'].shape[0]} row pointers "
                                 f"for {self.shape[0]} rows")
            return
        if encoding in ("csc_matrix", "csc"):
            raise ValueError(
                f"{path}: {key!r} is stored by columns (CSC), so its rows cannot be read block "
                "by block; rewrite it by rows (e.g. adata.X = adata.X.tocsr(); adata.write_h5ad(...))"
            )
        raise ValueError(f"{path}: {key!r} is not a matrix (encoding {encoding!r})")


def _node(path, group, key):
    if key not in group:
        raise ValueError(f"{path}: no {key!r} in the file (it holds {sorted(group.keys())})")
    return group[key]


def _rows_of(node, kind, n_columns, start, stop):
    """Rows ``start:stop`` of an opened matrix: a CSR matrix, or an array for a dense one."""
    if kind == "dense":
        return np.asarray(node[start:stop])
    indptr = np.asarray(node["indptr"][start : stop + 1], dtype=np.int64)
    first, last = int(indptr[0]), int(indptr[-1])
    data = np.asarray(node["data"][first:last])
    indices = np.asarray(node["indices"][first:last])
    return sp.csr_matrix((data, indices, indptr - first), shape=(stop - start, n_columns))


def _read_block(opener, path, key, kind, n_columns, start, stop):
    """One row block, read where this task runs: the file is opened here, by its path (with the
    heap reuse that a dask worker's environment turns off: see :func:`skem._dask.block_allocator`)."""
    with block_allocator():
        handle = opener(path)
        try:
            return _rows_of(handle[key], kind, n_columns, start, stop)
        finally:
            close = getattr(handle, "close", None)
            if close is not None:
                close()


def _lazy_rows(opener, path, key, chunk_rows):
    dask = import_dask("Reading row blocks lazily")
    import dask.array as da

    if not (isinstance(chunk_rows, (int, np.integer)) and chunk_rows >= 1):
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}.")
    path = str(path)
    handle = opener(path)
    try:
        layout = _Layout(path, key, _node(path, handle, key))
    finally:
        close = getattr(handle, "close", None)
        if close is not None:
            close()
    n_rows, n_columns = layout.shape
    read = partial(_read_block, opener, path, key, layout.kind, n_columns)
    meta = (sp.csr_matrix((0, 0), dtype=layout.dtype) if layout.kind == "csr"
            else np.empty((0, 0), dtype=layout.dtype))
    starts = range(0, n_rows, chunk_rows)
    blocks = [
        da.from_delayed(dask.delayed(read, pure=True)(start, min(start + chunk_rows, n_rows)),
                        shape=(min(start + chunk_rows, n_rows) - start, n_columns),
                        dtype=layout.dtype, meta=meta)
        for start in starts
    ]
    if not blocks:
        return da.from_array(np.empty((0, n_columns), dtype=layout.dtype))
    return da.concatenate(blocks, axis=0)


def read_h5ad_rows(path, key="X", *, chunk_rows=CHUNK_ROWS):
    """A matrix of an ``.h5ad`` file as a dask array of row blocks, read lazily.

    Parameters
    ----------
    path : str or path-like
        The ``.h5ad`` file (HDF5, as AnnData writes it). On a cluster, every
        worker must be able to open it by this path.
    key : str, default="X"
        The matrix in the file: ``"X"``, or a layer such as ``"layers/counts"``.
    chunk_rows : int, default=100000
        Rows per block: the memory of one task is one block.

    Returns
    -------
    dask.array.Array of shape (n_rows, n_columns)
        Blocks of ``chunk_rows`` rows (one chunk across columns), each a
        ``scipy.sparse.csr_matrix`` of the stored dtype (an ndarray for a
        dense matrix). Nothing is read until it is computed; every
        computation reads its blocks again (``persist()`` keeps them).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Naming the file: not an HDF5 file, no such ``key``, a matrix stored
        by columns (CSC), or a malformed CSR group.
    ImportError
        Without h5py or dask (naming the extra).

    Examples
    --------
    >>> from skem import NegBinMixture
    >>> from skem.io import read_h5ad_rows
    >>> counts = read_h5ad_rows("pbmc.h5ad", "layers/counts")  # doctest: +SKIP
    >>> model = NegBinMixture(8, size_factors="library").fit(counts)  # doctest: +SKIP
    """
    return _lazy_rows(_open_h5ad, path, key, chunk_rows)


def read_zarr_rows(path, key="X", *, chunk_rows=CHUNK_ROWS):
    """A matrix of a zarr store (AnnData's layout) as a dask array of row blocks, read lazily.

    Parameters
    ----------
    path : str or path-like
        The zarr store: an AnnData ``.zarr`` folder (``key="X"``, or a
        layer), or one written by :func:`write_zarr_rows` (``key="X"``).
    key : str, default="X"
        The matrix in the store.
    chunk_rows : int, default=100000
        Rows per block.

    Returns
    -------
    dask.array.Array of shape (n_rows, n_columns)
        As :func:`read_h5ad_rows`.

    Raises
    ------
    FileNotFoundError
        If the store does not exist.
    ValueError
        Naming the store: not a zarr store, no such ``key``, a matrix stored
        by columns, or a malformed CSR group.
    ImportError
        Without zarr or dask (naming the extra).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from skem.io import read_zarr_rows, write_zarr_rows
    >>> X = sp.random(1000, 50, density=0.05, format="csr", random_state=0)
    >>> write_zarr_rows(X, "counts.zarr")  # doctest: +SKIP
    >>> read_zarr_rows("counts.zarr", chunk_rows=300).chunks[0]  # doctest: +SKIP
    (300, 300, 300, 100)
    """
    return _lazy_rows(_open_zarr, path, key, chunk_rows)


def write_zarr_rows(X, path, key="X", *, chunk_rows=CHUNK_ROWS):
    """Write a count matrix to a zarr store in AnnData's CSR layout, block by block.

    Parameters
    ----------
    X : scipy.sparse matrix, ndarray or dask array of shape (n_rows, n_columns)
        The rows. A dask array is computed one block at a time, so a matrix
        larger than memory can be written from a lazy source.
    path : str or path-like
        The store to create (replaced if it exists).
    key : str, default="X"
        The group to write the matrix to.
    chunk_rows : int, default=100000
        Rows per block written (for in-memory ``X``); the ``data`` and
        ``indices`` arrays are chunked by about one block's entries, so that
        reading a block touches few chunks.

    Returns
    -------
    path : pathlib.Path
        The store, readable with :func:`read_zarr_rows` (and, being AnnData's CSR
        element, with ``anndata.io.read_elem(zarr.open_group(path)["X"])``).

    Raises
    ------
    ImportError
        Without zarr (naming the extra).
    """
    zarr = _import("zarr", "Writing a zarr store")

    if is_dask_array(X):
        X = dask_row_blocks(X)
        bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
        blocks = (X[bounds[i] : bounds[i + 1]].compute() for i in range(len(bounds) - 1))
        block_rows = max(X.chunks[0]) if X.shape[0] else 1
    else:
        bounds = list(range(0, X.shape[0], chunk_rows))
        blocks = (X[start : start + chunk_rows] for start in bounds)
        block_rows = chunk_rows
    n_rows, n_columns = (int(n) for n in X.shape)
    dtype = np.dtype(X.dtype)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    group = root.create_group(key)
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                        "shape": [n_rows, n_columns]})
    # Entries per chunk: about one block's at 5 % density, at least 2**16.
    entry_chunk = max(2**16, int(block_rows * n_columns * 0.05))
    data = group.create_array("data", shape=(0,), chunks=(entry_chunk,), dtype=dtype)
    indices = group.create_array("indices", shape=(0,), chunks=(entry_chunk,), dtype=np.int32)
    indptr = [np.zeros(1, dtype=np.int64)]
    for block in blocks:
        block = sp.csr_matrix(block)
        block.sort_indices()
        data.append(block.data.astype(dtype, copy=False))
        indices.append(block.indices.astype(np.int32, copy=False))
        indptr.append(indptr[-1][-1] + block.indptr[1:].astype(np.int64))
    pointers = np.concatenate(indptr)
    group.create_array("indptr", shape=pointers.shape, dtype=np.int64,
                       chunks=(max(1, min(pointers.size, 2**20)),))[:] = pointers
    return Path(path)

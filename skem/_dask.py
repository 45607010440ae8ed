"""Dask arrays in the EM engine: passes reduced where the blocks are, lazy predictions.

dask is imported lazily. This module itself imports nothing from dask: a
dask array can only exist once ``dask.array`` has been imported, so
:func:`is_dask_array` just looks it up in ``sys.modules``; the functions that
need dask import it and raise an ImportError naming the ``dask`` extra when
it is missing.

Fitting. :class:`DaskRows` stands in for :class:`~skem._em.RowData` in the
engine: both follow one row-source protocol (``n_rows``, ``total_weight``,
``reduce_chunks(function, model, chunk_size)``, ``init_rows(model,
random_state)``), so the EM loop (plain or SQUAREM) is the same one. A model
opts in with ``fits_dask = True`` and its block hooks
(:class:`skem._em.EMModel`); this module knows no model by name. Each pass
sends the step -- the model and its current parameters, a few kilobytes -- to
every row block; there the block is read, prepared by the model's
``prepare_block`` (validation, and indexing into any data-wide table from
``dask_layout``) and cut into chunks (sized by :func:`skem._em.chunk_rows`,
as in memory) that the model's own ``e_step`` summarizes. The per-block sums
are added in a tree of fixed shape (fan-in :data:`SPLIT_EVERY`), and only the total, of the size of the parameters,
reaches the driver. Because the graph fixes the order of the additions, the
result does not depend on which worker finishes first. With a
``dask.distributed.Client`` active the passes run on its cluster, otherwise on
dask's default (threaded) scheduler.

Worker processes of ``dask.distributed`` start with ``MALLOC_TRIM_THRESHOLD_``
set (its nanny's default, so that freed memory goes back to the system).
That setting also fixes glibc's mmap threshold at 128 KiB: every NumPy
array above it is then a fresh ``mmap`` whose pages the kernel faults in and
zeroes, and is unmapped when freed -- which doubled the CPU time of a block's
E-step (many temporaries of up to :data:`skem._em.CHUNK_BYTES`). While a
block is being worked on, :func:`block_allocator` gives glibc the thresholds
its own dynamic rule would reach (arrays up to 32 MiB reuse the heap); when
the process's last block task ends it restores the nanny's setting and
returns the free memory with ``malloc_trim``. Elsewhere (no such setting, not
glibc) it does nothing.

Dask input is not row-compressed (identical rows are not collapsed: that
needs all rows at once): every row is visited in every pass, in its place,
with its ``sample_weight``; rows of weight 0 are kept and count for nothing.
The fitted parameters equal those of the in-memory fit up to rounding.

Initialization sees a sample: up to :data:`INIT_ROWS` rows drawn uniformly
from up to :data:`INIT_BLOCKS` blocks chosen at random (all rows when there
are no more than :data:`INIT_ROWS`, in which case the start is exactly the
in-memory fit's), compressed and prepared in memory on the driver; the
model's usual initialization (k-means, random_from_data, ...) runs on it.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import os
import sys
import threading
from functools import partial, reduce

import numpy as np

from ._em import RowSource, add_items, in_memory_rows
from ._rows import check_sample_weight, stack_rows

__all__ = ["DaskRows", "block_allocator", "dask_row_blocks", "import_dask", "is_dask_array",
           "map_rows", "row_weights"]

#: Rows (at most) that initialization draws from the blocks.
INIT_ROWS = 20_000
#: Blocks (at most) that the initialization sample is drawn from.
INIT_BLOCKS = 16
#: Fan-in of the tree that adds the per-block statistics.
SPLIT_EVERY = 8


def is_dask_array(X):
    """Whether ``X`` is a dask array (without importing dask)."""
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(X, array.Array)


def import_dask(what="This"):
    """Import and return ``dask`` (and ``dask.array``); the ImportError names the extra."""
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"{what} needs dask: install skem's 'dask' extra (pip install 'skem[dask]')."
        ) from error
    return dask


def dask_row_blocks(X):
    """``X`` as blocks of whole rows (one chunk across columns) of known sizes."""
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D dask array, got one with {X.ndim} dimension(s).")
    if any(np.isnan(size) for size in X.chunks[0]):
        X = X.compute_chunk_sizes()
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def row_weights(sample_weight, X):
    """``sample_weight`` (None, array-like or dask) as a dask array chunked like dask ``X``'s rows.

    Weights in memory are validated here (:func:`skem._rows.check_sample_weight`);
    dask weights are validated block by block in the first pass of :class:`DaskRows`.
    """
    import dask.array as da

    if sample_weight is None:
        return da.ones(X.shape[0], chunks=(X.chunks[0],))
    if not is_dask_array(sample_weight):
        weights = check_sample_weight(sample_weight, X)
        return da.from_array(weights, chunks=(X.chunks[0],))
    if sample_weight.shape != (X.shape[0],):
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({X.shape[0]},), got "
            f"{sample_weight.shape}."
        )
    if sample_weight.chunks[0] != X.chunks[0]:
        sample_weight = sample_weight.rechunk((X.chunks[0],))
    return sample_weight.astype(float)


class DaskRows(RowSource):
    """The rows of a dask array as the EM engine sees them: reduced where they are.

    It implements the engine's row-source protocol (:class:`~skem._em.RowSource`),
    as :class:`~skem._em.RowData` does for rows in memory:
    ``n_rows``, ``total_weight``, ``reduce_chunks`` (one pass, a dask
    reduction) and ``init_rows`` (an in-memory sample). Building it takes one
    pass over the blocks, which validates them and the weights and collects
    what the model's ``dask_layout`` needs.

    Parameters
    ----------
    model : EMModel
        The model being fitted; it must have ``fits_dask = True``.
    X : dask.array.Array of shape (n_rows, n_features)
        Blocks of whole rows (:func:`dask_row_blocks`; dense, or scipy.sparse blocks).
    sample_weight : None, array-like or dask array of shape (n_rows,)
        Row weights (rechunked like ``X``'s rows).
    """

    def __init__(self, model, X, sample_weight=None):
        import_dask(f"Fitting {type(model).__name__} on a dask array")
        if not model.fits_dask:
            raise TypeError(
                f"{type(model).__name__} does not fit dask arrays; compute X first."
            )
        weights = row_weights(sample_weight, X)
        self._n_rows = int(X.shape[0])
        # Empty blocks (from filtering, say) have nothing to add and cannot be validated.
        keep = [i for i, size in enumerate(X.chunks[0]) if size > 0]
        self.block_rows = np.asarray(X.chunks[0])[keep]
        x_blocks, w_blocks = X.to_delayed().ravel(), weights.to_delayed().ravel()
        self._x = [x_blocks[i] for i in keep]
        self._w = [w_blocks[i] for i in keep]
        summaries = self.map_blocks(partial(_summarize_block, model))
        self._total_weight = float(sum(total for total, _ in summaries))
        if not self._total_weight > 0:
            raise ValueError("sample_weight sums to 0: there is nothing to fit.")
        self.layout = model.dask_layout([summary for _, summary in summaries], self.map_blocks)

    def map_blocks(self, function):
        """``function(X_block, weight_block)`` of every block, computed in one go, as a list."""
        dask = import_dask()
        shared = dask.delayed((function,), traverse=False)
        tasks = [dask.delayed(_apply)(shared, x, w) for x, w in zip(self._x, self._w)]
        return list(dask.compute(tasks)[0])

    @property
    def n_rows(self):
        return self._n_rows

    @property
    def total_weight(self):
        return self._total_weight

    def reduce_chunks(self, function, model, chunk_size):
        """The item-wise sum of ``function(chunk)`` over all chunks of all blocks.

        Each block is prepared and cut into chunks where it is, exactly as
        in-memory rows are, and its sum is added to the others' in a tree;
        one ``dask.compute`` per call.
        """
        dask = import_dask()
        # One graph node holds the step and the layout, so that a cluster ships them
        # once per worker, not once per block.
        shared = dask.delayed(
            (partial(_reduce_block, model, self.layout, function, chunk_size),),
            traverse=False,
        )
        parts = [dask.delayed(_apply)(shared, x, w) for x, w in zip(self._x, self._w)]
        while len(parts) > 1:
            parts = [
                dask.delayed(_sum)(parts[start : start + SPLIT_EVERY])
                for start in range(0, len(parts), SPLIT_EVERY)
            ]
        return dask.compute(parts[0])[0]

    def init_rows(self, model, random_state):
        """An in-memory sample of the rows for initialization (see the module docstring)."""
        dask = import_dask()
        n_blocks = len(self._x)
        if self.n_rows <= INIT_ROWS:
            picks = [(block, None) for block in range(n_blocks)]
        else:
            n_chosen = min(n_blocks, INIT_BLOCKS)
            blocks = np.sort(random_state.choice(n_blocks, n_chosen, replace=False))
            per_block = INIT_ROWS // blocks.size
            picks = [
                (block, None if self.block_rows[block] <= per_block else np.sort(
                    random_state.choice(self.block_rows[block], per_block, replace=False)
                ))
                for block in blocks
            ]
        pieces = dask.compute(
            [dask.delayed(_take_rows)(self._x[b], self._w[b], rows) for b, rows in picks]
        )[0]
        X = stack_rows([x for x, _ in pieces])
        weights = np.concatenate([w for _, w in pieces])
        if not np.any(weights > 0):
            raise ValueError(
                "The initialization sample holds no row of positive weight; "
                "give the rows of positive weight a larger share of X."
            )
        return in_memory_rows(model, model.check_block(X), weights)


def _apply(shared, x, w):
    with block_allocator():
        return shared[0](x, w)


def _sum(values):
    return reduce(add_items, values)


def _check_weights(w):
    w = np.asarray(w, dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    return w


def _summarize_block(model, x, w):
    """Validate one block and its weights: (weight sum, the model's summary of the block)."""
    return float(_check_weights(w).sum()), model.summarize_block(x)


def _reduce_block(model, layout, function, chunk_size, x, w):
    rows = model.prepare_block(x, np.asarray(w, dtype=float), layout)
    return rows.reduce_chunks(function, model, chunk_size)


def _take_rows(x, w, rows):
    if rows is None:
        return x, np.asarray(w, dtype=float)
    return x[rows], np.asarray(w, dtype=float)[rows]


# ------------------------------------------------------------ predictions


def map_rows(model, method, X, n_columns=None, dtype=float):
    """``model.<method>`` of every block of ``X``, lazily: a dask array (``map_blocks``).

    Parameters
    ----------
    model : BaseEM
        A fitted estimator; a shallow copy is kept, so refitting it later does
        not change this result.
    method : str
        The public method applied to each block (a NumPy or scipy.sparse block).
    X : dask.array.Array of shape (n_rows, n_features)
    n_columns : int or None
        Columns of the result; None for one value per row.
    dtype : dtype
        Of the result.

    Returns
    -------
    dask.array.Array of shape (n_rows,) or (n_rows, n_columns)
    """
    X = dask_row_blocks(X)
    if X.shape[1] != model.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(model).__name__} is expecting "
            f"{model.n_features_in_} features as input."
        )
    function = partial(_call_method, copy.copy(model), method, n_columns, np.dtype(dtype))
    if n_columns is None:
        return X.map_blocks(function, drop_axis=1, dtype=dtype, meta=np.empty((0,), dtype))
    return X.map_blocks(
        function, chunks=(X.chunks[0], (n_columns,)), dtype=dtype, meta=np.empty((0, 0), dtype)
    )


def _call_method(model, method, n_columns, dtype, block):
    if block.shape[0] == 0:
        return np.empty((0,) if n_columns is None else (0, n_columns), dtype)
    with block_allocator():
        return getattr(model, method)(block)


# ------------------------------------------------------------ the worker's allocator

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: glibc's mmap threshold when fixed by the environment (its DEFAULT_MMAP_THRESHOLD_MIN).
GLIBC_MMAP_THRESHOLD = 128 * 1024
#: The thresholds while blocks are worked on: the ceiling of glibc's dynamic mmap
#: threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX), and twice that for the
#: trim threshold, as glibc's dynamic rule sets it.
BLOCK_MMAP_THRESHOLD = 32 * 2**20
BLOCK_TRIM_THRESHOLD = 2 * BLOCK_MMAP_THRESHOLD


class _BlockAllocator:
    """Counts the block tasks running in this process; the first sets the thresholds, the last
    restores them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.libc = None  # resolved at first use: (mallopt, malloc_trim, restore) or False

    def _resolve(self):
        """glibc's functions and the trim threshold to restore, or False when there is nothing to do:
        the environment fixes no trim threshold (glibc's dynamic rule is on), fixes the mmap
        threshold itself (someone chose it), or the C library is not glibc."""
        trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
        if trim is None or "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
            return False
        try:
            trim = int(trim)
            libc = ctypes.CDLL(None)
            mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
            libc.gnu_get_libc_version  # noqa: B018 -- glibc's, absent from musl
        except (ValueError, OSError, AttributeError):
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return mallopt, malloc_trim, trim

    def enter(self):
        with self.lock:
            if self.libc is None:
                self.libc = self._resolve()
            if self.libc and self.running == 0:
                mallopt = self.libc[0]
                mallopt(M_MMAP_THRESHOLD, BLOCK_MMAP_THRESHOLD)
                mallopt(M_TRIM_THRESHOLD, BLOCK_TRIM_THRESHOLD)
            self.running += 1

    def exit(self):
        with self.lock:
            self.running -= 1
            if self.libc and self.running == 0:
                mallopt, malloc_trim, trim = self.libc
                mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)
                mallopt(M_TRIM_THRESHOLD, trim)
                malloc_trim(0)


_BLOCK_ALLOCATOR = _BlockAllocator()


@contextlib.contextmanager
def block_allocator():
    """While a block is worked on: glibc's usual heap reuse, where the environment had turned it off.

    A dask worker's nanny sets ``MALLOC_TRIM_THRESHOLD_`` (64 KiB by default), which
    also keeps glibc's mmap threshold at 128 KiB, so every larger temporary array is
    mapped, faulted in page by page and unmapped. Inside this context (shared by the
    block tasks running at once in the process) arrays up to
    :data:`BLOCK_MMAP_THRESHOLD` come from the heap; when the last task leaves, the
    environment's thresholds are restored and ``malloc_trim(0)`` returns the free
    heap to the system, so the worker's memory between tasks is as the nanny meant.
    A no-op without that variable, with ``MALLOC_MMAP_THRESHOLD_`` set, or off glibc.
    """
    _BLOCK_ALLOCATOR.enter()
    try:
        yield
    finally:
        _BLOCK_ALLOCATOR.exit()

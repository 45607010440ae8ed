"""Exact compression of identical rows into one row with the summed weight.

Fitting distinct rows with summed weights is the same fit as fitting the
original rows (``sample_weight`` means multiplicity), and far less work when
rows repeat: 10**6 one-dimensional counts have only a few hundred distinct
values, and reads collapse into equivalence classes. The distinct rows come
back in a canonical order that depends only on their content, so a fit on
compressed rows does not depend on the order of the input rows either.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._compat import sklearn_check_sample_weight

__all__ = ["check_sample_weight", "compress_rows", "stack_rows"]


def check_sample_weight(sample_weight, X):
    """Validated row multiplicities of ``X``: finite, non-negative, one per row, not all 0.

    The one validator of ``sample_weight``: ``fit`` and ``score`` use it, and
    so does the dask path for weights given in memory.

    Parameters
    ----------
    sample_weight : array-like of shape (n_rows,) or None
        None gives ones.
    X : array-like with a first dimension of n_rows
        The rows they weigh (only their number is used).

    Returns
    -------
    weights : ndarray of shape (n_rows,), float64
    """
    n_rows = X.shape[0] if hasattr(X, "shape") else len(X)
    if sample_weight is None:
        return np.ones(n_rows)
    weights = np.asarray(sample_weight)
    if weights.ndim != 1 or weights.shape[0] != n_rows:
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({n_rows},), got {weights.shape}."
        )
    weights = sklearn_check_sample_weight(weights, np.empty((n_rows, 0)), dtype=np.float64,
                                   ensure_non_negative=True)
    if not weights.sum() > 0:
        raise ValueError("sample_weight sums to 0: there is nothing to fit or score.")
    return weights


def compress_rows(X, sample_weight=None):
    """Collapse identical rows of ``X`` into distinct rows with summed weights.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_rows, n_columns)
        Rows to compress. Sparse input stays sparse (CSR).
    sample_weight : array-like of shape (n_rows,), default=None
        Row weights; ones if None.

    Returns
    -------
    distinct : ndarray or scipy.sparse.csr_matrix of shape (n_distinct, n_columns)
        The distinct rows, in an order that depends only on their content.
    weights : ndarray of shape (n_distinct,)
        Summed weight of the rows equal to each distinct row.
    inverse : ndarray of shape (n_rows,)
        ``distinct[inverse[i]]`` equals ``X[i]``.
    """
    n_rows = X.shape[0]
    weights = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, float)
    if sp.issparse(X):
        distinct, inverse = _distinct_sparse_rows(X)
    else:
        distinct, inverse = _distinct_dense_rows(np.ascontiguousarray(X))
    summed = np.bincount(inverse, weights=weights, minlength=distinct.shape[0])
    return distinct, summed, inverse


def _distinct_dense_rows(X):
    """Distinct rows of a dense array, in an order that depends only on their content.

    Rows of small non-negative integers are encoded as one integer each
    (mixed radix, lexicographic order), which sorts far faster than whole
    rows -- or needs no sort at all when the codes are few enough to count.
    Other integer rows are sorted on two exact hashes, computed block by
    block; only general floats fall back to ``np.unique(axis=0)``.
    """
    n_rows, n_columns = X.shape
    integer = X.size and X.dtype.kind in "fiu" and np.all(X == np.floor(X))
    if integer and X.min() >= 0:
        radix = X.max(axis=0).astype(np.float64) + 1
        n_codes = float(np.prod(radix))
        if n_codes < 2**53:
            strides = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1.0]]).astype(np.int64)
            codes = _integer_row_keys(X, strides)
            if n_codes <= 4 * n_rows + 1024:
                present = np.bincount(codes, minlength=int(n_codes)) > 0
                distinct_codes = np.flatnonzero(present)
                rank = np.cumsum(present) - 1
                inverse = rank[codes]
            else:
                distinct_codes, inverse = np.unique(codes, return_inverse=True)
            distinct = (distinct_codes[:, None] // strides) % radix.astype(np.int64)
            return distinct.astype(X.dtype), inverse.reshape(-1)
    if integer and np.abs(X).max() < 2**62:
        # Sums of x_d * m_d with random odd multipliers, wrapping modulo 2**64: exact
        # integer arithmetic, so identical rows get identical keys in any order.
        multipliers = np.random.default_rng(20240607).integers(1, 2**62, size=(2, n_columns)) | 1
        keys = [_integer_row_keys(X, m) for m in multipliers]
        first, inverse = _distinct_by_keys(
            keys, lambda a, b: np.all(X[a] == X[b], axis=1)
        )
        return X[first], inverse
    distinct, inverse = np.unique(X, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)


#: Rows converted to int64 at a time when computing row keys.
_KEY_BLOCK_ROWS = 2**16


def _integer_row_keys(X, multipliers):
    """``X @ multipliers`` in int64 arithmetic (wrapping on overflow), block by block."""
    keys = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], _KEY_BLOCK_ROWS):
        block = slice(start, start + _KEY_BLOCK_ROWS)
        with np.errstate(over="ignore"):
            keys[block] = X[block].astype(np.int64) @ multipliers
    return keys


def _distinct_by_keys(keys, same_rows):
    """Group rows by content keys, confirming equal keys with an exact comparison.

    Parameters
    ----------
    keys : list of ndarray of shape (n_rows,)
        Keys computed from each row's content alone; equal rows have equal keys.
    same_rows : callable
        ``same_rows(a, b)`` -> bool array: whether rows ``a[i]`` and ``b[i]`` are equal.

    Returns
    -------
    first : ndarray
        Index of one row of each distinct group, in key order.
    inverse : ndarray of shape (n_rows,)
        The group of each row.
    """
    n_rows = keys[0].shape[0]
    order = np.lexsort(keys[::-1])
    sorted_keys = [k[order] for k in keys]
    same_key = np.zeros(n_rows, dtype=bool)
    if n_rows > 1:
        same_key[1:] = np.logical_and.reduce([k[1:] == k[:-1] for k in sorted_keys])
    truly_same = same_key
    if same_key.any():
        head = np.maximum.accumulate(np.where(same_key, 0, np.arange(n_rows)))
        candidates = np.flatnonzero(same_key)
        truly_same = same_key.copy()
        # A key collision between different rows leaves them apart (not merged). The rows
        # compared are copied: a block of candidates at a time bounds that copy's memory.
        for start in range(0, candidates.size, _KEY_BLOCK_ROWS):
            block = candidates[start : start + _KEY_BLOCK_ROWS]
            truly_same[block] = same_rows(order[block], order[head[block]])
    inverse = np.empty(n_rows, dtype=np.intp)
    inverse[order] = np.cumsum(~truly_same) - 1
    return order[~truly_same], inverse


def _distinct_sparse_rows(X):
    """Distinct rows of a sparse matrix, by sorting on content keys and checking equality exactly."""
    X = sp.csr_matrix(X)
    if not X.has_canonical_format or (X.data.size and not np.all(X.data != 0)):
        X = X.copy()
        X.sum_duplicates()
        X.eliminate_zeros()
    n_columns = X.shape[1]
    # Sorted on two fixed random projections of each row's content (a sparse matrix-vector
    # product sums each row's entries in order, so identical rows get identical keys),
    # then on two exact hashes: the sum over the row's entries of the value's bits times
    # a random odd multiplier of its column, in int64 arithmetic wrapping modulo 2**64.
    # The projections alone would not do: an entry far below the row's largest (1e-20
    # next to 1) is lost in the rounding of the sum, so rows that differ only there
    # collide, and a run of equal keys is only checked against its first row, which
    # would leave equal rows after it apart. The hashes tell such rows apart (they
    # collide with probability about 2**-64 each); the projections come first so that
    # the order of the distinct rows is the one they always had.
    rng = np.random.default_rng(20240607)
    keys = [np.diff(X.indptr)] + [X @ rng.uniform(0.5, 1.5, n_columns) for _ in range(2)]
    keys += list(_exact_row_hashes(X))

    def same_rows(a, b):
        difference = X[a] - X[b]
        difference.eliminate_zeros()
        return difference.getnnz(axis=1) == 0

    first, inverse = _distinct_by_keys(keys, same_rows)
    return X[first], inverse


#: Stored entries hashed at a time (bounds the temporaries of :func:`_exact_row_hashes`).
_HASH_BLOCK_ENTRIES = 2**20


def _exact_row_hashes(X):
    """Two int64 hashes of each CSR row's exact content, (2, n_rows).

    Sums over the row's entries of the bits of the value (as float64, so that
    any dtype hashes alike) times a random odd multiplier of its column, in
    int64 arithmetic wrapping modulo 2**64; computed over blocks of whole
    rows of about :data:`_HASH_BLOCK_ENTRIES` entries.
    """
    multipliers = np.random.default_rng(20240607).integers(1, 2**62, size=(2, X.shape[1])) | 1
    hashes = np.zeros((2, X.shape[0]), dtype=np.int64)
    indptr = X.indptr
    bounds = np.unique(np.concatenate([
        np.searchsorted(indptr, np.arange(0, indptr[-1], _HASH_BLOCK_ENTRIES), side="right") - 1,
        [X.shape[0]],
    ]))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        entries = slice(indptr[start], indptr[stop])
        bits = X.data[entries].astype(np.float64).view(np.int64)
        local_indptr = indptr[start : stop + 1] - indptr[start]
        for row_hash, column_multipliers in zip(hashes, multipliers):
            with np.errstate(over="ignore"):
                row_hash[start:stop] = _row_sums(
                    bits * column_multipliers[X.indices[entries]], local_indptr)
    return hashes


def _row_sums(entry_values, indptr):
    """Sum of the entries of each CSR row (``entry_values`` aligned with the CSR data).

    Integer sums wrap on overflow (as hashes want them to).
    """
    sums = np.zeros(indptr.size - 1, dtype=entry_values.dtype)
    nonempty = indptr[:-1] < indptr[1:]
    if nonempty.any():
        # reduceat sums between consecutive start offsets, so only non-empty rows may be given.
        sums[nonempty] = np.add.reduceat(entry_values, indptr[:-1][nonempty])
    return sums


def stack_rows(pieces):
    """Stack row blocks (dense, or sparse when any block is) into one array."""
    if len(pieces) == 1:
        return pieces[0]
    if any(sp.issparse(piece) for piece in pieces):
        return sp.vstack(pieces, format="csr")
    return np.concatenate(pieces)

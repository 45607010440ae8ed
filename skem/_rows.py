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

__all__ = ["compress_rows"]


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
    """Distinct rows of a dense array, in lexicographic order.

    Rows of small non-negative integers are encoded as one integer each
    (mixed radix), which sorts far faster than whole rows -- or needs no sort
    at all when the codes are few enough to count.
    """
    n_rows = X.shape[0]
    if X.size and X.dtype.kind in "fiu" and X.min() >= 0 and np.all(X == np.floor(X)):
        radix = X.max(axis=0).astype(np.float64) + 1
        n_codes = float(np.prod(radix))
        if n_codes < 2**53:
            strides = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1.0]]).astype(np.int64)
            codes = X.astype(np.int64) @ strides
            if n_codes <= 4 * n_rows + 1024:
                present = np.bincount(codes, minlength=int(n_codes)) > 0
                distinct_codes = np.flatnonzero(present)
                rank = np.cumsum(present) - 1
                inverse = rank[codes]
            else:
                distinct_codes, inverse = np.unique(codes, return_inverse=True)
            distinct = (distinct_codes[:, None] // strides) % radix.astype(np.int64)
            return distinct.astype(X.dtype), inverse.reshape(-1)
    distinct, inverse = np.unique(X, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _distinct_sparse_rows(X):
    """Distinct rows of a sparse matrix, by sorting on content keys and checking equality exactly."""
    X = sp.csr_matrix(X)
    if not X.has_canonical_format or (X.data.size and not np.all(X.data != 0)):
        X = X.copy()
        X.sum_duplicates()
        X.eliminate_zeros()
    n_rows, n_columns = X.shape
    nnz = np.diff(X.indptr)
    # Two fixed random projections of each row's content (a sparse matrix-vector
    # product sums each row's entries in order, so identical rows get identical
    # keys); different rows
    # almost surely differ, and any collision is caught by the exact check below.
    rng = np.random.default_rng(20240607)
    keys = [X @ rng.uniform(0.5, 1.5, n_columns) for _ in range(2)]
    order = np.lexsort((keys[1], keys[0], nnz))
    sorted_keys = [nnz[order], keys[0][order], keys[1][order]]
    same_key = np.zeros(n_rows, dtype=bool)
    if n_rows > 1:
        same_key[1:] = np.logical_and.reduce([k[1:] == k[:-1] for k in sorted_keys])
    truly_same = same_key
    if same_key.any():
        head = np.maximum.accumulate(np.where(same_key, 0, np.arange(n_rows)))
        candidates = np.flatnonzero(same_key)
        difference = X[order[candidates]] - X[order[head[candidates]]]
        difference.eliminate_zeros()
        truly_same = same_key.copy()
        truly_same[candidates] = difference.getnnz(axis=1) == 0
    group_of_sorted = np.cumsum(~truly_same) - 1
    inverse = np.empty(n_rows, dtype=np.intp)
    inverse[order] = group_of_sorted
    return X[order[~truly_same]], inverse


def _row_sums(entry_values, indptr):
    """Sum of the entries of each CSR row (``entry_values`` aligned with the CSR data)."""
    sums = np.zeros(indptr.size - 1)
    nonempty = indptr[:-1] < indptr[1:]
    if nonempty.any():
        # reduceat sums between consecutive start offsets, so only non-empty rows may be given.
        sums[nonempty] = np.add.reduceat(entry_values, indptr[:-1][nonempty])
    return sums

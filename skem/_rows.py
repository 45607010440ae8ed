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
        X = np.ascontiguousarray(X)
        distinct, inverse = np.unique(X, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    summed = np.bincount(inverse, weights=weights, minlength=distinct.shape[0])
    return distinct, summed, inverse


def _distinct_sparse_rows(X):
    """Distinct rows of a sparse matrix, by sorting on content keys and checking equality exactly."""
    X = sp.csr_matrix(X, copy=True)
    X.sum_duplicates()
    X.eliminate_zeros()
    X.sort_indices()
    n_rows, n_columns = X.shape
    row_of_entry = np.repeat(np.arange(n_rows), np.diff(X.indptr))
    # Two fixed random projections of each row's content. Identical rows get
    # identical keys (the entries are summed in the same order); different rows
    # almost surely differ, and any collision is caught by the exact check below.
    rng = np.random.default_rng(20240607)
    keys = [
        np.bincount(row_of_entry, weights=X.data * rng.uniform(0.5, 1.5, n_columns)[X.indices],
                    minlength=n_rows)
        for _ in range(2)
    ]
    nnz = np.diff(X.indptr)
    order = np.lexsort((keys[1], keys[0], nnz))
    sorted_rows = X[order]
    same_key = np.ones(n_rows, dtype=bool)
    same_key[0] = False
    same_key[1:] = (
        (nnz[order][1:] == nnz[order][:-1])
        & (keys[0][order][1:] == keys[0][order][:-1])
        & (keys[1][order][1:] == keys[1][order][:-1])
    )
    candidate_head = np.maximum.accumulate(np.where(same_key, 0, np.arange(n_rows)))
    difference = sorted_rows - sorted_rows[candidate_head]
    difference.eliminate_zeros()
    truly_same = same_key & (difference.getnnz(axis=1) == 0)
    group_of_sorted = np.cumsum(~truly_same) - 1
    distinct = sorted_rows[~truly_same]
    inverse = np.empty(n_rows, dtype=np.intp)
    inverse[order] = group_of_sorted
    return sp.csr_matrix(distinct), inverse

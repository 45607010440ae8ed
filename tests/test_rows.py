"""Exact row compression: distinct rows, summed weights, canonical order."""

import numpy as np
import pytest
import scipy.sparse as sp

from skem._rows import compress_rows


@pytest.mark.parametrize("sparse", [False, True])
def test_compression_is_exact_and_canonical(sparse):
    rng = np.random.default_rng(0)
    base = rng.poisson(0.7, size=(40, 6)).astype(float)
    X = base[rng.integers(0, 40, size=500)]
    weights = rng.uniform(0.5, 2.0, size=500)
    convert = sp.csr_matrix if sparse else np.asarray
    distinct, summed, inverse = compress_rows(convert(X), weights)
    dense_distinct = distinct.toarray() if sparse else distinct
    np.testing.assert_array_equal(dense_distinct[inverse], X)
    assert len({tuple(row) for row in dense_distinct}) == dense_distinct.shape[0]
    for i, row in enumerate(dense_distinct):
        assert summed[i] == pytest.approx(weights[(X == row).all(axis=1)].sum())
    order = rng.permutation(500)
    shuffled, shuffled_weights, _ = compress_rows(convert(X[order]), weights[order])
    shuffled = shuffled.toarray() if sparse else shuffled
    np.testing.assert_array_equal(shuffled, dense_distinct)
    np.testing.assert_allclose(shuffled_weights, summed)


def test_sparse_compression_handles_empty_rows_and_explicit_zeros():
    X = sp.csr_matrix(np.array([[0, 0, 0], [1, 0, 2], [0, 0, 0], [1, 0, 2], [0, 3, 0]], float))
    X.data[X.data == 3] = 0.0  # an explicit zero: the row equals an empty row
    distinct, summed, inverse = compress_rows(X)
    assert distinct.shape[0] == 2
    np.testing.assert_array_equal(distinct.toarray()[inverse], X.toarray())
    assert sorted(summed) == [2.0, 3.0]


def test_wide_integer_rows_are_compressed_by_exact_hashes():
    # 40 columns of values up to 999: too many codes for one mixed-radix integer.
    rng = np.random.default_rng(3)
    base = rng.integers(0, 1000, size=(30, 40)).astype(float)
    base[:, 0] -= 500  # negative values too
    X = base[rng.integers(0, 30, size=400)]
    distinct, summed, inverse = compress_rows(X)
    assert distinct.shape[0] == len({tuple(r) for r in X})
    np.testing.assert_array_equal(distinct[inverse], X)
    shuffled, _, _ = compress_rows(X[rng.permutation(400)])
    np.testing.assert_array_equal(shuffled, distinct)


def test_sparse_rows_differing_below_rounding_are_told_apart_and_equal_rows_merged():
    # 1e-20 and 2e-20 next to 1 vanish from any floating-point sum of the row: rows that
    # differ only there must still be two classes, and equal rows one class each
    tiny = [[1.0, 2e-20], [1.0, 1e-20], [1.0, 1e-20], [1.0, 2e-20], [1.0, 1e-20]]
    X = sp.csr_matrix(np.array(tiny))
    distinct, summed, inverse = compress_rows(X)
    assert distinct.shape[0] == 2
    np.testing.assert_array_equal(distinct.toarray()[inverse], X.toarray())
    assert sorted(summed) == [2.0, 3.0]


def test_sparse_hashes_do_not_depend_on_dtype_or_hash_blocks(monkeypatch):
    rng = np.random.default_rng(4)
    base = sp.random(60, 12, density=0.3, format="csr", random_state=4)
    base.data = np.round(base.data * 5) + 1
    X = base[rng.integers(0, 60, size=500)]
    reference = compress_rows(X)
    # Blocks of about 5 entries: every block boundary falls between whole rows.
    monkeypatch.setattr("skem._rows._HASH_BLOCK_ENTRIES", 5)
    for data in (X, X.astype(np.float32)):
        distinct, summed, inverse = compress_rows(data)
        np.testing.assert_array_equal(inverse, reference[2])
        np.testing.assert_array_equal(summed, reference[1])
        np.testing.assert_array_equal(distinct.toarray(), reference[0].toarray())

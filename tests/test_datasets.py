"""Simulators and bundled example data."""

import numpy as np
import pytest

from skem.datasets import load_negbin_counts, make_negbin_mixture


def test_make_negbin_mixture_moments():
    X, y = make_negbin_mixture(
        50000, weights=(0.3, 0.7), means=((4.0,), (30.0,)), dispersion=0.5, random_state=0
    )
    assert np.mean(y == 1) == pytest.approx(0.7, abs=0.01)
    high = X[y == 1, 0]
    assert high.mean() == pytest.approx(30.0, rel=0.02)
    assert high.var() == pytest.approx(30.0 + 0.5 * 30.0**2, rel=0.05)


def test_make_negbin_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sum to 1"):
        make_negbin_mixture(10, weights=(0.5, 0.6))
    with pytest.raises(ValueError, match="non-negative"):
        make_negbin_mixture(10, means=((-1.0,), (2.0,)))


def test_load_negbin_counts():
    counts, cell_type = load_negbin_counts()
    assert counts.shape == (600, 8) and len(cell_type) == 600
    assert (counts.to_numpy() >= 0).all() and set(cell_type) == {"T cell", "B cell", "monocyte"}

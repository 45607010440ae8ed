"""Simulated count data from a known mixture of negative binomials."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state


def make_negbin_mixture(
    n_samples=1000,
    *,
    weights=(0.5, 0.5),
    means=((2.0,), (20.0,)),
    dispersion=0.1,
    size_factors=None,
    random_state=None,
):
    """Draw counts from a mixture of negative binomials with known parameters.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of rows.
    weights : array-like of shape (n_components,), default=(0.5, 0.5)
        Mixing proportions (sum to 1).
    means : array-like of shape (n_components, n_features), default=((2,), (20,))
        Component means.
    dispersion : float or array-like broadcastable to means' shape, default=0.1
        Dispersions ``phi`` (variance ``mu + phi mu**2``); 0 is Poisson.
    size_factors : float or array-like of shape (n_samples,), default=None
        Per-row size factors ``s_i`` (sequencing depth): row ``i`` of
        component ``k`` has means ``s_i * means[k]``. None is 1 for every row.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Counts (float64 holding integers).
    y : ndarray of shape (n_samples,)
        The component of each row.

    Examples
    --------
    >>> from skem.datasets import make_negbin_mixture
    >>> X, y = make_negbin_mixture(5, random_state=0)
    >>> X.shape, y.shape
    ((5, 1), (5,))
    """
    rng = check_random_state(random_state)
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    if means.ndim == 1:
        means = means[:, None]
    phi = np.broadcast_to(np.asarray(dispersion, dtype=float), means.shape)
    if weights.shape != (means.shape[0],) or not np.isclose(weights.sum(), 1.0):
        raise ValueError("weights must have one entry per row of means and sum to 1.")
    if np.any(means < 0) or np.any(phi < 0):
        raise ValueError("means and dispersion must be non-negative.")
    factors = np.ones(n_samples) if size_factors is None else np.broadcast_to(
        np.asarray(size_factors, dtype=float), (n_samples,)
    )
    if not (np.all(np.isfinite(factors)) and np.all(factors >= 0)):
        raise ValueError("size_factors must be non-negative and finite.")
    y = rng.choice(len(weights), size=n_samples, p=weights)
    mu, phi_rows = factors[:, None] * means[y], phi[y]
    X = rng.poisson(mu).astype(float)
    over = phi_rows > 0
    if over.any():
        size = 1.0 / phi_rows[over]
        X[over] = rng.negative_binomial(size, size / (size + mu[over]))
    return X, y

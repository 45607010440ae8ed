"""M-step solvers of the negative-binomial mixture (:mod:`skem.negbin`).

``_solve_dispersion``: the dispersion M-step without size factors, a
safeguarded Newton per tied group on the pair histogram. ``_offset_m_step``:
the joint mean and dispersion M-step with per-row size factors, Newton on a
tight lower bound of the expected log-likelihood (see the user guide).
"""

from __future__ import annotations

import numpy as np

from ._negbin_kernels import MEAN_FLOOR, PHI_MAX, PHI_MIN, SAFEGUARD_RTOL, log_zero_probability

def _solve_dispersion(stats, means, tied_axes, previous):
    """M-step for the dispersion: maximize the expected log-likelihood in each tied group.

    Parameters
    ----------
    stats : NegBinStats
        Summed statistics (``resp_sum``, ``x_sum``, ``value_hist`` and the pair table).
    means : ndarray of shape (K, D)
        The new means (the M-step's first part).
    tied_axes : tuple of int
        Axes of the (K, D) grid over which one dispersion is shared.
    previous : ndarray of shape (K, D) or None
        Current dispersions, kept in groups where the solution does not improve on them.

    Returns
    -------
    dispersion : ndarray of shape (K, D)
    """
    K, D = means.shape
    pairs = stats.pairs
    weights = pairs.dispersion_weights(stats.value_hist)
    N = np.broadcast_to(stats.resp_sum[:, None], (K, D))
    S = stats.x_sum

    def group_sum(cells):
        return cells.sum(axis=tied_axes, keepdims=True) if tied_axes else cells

    def score(log_size):
        """Group sums of dQ/dr and d2Q/dr2 at r = exp(log_size)."""
        r = np.broadcast_to(np.exp(log_size), (K, D))
        first, second = (pairs.per_feature(t) for t in pairs.score_terms(weights, r[:, pairs.feature]))
        first = first + N * np.log(r / (r + means)) + (N * means - S) / (r + means)
        second = second + N * means / (r * (r + means)) - (N * means - S) / (r + means) ** 2
        return group_sum(first), group_sum(second)

    def expected_loglik(phi):
        """Group sums of the expected complete log-likelihood (up to terms free of the
        parameters): the pairs' terms and the zero term, each exact to rounding (the lgamma
        form, which cancels at huge counts, would make the safeguard below decide on noise)."""
        phi = np.broadcast_to(phi, (K, D))
        zero_term = log_zero_probability(means, phi)
        pair_terms = pairs.log_ratio_to_zero(means, phi)
        return group_sum(pairs.per_feature(stats.value_hist * pair_terms) + N * zero_term)

    # The slope of the expected log-likelihood in phi at phi = 0 is
    # sum_i w q [(x - mu)**2 - x] / 2 (over-dispersion against the Poisson):
    # where it is not positive, the maximum is the Poisson limit phi = 0.
    slope_at_zero = pairs.per_feature(pairs.slope_terms(weights)) - S * means + N * means**2 / 2
    poisson = group_sum(slope_at_zero) <= 0

    shape = tuple(1 if axis in tied_axes else size for axis, size in enumerate((K, D)))
    low, high = np.full(shape, -np.log(PHI_MAX)), np.full(shape, -np.log(PHI_MIN))
    bottom = low.copy()
    log_size = (low + high) / 2
    if previous is not None:
        # Warm start from the current value (Newton then needs a few steps near convergence).
        start = -np.log(np.clip(previous, PHI_MIN, PHI_MAX))
        log_size = np.clip(start.mean(axis=tied_axes, keepdims=True) if tied_axes else start,
                           low, high)
    for _ in range(100):
        first, second = score(log_size)
        low = np.where(first > 0, log_size, low)
        high = np.where(first > 0, high, log_size)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = log_size - first / (second * np.exp(log_size))
        inside = np.isfinite(newton) & (newton > low) & (newton < high)
        step = np.where(inside, newton, (low + high) / 2)
        done = np.max(np.abs(step - log_size)) < 1e-10
        log_size = step
        if done:
            break
    # Groups whose search ended at the bottom of the bracket, r = 1/PHI_MAX, and where the
    # expected log-likelihood is decreasing there already: the maximum is at PHI_MAX.
    at_bottom = log_size <= bottom + 1e-9
    if at_bottom.any():
        at_bottom &= score(bottom)[0] <= 0
    phi = np.exp(-log_size)
    phi = np.where(poisson, 0.0, np.where(at_bottom, PHI_MAX, phi))
    phi = np.broadcast_to(phi, (K, D)).copy()
    if previous is not None:
        # Only a decrease beyond rounding keeps the previous value: a decision on rounding noise
        # would make the fit depend on how the rows are chunked (or split into dask blocks).
        old = expected_loglik(previous)
        worse = np.broadcast_to(expected_loglik(phi) < old - SAFEGUARD_RTOL * np.abs(old), (K, D))
        phi = np.where(worse, previous, phi)
    return phi


def _offset_m_step(stats, params, occupied, tied_axes):
    """Means and dispersions with size factors: the maximum of a minorizer of the expected
    log-likelihood that touches it at the current parameters (so EM stays monotone).

    With ``r = 1/phi`` and ``c = mu / r`` the expected log-likelihood of a
    (component, feature) cell is ``Q = H(r) + S log mu - F(c) - r G(c)``: ``H``
    the rising factorials (from the pair table), ``G(c) = sum_i w q log1p(s_i c)``
    over all rows (exact at the size nodes), and ``F(c) = sum w q x log1p(s c)``
    over the non-zero entries -- the only part that needs the entries at the
    parameters. ``F`` is concave, so its tangent at the current ``c0``
    (slope ``P``, :meth:`_OffsetEntries.slope`) bounds it from above:
    ``Q >= H(r) + S log mu - P c - r G(c) + const``. The bound is maximized
    jointly in the means and (tied) sizes by alternating 1-D Newton solves
    (the two are nearly orthogonal parameters), each safeguarded by a
    bracket; a group keeps its previous values if the result is not better.

    ``tied_axes`` None: fixed dispersions, means only.
    """
    offsets, pairs = stats.offsets, stats.pairs
    S, P = stats.x_sum, offsets.entry_slope
    node_mass, nodes = offsets.node_mass, offsets.nodes.values
    mu0, phi0 = params.means, params.dispersion
    K, D = mu0.shape
    estimate = tied_axes is not None
    hist_weights = pairs.dispersion_weights(stats.value_hist) if estimate else None

    def group_sum(cells):
        return cells.sum(axis=tied_axes, keepdims=True) if tied_axes else cells

    def group_max(cells):
        return cells.max(axis=tied_axes, keepdims=True) if tied_axes else cells

    def surrogate(mu, r):
        """The minorizer per cell, up to a constant."""
        c = mu / r
        G = np.einsum("km,kdm->kd", node_mass, np.log1p(c[:, :, None] * nodes))
        value = S * np.log(mu) - P * c - r * G
        if estimate:
            value = value + pairs.per_feature(
                pairs.loglik_terms(hist_weights, (1.0 / r)[:, pairs.feature]))
        return value

    def solve_means(mu, r):
        """Each cell's maximum in eta = log mu at fixed r: the root of the decreasing
        S - P c - r sum_m n_m s_m c / (1 + s_m c)."""
        cells = np.flatnonzero(np.broadcast_to(occupied[:, None], (K, D)) & (S > 0).reshape(K, D)
                               ).astype(np.intp)
        out = mu.copy()
        out[~occupied] = mu0[~occupied]
        out[occupied[:, None] & (S <= 0)] = MEAN_FLOOR
        if cells.size == 0:
            return out
        k = cells // D
        s_flat, p_flat, r_flat = S.ravel()[cells], P.ravel()[cells], r.ravel()[cells]
        mass = node_mass[k]
        low = np.full(cells.size, np.log(MEAN_FLOOR))
        with np.errstate(divide="ignore"):
            # At the root P c <= S.
            high = np.log(r_flat * s_flat / np.maximum(p_flat, 1e-300))
        high = np.maximum(np.minimum(high, np.log(1e300)), low)
        eta = np.clip(np.log(mu.ravel()[cells]), low, high)
        active = np.arange(cells.size)
        for _ in range(100):
            c = np.exp(eta[active]) / r_flat[active]
            a = c[:, None] * nodes
            frac = a / (1.0 + a)
            g = s_flat[active] - p_flat[active] * c - r_flat[active] * np.einsum(
                "nm,nm->n", mass[active], frac)
            dg = -p_flat[active] * c - r_flat[active] * np.einsum(
                "nm,nm->n", mass[active], frac / (1.0 + a))
            e = eta[active]
            low[active] = np.where(g > 0, e, low[active])
            high[active] = np.where(g > 0, high[active], e)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = e - g / dg
            inside = np.isfinite(newton) & (newton > low[active]) & (newton < high[active])
            step = np.where(inside, newton, (low[active] + high[active]) / 2)
            eta[active] = step
            active = active[np.abs(step - e) > 1e-11]
            if active.size == 0:
                break
        out.ravel()[cells] = np.maximum(np.exp(eta), MEAN_FLOOR)
        return out

    def joint_newton(mu, r):
        """Newton's method on (log mu, log r) of every tied group at once -- an arrowhead
        system: the means of a group are coupled only through its size -- with a step
        halved per group until the bound increases, inside the bounds of both."""
        low_eta, low_rho, high_rho = np.log(MEAN_FLOOR), -np.log(PHI_MAX), -np.log(PHI_MIN)
        free = np.broadcast_to(occupied[:, None], (K, D))
        eta = np.log(mu)
        rho = np.log(r)
        rho = rho.mean(axis=tied_axes, keepdims=True) if tied_axes else rho
        value = group_sum(surrogate(np.exp(eta), np.broadcast_to(np.exp(rho), (K, D))))
        active = np.ones(rho.shape, dtype=bool)
        for _ in range(100):
            size = np.broadcast_to(np.exp(rho), (K, D))
            c = np.exp(eta) / size
            a = c[:, :, None] * nodes
            frac = a / (1.0 + a)
            G = np.einsum("km,kdm->kd", node_mass, np.log1p(a))
            g1 = np.einsum("km,kdm->kd", node_mass, frac)
            g2 = np.einsum("km,kdm->kd", node_mass, frac / (1.0 + a))
            first, second = (pairs.per_feature(t)
                             for t in pairs.score_terms(hist_weights, size[:, pairs.feature]))
            grad_eta = S - P * c - size * g1
            # Means at their floor that would go lower stay there, as do empty components.
            moving = free & ~((eta <= low_eta) & (grad_eta <= 0))
            grad_eta = np.where(moving, grad_eta, 0.0)
            hess_eta = np.where(moving, -P * c - size * g2, -1.0)
            cross = np.where(moving, P * c - size * g1 + size * g2, 0.0)
            grad_rho = group_sum(size * first - S + P * c - size * G + size * g1)
            hess_rho = group_sum(size * first + size**2 * second - P * c - size * G
                                 + 2 * size * g1 - size * g2)
            schur = hess_rho - group_sum(cross**2 / hess_eta)
            rhs = grad_rho - group_sum(cross * grad_eta / hess_eta)
            with np.errstate(divide="ignore", invalid="ignore"):
                # Not concave there: a bounded move uphill in log r instead.
                d_rho = np.where(schur < 0, -rhs / schur, np.sign(grad_rho))
            d_rho = np.clip(d_rho, -2.0, 2.0)
            d_rho = np.where(((rho >= high_rho) & (d_rho > 0)) | ((rho <= low_rho) & (d_rho < 0)),
                             0.0, d_rho)
            d_eta = np.clip(-(grad_eta + cross * d_rho) / hess_eta, -2.0, 2.0)
            # A group is done when its Newton step, or the increase it promises, is at
            # rounding level (convergence is quadratic), or no fraction of it increases the bound.
            promise = grad_rho * d_rho + group_sum(grad_eta * d_eta)
            active &= (np.maximum(np.abs(d_rho), group_max(np.abs(d_eta))) > 1e-10) & (
                promise > 1e-13 * np.abs(value))
            if not active.any():
                break
            step = np.ones(rho.shape)
            pending = active.copy()
            for _ in range(20):
                t = np.where(pending, step, 0.0)
                new_rho = np.clip(rho + t * d_rho, low_rho, high_rho)
                new_eta = np.maximum(eta + np.broadcast_to(t, (K, D)) * d_eta, low_eta)
                new_value = group_sum(surrogate(np.exp(new_eta), np.broadcast_to(np.exp(new_rho), (K, D))))
                better = pending & (new_value >= value)
                rho = np.where(better, new_rho, rho)
                eta = np.where(np.broadcast_to(better, (K, D)), new_eta, eta)
                value = np.where(better, new_value, value)
                pending &= ~better
                step = step / 2
                if not pending.any():
                    break
            active &= ~pending
        return np.maximum(np.exp(eta), MEAN_FLOOR), np.broadcast_to(np.exp(rho), (K, D)).copy()

    r = 1.0 / phi0
    if estimate:
        mu, r = joint_newton(mu0, r)
    else:
        mu = solve_means(mu0, r)
    phi = np.clip(1.0 / r, PHI_MIN, PHI_MAX) if estimate else phi0
    # Keep a group's previous values where the bound did not increase beyond rounding.
    old = group_sum(surrogate(mu0, 1.0 / phi0))
    new = group_sum(surrogate(mu, 1.0 / phi))
    worse = np.broadcast_to(new < old - SAFEGUARD_RTOL * np.abs(old), (K, D))
    return np.where(worse, mu0, mu), np.where(worse, phi0, phi)

"""M-step solvers of the negative-binomial mixture (:mod:`skem.negbin`), on plain arrays.

:func:`solve_dispersion`: the dispersion M-step without size factors, a
safeguarded Newton per tied group on the pair histogram. :func:`offset_m_step`:
the joint mean and dispersion M-step with per-row size factors, Newton on a
tight lower bound of the expected log-likelihood (see the user guide).

Both take the summed statistics as arrays (and the :class:`PairTable` that
indexes the histogram), so any model with negative-binomial parts -- a
zero-inflated NB, say, whose statistics weight each row by its posterior of
not being a structural zero -- can call them with its own weights. A
dispersion of exactly 0 is the Poisson limit, as an input and as a result.
"""

from __future__ import annotations

import numpy as np

from ._negbin_kernels import MEAN_FLOOR, PHI_MAX, PHI_MIN, SAFEGUARD_RTOL, log_zero_probability

__all__ = ["offset_m_step", "solve_dispersion"]


def solve_dispersion(resp_sum, x_sum, value_hist, pairs, means, tied_axes, previous):
    """M-step for the dispersion: maximize the expected log-likelihood in each tied group.

    With ``w_i q_ik`` the weight of row ``i`` in component ``k`` (any
    non-negative weights: a mixture's responsibilities times the row weights,
    or a zero-inflated model's posterior of the NB part):

    Parameters
    ----------
    resp_sum : ndarray of shape (K,)
        ``sum_i w q_ik``.
    x_sum : ndarray of shape (K, D)
        ``sum_i w q_ik x_id``.
    value_hist : ndarray of shape (K, U)
        ``sum_i w q_ik [x_id is pair u]`` over the pairs of ``pairs``.
    pairs : PairTable
        The (feature, value) pairs (:func:`skem._negbin_kernels.index_entries`).
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
    weights = pairs.dispersion_weights(value_hist)
    N = np.broadcast_to(resp_sum[:, None], (K, D))
    S = x_sum

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
        return group_sum(pairs.per_feature(value_hist * pair_terms) + N * zero_term)

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


def offset_m_step(x_sum, entry_slope, node_mass, node_values, value_hist, pairs, means, dispersion,
                  occupied, tied_axes):
    """Means and dispersions with size factors: the maximum of a minorizer of the expected
    log-likelihood that touches it at the current parameters (so EM stays monotone).

    With ``r = 1/phi`` and ``c = mu / r`` the expected log-likelihood of a
    (component, feature) cell is ``Q = H(r) + S log mu - F(c) - r G(c)``: ``H``
    the rising factorials (from the pair table), ``G(c) = sum_i w q log1p(s_i c)``
    over all rows (exact at the size nodes), and ``F(c) = sum w q x log1p(s c)``
    over the non-zero entries -- the only part that needs the entries at the
    parameters. ``F`` is concave, so its tangent at the current ``c0``
    (slope ``P``) bounds it from above:
    ``Q >= H(r) + S log mu - P c - r G(c) + const``. The bound is maximized
    jointly in the means and (tied) sizes by Newton's method; a group whose
    bound does not rise in ``phi`` at ``phi = 0`` (at its Poisson means) is
    Poisson, ``phi = 0`` exactly, as without size factors; a group keeps its
    previous values if the result is not better. ``phi = 0`` in ``dispersion``
    is the Poisson limit of every term (``r G(c) -> mu sum_i w q s_i``).

    Parameters
    ----------
    x_sum : ndarray of shape (K, D)
        ``S = sum_i w q_ik x_id``.
    entry_slope : ndarray of shape (K, D)
        ``P = sum_i w q_ik x_id s_i / (1 + phi_kd s_i mu_kd)`` at ``means``, ``dispersion``
        (:meth:`skem._negbin_kernels.OffsetEntries.statistics`).
    node_mass : ndarray of shape (K, M)
        ``sum_i w q_ik L_im``, the rows' interpolation weights at the size nodes.
    node_values : ndarray of shape (M,)
        The size factors at the nodes (:class:`skem._negbin_kernels.SizeNodes`).
    value_hist : ndarray of shape (K, U) or float
        ``sum_i w q_ik [x_id is pair u]`` (only read when dispersions are estimated).
    pairs : PairTable
        The (feature, value) pairs of ``value_hist``.
    means, dispersion : ndarray of shape (K, D)
        The current parameters (``phi >= 0``).
    occupied : ndarray of shape (K,), bool
        Components with weight; the others keep their values.
    tied_axes : tuple of int or None
        Axes of the (K, D) grid over which one dispersion is shared; None: the
        dispersions are fixed and only the means are solved.

    Returns
    -------
    means, dispersion : ndarray of shape (K, D)
    """
    S, P, nodes = x_sum, entry_slope, node_values
    mu0, phi0 = means, dispersion
    K, D = mu0.shape
    estimate = tied_axes is not None
    hist_weights = pairs.dispersion_weights(value_hist) if estimate else None
    # sum_m n_m s_m: the bound's sum_i w q s_i, its Poisson part (r G(c) -> mu sum w q s).
    size_mass = node_mass @ nodes

    def group_sum(cells):
        return cells.sum(axis=tied_axes, keepdims=True) if tied_axes else cells

    def group_max(cells):
        return cells.max(axis=tied_axes, keepdims=True) if tied_axes else cells

    def surrogate(mu, phi):
        """The minorizer per cell, up to a constant; phi = 0 is its Poisson limit."""
        # r G(c) = sum_m n_m log1p(phi s_m mu) / phi = -sum_m n_m log NB(0; s_m mu, phi).
        zero = np.stack([node_mass[k] @ log_zero_probability(mu[k][:, None] * nodes, phi[k][:, None]).T
                         for k in range(K)])
        value = S * np.log(mu) - P * (mu * phi) + zero
        if estimate:
            value = value + pairs.per_feature(
                pairs.loglik_terms(hist_weights, phi[:, pairs.feature]))
        return value

    def poisson_means():
        """The maximum of the bound at phi = 0: ``S / sum w q s`` (the floor where S = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = S / size_mass[:, None]
        return np.where(occupied[:, None], np.maximum(np.where(S > 0, mu, MEAN_FLOOR), MEAN_FLOOR), mu0)

    def solve_means(mu, r):
        """Each cell's maximum in eta = log mu at fixed r: the root of the decreasing
        S - P c - r sum_m n_m s_m c / (1 + s_m c); Poisson cells (r = inf) in closed form."""
        finite = np.isfinite(r)
        cells = np.flatnonzero(np.broadcast_to(occupied[:, None], (K, D)) & (S > 0).reshape(K, D)
                               & finite).astype(np.intp)
        out = np.where(finite, mu, poisson_means())
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

    def joint_newton(mu, phi):
        """Newton's method on (log mu, log r) of every tied group at once -- an arrowhead
        system: the means of a group are coupled only through its size -- with a step
        halved per group until the bound increases, inside the bounds of both."""
        low_eta, low_rho, high_rho = np.log(MEAN_FLOOR), -np.log(PHI_MAX), -np.log(PHI_MIN)
        free = np.broadcast_to(occupied[:, None], (K, D))
        eta = np.log(mu)
        # A Poisson cell (phi = 0) starts at the top of the bracket in r.
        rho = -np.log(np.clip(phi, PHI_MIN, PHI_MAX))
        rho = rho.mean(axis=tied_axes, keepdims=True) if tied_axes else rho
        value = group_sum(surrogate(np.exp(eta), np.broadcast_to(np.exp(-rho), (K, D))))
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
                new_value = group_sum(surrogate(np.exp(new_eta),
                                                np.broadcast_to(np.exp(-new_rho), (K, D))))
                better = pending & (new_value >= value)
                rho = np.where(better, new_rho, rho)
                eta = np.where(np.broadcast_to(better, (K, D)), new_eta, eta)
                value = np.where(better, new_value, value)
                pending &= ~better
                step = step / 2
                if not pending.any():
                    break
            active &= ~pending
        return (np.maximum(np.exp(eta), MEAN_FLOOR),
                np.clip(np.broadcast_to(np.exp(-rho), (K, D)), PHI_MIN, PHI_MAX))

    if estimate:
        mu, phi = joint_newton(mu0, phi0)
        # The Poisson boundary: where the bound does not rise in phi at phi = 0 (at the Poisson
        # means, where it is flat in mu), its maximum is there. The slope at phi = 0 is
        # H'(0) - P mu + sum_m n_m (s_m mu)**2 / 2, with H'(0) = sum_x H(x) x (x - 1) / 2.
        poisson_mu = poisson_means()
        slope_at_zero = (pairs.per_feature(pairs.slope_terms(hist_weights)) - P * poisson_mu
                         + 0.5 * poisson_mu**2 * (node_mass @ nodes**2)[:, None])
        poisson = np.broadcast_to(group_sum(np.where(occupied[:, None], slope_at_zero, 0.0)) <= 0,
                                  (K, D))
        mu, phi = np.where(poisson, poisson_mu, mu), np.where(poisson, 0.0, phi)
    else:
        with np.errstate(divide="ignore"):
            mu, phi = solve_means(mu0, 1.0 / phi0), phi0
    # Keep a group's previous values where the bound did not increase beyond rounding.
    old = group_sum(surrogate(mu0, phi0))
    new = group_sum(surrogate(mu, phi))
    worse = np.broadcast_to(new < old - SAFEGUARD_RTOL * np.abs(old), (K, D))
    return np.where(worse, mu0, mu), np.where(worse, phi0, phi)

"""SQUAREM acceleration of EM (Varadhan & Roland 2008, scheme S3), written from the paper.

A SQUAREM cycle takes two EM steps from ``p0`` (``p1 = F(p0)``, ``p2 = F(p1)``),
extrapolates along them in the model's flat coordinates,
``p' = p0 - 2 a r + a**2 v`` with ``r = p1 - p0``, ``v = p2 - 2 p1 + p0`` and
the S3 step length ``a = -|r| / |v|`` clamped to ``[-step_max, -1]``
(``a = -1`` gives ``p2``, the plain double step), maps ``p'`` back to valid
parameters (the model's ``unpack`` projects), and stabilises with one more EM
step. The extrapolation is kept only if the objective at ``p'`` is finite and no
lower than at ``p1``; otherwise the cycle falls back to ``p2``, so the sequence
of recorded objectives never decreases. ``step_max`` grows by ``step_factor``
while extrapolations at the bound succeed and shrinks after a failure there.

References
----------
R. Varadhan and C. Roland (2008). Simple and globally convergent methods for
accelerating the convergence of any EM algorithm. Scand. J. Statist. 35:335-353.
"""

from __future__ import annotations

import numpy as np

__all__ = ["squarem", "squarem_step_length"]


def squarem_step_length(r: np.ndarray, v: np.ndarray, step_max: float) -> float:
    """S3 step length ``-|r|/|v|``, clamped to ``[-step_max, -1]``; -1 when ``v`` vanishes."""
    vv = float(v @ v)
    if not np.isfinite(vv) or vv == 0.0:
        return -1.0
    alpha = -np.sqrt(float(r @ r) / vv)
    return float(np.clip(alpha, -step_max, -1.0))


def squarem(model, params, evaluate, monitor, *, step_max0=1.0, step_factor=4.0):
    """Run SQUAREM cycles until a stopping rule holds or the budget of data passes is spent.

    Parameters
    ----------
    model : EMModel
        Supplies ``m_step``, ``pack``, ``unpack`` and ``params_converged``.
    params : object
        Starting parameters.
    evaluate : callable
        ``evaluate(p) -> (objective, stats)``: one pass over the data at ``p``.
    monitor : ConvergenceMonitor
        Records the objective of every pass (``visit`` or ``reject``), holds the
        budget of passes and the stopping rules.

    Returns
    -------
    params : object
        The last parameters whose objective was evaluated and accepted.
    """
    step_max = step_max0
    previous = None  # the EM state one step before p0, for the parameter rule

    p0 = params
    while True:
        stats0, stop = monitor.visit(model, evaluate, previous, p0)
        if stop:
            return p0
        p1 = model.m_step(stats0, p0)
        stats1, stop = monitor.visit(model, evaluate, p0, p1)
        if stop:
            return p1
        objective1 = monitor.history[-1]
        p2 = model.m_step(stats1, p1)

        x0 = model.pack(p0)
        r = model.pack(p1) - x0
        v = model.pack(p2) - x0 - 2.0 * r
        alpha = squarem_step_length(r, v, step_max)
        if alpha == -1.0:
            # The plain double step; at the bound it counts as a success there, so the bound grows.
            if alpha == -step_max:
                step_max *= step_factor
            previous, p0 = p1, p2
            continue
        extrapolated = model.unpack(x0 - 2.0 * alpha * r + alpha**2 * v, p0)
        if monitor.out_of_budget:
            return p1
        objective_ext, stats_ext = evaluate(extrapolated)
        if np.isfinite(objective_ext) and objective_ext >= objective1:
            monitor.record(objective_ext)
            if monitor.out_of_budget:
                return extrapolated
            if alpha == -step_max:
                step_max *= step_factor
            previous, p0 = extrapolated, model.m_step(stats_ext, extrapolated)
        else:
            monitor.reject()
            if monitor.out_of_budget:
                return p1
            if alpha == -step_max:
                step_max = max(step_max0, step_max / step_factor)
            previous, p0 = p1, p2

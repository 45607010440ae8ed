"""Restarts that pay: choose among ``n_init`` starts by a short EM run on a subsample.

Running every start to convergence on all rows costs ``n_init`` fits. Local
optima usually announce themselves early, so :func:`best_start` starts each
candidate on one common subsample of at most :data:`RESTART_SAMPLE` rows,
runs :data:`RESTART_STEPS` EM steps there, and returns the parameters of the
candidate with the highest objective; the caller refines those on all rows
with one ordinary run. ``n_init`` starts then cost ``n_init`` short runs on
the subsample plus one fit.

Model-agnostic: it needs only the engine's public API (an
:class:`skem._em.EMModel`'s ``initialize``, :func:`skem._em.run_em`,
:func:`skem._em.best_result`) and the row-source protocol (``init_rows``,
and :meth:`skem._em.RowData.take` on the in-memory rows it returns), so it
serves in-memory and dask rows alike.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._em import best_result, run_em

__all__ = ["RESTART_SAMPLE", "RESTART_STEPS", "best_start", "restart_sample"]

#: Rows (distinct, with their weights) that the candidate starts are compared on.
RESTART_SAMPLE = 10_000
#: EM steps each candidate runs on the subsample before the comparison.
RESTART_STEPS = 20


def restart_sample(model, data, random_state, sample_size=RESTART_SAMPLE):
    """The in-memory rows the candidates are compared on: at most ``sample_size``, drawn uniformly.

    Parameters
    ----------
    model : EMModel
        The model (dask rows need it to build their in-memory sample).
    data : RowData or skem._dask.DaskRows
        All rows.
    random_state : RandomState
        Draws the sample.
    sample_size : int
        Most rows to keep.

    Returns
    -------
    RowData
        Rows of ``data`` with their weights (uniformly drawn, so the weighted
        objective per unit of weight estimates the data's).
    """
    rows = data.init_rows(model, random_state)
    if rows.n_rows <= sample_size:
        return rows
    return rows.take(np.sort(random_state.choice(rows.n_rows, size=sample_size, replace=False)))


def best_start(model, data, seeds, controls, *, n_steps=RESTART_STEPS, sample_size=RESTART_SAMPLE,
               run_starts=None):
    """Starting parameters: the best of one start per seed after a short EM run on a subsample.

    Parameters
    ----------
    model : EMModel
        The model to start.
    data : RowData or skem._dask.DaskRows
        All rows.
    seeds : sequence of int
        One candidate start per seed (``model.initialize`` with
        ``RandomState(seed)``); the first also draws the common subsample.
    controls : EMControls
        The fit's controls; the short runs take ``n_steps`` steps with them
        (their tolerance may end a run earlier) and print nothing.
    n_steps : int, default=RESTART_STEPS
        EM steps per candidate on the subsample, at most the fit's ``max_iter`` (0 compares
        the starts themselves).
    sample_size : int, default=RESTART_SAMPLE
        Rows of the subsample.
    run_starts : callable, optional
        ``run_starts(model, rows, seeds, controls)``: one EM run per seed from
        a fresh start on ``rows``, as a list of :class:`skem._em.EMResult` in
        the order of ``seeds`` (the estimator's runs them in parallel with its
        ``n_jobs``). Default: one after another.

    Returns
    -------
    params
        The chosen candidate's parameters after its short run: a start for
        the run on all rows.
    """
    sample = restart_sample(model, data, np.random.RandomState(seeds[0]), sample_size)
    short = replace(controls, max_iter=min(n_steps, controls.max_iter), verbose=0)
    results = (run_starts or _runs_in_turn)(model, sample, seeds, short)
    return best_result(results).params


def _runs_in_turn(model, rows, seeds, controls):
    return [run_em(model, rows, model.initialize(rows, np.random.RandomState(seed), controls), controls)
            for seed in seeds]

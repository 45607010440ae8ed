"""The EM engine: one loop, shared by every estimator in skem.

The engine knows nothing about any distribution. It drives a *model* -- an
object with the hooks listed in :class:`EMModel` -- over *row data* -- a
:class:`RowData` whose row-aligned arrays are cut into chunks. One EM step is
one pass over the chunks, summing each chunk's additive sufficient statistics,
followed by the model's M-step on the sum. Because the statistics add up, the
result does not depend on the chunk size, and the ``(n_rows, K)`` work arrays
of the E-step never exist for more rows than one chunk.

The loop itself runs either plain EM or SQUAREM-accelerated EM
(:mod:`skem._accel`); both stop on the change of the objective per unit of
weight (``tol``), on the model's own parameter rule, or at ``max_iter``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any, ClassVar, Protocol

import numpy as np

from ._accel import squarem

__all__ = [
    "AdditiveStats",
    "ConvergenceMonitor",
    "EMModel",
    "EMResult",
    "RowData",
    "add_items",
    "e_pass",
    "run_em",
]

#: Rows per chunk are chosen so that one chunk's float64 work arrays take about this much.
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class RowData:
    """Row-aligned arrays that are cut into chunks together.

    Subclasses add their own fields (dense or sparse arrays with one row per
    data row). Fields named in ``_shared`` are tables for the whole data set
    (for example the distinct values that row entries point into) and are
    passed to every chunk unsliced.

    Parameters
    ----------
    weights : ndarray of shape (n_rows,)
        Row multiplicities (``sample_weight``).
    """

    weights: np.ndarray
    _shared: ClassVar[tuple[str, ...]] = ()

    @property
    def n_rows(self) -> int:
        return self.weights.shape[0]

    def take(self, rows: slice | np.ndarray) -> RowData:
        """The given rows (a slice or an index array) of every row-aligned field."""
        return replace(
            self,
            **{f.name: getattr(self, f.name)[rows] for f in fields(self) if f.name not in self._shared},
        )

    def chunks(self, chunk_rows: int | None):
        """Yield consecutive chunks of at most ``chunk_rows`` rows (all rows if None)."""
        n = self.n_rows
        if chunk_rows is None or chunk_rows >= n:
            yield self
            return
        for start in range(0, n, chunk_rows):
            yield self.take(slice(start, min(start + chunk_rows, n)))

    @property
    def total_weight(self) -> float:
        return float(self.weights.sum())

    def reduce_chunks(self, function, chunk_rows: int | None):
        """Sum ``function(chunk)`` over the chunks, in order.

        ``function`` returns a tuple whose items add up (statistics, floats);
        the result is their item-wise sum. Sources whose rows live elsewhere
        (:class:`skem._dask.DaskRows`) override this with a distributed reduction.
        """
        total = None
        for chunk in self.chunks(chunk_rows):
            value = function(chunk)
            total = value if total is None else add_items(total, value)
        return total

    def init_rows(self, random_state) -> RowData:
        """The in-memory rows that initialization works on: all of them here."""
        return self


@dataclass(frozen=True)
class AdditiveStats:
    """Sufficient statistics that add up over chunks of rows.

    Subclasses declare array or float fields; ``a + b`` adds them field by
    field, so the statistics of a data set are ``sum`` over its chunks. Fields
    named in ``_shared`` are data-set tables the M-step needs beside the sums
    (the same object in every chunk); they are carried along, not added.
    """

    _shared: ClassVar[tuple[str, ...]] = ()

    def __add__(self, other: AdditiveStats) -> AdditiveStats:
        return type(self)(
            **{
                f.name: getattr(self, f.name)
                if f.name in self._shared
                else getattr(self, f.name) + getattr(other, f.name)
                for f in fields(self)
            }
        )


class EMModel(Protocol):
    """What a model supplies to the engine (all hooks are pure functions of their arguments).

    ``_e_step(params, chunk) -> (stats, loglik)``
        Additive statistics of one chunk of :class:`RowData` and its weighted
        log-likelihood ``sum_i w_i log p(x_i | params)``.
    ``_m_step(stats, params) -> params``
        New parameters from the statistics summed over all chunks; ``params`` are
        the current ones (for fixed entries or warm-started inner solvers).
    ``_log_prior(params) -> float``
        Log prior density added to the objective (0 for maximum likelihood).
    ``_params_converged(old, new) -> bool``
        A model-specific stopping rule on two successive parameter sets, used
        together with the rule on the objective.
    ``_pack(params) -> ndarray`` / ``_unpack(vector, params) -> params``
        Flat coordinates in which SQUAREM extrapolates; ``_unpack`` maps any
        finite vector back to valid parameters (its projection).
    """

    def _e_step(self, params: Any, chunk: RowData) -> tuple[AdditiveStats, float]: ...
    def _m_step(self, stats: AdditiveStats, params: Any) -> Any: ...
    def _log_prior(self, params: Any) -> float: ...
    def _params_converged(self, old: Any, new: Any) -> bool: ...
    def _pack(self, params: Any) -> np.ndarray: ...
    def _unpack(self, vector: np.ndarray, params: Any) -> Any: ...


@dataclass(frozen=True)
class EMResult:
    """Outcome of one EM run from one starting point.

    Attributes
    ----------
    params : object
        The final parameters (those whose objective is ``lower_bounds[-1]``).
    lower_bounds : ndarray
        Objective (weighted mean log-likelihood plus log prior per unit of
        weight) of each accepted parameter state, in order.
    n_iter : int
        Number of EM iterations: passes over the data after the one that
        evaluated the start (with SQUAREM this includes rejected extrapolations).
    converged : bool
        Whether a stopping rule was met before ``max_iter``.
    """

    params: Any
    lower_bounds: np.ndarray
    n_iter: int
    converged: bool

    @property
    def lower_bound(self) -> float:
        return float(self.lower_bounds[-1])


@dataclass
class ConvergenceMonitor:
    """Records the objective of each accepted parameter state and decides when to stop.

    Created anew for every EM run, so it always sees the estimator's current
    ``tol`` and ``max_iter``.

    Parameters
    ----------
    tol : float
        Stop when the objective changes by less than this between two successive states.
    verbose : int
        0 silent; 1 prints a line per run; 2 also one every ``verbose_interval`` steps.
    verbose_interval : int
        Steps between two printed lines at ``verbose >= 2``.
    min_iter : int
        No stopping rule is applied before this many steps.
    """

    tol: float
    verbose: int = 0
    verbose_interval: int = 10
    min_iter: int = 0
    history: list[float] = field(default_factory=list)
    n_passes: int = 0
    _start: float = field(default_factory=time.perf_counter)

    #: Decreases smaller than this (relative) are floating-point noise, not a bug.
    NOISE: ClassVar[float] = np.sqrt(np.finfo(float).eps)

    def record(self, objective: float) -> None:
        self.history.append(objective)
        if self.verbose >= 2 and (len(self.history) - 1) % self.verbose_interval == 0:
            self._print_row()

    @property
    def n_steps(self) -> int:
        """EM iterations so far: passes over the data after the one at the start."""
        return max(self.n_passes - 1, 0)

    @property
    def may_stop(self) -> bool:
        """Whether the stopping rules apply yet (at least ``min_iter`` steps taken)."""
        return self.n_steps >= self.min_iter

    def should_stop(self, model, previous, current) -> bool:
        """Whether to stop at ``current``, reached by one EM step from ``previous``.

        True once ``min_iter`` steps are taken and either the objective changed by
        less than ``tol`` or the model's parameter rule holds. ``previous`` is None
        at the start, where no rule applies.
        """
        return (
            previous is not None
            and self.may_stop
            and (self.converged or model._params_converged(previous, current))
        )

    @property
    def change(self) -> float:
        if len(self.history) < 2:
            return np.inf
        return self.history[-1] - self.history[-2]

    @property
    def converged(self) -> bool:
        return abs(self.change) < self.tol

    def _print_row(self) -> None:
        elapsed = time.perf_counter() - self._start
        print(
            f"  step {self.n_steps:6d}  objective {self.history[-1]: .10e}"
            f"  change {self.change: .3e}  time {elapsed:8.3f}s"
        )


def add_items(a: tuple, b: tuple) -> tuple:
    """Item-wise sum of two tuples of summands."""
    return tuple(x + y for x, y in zip(a, b))


def e_pass(model: EMModel, params: Any, data: RowData, chunk_rows: int | None):
    """One E-step over all chunks: the summed statistics and the objective per unit weight."""
    # A partial of a module-level function (not a closure) so that the step can be
    # pickled to where the rows are, for sources that reduce remotely.
    stats, loglik = data.reduce_chunks(partial(_e_step_of, model, params), chunk_rows)
    objective = (loglik + model._log_prior(params)) / data.total_weight
    return stats, float(objective)


def _e_step_of(model, params, chunk):
    return model._e_step(params, chunk)


def run_em(
    model: EMModel,
    data: RowData,
    params: Any,
    *,
    max_iter: int,
    tol: float,
    accelerate: str = "none",
    chunk_rows: int | None = None,
    verbose: int = 0,
    verbose_interval: int = 10,
    min_iter: int = 0,
) -> EMResult:
    """Run EM from ``params`` until a stopping rule holds or ``max_iter`` steps are taken.

    Parameters
    ----------
    model : EMModel
        Supplies the E-step, M-step and (for acceleration) pack/unpack hooks.
    data : RowData
        The rows, with their weights.
    params : object
        Starting parameters.
    max_iter : int
        Maximum number of EM steps (M-steps). 0 evaluates the start only.
    tol : float
        Stopping threshold on the change of the objective per unit of weight.
    accelerate : {"none", "squarem"}
        Plain EM, or SQUAREM (scheme S3) extrapolation with a monotone safeguard.
    chunk_rows : int or None
        Rows per chunk of the E-step; None means all rows at once.
    verbose, verbose_interval : int
        Progress printing, see :class:`ConvergenceMonitor`.
    min_iter : int
        Minimum number of EM steps before any stopping rule applies (kallisto
        and salmon run 50 and 100 rounds before their parameter rule).

    Returns
    -------
    EMResult
    """
    monitor = ConvergenceMonitor(
        tol=tol, verbose=verbose, verbose_interval=verbose_interval, min_iter=min_iter
    )

    def evaluate(current):
        """One pass over the data: the objective at ``current`` and its statistics."""
        monitor.n_passes += 1
        stats, objective = e_pass(model, current, data, chunk_rows)
        return objective, stats

    if accelerate == "squarem":
        params, converged = squarem(model, params, evaluate, monitor, max_iter)
    else:
        params, converged = _plain_em(model, params, evaluate, monitor, max_iter)
    _warn_if_decreasing(monitor)
    return EMResult(
        params=params,
        lower_bounds=np.asarray(monitor.history),
        n_iter=monitor.n_steps,
        converged=converged,
    )


def _plain_em(model, params, evaluate, monitor, max_iter):
    previous = None
    while True:
        objective, stats = evaluate(params)
        monitor.record(objective)
        if monitor.should_stop(model, previous, params):
            return params, True
        if monitor.n_steps >= max_iter:
            return params, False
        previous, params = params, model._m_step(stats, params)


def _warn_if_decreasing(monitor: ConvergenceMonitor) -> None:
    history = np.asarray(monitor.history)
    if history.size < 2:
        return
    drops = history[:-1] - history[1:]
    scale = np.maximum(1.0, np.abs(history[1:]))
    if np.any(drops > ConvergenceMonitor.NOISE * scale):
        import warnings

        worst = int(np.argmax(drops / scale))
        warnings.warn(
            f"EM objective decreased by {drops[worst]:.3e} at step {worst + 1}; "
            "this indicates a numerical problem in the model's M-step.",
            RuntimeWarning,
            stacklevel=3,
        )

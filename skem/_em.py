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
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np

from ._accel import squarem
from ._params import pack_params, unpack_params
from ._rows import compress_rows

__all__ = [
    "AdditiveStats",
    "ConvergenceMonitor",
    "EMControls",
    "EMModel",
    "EMResult",
    "RowData",
    "RowSource",
    "add_items",
    "best_result",
    "chunk_rows",
    "e_pass",
    "in_memory_rows",
    "run_em",
]

#: Rows per chunk are chosen so that one chunk's float64 work arrays take about this much.
CHUNK_BYTES = 32 * 2**20


class RowSource(ABC):
    """The rows the engine iterates over, wherever they are.

    :class:`RowData` holds them in memory; :class:`skem._dask.DaskRows`
    reduces over the blocks of a dask array where they live. The EM loop (plain
    or SQUAREM) sees only this protocol, so it is the same loop for both.
    """

    @property
    @abstractmethod
    def n_rows(self) -> int:
        """Number of rows."""

    @property
    @abstractmethod
    def total_weight(self) -> float:
        """Sum of the row weights (the objective is reported per unit of it)."""

    @abstractmethod
    def reduce_chunks(self, function, model: EMModel, chunk_size: int | None):
        """Item-wise sum of ``function(chunk)`` (a tuple of summands) over all chunks of rows."""

    @abstractmethod
    def init_rows(self, model: EMModel, random_state) -> RowData:
        """The in-memory rows that initialization works on."""


@dataclass(frozen=True)
class RowData(RowSource):
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

    def reduce_chunks(self, function, model: EMModel, chunk_size: int | None):
        """Sum ``function(chunk)`` over the chunks, in order.

        ``function`` returns a tuple whose items add up (statistics, floats);
        the result is their item-wise sum. Chunks are sized by
        :func:`chunk_rows`. Sources whose rows live elsewhere
        (:class:`skem._dask.DaskRows`) follow the same protocol with a
        distributed reduction.
        """
        total = None
        for chunk in self.chunks(chunk_rows(self, model, chunk_size)):
            value = function(chunk)
            total = value if total is None else add_items(total, value)
        return total

    def init_rows(self, model: EMModel, random_state) -> RowData:
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


@dataclass(frozen=True)
class EMControls:
    """How long and how the engine iterates: the estimators' shared EM controls.

    Parameters
    ----------
    max_iter : int
        Maximum number of EM steps (M-steps). 0 evaluates the start only.
    tol : float
        Stop when the objective per unit of weight changes by less than
        ``tol * max(1, |objective|)`` between two accepted states: an absolute
        change for objectives of order one, a relative one (as R flexmix's
        ``tolerance``) for rows with many features, whose log-likelihood is large.
    accelerate : {"squarem"} or None
        SQUAREM (scheme S3) extrapolation with a monotone safeguard, or plain
        EM (None; "none" is accepted as a synonym).
    chunk_size : int or None
        Rows per chunk of the E-step. None sizes chunks automatically so that
        one chunk's work arrays take about :data:`CHUNK_BYTES` (see
        :func:`chunk_rows`), for in-memory rows and within each dask block
        alike. The result does not depend on it.
    verbose, verbose_interval : int
        Progress printing, see :class:`ConvergenceMonitor`.
    """

    max_iter: int = 100
    tol: float = 1e-3
    accelerate: str | None = None
    chunk_size: int | None = None
    verbose: int = 0
    verbose_interval: int = 10


class EMModel(ABC):
    """What a model supplies to the engine and to the estimator that builds it.

    A model is a small, immutable object: the hyperparameters and the
    fit-time tables (transcript lengths, an alphabet...) of one problem,
    never an estimator. Every hook is a pure function of its arguments;
    ``params`` are the model's own frozen dataclass of parameters and
    ``stats`` its :class:`AdditiveStats`. :class:`skem._mixture.MixtureModel`
    implements the EM hooks of finite mixtures from four smaller ones.

    Data
        ``prepare(X, weights, **row_metadata) -> RowData``
            Row data the engine iterates over, from validated ``X``; a model
            whose estimator takes per-row metadata (arrays of shape (n_rows,)
            given to ``fit`` and the inference methods) receives them here.
        ``work_per_row(data) -> int``
            float64 values of E-step work per row, to size chunks (:func:`chunk_rows`).
    EM
        ``initialize(data, random_state, controls) -> params``
            Starting parameters; must respect ``data.weights`` (a weight is a
            multiplicity). Any pass or inner EM run it makes follows
            ``controls`` (:class:`EMControls`: chunk size, printing).
        ``e_step(params, chunk) -> (stats, loglik)``
            Additive statistics of one chunk and ``sum_i w_i log p(x_i | params)``.
        ``m_step(stats, params) -> params``
            New parameters from the statistics summed over all chunks; ``params``
            are the current ones (for fixed entries or warm-started inner solvers).
        ``log_prior(params) -> float``
            Log prior density added to the objective (default 0: maximum likelihood).
        ``params_converged(old, new) -> bool``
            A model-specific stopping rule on two successive parameter sets,
            applied together with the rule on the objective (default: none).
        ``pack(params) -> ndarray``, ``unpack(vector, params) -> params``
            Flat unconstrained coordinates in which SQUAREM extrapolates;
            ``unpack`` maps any finite vector back to valid parameters. Derived
            from the parameter fields' declared spaces (:func:`skem._params.param`),
            less ``fixed_fields``; a model overrides them only for constraints
            beyond one space per field.
    Inference on rows
        ``score_samples(params, chunk) -> ndarray (n,)``
            ``log p(x_i)`` of each row.
        ``predict_proba(params, chunk) -> array (n, n_outputs)``
            Posterior of the hidden variable of each row; ``n_outputs`` is a
            property of the model.
        ``n_parameters(params) -> int``
            Free parameters, for BIC and AIC.
    Dask (only when ``fits_dask`` is true; see :mod:`skem._dask`)
        ``check_block(X) -> X``
            Validate and convert one raw block of rows.
        ``summarize_block(X) -> object``, ``dask_layout(summaries, map_blocks) -> object``,
        ``prepare_block(X, weights, layout) -> RowData``
            Data-wide tables shared by all blocks (defaults: none).

    Engine options are declared, not probed: ``min_iter`` (no stopping rule
    before that many steps) and ``compress_rows`` (whether identical rows may
    be collapsed into one with the summed weight).
    """

    min_iter: ClassVar[int] = 0
    compress_rows: ClassVar[bool] = True
    fits_dask: ClassVar[bool] = False

    #: Parameter fields that SQUAREM holds fixed (for example a known dispersion).
    fixed_fields: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def prepare(self, X, weights) -> RowData: ...

    @abstractmethod
    def work_per_row(self, data: RowData) -> int: ...

    @abstractmethod
    def initialize(self, data: RowData, random_state, controls: EMControls) -> Any: ...

    @abstractmethod
    def e_step(self, params: Any, chunk: RowData) -> tuple[AdditiveStats, float]: ...

    @abstractmethod
    def m_step(self, stats: AdditiveStats, params: Any) -> Any: ...

    def log_prior(self, params: Any) -> float:
        return 0.0

    def params_converged(self, old: Any, new: Any) -> bool:
        return False

    def pack(self, params: Any) -> np.ndarray:
        vector = pack_params(params, self.fixed_fields)
        if vector.size == 0:
            raise NotImplementedError(
                f"{type(self).__name__} declares no parameter spaces (skem._params.param): "
                "it cannot be accelerated."
            )
        return vector

    def unpack(self, vector: np.ndarray, params: Any) -> Any:
        return unpack_params(vector, params, self.fixed_fields)

    @abstractmethod
    def score_samples(self, params: Any, chunk: RowData) -> np.ndarray: ...

    @abstractmethod
    def predict_proba(self, params: Any, chunk: RowData): ...

    @abstractmethod
    def n_parameters(self, params: Any) -> int: ...

    def check_block(self, X):
        raise TypeError(f"{type(self).__name__} does not fit dask arrays; compute X first.")

    def summarize_block(self, X):
        self.check_block(X)

    def dask_layout(self, summaries, map_blocks):
        return None

    def prepare_block(self, X, weights, layout) -> RowData:
        return self.prepare(self.check_block(X), weights)


def chunk_rows(data: RowData, model: EMModel, chunk_size: int | None) -> int:
    """Rows per E-step chunk: ``chunk_size``, or (None) as many as fit in :data:`CHUNK_BYTES`.

    The one place where chunks are sized, for in-memory rows and dask blocks alike.
    """
    if chunk_size is not None:
        return int(chunk_size)
    return max(1024, CHUNK_BYTES // (8 * max(1, model.work_per_row(data))))


def best_result(results: list[EMResult]) -> EMResult:
    """The first of the results whose objective is the highest up to rounding.

    Runs that reach one optimum (often with components in another order) tie;
    rounding, which depends on the chunk size, must not choose between them.
    """
    top = max(result.lower_bound for result in results)
    margin = ConvergenceMonitor.NOISE * max(1.0, abs(top))
    return next(result for result in results if result.lower_bound >= top - margin)


def in_memory_rows(model: EMModel, X, weights, row_metadata=None) -> RowData:
    """Row data of validated ``X``: identical rows collapsed (where the model allows),
    rows of weight 0 dropped.

    ``row_metadata`` maps names to per-row arrays of shape (n_rows,) that travel
    with the rows into ``model.prepare(X, weights, **row_metadata)``; rows are
    identical only if their metadata are too.
    """
    metadata = dict(row_metadata or {})
    if model.compress_rows:
        distinct, summed, inverse = compress_rows(X, weights)
        if metadata:
            # Split the groups of identical rows by their metadata values.
            keys = np.column_stack([inverse.astype(np.float64), *metadata.values()])
            _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            X = X[first]
            weights = np.bincount(inverse.reshape(-1), weights=weights, minlength=first.size)
            metadata = {name: values[first] for name, values in metadata.items()}
        else:
            X, weights = distinct, summed
    keep = weights > 0
    if not keep.all():
        X, weights = X[keep], weights[keep]
        metadata = {name: values[keep] for name, values in metadata.items()}
    return model.prepare(X, weights, **metadata)


@dataclass(frozen=True)
class EMResult:
    """Outcome of one EM run from one starting point.

    Attributes
    ----------
    params : object
        The final parameters (those whose objective is ``lower_bound``).
    lower_bound : float
        Objective (weighted log-likelihood plus log prior, per unit of weight)
        at ``params``.
    lower_bounds : ndarray of shape (n_iter,)
        The objective after each EM iteration: the value at the best state
        reached so far (with SQUAREM, a rejected extrapolation repeats it).
    n_iter : int
        Number of EM iterations: passes over the data after the one that
        evaluated the start.
    converged : bool
        Whether a stopping rule was met before ``max_iter``.
    """

    params: Any
    lower_bound: float
    lower_bounds: np.ndarray
    n_iter: int
    converged: bool


@dataclass
class ConvergenceMonitor:
    """Records the objective of each parameter state and decides when to stop.

    Created anew for every EM run, so it always sees the current controls.

    Parameters
    ----------
    tol : float
        Stop when the objective changes by less than ``tol * max(1, |objective|)``
        between two successive accepted states.
    verbose : int
        0 silent; 1 prints a line per run; 2 also one every ``verbose_interval`` steps.
    verbose_interval : int
        Steps between two printed lines at ``verbose >= 2``.
    min_iter : int
        No stopping rule is applied before this many steps.
    max_iter : int or None
        The budget of steps (None: unlimited).
    """

    tol: float
    verbose: int = 0
    verbose_interval: int = 10
    min_iter: int = 0
    max_iter: int | None = None
    #: Whether a stopping rule (not the budget) ended the run.
    converged_by_rule: bool = False
    #: Objectives of the accepted states, in order (the stopping rule compares these).
    history: list[float] = field(default_factory=list)
    #: After each pass over the data, the objective of the best state so far.
    trace: list[float] = field(default_factory=list)
    _start: float = field(default_factory=time.perf_counter)

    #: Decreases smaller than this (relative) are floating-point noise, not a bug.
    NOISE: ClassVar[float] = np.sqrt(np.finfo(float).eps)

    def record(self, objective: float) -> None:
        """An evaluated state that the run accepts."""
        self.history.append(objective)
        self.trace.append(objective)
        if self.verbose >= 2 and self.n_steps % self.verbose_interval == 0:
            self._print_row()

    def visit(self, model: EMModel, evaluate, previous, params):
        """Evaluate ``params`` (one pass), record the objective, and decide whether to stop.

        ``previous`` is the state one EM step before ``params`` (None at the start).

        Returns
        -------
        stats : AdditiveStats
            The statistics at ``params``, for the next M-step.
        stop : bool
            True when a stopping rule holds (then ``converged_by_rule`` is set) or the
            budget is spent.
        """
        objective, stats = evaluate(params)
        self.record(objective)
        if self.should_stop(model, previous, params):
            self.converged_by_rule = True
            return stats, True
        return stats, self.out_of_budget

    @property
    def out_of_budget(self) -> bool:
        return self.max_iter is not None and self.n_steps >= self.max_iter

    def reject(self) -> None:
        """A pass whose state the run does not accept (a failed extrapolation)."""
        self.trace.append(self.history[-1])

    @property
    def n_steps(self) -> int:
        """EM iterations so far: passes over the data after the one at the start."""
        return max(len(self.trace) - 1, 0)

    def should_stop(self, model: EMModel, previous, current) -> bool:
        """Whether to stop at ``current``, reached by one EM step from ``previous``.

        True once ``min_iter`` steps are taken and either the objective changed by
        less than ``tol`` or the model's parameter rule holds. ``previous`` is None
        at the start, where no rule applies.
        """
        return (
            previous is not None
            and self.n_steps >= self.min_iter
            and (self.converged or model.params_converged(previous, current))
        )

    @property
    def change(self) -> float:
        if len(self.history) < 2:
            return np.inf
        return self.history[-1] - self.history[-2]

    @property
    def converged(self) -> bool:
        return abs(self.change) < self.tol * max(1.0, abs(self.history[-1]))

    def _print_row(self) -> None:
        elapsed = time.perf_counter() - self._start
        print(
            f"  step {self.n_steps:6d}  objective {self.history[-1]: .10e}"
            f"  change {self.change: .3e}  time {elapsed:8.3f}s"
        )


def add_items(a: tuple, b: tuple) -> tuple:
    """Item-wise sum of two tuples of summands."""
    return tuple(x + y for x, y in zip(a, b))


def e_pass(model: EMModel, params: Any, data: RowData, chunk_size: int | None = None):
    """One E-step over all chunks: the summed statistics and the objective per unit weight."""
    # A partial of a module-level function (not a closure) so that the step can be
    # pickled to where the rows are, for sources that reduce remotely.
    stats, loglik = data.reduce_chunks(partial(_e_step_of, model, params), model, chunk_size)
    objective = (loglik + model.log_prior(params)) / data.total_weight
    return stats, float(objective)


def _e_step_of(model, params, chunk):
    return model.e_step(params, chunk)


def run_em(model: EMModel, data: RowData, params: Any, controls: EMControls) -> EMResult:
    """Run EM from ``params`` until a stopping rule holds or ``controls.max_iter`` steps are taken.

    Parameters
    ----------
    model : EMModel
        Supplies the E-step, M-step, stopping rule and (for acceleration) pack/unpack.
    data : RowData or skem._dask.DaskRows
        The rows, with their weights.
    params : object
        Starting parameters.
    controls : EMControls
        Budget, tolerance, acceleration, chunk size and printing.

    Returns
    -------
    EMResult
    """
    monitor = ConvergenceMonitor(
        tol=controls.tol, verbose=controls.verbose, verbose_interval=controls.verbose_interval,
        min_iter=model.min_iter, max_iter=controls.max_iter,
    )

    def evaluate(current):
        """One pass over the data: the objective at ``current`` and its statistics."""
        stats, objective = e_pass(model, current, data, controls.chunk_size)
        return objective, stats

    if controls.accelerate in (None, "none"):
        params = _plain_em(model, params, evaluate, monitor)
    elif controls.accelerate == "squarem":
        params = squarem(model, params, evaluate, monitor)
    else:
        raise ValueError(f"accelerate must be None or 'squarem', got {controls.accelerate!r}.")
    _warn_if_decreasing(monitor)
    return EMResult(
        params=params,
        lower_bound=float(monitor.history[-1]),
        lower_bounds=np.asarray(monitor.trace[1:]),
        n_iter=monitor.n_steps,
        converged=monitor.converged_by_rule,
    )


def _plain_em(model, params, evaluate, monitor):
    previous = None
    while True:
        stats, stop = monitor.visit(model, evaluate, previous, params)
        if stop:
            return params
        previous, params = params, model.m_step(stats, params)


def _warn_if_decreasing(monitor: ConvergenceMonitor) -> None:
    history = np.asarray(monitor.history)
    if history.size < 2:
        return
    drops = history[:-1] - history[1:]
    scale = np.maximum(1.0, np.abs(history[1:]))
    if np.any(drops > ConvergenceMonitor.NOISE * scale):
        worst = int(np.argmax(drops / scale))
        warnings.warn(
            f"EM objective decreased by {drops[worst]:.3e} at step {worst + 1}; "
            "this indicates a numerical problem in the model's M-step.",
            RuntimeWarning,
            stacklevel=3,
        )

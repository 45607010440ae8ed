"""Base classes: the scikit-learn face of the EM engine.

:class:`BaseEM` owns everything that is the same for every estimator --
parameter validation, ``sample_weight``, exact row compression, ``n_init``
restarts (optionally in parallel), ``warm_start``, chunking, warnings and
the fitted attributes that describe the run -- and the public methods built
on them. :class:`BaseMixture` adds what finite mixtures share: the E-step
from per-component log-probabilities, initialization from responsibilities,
``predict_proba`` and ``sample``. A subclass supplies only its own math
through the hooks listed in each class docstring.
"""

from __future__ import annotations

import functools
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._compat import Interval, StrOptions, _check_sample_weight, _fit_context
from ._dask import DaskRows, is_dask_array, map_rows
from ._em import CHUNK_BYTES, run_em
from ._rows import compress_rows, stack_rows

__all__ = ["BaseEM", "BaseMixture"]

#: k-means initialization clusters at most this many rows, then assigns all rows.
INIT_SAMPLE = 10_000


def _lazy_on_dask(output):
    """Answer a dask array lazily with the same method applied block by block.

    ``output`` is "values" (one float per row), "labels" (one integer per
    row) or "posterior" (``_n_outputs()`` floats per row).
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, X, *args, **kwargs):
            if not is_dask_array(X):
                return method(self, X, *args, **kwargs)
            check_is_fitted(self)
            n_columns = self._n_outputs() if output == "posterior" else None
            dtype = np.intp if output == "labels" else np.float64
            return map_rows(self, method.__name__, X, n_columns, dtype)

        return wrapper

    return decorate


class BaseEM(DensityMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of skem's estimators: scikit-learn API around the shared EM engine.

    Subclasses implement these hooks (all but the data hooks are pure
    functions of their arguments; ``params`` is the subclass's own frozen
    dataclass of parameters):

    ``_validate_X(X, reset)``
        Validate and convert user input (sets ``n_features_in_`` when ``reset``).
    ``_prepare(X, weights) -> RowData``
        The row data the engine iterates over.
    ``_check_fit_data(X)``
        Raise ValueError for data that cannot be fitted with these parameters.
    ``_initialize(data, random_state) -> params``
        Starting parameters (must respect ``data.weights``).
    ``_e_step``, ``_m_step``, ``_log_prior``, ``_params_converged``, ``_pack``, ``_unpack``
        The engine's model contract, see :class:`skem._em.EMModel`.
    ``_score_samples(params, data) -> ndarray (n,)``, ``_predict_proba(params, data)``
        Per-row log-likelihood and posterior.
    ``_finish_fit(params, data) -> params``
        Optional last step on the best run's parameters with the training
        data, before they are published (default: unchanged); it may also set
        fitted attributes that need the data.
    ``_get_fitted_params() -> params``, ``_set_fitted_params(params)``
        Read and publish the public fitted attributes (``weights_``, ``means_``...).
    ``_n_parameters() -> int``
        Free parameters, for BIC and AIC.
    ``_work_per_row(data) -> int``
        float64 values of E-step work per row, to size chunks automatically.

    A subclass with a ``min_iter`` parameter has it passed to the engine (no
    stopping rule before that many iterations); the others use 0.

    Dask arrays (see :mod:`skem._dask`): a subclass with ``_fits_dask = True``
    fits them block by block through these hooks, whose defaults suit models
    whose blocks need nothing from the rest of the data:

    ``_summarize_block(X_block) -> object``
        Validate one block during the first pass; return what ``_dask_layout``
        needs from it (default: validate with ``_validate_X``, return None).
    ``_dask_layout(summaries, rows) -> object``
        Data-wide tables shared by all blocks, from the blocks' summaries;
        ``rows.map_blocks(function)`` runs a further pass if needed (default None).
    ``_prepare_block(X_block, weights, layout) -> RowData``
        A block's row data (default: ``_prepare(_validate_X(X_block), weights)``).
    ``_n_outputs() -> int``
        Columns of ``predict_proba``, for its lazy result on dask input.
    """

    _parameter_constraints: dict = {
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "accelerate": [StrOptions({"none", "squarem"})],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    }

    #: Whether fit collapses identical rows (every estimator here can; a subclass may opt out).
    _compress_rows = True
    #: Whether fit accepts dask arrays (through the block hooks).
    _fits_dask = False

    def __init__(
        self,
        *,
        n_init,
        init_params,
        max_iter,
        tol,
        accelerate,
        chunk_size,
        n_jobs,
        warm_start,
        random_state,
        verbose,
        verbose_interval,
    ):
        self.n_init = n_init
        self.init_params = init_params
        self.max_iter = max_iter
        self.tol = tol
        self.accelerate = accelerate
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model's parameters by EM.

        The model is fitted ``n_init`` times from different starts and the
        run with the highest final log-likelihood is kept. Each run iterates
        until the objective changes by less than ``tol`` per unit of weight
        (or the model's own stopping rule holds), or ``max_iter`` is reached,
        in which case a :class:`~sklearn.exceptions.ConvergenceWarning` is
        raised.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Training data. Estimators that accept a dask array fit it block by
            block where the blocks are (see :mod:`skem._dask`).
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row multiplicities: a row with weight 2 counts as two
            identical rows. A dask array for dask ``X`` (rechunked like its rows).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        on_dask = is_dask_array(X)
        if on_dask:
            data = DaskRows.for_fit(self, X, sample_weight)
            chunk_rows = None  # each block sizes its own chunks, where it is
        else:
            X = self._validate_X(X, reset=True)
            weights = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            self._check_fit_data(X)
            data = self._in_memory_rows(X, weights)
            chunk_rows = self._chunk_rows(data)

        if self.warm_start and hasattr(self, "converged_"):
            starts = [self._get_fitted_params()]
        else:
            rng = check_random_state(self.random_state)
            starts = rng.randint(np.iinfo(np.int32).max, size=self.n_init)
        # Seeds are drawn up front and results collected in submission order, so a
        # parallel fit is identical to a serial one. Runs on dask rows stay in threads
        # of this process, which holds the connection to the cluster.
        results = Parallel(n_jobs=self.n_jobs, require="sharedmem" if on_dask else None)(
            delayed(self._run_from)(data, start, chunk_rows, index)
            for index, start in enumerate(starts)
        )
        best = max(results, key=lambda result: result.lower_bound)

        self._set_fitted_params(self._finish_fit(best.params, data))
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.lower_bounds_ = best.lower_bounds
        self.lower_bound_ = best.lower_bound
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"Best of {len(starts)} EM run(s) did not converge in max_iter={self.max_iter} "
                "iterations. Try a larger max_iter, a larger tol, or accelerate='squarem'.",
                ConvergenceWarning,
            )
        return self

    def _in_memory_rows(self, X, weights):
        """Row data of validated ``X``: identical rows collapsed, rows of weight 0 dropped."""
        if self._compress_rows:
            X, weights, _ = compress_rows(X, weights)
        keep = weights > 0
        if not keep.all():
            X, weights = X[keep], weights[keep]
        return self._prepare(X, weights)

    def _run_from(self, data, start, chunk_rows, index):
        if self.verbose:
            print(f"Initialization {index}")
        if isinstance(start, (Integral, np.integer)):
            random_state = np.random.RandomState(start)
            params = self._initialize(data.init_rows(random_state), random_state)
        else:
            params = start
        result = self._run_em(data, params, chunk_rows)
        if self.verbose:
            state = "converged" if result.converged else "did not converge"
            print(
                f"Initialization {index} {state} after {result.n_iter} iterations; "
                f"objective {result.lower_bound:.10g}"
            )
        return result

    def _run_em(self, data, params, chunk_rows):
        """The engine from ``params`` with this estimator's EM controls."""
        return run_em(
            self,
            data,
            params,
            max_iter=self.max_iter,
            tol=self.tol,
            accelerate=self.accelerate,
            chunk_rows=chunk_rows,
            verbose=self.verbose,
            verbose_interval=self.verbose_interval,
            min_iter=getattr(self, "min_iter", 0),
        )

    def _chunk_rows(self, data):
        if self.chunk_size is not None:
            return self.chunk_size
        return max(1024, CHUNK_BYTES // (8 * max(1, self._work_per_row(data))))

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model and return the most probable component of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels, equal to ``fit(X).predict(X)``.
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # -------------------------------------------------- inference on new rows

    def _prepare_new(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._prepare(X, np.ones(X.shape[0]))

    def _chunked(self, function, data):
        """Apply ``function(params, chunk)`` chunk by chunk and stack the rows."""
        params = self._get_fitted_params()
        pieces = [function(params, chunk) for chunk in data.chunks(self._chunk_rows(data))]
        return stack_rows(pieces)

    @_lazy_on_dask("values")
    def score_samples(self, X):
        """Log-likelihood of each row under the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Rows to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            ``log p(x_i)``, including all normalizing constants; a lazy dask
            array (computed block by block) for dask ``X``.
        """
        return self._chunked(self._score_samples, self._prepare_new(X))

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per row (weighted when ``sample_weight`` is given).

        Higher is better, so ``GridSearchCV`` and ``cross_val_score`` select
        models by held-out likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities.

        Returns
        -------
        score : float
        """
        log_likelihood = self.score_samples(X)
        return float(np.average(log_likelihood, weights=sample_weight))

    @_lazy_on_dask("posterior")
    def predict_proba(self, X):
        """Posterior probability of each component (or transcript) for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Rows to evaluate.

        Returns
        -------
        posterior : ndarray of shape (n_samples, n_components)
            Rows sum to 1. A lazy dask array for dask ``X``.
        """
        return self._chunked(self._predict_proba, self._prepare_new(X))

    @_lazy_on_dask("labels")
    def predict(self, X):
        """Most probable component (or transcript) of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A lazy dask array for dask ``X``.
        """
        return np.asarray(self.predict_proba(X).argmax(axis=1)).reshape(-1)

    def bic(self, X):
        """Bayesian information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        bic : float
            ``-2 log L + p log n`` with ``p`` free parameters.
        """
        n = _n_rows(X)
        return -2.0 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        aic : float
            ``-2 log L + 2 p`` with ``p`` free parameters.
        """
        return -2.0 * self.score(X) * _n_rows(X) + 2.0 * self._n_parameters()

    # ------------------------------------------------------ default hooks

    def _check_fit_data(self, X):
        """Data-dependent checks before any work; none by default."""

    def _log_prior(self, params):
        return 0.0

    def _finish_fit(self, params, data):
        return params

    def _summarize_block(self, X):
        self._validate_X(X, reset=False)

    def _dask_layout(self, summaries, rows):
        return None

    def _prepare_block(self, X, weights, layout):
        return self._prepare(self._validate_X(X, reset=False), weights)

    def _params_converged(self, old, new):
        return False

    @abstractmethod
    def _validate_X(self, X, reset): ...

    @abstractmethod
    def _prepare(self, X, weights): ...

    @abstractmethod
    def _initialize(self, data, random_state): ...

    @abstractmethod
    def _e_step(self, params, chunk): ...

    @abstractmethod
    def _m_step(self, stats, params): ...

    @abstractmethod
    def _get_fitted_params(self): ...

    @abstractmethod
    def _set_fitted_params(self, params): ...

    @abstractmethod
    def _n_parameters(self): ...


class BaseMixture(BaseEM):
    """Finite mixtures: the E-step, initialization and sampling from per-component hooks.

    On top of :class:`BaseEM`'s hooks (except ``_e_step``, ``_score_samples``,
    ``_predict_proba`` and ``_initialize``, which this class provides), a
    mixture implements:

    ``_estimate_log_prob(params, chunk) -> ndarray (n, K)``
        ``log p(x_i | component k)``.
    ``_accumulate(chunk, weighted_resp) -> AdditiveStats``
        Statistics of a chunk given ``w_i * q_ik``.
    ``_init_features(data, rows) -> array (n_rows, d)``
        Euclidean features of the given rows (slice or index array) for k-means.
    ``_sample_component(params, k, n, random_state) -> ndarray (n, n_features)``
        Draw rows from component ``k``.

    Parameters must have a ``weights`` field (the mixing proportions, shape (K,)).
    """

    _parameter_constraints: dict = {
        **BaseEM._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "k-means++", "random", "random_from_data"})],
    }

    def _check_fit_data(self, X):
        n_samples = X.shape[0]
        if n_samples < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n_samples}."
            )

    #: Mixtures fit dask arrays: their E-step and initialization need nothing beyond the hooks.
    _fits_dask = True

    def _work_per_row(self, data):
        return 4 * self.n_components

    def _n_outputs(self):
        return self.n_components

    def _weighted_log_prob(self, params, chunk):
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        return self._estimate_log_prob(params, chunk) + log_weights

    def _e_step(self, params, chunk):
        resp, log_norm = normalize_log_prob(self._weighted_log_prob(params, chunk), axis=1)
        resp *= chunk.weights[:, None]
        return self._accumulate(chunk, resp), float(chunk.weights @ log_norm)

    def _score_samples(self, params, chunk):
        return normalize_log_prob(self._weighted_log_prob(params, chunk), axis=1)[1]

    def _predict_proba(self, params, chunk):
        return normalize_log_prob(self._weighted_log_prob(params, chunk), axis=1)[0]

    def _initialize(self, data, random_state):
        resp = self._initial_resp(data, random_state)
        stats = self._accumulate(data, resp * data.weights[:, None])
        return self._m_step(stats, None)

    def _initial_resp(self, data, random_state):
        """Responsibilities ``(n, K)`` that start EM, by ``init_params``; weight-aware."""
        n, K = data.n_rows, self.n_components
        weights = data.weights
        if self.init_params == "random":
            resp = random_state.uniform(size=(n, K))
            return resp / resp.sum(axis=1, keepdims=True)
        resp = np.zeros((n, K))
        if self.init_params == "random_from_data":
            chosen = _weighted_choice(weights, K, random_state)
            resp[chosen, np.arange(K)] = 1.0
            return resp
        # k-means on at most INIT_SAMPLE rows (drawn uniformly, keeping their weights), then
        # every row goes to its nearest center, chunk by chunk: the start costs little memory.
        sample = np.arange(n)
        if n > INIT_SAMPLE:
            sample = np.sort(random_state.choice(n, size=INIT_SAMPLE, replace=False))
        features = self._init_features(data, sample)
        if self.init_params == "k-means++":
            centers, _ = kmeans_plusplus(
                features, K, sample_weight=weights[sample], random_state=random_state
            )
        else:
            kmeans = KMeans(n_clusters=K, n_init=3, random_state=random_state)
            centers = kmeans.fit(features, sample_weight=weights[sample]).cluster_centers_
        step = self._chunk_rows(data)
        labels = np.concatenate([
            pairwise_distances_argmin(self._init_features(data, slice(start, start + step)), centers)
            for start in range(0, n, step)
        ])
        resp[np.arange(n), labels] = 1.0
        return resp

    def sample(self, n_samples=1):
        """Draw rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The rows, grouped by component.
        y : ndarray of shape (n_samples,)
            The component each row was drawn from.
        """
        check_is_fitted(self)
        if not (isinstance(n_samples, (Integral, np.integer)) and n_samples >= 1):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        params = self._get_fitted_params()
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, params.weights)
        X = np.concatenate(
            [self._sample_component(params, k, n_k, rng) for k, n_k in enumerate(counts)]
        )
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    @abstractmethod
    def _estimate_log_prob(self, params, chunk): ...

    @abstractmethod
    def _accumulate(self, chunk, weighted_resp): ...

    @abstractmethod
    def _init_features(self, data, rows): ...

    @abstractmethod
    def _sample_component(self, params, k, n, random_state): ...


def normalize_log_prob(log_prob, axis):
    """Posterior probabilities and log-sum-exp of ``log_prob`` along ``axis``, in place.

    One exponential serves both results (``scipy.special.logsumexp`` followed by
    another ``exp`` would take two), which matters when the E-step is otherwise
    a single matrix product.

    Parameters
    ----------
    log_prob : ndarray
        Log joint probabilities; overwritten by the probabilities.
    axis : int
        The component axis.

    Returns
    -------
    prob : ndarray
        ``exp(log_prob - log_norm)``, summing to 1 along ``axis`` (``log_prob``'s memory).
    log_norm : ndarray
        ``log sum exp(log_prob)`` along ``axis``.
    """
    top = log_prob.max(axis=axis, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    prob = np.exp(np.subtract(log_prob, top, out=log_prob), out=log_prob)
    total = prob.sum(axis=axis, keepdims=True)
    prob /= total
    return prob, np.squeeze(np.log(total) + top, axis=axis)


def _weighted_choice(weights, k, random_state):
    """``k`` distinct row indices drawn with probability proportional to ``weights``."""
    return random_state.choice(weights.shape[0], size=k, replace=False, p=weights / weights.sum())


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)

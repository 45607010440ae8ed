"""Base classes: the scikit-learn face of the EM engine.

:class:`BaseEM` owns everything that is the same for every estimator --
parameter validation, ``sample_weight``, exact row compression, ``n_init``
restarts (optionally in parallel), ``warm_start``, dask input, warnings and
the fitted attributes that describe the run -- and the public methods built
on them. The math is elsewhere: ``fit`` builds a *model*
(:class:`skem._em.EMModel`, a small frozen object) from the estimator's
hyperparameters and the data, and the engine (:func:`skem._em.run_em`) fits
it. :class:`BaseMixture` adds the parameters and ``sample`` that finite
mixtures share.
"""

from __future__ import annotations

import copy
import functools
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from ._compat import Interval, StrOptions, fit_context
from ._dask import DaskRows, dask_row_blocks, is_dask_array, map_rows
from ._em import EMControls, chunk_rows, in_memory_rows, run_em
from ._restarts import best_start
from ._rows import check_sample_weight, stack_rows

__all__ = ["BaseEM", "BaseMixture", "lazy_on_dask"]

#: BLAS threads in EM runs and predictions. The products are skinny (rows x features
#: times features x components): a second BLAS thread gains little on an idle machine
#: and costs several times over on a busy one or inside a parallel grid search, so
#: parallelism comes from ``n_jobs`` (restarts) and dask (rows) instead. See
#: benchmarks/bench_threads.py.
BLAS_THREADS = 1


def lazy_on_dask(output):
    """Answer a dask array lazily with the same method applied block by block.

    ``output`` is "values" (one float per row), "labels" (one integer per
    row) or "posterior" (the model's ``n_outputs`` floats per row).
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, X, *args, **kwargs):
            if not is_dask_array(X):
                return method(self, X, *args, **kwargs)
            check_is_fitted(self)
            _no_row_metadata_on_dask(kwargs)
            n_columns = self._model.n_outputs if output == "posterior" else None
            dtype = np.intp if output == "labels" else np.float64
            return map_rows(self, method.__name__, X, n_columns, dtype)

        return wrapper

    return decorate


class BaseEM(DensityMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of skem's estimators: scikit-learn API around the shared EM engine.

    A subclass declares its parameters and implements four hooks; the math is
    in the model it builds (:class:`skem._em.EMModel`):

    ``_validate_X(X, reset) -> X``
        Validate and convert user input (through ``validate_data``, which
        sets ``n_features_in_`` when ``reset``).
    ``_build_model(X, sample_weight, **row_metadata) -> EMModel``
        The model of this fit, from the hyperparameters, validated ``X``, the
        row weights (validated; on dask input, ``sample_weight`` as given:
        None, an array or a dask array) and the declared per-row arrays given
        to ``fit`` (see below). On dask input ``X`` is a dask array: its shape and dtype are
        free, a reduction such as ``X.max()`` costs one pass over the blocks.
        Raises ValueError for data these parameters cannot fit.
    ``_get_fitted_params() -> params``, ``_set_fitted_params(params)``
        Read and publish the public fitted attributes (``weights_``, ``means_``...).
    ``_finish_fit(params, data) -> params``
        Optional last step on the best run's parameters with the training
        data, before they are published (default: unchanged).

    Two declarations complete a subclass:

    ``_row_metadata``
        Per-row arrays the estimator takes beside ``X`` (name -> domain,
        "positive", "non-negative" or "real"), for example NegBinMixture's
        ``size_factors``. Every public method that takes rows takes them as
        keywords (``fit``, ``fit_predict``, ``score``, ``score_samples``,
        ``predict``, ``predict_proba``, ``bic``, ``aic``; ``sample`` for the
        drawn rows). The base validates them (shape, finite, domain) before
        any work, routes them through scikit-learn's metadata routing
        (``set_fit_request(size_factors=True)`` and so on), keeps rows apart in
        compression unless these agree too, and hands them to the model's
        ``prepare`` (and ``sample``) with every chunk of rows.
    ``_structural_params``
        Hyperparameters that fix the shape of the fitted parameters (number
        of components, width, alphabet...). With ``warm_start=True``, a fit
        continues from the previous parameters only if these and the number
        of features are unchanged; otherwise it warns once, naming what
        changed, and starts afresh from ``init_params``.

    The fitted model is kept as ``_model`` for the inference methods.
    """

    _row_metadata: ClassVar[dict[str, str]] = {}
    _structural_params: ClassVar[tuple[str, ...]] = ()

    #: Public methods that take rows, and so the declared per-row arrays: the ones
    #: scikit-learn's metadata routing knows by name get a request for each array.
    _ROUTED_METHODS = ("fit", "score", "predict", "predict_proba")

    def __init_subclass__(cls, **kwargs):
        # Requests are declared before scikit-learn's own __init_subclass__ builds the
        # set_{method}_request methods from them (None: error if routed without a request).
        for method in cls._ROUTED_METHODS:
            setattr(cls, f"__metadata_request__{method}", {name: None for name in cls._row_metadata})
        super().__init_subclass__(**kwargs)

    _parameter_constraints: dict = {
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "accelerate": [StrOptions({"none", "squarem"}), None],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    }

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

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, **row_metadata):
        """Estimate the model's parameters by EM.

        EM runs from one start until the objective changes by less than
        ``tol`` per unit of weight (or the model's own stopping rule holds), or
        ``max_iter`` is reached, in which case a
        :class:`~sklearn.exceptions.ConvergenceWarning` is raised. With
        ``n_init > 1`` the start is the best of ``n_init`` candidates after a
        short run of each on a common subsample of the rows
        (:func:`skem._restarts.best_start`): ``n_init`` starts cost ``n_init``
        short runs plus one fit, not ``n_init`` fits.

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
        **row_metadata : array-like of shape (n_samples,)
            The per-row arrays this estimator declares (its class docstring
            lists them, e.g. NegBinMixture's ``size_factors``); not with dask input.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        metadata = self._check_row_metadata_names(row_metadata, "fit")
        previous = self._warm_start_params(X)
        on_dask = is_dask_array(X)
        if on_dask:
            _no_row_metadata_on_dask(metadata)
            X = dask_row_blocks(X)
            self._check_n_features(X, reset=previous is None)
            model = self._build_model(X, sample_weight)
            data = DaskRows(model, X, sample_weight)
        else:
            X = self._validate_X(X, reset=previous is None)
            weights = check_sample_weight(sample_weight, X)
            metadata = self._check_row_metadata(X.shape[0], metadata)
            model = self._build_model(X, weights, **metadata)
            data = in_memory_rows(model, X, weights, metadata)

        controls = self._controls()
        if previous is not None:
            start = previous
        else:
            seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=self.n_init)
            start = seeds[0]
            if self.n_init > 1:
                # Runs on dask rows stay in threads of this process, which holds the
                # connection to the cluster. Results come back in submission order, so a
                # parallel choice is the serial one.
                parallel = Parallel(n_jobs=self.n_jobs, require="sharedmem" if on_dask else None)
                start = best_start(model, data, seeds, controls, run_starts=functools.partial(
                    _runs_from_seeds, parallel))
        best = _run_from(model, data, start, controls)

        self._model = model
        self._fitted_structure = self._structure()
        self._set_fitted_params(self._finish_fit(best.params, data))
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.lower_bounds_ = best.lower_bounds
        self.lower_bound_ = best.lower_bound
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations. Try a larger max_iter"
                + ("." if self.accelerate == "squarem" else " or accelerate='squarem'."),
                ConvergenceWarning,
            )
        return self

    def _structure(self):
        """The current values of the structural hyperparameters (copied)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self._structural_params}

    def _warm_start_params(self, X):
        """The fitted parameters to continue from, or None to start afresh.

        A warm start continues only when the parameters' shape is unchanged: the
        structural hyperparameters and the number of features. Otherwise it warns
        once, naming what changed, and the fit starts from ``init_params``.
        """
        if not (self.warm_start and hasattr(self, "converged_")):
            return None
        changed = [
            f"{name}={old!r} -> {new!r}"
            for name, old in self._fitted_structure.items()
            if not _same_value(old, new := getattr(self, name))
        ]
        n_columns = _n_columns(X)
        if n_columns is not None and n_columns != self.n_features_in_:
            changed.append(f"n_features_in_={self.n_features_in_} -> {n_columns}")
        if changed:
            warnings.warn(
                f"warm_start=True cannot continue the previous fit of {type(self).__name__}: "
                f"{', '.join(changed)} changes the shape of its parameters. Fitting afresh "
                f"from init_params={getattr(self, 'init_params', None)!r}.",
                UserWarning,
                stacklevel=4,  # the user's call to fit, through scikit-learn's fit context
            )
            return None
        return self._get_fitted_params()

    def _controls(self, **changes):
        """This estimator's EM controls for the engine (``changes`` override some)."""
        settings = dict(
            max_iter=self.max_iter, tol=self.tol, accelerate=self.accelerate,
            chunk_size=self.chunk_size, verbose=self.verbose,
            verbose_interval=self.verbose_interval,
        )
        return EMControls(**{**settings, **changes})

    def _check_n_features(self, X, reset):
        if reset:
            self.n_features_in_ = int(X.shape[1])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )

    def fit_predict(self, X, y=None, sample_weight=None, **row_metadata):
        """Fit the model and return the most probable component of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays (see :meth:`fit`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels, equal to ``fit(X).predict(X)``.
        """
        return self.fit(X, sample_weight=sample_weight, **row_metadata).predict(X, **row_metadata)

    # -------------------------------------------------- inference on new rows

    def _per_row(self, X, function=None, *, method=None, row_metadata=None):
        """Apply a function of ``(params, chunk)`` -- given, or the model's ``method`` -- to
        the rows of new data ``X``, chunk by chunk, and stack the results. ``row_metadata``
        are the declared per-row arrays given for these rows (checked here)."""
        check_is_fitted(self)
        metadata = self._check_row_metadata_names(row_metadata or {}, method or "predict")
        X = self._validate_X(X, reset=False)
        data = self._model.prepare(X, np.ones(X.shape[0]), **self._check_row_metadata(X.shape[0], metadata))
        function = function or getattr(self._model, method)
        params = self._get_fitted_params()
        step = chunk_rows(data, self._model, self.chunk_size)
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            return stack_rows([function(params, chunk) for chunk in data.chunks(step)])

    @lazy_on_dask("values")
    def score_samples(self, X, **row_metadata):
        """Log-likelihood of each row under the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Rows to score.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays for these rows (see :meth:`fit`).

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            ``log p(x_i)``, including all normalizing constants; a lazy dask
            array (computed block by block) for dask ``X``.
        """
        return self._per_row(X, method="score_samples", row_metadata=row_metadata)

    def score(self, X, y=None, sample_weight=None, **row_metadata):
        """Mean log-likelihood per row (weighted when ``sample_weight`` is given).

        Higher is better, so ``GridSearchCV`` and ``cross_val_score`` select
        models by held-out likelihood. Rows of weight 0 count for nothing, even
        where their log-likelihood is ``-inf``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays for these rows (see :meth:`fit`).

        Returns
        -------
        score : float
        """
        log_likelihood = np.asarray(self.score_samples(X, **row_metadata))
        weights = check_sample_weight(sample_weight, log_likelihood)
        counted = weights > 0
        return float(np.average(log_likelihood[counted], weights=weights[counted]))

    @lazy_on_dask("posterior")
    def predict_proba(self, X, **row_metadata):
        """Posterior probability of each component (or transcript) for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Rows to evaluate.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays for these rows (see :meth:`fit`).

        Returns
        -------
        posterior : ndarray of shape (n_samples, n_components)
            Rows sum to 1. A lazy dask array for dask ``X``.
        """
        return self._per_row(X, method="predict_proba", row_metadata=row_metadata)

    @lazy_on_dask("labels")
    def predict(self, X, **row_metadata):
        """Most probable component (or transcript) of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or dask array
            Rows to label.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays for these rows (see :meth:`fit`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A lazy dask array for dask ``X``.
        """
        return np.asarray(self.predict_proba(X, **row_metadata).argmax(axis=1)).reshape(-1)

    def bic(self, X, **row_metadata):
        """Bayesian information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays for these rows (see :meth:`fit`).

        Returns
        -------
        bic : float
            ``-2 log L + p log n`` with ``p`` free parameters.
        """
        n = _n_rows(X)
        log_likelihood = self.score(X, **row_metadata) * n
        return -2.0 * log_likelihood + self.n_parameters() * np.log(n)

    def aic(self, X, **row_metadata):
        """Akaike information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        **row_metadata : array-like of shape (n_samples,)
            The estimator's declared per-row arrays for these rows (see :meth:`fit`).

        Returns
        -------
        aic : float
            ``-2 log L + 2 p`` with ``p`` free parameters.
        """
        log_likelihood = self.score(X, **row_metadata) * _n_rows(X)
        return -2.0 * log_likelihood + 2.0 * self.n_parameters()

    def n_parameters(self):
        """Number of free parameters of the fitted model: the ``p`` of :meth:`bic` and :meth:`aic`.

        Returns
        -------
        n_parameters : int
        """
        check_is_fitted(self)
        return int(self._model.n_parameters(self._get_fitted_params()))

    # ------------------------------------------------------------- hooks

    def _finish_fit(self, params, data):
        return params

    def _check_row_metadata_names(self, row_metadata, method):
        """``row_metadata`` without its None values; a TypeError for names not declared."""
        unknown = sorted(set(row_metadata) - set(self._row_metadata))
        if unknown:
            takes = ", ".join(self._row_metadata) or "none"
            raise TypeError(
                f"{type(self).__name__}.{method}() got unexpected keyword argument(s) "
                f"{', '.join(map(repr, unknown))}; the per-row arrays it takes: {takes}."
            )
        return {name: values for name, values in row_metadata.items() if values is not None}

    def _check_row_metadata(self, n_rows, row_metadata):
        """The given per-row arrays as float64 arrays of shape (n_rows,), checked against
        their declared domain."""
        checked = {}
        for name, values in row_metadata.items():
            try:
                array = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name} must be numbers: {error}") from None
            if array.ndim == 0:
                array = np.full(n_rows, float(array))
            if array.shape != (n_rows,):
                raise ValueError(
                    f"{name} must have shape (n_samples,) = ({n_rows},), got {array.shape}."
                )
            domain = self._row_metadata[name]
            bad = ~np.isfinite(array)
            if domain == "positive":
                bad |= ~(array > 0)
            elif domain == "non-negative":
                bad |= ~(array >= 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"{name} must be finite and {domain}; row {i} has {array[i]!r}."
                    if domain != "real" else f"{name} must be finite; row {i} has {array[i]!r}."
                )
            checked[name] = array
        return checked

    @abstractmethod
    def _validate_X(self, X, reset): ...

    @abstractmethod
    def _build_model(self, X, sample_weight, **row_metadata): ...

    @abstractmethod
    def _get_fitted_params(self): ...

    @abstractmethod
    def _set_fitted_params(self, params): ...


def _same_value(a, b):
    """Whether two hyperparameter values are the same (arrays and sequences element-wise)."""
    if a is b:
        return True
    try:
        if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
            return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _n_columns(X):
    """Number of columns of 2-D input ``X`` (None for other input: sequences, ragged lists)."""
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            shape = np.shape(X)
        except ValueError:  # ragged nested lists
            return None
    return int(shape[1]) if len(shape) == 2 else None


def _no_row_metadata_on_dask(row_metadata):
    given = [name for name, values in row_metadata.items() if values is not None]
    if given:
        raise NotImplementedError(
            f"{', '.join(given)} cannot be given with dask input; compute X (and them) first."
        )


def _runs_from_seeds(parallel, model, rows, seeds, controls):
    """One run per seed, by ``parallel`` (:func:`skem._restarts.best_start`'s ``run_starts``)."""
    return parallel(delayed(_run_from)(model, rows, seed, controls) for seed in seeds)


def _run_from(model, data, start, controls):
    """One EM run of ``model`` from a seed (a fresh start) or from given parameters."""
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        if isinstance(start, (Integral, np.integer)):
            random_state = np.random.RandomState(start)
            params = model.initialize(data.init_rows(model, random_state), random_state, controls)
        else:
            params = start
        result = run_em(model, data, params, controls)
    if controls.verbose:
        state = "converged" if result.converged else "did not converge"
        print(f"EM {state} after {result.n_iter} iterations; objective {result.lower_bound:.10g}")
    return result


class BaseMixture(BaseEM):
    """Finite mixtures: the shared parameters, the size check and :meth:`sample`.

    The model a subclass builds is a :class:`skem._mixture.MixtureModel`.
    """

    _parameter_constraints: dict = {
        **BaseEM._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "k-means++", "random", "random_from_data"})],
    }
    _structural_params = ("n_components",)

    def _check_n_samples(self, X):
        n_samples = X.shape[0]
        if n_samples < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n_samples}."
            )

    def sample(self, n_samples=1, **row_metadata):
        """Draw rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        **row_metadata : float or array-like of shape (n_samples,)
            The estimator's declared per-row arrays for the drawn rows, in the
            order returned (see :meth:`fit`; e.g. NegBinMixture's ``size_factors``).

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
        metadata = self._check_row_metadata(
            int(n_samples), self._check_row_metadata_names(row_metadata, "sample")
        )
        rng = check_random_state(self.random_state)
        return self._model.sample(self._get_fitted_params(), n_samples, rng, **metadata)


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)

"""The public contract for writing a new EM model on skem's engine.

A new model is one module: a frozen parameters dataclass whose fields declare
their space (:func:`param`), additive statistics (:class:`AdditiveStats`),
row data (:class:`RowData`), the model's math (a :class:`MixtureModel` for
finite mixtures, otherwise an :class:`EMModel`) and a thin estimator
(:class:`BaseMixture` or :class:`BaseEM`) that builds it. Everything else --
``sample_weight``, row compression, chunks, dask, ``n_init``, ``warm_start``,
SQUAREM, convergence, the scikit-learn API -- comes from the engine. The user
guide's engine page walks through a complete example.

Everything a model needs is imported from here; the private modules behind
these names may change.
"""

from ._base import BaseEM, BaseMixture, lazy_on_dask
from ._em import AdditiveStats, EMControls, EMModel, RowData, RowSource, run_em
from ._mixture import EMPTY_WEIGHT, MixtureModel, mixing_weights, normalize_log_prob
from ._params import Space, pack_params, param, unpack_params
from ._rows import check_sample_weight

__all__ = [
    "EMPTY_WEIGHT",
    "AdditiveStats",
    "BaseEM",
    "BaseMixture",
    "EMControls",
    "EMModel",
    "MixtureModel",
    "RowData",
    "RowSource",
    "Space",
    "check_sample_weight",
    "lazy_on_dask",
    "mixing_weights",
    "normalize_log_prob",
    "pack_params",
    "param",
    "run_em",
    "unpack_params",
]

"""Model parameters whose fields declare their space, and the flat coordinates derived from it.

A model's parameters are a frozen dataclass. A field made with
:func:`param` says which set its values live in -- a probability simplex
along the last axis, the positive reals, the non-negative reals -- and
that is all SQUAREM (:mod:`skem._accel`) needs: :func:`pack_params` maps the
parameters to unconstrained coordinates (logarithms) and
:func:`unpack_params` maps any finite vector back to valid parameters, so a
model gets acceleration without writing either by hand. Fields without a
declared space (fixed tables, caches) are carried along unchanged.

Examples
--------
>>> from dataclasses import dataclass
>>> import numpy as np
>>> @dataclass(frozen=True)
... class RateParams:
...     weights: np.ndarray = param("simplex")
...     rates: np.ndarray = param("positive", floor=1e-10)
>>> params = RateParams(np.array([0.25, 0.75]), np.array([[1.0], [4.0]]))
>>> vector = pack_params(params)
>>> restored = unpack_params(vector, params)
>>> np.allclose(restored.rates, params.rates) and np.allclose(restored.weights, params.weights)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

__all__ = ["Space", "pack_params", "param", "unpack_params"]

#: The spaces a parameter field can declare.
KINDS = ("simplex", "positive", "nonnegative")


@dataclass(frozen=True)
class Space:
    """Where a parameter field's values live, and how they map to unconstrained coordinates.

    Parameters
    ----------
    kind : {"simplex", "positive", "nonnegative"}
        "simplex": probabilities summing to 1 along the last axis (coordinates:
        their logarithms, normalized back by a softmax); "positive": values
        > 0 (coordinates: logarithms); "nonnegative": values >= 0
        (coordinates: ``log(value + floor)``).
    floor : float
        Smallest value a "simplex" or "positive" entry is given back (so that
        no probability or rate is exactly 0), and the shift of "nonnegative".
    ceiling : float or None
        Largest value given back (None: no bound).
    """

    kind: str
    floor: float = 0.0
    ceiling: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"A parameter space is one of {KINDS}, got {self.kind!r}.")

    def pack(self, values):
        values = np.asarray(values, dtype=float)
        if self.kind == "nonnegative":
            return np.log(values + self.floor).ravel()
        with np.errstate(divide="ignore"):
            return np.log(values).ravel()

    def unpack(self, coordinates, shape):
        coordinates = coordinates.reshape(shape)
        if self.kind == "simplex":
            top = coordinates.max(axis=-1, keepdims=True)
            values = np.exp(coordinates - np.where(np.isfinite(top), top, 0.0))
            values /= values.sum(axis=-1, keepdims=True)
            if self.floor > 0:
                values = np.maximum(values, self.floor)
                values /= values.sum(axis=-1, keepdims=True)
            return values
        values = np.exp(coordinates)
        if self.kind == "nonnegative":
            values = np.maximum(values - self.floor, 0.0)
        else:
            values = np.maximum(values, self.floor)
        if self.ceiling is not None:
            values = np.minimum(values, self.ceiling)
        return values


def param(kind, *, floor=0.0, ceiling=None):
    """A dataclass field holding a parameter array that lives in the space ``kind`` (see :class:`Space`)."""
    return field(metadata={"space": Space(kind, floor, ceiling)})


def _declared(params, fixed):
    """The fields of ``params`` with a declared space that are not in ``fixed``."""
    return [
        (f.name, f.metadata["space"]) for f in fields(params)
        if "space" in f.metadata and f.name not in fixed
    ]


def pack_params(params, fixed=()):
    """Unconstrained coordinates of the declared parameter fields of ``params``, as one vector.

    Parameters
    ----------
    params : dataclass instance
        Parameters whose fields were declared with :func:`param`.
    fixed : tuple of str, default=()
        Fields held fixed (not extrapolated), for example a known dispersion.

    Returns
    -------
    vector : ndarray of shape (n_coordinates,)
    """
    parts = [space.pack(getattr(params, name)) for name, space in _declared(params, fixed)]
    return np.concatenate(parts) if parts else np.empty(0)


def unpack_params(vector, params, fixed=()):
    """Valid parameters from any finite coordinate vector; the inverse of :func:`pack_params`.

    Parameters
    ----------
    vector : ndarray of shape (n_coordinates,)
    params : dataclass instance
        Parameters of the same shapes (the fields not packed are taken from them).
    fixed : tuple of str, default=()
        As given to :func:`pack_params`.

    Returns
    -------
    params : dataclass instance
    """
    values, start = {}, 0
    for name, space in _declared(params, fixed):
        shape = np.shape(getattr(params, name))
        size = int(np.prod(shape))
        values[name] = space.unpack(vector[start : start + size], shape)
        start += size
    if start != vector.size:
        raise ValueError(f"Expected {start} coordinates, got {vector.size}.")
    return replace(params, **values)

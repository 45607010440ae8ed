"""Optional figures. matplotlib and logomaker are imported only when a function is called.

Install them with the ``plot`` extra: ``pip install "skem[plot]"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_logo"]

_KINDS = {"information": "information", "probability": "probability", "log-odds": "weight"}


def _require(module):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"This figure needs {module}, which is part of skem's optional 'plot' extra: "
            'pip install "skem[plot]" (or pip install logomaker matplotlib).'
        ) from error


def plot_logo(motif, component=None, *, kind="information", ax=None, alphabet="ACGT", **kwargs):
    """Draw a sequence logo with logomaker.

    Parameters
    ----------
    motif : MotifMixture, SequenceMotifMixture, DataFrame or array-like of shape (w, A)
        A fitted :class:`~skem.MotifMixture` or :class:`~skem.SequenceMotifMixture`
        (its component ``component``), or
        a letter-probability matrix (positions x letters).
    component : int, default=None
        Component of a fitted model; None is the first motif (component 1).
    kind : {"information", "probability", "log-odds"}, default="information"
        Letter heights: probability times the position's information content
        in bits (the classic logo), probabilities, or log-odds in bits against
        the model's background (uniform for a bare matrix).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    alphabet : str, default="ACGT"
        Column letters of a bare array (ignored for a model or a DataFrame).
    **kwargs
        Passed to ``logomaker.Logo`` (e.g. ``color_scheme``).

    Returns
    -------
    logomaker.Logo
        The logo; its ``ax`` attribute is the matplotlib Axes.

    Raises
    ------
    ImportError
        When logomaker or matplotlib is missing, naming the ``plot`` extra.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}.")
    frame = _letter_heights(motif, component, kind, alphabet)
    logomaker = _require("logomaker")
    _require("matplotlib")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(max(3.0, 0.5 * len(frame)), 2.0))
    logo = logomaker.Logo(frame, ax=ax, **kwargs)
    ax.set_xlabel("position")
    ax.set_ylabel({"information": "bits", "probability": "probability",
                   "log-odds": "log-odds (bits)"}[kind])
    return logo


def _letter_heights(motif, component, kind, alphabet):
    """The DataFrame (positions x letters) the logo draws."""
    if hasattr(motif, "pwm") and hasattr(motif, "pwms_"):
        return motif.pwm(component, kind=kind)
    if isinstance(motif, pd.DataFrame):
        frame = motif.astype(float)
    else:
        matrix = np.asarray(motif, dtype=float)
        if matrix.ndim != 2 or matrix.shape[1] != len(alphabet):
            raise ValueError(
                f"A motif matrix must have shape (w, {len(alphabet)}), got {matrix.shape}."
            )
        frame = pd.DataFrame(matrix, columns=list(alphabet.upper()))
    if np.any(frame.to_numpy() < 0):
        raise ValueError("A motif matrix must be non-negative.")
    probabilities = frame.div(frame.sum(axis=1), axis=0)
    values = probabilities.to_numpy()
    n_letters = values.shape[1]
    if kind == "probability":
        return probabilities
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "log-odds":
            return probabilities.apply(lambda column: np.log2(column * n_letters))
        entropy = -np.sum(np.where(values > 0, values * np.log2(values), 0.0), axis=1)
    return probabilities.mul(np.log2(n_letters) - entropy, axis=0)

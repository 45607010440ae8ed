"""Loaders of the small example data sets shipped with skem (made by scripts/make_example_data.py)."""

from __future__ import annotations

from importlib import resources

import pandas as pd


def _data_path(name):
    return resources.files("skem") / "data" / name


def load_negbin_counts():
    """Single-cell-like counts: 600 cells x 8 genes from three cell types.

    Simulated from a mixture of negative binomials (dispersion 0.2) with
    mixing proportions 0.5, 0.3, 0.2.

    Returns
    -------
    counts : pandas.DataFrame of shape (600, 8)
        Integer counts, one column per gene, indexed by cell.
    cell_type : pandas.Series of shape (600,)
        The true cell type of each cell.

    Examples
    --------
    >>> from skem.datasets import load_negbin_counts
    >>> counts, cell_type = load_negbin_counts()
    >>> counts.shape
    (600, 8)
    """
    with resources.as_file(_data_path("negbin_counts.csv.gz")) as path:
        frame = pd.read_csv(path, index_col="cell")
    return frame.drop(columns="cell_type"), frame["cell_type"]

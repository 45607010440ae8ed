"""Count files written by the field's own libraries, for the reader and CLI tests.

A Cell Ranger folder is written as Cell Ranger 3 lays it out (genes x cells,
``matrix.mtx.gz`` by ``scipy.io.mmwrite``, ``features.tsv.gz`` with id, symbol
and type, ``barcodes.tsv.gz``); ``.h5ad`` files by anndata itself; CSV by
pandas. None of it goes through skem.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from skem.datasets import make_negbin_mixture


@dataclass(frozen=True)
class Cells:
    """Counts of cells x genes with Cell Ranger-like names."""

    counts: np.ndarray  # (n_cells, n_genes), integers as float
    labels: np.ndarray
    barcodes: list
    gene_ids: list
    symbols: list


def simulated_cells(n_cells=60, n_genes=12, seed=0):
    """Two groups of cells with different expressed genes (and alike depths), mostly zeros."""
    rng = np.random.default_rng(seed)
    first, second = rng.uniform(0.05, 0.6, n_genes), rng.uniform(0.05, 0.6, n_genes)
    first[n_genes // 2:] *= 20
    second[: n_genes // 2] *= 20
    counts, labels = make_negbin_mixture(n_cells, means=(first, second), dispersion=0.2,
                                         random_state=seed)
    barcodes = [f"{''.join(rng.choice(list('ACGT'), 16))}-1" for _ in range(n_cells)]
    gene_ids = [f"ENSG{index:011d}" for index in range(n_genes)]
    symbols = [f"Gene{index}" for index in range(n_genes)]
    return Cells(counts, labels, barcodes, gene_ids, symbols)


def write_csv(path, cells):
    """A CSV of cells x genes with row names, as pandas writes it."""
    pd.DataFrame(cells.counts.astype(int), index=cells.barcodes,
                 columns=cells.symbols).to_csv(path)
    return path


def write_lines(path, lines):
    """Lines of text, gzipped when the name ends in .gz."""
    text = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if path.name.endswith(".gz") else text)


def write_matrix_market(path, genes_by_cells, field="integer"):
    """A Matrix Market file by scipy.io.mmwrite, gzipped when the name ends in .gz."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            scipy.io.mmwrite(handle, genes_by_cells, field=field)
    else:
        with open(path, "wb") as handle:
            scipy.io.mmwrite(handle, genes_by_cells, field=field)


def write_10x(folder, cells, *, version=3, prefix="", types=None):
    """Cell Ranger's matrix folder: version 3 (gzipped, features.tsv.gz) or 2 (genes.tsv)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if version == 3 else ""
    types = types or ["Gene Expression"] * len(cells.gene_ids)
    write_matrix_market(folder / f"{prefix}matrix.mtx{suffix}",
                        sp.coo_matrix(cells.counts.T.astype(np.int64)))
    if version == 3:
        write_lines(folder / f"{prefix}features.tsv.gz",
                    [f"{i}\t{s}\t{t}" for i, s, t in zip(cells.gene_ids, cells.symbols, types)])
    else:
        write_lines(folder / f"{prefix}genes.tsv",
                    [f"{i}\t{s}" for i, s in zip(cells.gene_ids, cells.symbols)])
    write_lines(folder / f"{prefix}barcodes.tsv{suffix}", cells.barcodes)
    return folder


def write_h5ad(path, cells, *, normalized_x=False, highly_variable=None):
    """An .h5ad by anndata: sparse counts in X, or normalized X and the counts in layers['counts']."""
    import anndata

    counts = sp.csr_matrix(cells.counts.astype(np.float32))
    # Object-dtype names: anndata 0.12 does not write pandas' new string arrays by default.
    obs = pd.DataFrame(index=pd.Index(cells.barcodes, dtype=object))
    var = pd.DataFrame(index=pd.Index(cells.symbols, dtype=object))
    var["gene_ids"] = pd.Series(cells.gene_ids, index=var.index, dtype=object)
    if highly_variable is not None:
        var["highly_variable"] = highly_variable
    if normalized_x:
        # scanpy's usual normalize_total(target_sum=1e4) + log1p, computed here by hand.
        totals = np.maximum(np.asarray(counts.sum(axis=1)).reshape(-1, 1), 1)
        normalized = sp.csr_matrix(counts.multiply(1e4 / totals)).log1p()
        adata = anndata.AnnData(X=normalized, obs=obs, var=var, layers={"counts": counts})
    else:
        adata = anndata.AnnData(X=counts, obs=obs, var=var)
    adata.write_h5ad(path)
    return path

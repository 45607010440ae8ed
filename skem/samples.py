"""Many RNA-seq samples at once: equivalence classes read, quantified and tabulated in parallel.

One sample's classes fit in memory, so :class:`~skem.TranscriptQuantifier`
fits one sample at a time; a study has many. :func:`quantify_samples` reads
each sample's files with :mod:`skem.io` and fits it where it is processed
(joblib workers, or the workers of an active ``dask.distributed`` cluster),
so the estimator module itself needs no file formats.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from .io import EquivalenceClasses, read_kallisto_tcc, read_salmon_eq_classes
from .transcripts import TranscriptQuantifier

__all__ = ["gene_abundance", "quantify_samples", "wide_table"]


def quantify_samples(samples, estimator=None, *, n_jobs=None, backend=None, client=None):
    """Quantify many samples at once, in parallel: one tidy table of all their abundances.

    Each sample's equivalence classes are read with :mod:`skem.io`, fitted
    by a clone of ``estimator`` and reduced to its abundance table where the
    sample is processed: in joblib workers, or as one task per sample on the
    workers of a ``dask.distributed`` cluster. Only file names travel there
    and only the tables come back (the files must be readable by the
    workers), so a task holds one sample and the driver none. The results
    equal those of the serial loop, sample for sample.

    Parameters
    ----------
    samples : dict of str to source, or list of source
        The samples: a mapping from sample name to source, or a list of
        sources named by their position (0, 1, ...). A source is a path to
        salmon's ``aux_info/eq_classes.txt[.gz]``; a tuple ``(matrix.ec,
        transcripts.txt, counts)`` of kallisto TCC files, optionally with the
        0-based row of a multi-sample counts matrix as a fourth item; or
        :class:`skem.io.EquivalenceClasses` already read.
    estimator : TranscriptQuantifier, default=None
        Model settings (lengths, prior, method, ...) for every sample; None
        means ``TranscriptQuantifier()``. Per sample, ``transcript_names``
        come from the files unless set (when set, each sample's columns are
        matched to them by name; a sample with other transcripts is an
        error), and ``x_includes_length=True`` is set for salmon dumps with weights.
    n_jobs : int, default=None
        joblib workers (None: one, unless a ``parallel_config`` says
        otherwise); with dask, the cluster decides.
    backend : {None, "joblib", "dask"}, default=None
        None uses dask when ``client`` is given or a ``dask.distributed.Client``
        is active, joblib otherwise. "dask" requires one of them.
    client : dask.distributed.Client, default=None
        The cluster to run the samples on (one task per sample), instead of
        the active Client. The estimator is sent to its workers once.

    Returns
    -------
    DataFrame
        Columns ``sample, target_id, eff_length, est_counts, tpm`` (and
        ``est_counts_sd, tpm_sd`` with bootstraps), one row per sample and
        transcript, samples in the given order. :func:`wide_table` spreads
        a column into a transcripts x samples matrix, :func:`gene_abundance`
        sums it to genes.

    Raises
    ------
    ImportError
        For ``backend="dask"`` without dask's distributed scheduler installed.
    ValueError
        For an empty ``samples``, ``backend="dask"`` without a Client,
        ``client`` with ``backend="joblib"``, or a sample whose transcripts
        are not the estimator's ``transcript_names`` (naming the sample).

    Examples
    --------
    >>> from skem import TranscriptQuantifier
    >>> from skem.samples import quantify_samples
    >>> table = quantify_samples(  # doctest: +SKIP
    ...     {"A": "A/aux_info/eq_classes.txt.gz", "B": "B/aux_info/eq_classes.txt.gz"},
    ...     TranscriptQuantifier(prior=0.01, method="vbem"), n_jobs=2,
    ... )
    >>> table.pivot(index="target_id", columns="sample", values="tpm")  # doctest: +SKIP
    """
    if backend not in (None, "joblib", "dask"):
        raise ValueError(f"backend must be None, 'joblib' or 'dask', got {backend!r}.")
    items = list(samples.items()) if isinstance(samples, dict) else list(enumerate(samples))
    if not items:
        raise ValueError("No samples were given.")
    estimator = TranscriptQuantifier() if estimator is None else estimator
    if client is not None and backend == "joblib":
        raise ValueError("A client was given with backend='joblib'; give one or the other.")
    if client is None and backend != "joblib":
        client = _active_client(required=backend == "dask")
    if client is not None:
        # Scattered once: its tables (lengths of every transcript) would otherwise be
        # copied into every sample's task.
        shared = client.scatter(estimator, broadcast=True, hash=False)
        futures = client.map(
            _quantify_one, [name for name, _ in items], [source for _, source in items],
            estimator=shared, pure=False,
        )
        tables = client.gather(futures)
    else:
        tables = Parallel(n_jobs=n_jobs)(
            delayed(_quantify_one)(name, source, estimator) for name, source in items
        )
    return pd.concat(tables, ignore_index=True)


def _active_client(required):
    """The active dask.distributed Client, or None (dask is imported only if already in use)."""
    distributed = sys.modules.get("distributed")
    if required and distributed is None:
        try:
            distributed = importlib.import_module("distributed")
        except ImportError as error:
            raise ImportError(
                "backend='dask' needs dask's distributed scheduler: install skem's 'dask' "
                "extra (pip install 'skem[dask]')."
            ) from error
    client = None
    if distributed is not None:
        try:
            client = distributed.default_client()
        except ValueError:  # no client has been started
            client = None
    if client is None and required:
        raise ValueError("backend='dask' needs an active dask.distributed Client.")
    return client


def _read_classes(source):
    """Equivalence classes from a source of :func:`quantify_samples`."""
    if isinstance(source, EquivalenceClasses):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_salmon_eq_classes(source)
    if isinstance(source, (tuple, list)) and len(source) in (3, 4):
        sample = source[3] if len(source) == 4 else None
        return read_kallisto_tcc(*source[:3], sample=sample)
    raise TypeError(
        "A sample must be a path to salmon's eq_classes.txt, a tuple (matrix.ec, "
        f"transcripts.txt, counts[, row]) of kallisto files, or EquivalenceClasses; got {source!r}."
    )


def _quantify_one(name, source, estimator):
    """Fit one sample and return its rows of the tidy table."""
    classes = _read_classes(source)
    model = clone(estimator)
    X = classes.X
    if model.transcript_names is None:
        model.set_params(transcript_names=classes.transcript_names)
    else:
        X = _columns_by_name(name, classes, model.transcript_names)
    if classes.weighted:
        model.set_params(x_includes_length=True)  # salmon's weights include 1 / eff_length
    model.fit(X, sample_weight=classes.counts)
    columns = ["target_id", "eff_length", "est_counts", "tpm"]
    if model.n_bootstraps > 0:
        columns += ["est_counts_sd", "tpm_sd"]
    table = model.abundance_[columns].copy()
    table.insert(0, "sample", name)
    return table


def _columns_by_name(sample, classes, names):
    """The sample's class matrix with its columns in the order of ``names`` (the estimator's).

    The estimator's lengths follow its ``transcript_names``; a sample listing the
    same transcripts in another order must not pair them with other lengths.
    """
    position = pd.Index(classes.transcript_names).get_indexer(pd.Index(names))
    if len(names) != len(classes.transcript_names) or np.any(position < 0):
        missing = sorted(set(names).symmetric_difference(classes.transcript_names))
        raise ValueError(
            f"Sample {sample!r}: its transcripts are not the estimator's transcript_names "
            f"({len(missing)} in one list only, e.g. {missing[0]!r})."
        )
    return classes.X[:, position]


def gene_abundance(abundance, tx2gene):
    """Gene-level abundances from transcript abundances, as tximport summarizes them.

    Counts and TPM are summed over each gene's transcripts; the gene's
    effective length is the TPM-weighted mean of its transcripts' (tximport's
    ``length`` matrix), the plain mean where the gene has no TPM.

    Parameters
    ----------
    abundance : TranscriptQuantifier or pandas.DataFrame
        A fitted estimator or its ``abundance_`` table (``target_id``,
        ``eff_length``, ``est_counts``, ``tpm``), or a tidy table of
        :func:`quantify_samples` (with a ``sample`` column, summarized per sample).
    tx2gene : pandas.DataFrame, pandas.Series or dict
        Transcript to gene: a two-column DataFrame (transcript, gene; as
        tximport's ``tx2gene``), or a mapping indexed by transcript.

    Returns
    -------
    pandas.DataFrame
        Columns ``[sample,] gene_id, eff_length, est_counts, tpm``.

    Raises
    ------
    ValueError
        For a transcript missing from ``tx2gene`` (naming it) or a transcript
        mapped to two genes.
    """
    table = getattr(abundance, "abundance_", abundance)
    if isinstance(tx2gene, pd.DataFrame):
        if tx2gene.shape[1] < 2:
            raise ValueError("tx2gene needs two columns: transcript and gene.")
        pairs = tx2gene.iloc[:, :2].drop_duplicates()
        repeated = pairs.iloc[:, 0].duplicated()
        if repeated.any():
            raise ValueError(f"tx2gene maps transcript {pairs.iloc[:, 0][repeated].iloc[0]!r} to two genes.")
        tx2gene = pd.Series(pairs.iloc[:, 1].to_numpy(), index=pairs.iloc[:, 0].to_numpy())
    tx2gene = pd.Series(tx2gene)
    genes = table["target_id"].map(tx2gene)
    if genes.isna().any():
        raise ValueError(f"tx2gene has no gene for transcript {table['target_id'][genes.isna()].iloc[0]!r}.")
    keys = (["sample"] if "sample" in table.columns else []) + ["gene_id"]
    work = table.assign(gene_id=genes.to_numpy(), weighted=table["tpm"] * table["eff_length"])
    grouped = work.groupby(keys, sort=False)
    out = grouped[["est_counts", "tpm", "weighted"]].sum()
    mean_length = grouped["eff_length"].mean()
    out["eff_length"] = (out["weighted"] / out["tpm"]).where(out["tpm"] > 0, mean_length)
    return out.reset_index()[[*keys, "eff_length", "est_counts", "tpm"]]


def wide_table(tidy, values="est_counts"):
    """The transcripts x samples matrix of one column of a tidy :func:`quantify_samples` table.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`quantify_samples` (or of :func:`gene_abundance` on it).
    values : str, default="est_counts"
        The column to spread (``"tpm"``, ``"est_counts_sd"``...).

    Returns
    -------
    pandas.DataFrame
        One row per transcript (or gene) in first-seen order, one column per
        sample in the given order (tximport's ``counts`` / ``abundance`` layout).
    """
    feature = "gene_id" if "gene_id" in tidy.columns else "target_id"
    wide = tidy.pivot(index=feature, columns="sample", values=values)
    return wide.loc[pd.unique(tidy[feature]), pd.unique(tidy["sample"])]

"""Loaders of the small example data sets shipped with skem.

The files in ``skem/data`` are simulated from known parameters by
``scripts/make_example_data.py`` (fixed seeds), so each loader returns the
truth beside the data.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
from sklearn.utils import Bunch

from ..io import read_fasta, read_lengths, read_meme, read_salmon_eq_classes


def example_path(name):
    """Path of a bundled example file (in ``skem/data``).

    Parameters
    ----------
    name : str
        File name, e.g. ``"motif_sequences.fa.gz"``.

    Returns
    -------
    pathlib.Path
        Where the file is installed.
    """
    path = Path(str(resources.files("skem").joinpath("data", name)))
    if not path.is_file():
        raise FileNotFoundError(f"no bundled example file named {name!r}")
    return path


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
    frame = pd.read_csv(example_path("negbin_counts.csv.gz"), index_col="cell")
    return frame.drop(columns="cell_type"), frame["cell_type"]


def load_transcript_example():
    """Equivalence classes of 200 000 simulated RNA-seq reads over 118 transcripts of 60 genes.

    Stored in salmon's ``--dumpEq`` format; fragments have length 100, so the
    effective length of a transcript is ``length - 99``.

    Returns
    -------
    data : Bunch
        ``X`` (csr_matrix, classes x transcripts), ``counts`` (reads per class,
        the ``sample_weight``), ``transcript_names``, ``lengths``,
        ``fragment_length`` (100), ``truth`` (DataFrame: ``target_id,
        true_counts, true_tpm``), and the paths ``eq_classes_path`` and
        ``lengths_path`` of the bundled files.

    Examples
    --------
    >>> from skem.datasets import load_transcript_example
    >>> data = load_transcript_example()
    >>> int(data.counts.sum())
    200000
    """
    eq_classes_path = example_path("transcripts_eq_classes.txt.gz")
    lengths_path = example_path("transcripts_lengths.tsv")
    classes = read_salmon_eq_classes(eq_classes_path)
    lengths = read_lengths(lengths_path)
    names = list(classes.transcript_names)
    return Bunch(
        X=classes.X,
        counts=classes.counts,
        transcript_names=names,
        lengths=lengths.reindex(names).to_numpy(),
        fragment_length=100,
        truth=pd.read_csv(example_path("transcripts_truth.tsv"), sep="\t"),
        eq_classes_path=eq_classes_path,
        lengths_path=lengths_path,
    )


def load_motif_example():
    """300 DNA sequences of 120 nt; 80 % carry one site of a 12-nt motif (on the forward strand).

    Returns
    -------
    data : Bunch
        ``sequences`` (dict of name to sequence), ``pwm`` (the true motif,
        ndarray of shape (12, 4) over ACGT), ``sites`` (DataFrame of the
        planted sites: ``sequence, start, end, strand, site``) and
        ``fasta_path`` (the bundled FASTA file).

    Examples
    --------
    >>> from skem.datasets import load_motif_example
    >>> data = load_motif_example()
    >>> len(data.sequences), data.pwm.shape
    (300, (12, 4))
    """
    fasta_path = example_path("motif_sequences.fa.gz")
    truth = read_meme(example_path("motif_truth.meme"))
    return Bunch(
        sequences=read_fasta(fasta_path),
        pwm=next(iter(truth.values())).to_numpy(),
        sites=pd.read_csv(example_path("motif_sites.tsv"), sep="\t"),
        fasta_path=fasta_path,
    )


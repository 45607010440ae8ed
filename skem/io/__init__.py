"""Readers and writers for the field's file formats. They return arrays and metadata; no estimator logic."""

from ._bam import AlignmentClasses, auto_score_scale, read_alignments, read_bam
from ._counts import (CountMatrix, annotate_h5ad, count_format, read_10x_mtx, read_count_table,
                      read_counts, read_h5ad, read_number_table, select_features)
from ._motif import read_fasta, read_jaspar, read_meme, write_jaspar, write_meme
from ._quant import (
    AlignedReads,
    EquivalenceClasses,
    alignments_to_matrix,
    lengths_file_kind,
    read_kallisto_abundance,
    read_kallisto_tcc,
    read_lengths,
    read_salmon_eq_classes,
    read_salmon_quant,
    write_kallisto_abundance,
    write_salmon_dir,
    write_salmon_quant,
)

__all__ = [
    "AlignedReads",
    "AlignmentClasses",
    "CountMatrix",
    "EquivalenceClasses",
    "alignments_to_matrix",
    "annotate_h5ad",
    "auto_score_scale",
    "count_format",
    "lengths_file_kind",
    "read_10x_mtx",
    "read_alignments",
    "read_bam",
    "read_count_table",
    "read_counts",
    "read_fasta",
    "read_h5ad",
    "read_jaspar",
    "read_kallisto_abundance",
    "read_kallisto_tcc",
    "read_lengths",
    "read_meme",
    "read_number_table",
    "read_salmon_eq_classes",
    "read_salmon_quant",
    "select_features",
    "write_jaspar",
    "write_kallisto_abundance",
    "write_meme",
    "write_salmon_dir",
    "write_salmon_quant",
]

"""Readers and writers for the field's file formats. They return arrays and metadata; no estimator logic."""

from ._bam import AlignmentClasses, auto_score_scale, read_alignments
from ._lazy_rows import read_h5ad_rows, read_zarr_rows, write_zarr_rows
from ._motif import read_fasta, read_jaspar, read_meme, write_jaspar, write_meme
from ._quant import (
    AlignedReads,
    EquivalenceClasses,
    alignments_to_matrix,
    lengths_file_kind,
    read_bam,
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
    "EquivalenceClasses",
    "alignments_to_matrix",
    "auto_score_scale",
    "lengths_file_kind",
    "read_alignments",
    "read_bam",
    "read_fasta",
    "read_h5ad_rows",
    "read_jaspar",
    "read_kallisto_abundance",
    "read_kallisto_tcc",
    "read_lengths",
    "read_meme",
    "read_salmon_eq_classes",
    "read_salmon_quant",
    "read_zarr_rows",
    "write_jaspar",
    "write_kallisto_abundance",
    "write_meme",
    "write_salmon_dir",
    "write_salmon_quant",
    "write_zarr_rows",
]

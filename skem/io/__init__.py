"""Readers and writers for the field's file formats. They return arrays and metadata; no estimator logic.

Each name is imported from its module on first use (PEP 562): ``skem
quant`` reads salmon's files without importing the motif formats, and
``import skem.io`` costs nothing until a reader is used.
"""

from .._lazy import lazy_exports

#: Public name -> the module that defines it.
_EXPORTS = {
    "AlignedReads": "._quant",
    "AlignmentClasses": "._bam",
    "CountMatrix": "._counts",
    "EquivalenceClasses": "._quant",
    "alignments_to_matrix": "._quant",
    "annotate_h5ad": "._counts",
    "auto_score_scale": "._bam",
    "check_table_names": "._quant",
    "count_format": "._counts",
    "lengths_file_kind": "._quant",
    "read_10x_mtx": "._counts",
    "read_alignments": "._bam",
    "read_bam": "._bam",
    "read_count_table": "._counts",
    "read_counts": "._counts",
    "read_fasta": "._motif",
    "read_h5ad": "._counts",
    "read_jaspar": "._motif",
    "read_kallisto_abundance": "._quant",
    "read_kallisto_tcc": "._quant",
    "read_lengths": "._quant",
    "read_meme": "._motif",
    "read_number_table": "._counts",
    "read_salmon_eq_classes": "._quant",
    "read_salmon_quant": "._quant",
    "select_features": "._counts",
    "write_jaspar": "._motif",
    "write_kallisto_abundance": "._quant",
    "write_meme": "._motif",
    "write_salmon_dir": "._quant",
    "write_salmon_quant": "._quant",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""Simulators (``make_*``) that return data with the truth that generated it, and example loaders (``load_*``)."""

from ._examples import example_path, load_motif_example, load_negbin_counts, load_transcript_example
from ._motifs import make_motif_pwm, make_motif_sequences, make_motif_windows
from ._negbin import make_negbin_mixture
from ._transcripts import make_transcript_reads

__all__ = [
    "example_path",
    "load_motif_example",
    "load_negbin_counts",
    "load_transcript_example",
    "make_motif_pwm",
    "make_motif_sequences",
    "make_motif_windows",
    "make_negbin_mixture",
    "make_transcript_reads",
]

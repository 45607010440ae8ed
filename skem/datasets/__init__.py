"""Simulators (``make_*``) that return data with the truth that generated it, and example loaders (``load_*``)."""

from ._examples import load_negbin_counts
from ._motifs import make_motif_pwm, make_motif_sequences, make_motif_windows
from ._negbin import make_negbin_mixture
from ._transcripts import make_transcript_reads

__all__ = [
    "load_negbin_counts",
    "make_motif_pwm",
    "make_motif_sequences",
    "make_motif_windows",
    "make_negbin_mixture",
    "make_transcript_reads",
]

"""skem: scikit-learn-compatible estimators fitted by expectation-maximization.

Three problems of computational biology, one EM engine:

- :class:`NegBinMixture` clusters count data with a mixture of negative binomials;
- :class:`TranscriptQuantifier` estimates RNA-seq transcript abundances;
- :class:`MotifMixture` finds a DNA motif as a mixture of position-specific distributions
  over aligned rows of letters, and :class:`SequenceMotifMixture` finds motifs in whole
  sequences with MEME's site models.

The estimators are imported on first use (PEP 562), so that ``import skem``
and the ``skem`` command's ``--help`` do not wait for scikit-learn and SciPy.
"""

from ._lazy import lazy_exports

#: Public name -> the module that defines it (imported when the name is first used).
_EXPORTS = {
    "MotifMixture": ".motifs",
    "NegBinMixture": ".negbin",
    "SequenceMotifMixture": ".sequence_motifs",
    "TranscriptQuantifier": ".transcripts",
}

__all__ = list(_EXPORTS)
__version__ = "0.1.0"


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

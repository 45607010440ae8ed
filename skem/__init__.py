"""skem: scikit-learn-compatible estimators fitted by expectation-maximization.

Three problems of computational biology, one EM engine:

- :class:`NegBinMixture` clusters count data with a mixture of negative binomials;
- :class:`TranscriptQuantifier` estimates RNA-seq transcript abundances;
- :class:`MotifMixture` finds a DNA motif as a mixture of position-specific distributions
  over aligned rows of letters, and :class:`SequenceMotifMixture` finds motifs in whole
  sequences with MEME's site models.
"""

from .motifs import MotifMixture
from .negbin import NegBinMixture
from .sequence_motifs import SequenceMotifMixture
from .transcripts import TranscriptQuantifier

__all__ = ["MotifMixture", "NegBinMixture", "SequenceMotifMixture", "TranscriptQuantifier"]
__version__ = "0.1.0"

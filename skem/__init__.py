"""skem: scikit-learn-compatible estimators fitted by expectation-maximization.

Three problems of computational biology, one EM engine:

- :class:`NegBinMixture` clusters count data with a mixture of negative binomials;
- :class:`TranscriptQuantifier` estimates RNA-seq transcript abundances;
- :class:`MotifMixture` finds a DNA motif as a mixture of position-specific distributions.
"""

from .motifs import MotifMixture
from .negbin import NegBinMixture
from .transcripts import TranscriptQuantifier

__all__ = ["MotifMixture", "NegBinMixture", "TranscriptQuantifier"]
__version__ = "0.1.0"

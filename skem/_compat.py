"""The one place that imports scikit-learn's private helpers.

scikit-learn keeps its parameter-validation machinery private
(``sklearn.utils._param_validation``, ``sklearn.base._fit_context``,
``sklearn.utils.validation._check_sample_weight``); maintainers call it
"private and subject to change without deprecation". Importing it from a
single module means a future rename is a one-file fix.
"""

from sklearn.base import _fit_context as fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight as sklearn_check_sample_weight

__all__ = ["Interval", "StrOptions", "fit_context", "sklearn_check_sample_weight"]

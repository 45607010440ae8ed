"""Public names of a package imported from their modules on first use (PEP 562).

``import skem`` and the ``skem`` command's ``--help`` then cost a few
milliseconds instead of the second that scikit-learn and SciPy take to
import; the estimators are imported by the first ``skem.NegBinMixture``
(or ``from skem import NegBinMixture``).
"""

import importlib
import sys

__all__ = ["lazy_exports"]


def lazy_exports(package, exports):
    """The ``__getattr__`` and ``__dir__`` of a package whose public names load lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict of str to str
        Public name -> the module defining it, relative to ``package``
        (e.g. ``{"NegBinMixture": ".negbin"}``).

    Returns
    -------
    getattr, dir : callable
        Assign them to the package's ``__getattr__`` and ``__dir__``.

    Examples
    --------
    >>> import skem
    >>> skem.NegBinMixture.__name__
    'NegBinMixture'
    >>> "NegBinMixture" in dir(skem)
    True
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)  # later look-ups do not come here
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__

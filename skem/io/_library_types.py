"""salmon's library-type codes, shared by the BAM reader and the command line.

A module of its own (no imports) so that ``skem quant --help`` can list the
codes without importing the BAM reader, NumPy or pandas.
"""

__all__ = ["LIBRARY_TYPES"]

#: salmon's library-type codes that skem understands: A (detect), unstranded, stranded forward or reverse.
LIBRARY_TYPES = ("A", "U", "SF", "SR", "IU", "ISF", "ISR")

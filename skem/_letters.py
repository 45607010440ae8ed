"""Alphabets and letter codes, shared by the sequence helpers, the motif models and the simulators.

An alphabet of ``A`` letters is coded ``0..A-1`` in its order
(case-insensitive); a wildcard ('N', the IUPAC ambiguity codes, or 'X' for
other alphabets) is a missing letter, coded ``-1`` in windows
(:func:`as_codes`) and ``A`` in the padded matrices of whole sequences
(:func:`encode_ragged`). The public, user-facing functions built on these are
in :mod:`skem.sequences`.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from ._dask import is_dask_array

__all__ = [
    "CODE_LETTERS",
    "DNA",
    "MISSING",
    "as_codes",
    "as_sequences",
    "check_alphabet",
    "code_dtype",
    "default_letters",
    "encode_letters",
    "encode_ragged",
    "is_nucleotide",
    "letter_table",
]

#: The default alphabet's letters: of strings, and of integer codes up to 3.
DNA = "ACGT"
#: With the default alphabet, integer codes 0..A-1 beyond DNA's four are letters named by these.
CODE_LETTERS = string.digits + string.ascii_uppercase

#: Wildcards of nucleotide alphabets: 'N' and the IUPAC ambiguity codes, all treated as unknown.
NUCLEOTIDE_WILDCARDS = "NRYSWKMBDHV"
#: Wildcard of other alphabets (proteins), unless it is itself a letter of the alphabet.
OTHER_WILDCARD = "X"
#: Code of a missing letter.
MISSING = -1


# --------------------------------------------------------------- alphabets


def check_alphabet(alphabet, wildcards=None):
    """Validate an alphabet and resolve its wildcards; both upper case."""
    if not isinstance(alphabet, str) or len(alphabet) < 2:
        raise ValueError(f"alphabet must be a string of at least 2 letters, got {alphabet!r}.")
    letters = alphabet.upper()
    if len(set(letters)) != len(letters):
        repeated = sorted({c for c in letters if letters.count(c) > 1})
        raise ValueError(
            f"alphabet {alphabet!r} has repeated letters (case-insensitive): {''.join(repeated)!r}."
        )
    if any(ord(c) > 127 or not c.isprintable() or c.isspace() for c in letters):
        raise ValueError(f"alphabet {alphabet!r} must consist of printable ASCII characters.")
    if wildcards is None:
        if set(letters) <= set("ACGTU"):
            wildcards = NUCLEOTIDE_WILDCARDS
        else:
            wildcards = "" if OTHER_WILDCARD in letters else OTHER_WILDCARD
    if not isinstance(wildcards, str):
        raise ValueError(f"wildcards must be a string or None, got {wildcards!r}.")
    wildcards = "".join(dict.fromkeys(wildcards.upper()))
    overlap = set(wildcards) & set(letters)
    if overlap:
        raise ValueError(
            f"wildcards {wildcards!r} overlap the alphabet {alphabet!r}: {''.join(sorted(overlap))!r}."
        )
    if any(ord(c) > 127 for c in wildcards):
        raise ValueError(f"wildcards {wildcards!r} must be ASCII characters.")
    return letters, wildcards


def letter_table(letters, wildcards):
    """Code of each ASCII character: letters 0..A-1, wildcards -1, anything else -2."""
    table = np.full(128, -2, dtype=np.int16)
    for code, letter in enumerate(letters):
        table[ord(letter)] = table[ord(letter.lower())] = code
    for letter in wildcards:
        table[ord(letter)] = table[ord(letter.lower())] = MISSING
    return table


def code_dtype(n_letters):
    """The smallest integer type that holds the codes ``-1..n_letters-1``."""
    return np.int8 if n_letters <= 127 else np.int16 if n_letters <= 2**15 - 1 else np.int32


def as_sequences(X):
    """The input as a string array when it holds letters, else None (integer codes).

    Returns a 1-D array of sequences, or a 2-D array of single letters.
    """
    if isinstance(X, str):
        raise ValueError(
            "Expected a list of sequences (or a 2-D array of letter codes), got a single string."
        )
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 1 and not pd.api.types.is_numeric_dtype(X.dtypes.iloc[0]):
            X = X.iloc[:, 0]
        else:
            return None
    array = X if isinstance(X, np.ndarray) else np.asarray(X, dtype=object)
    if array.dtype.kind == "S":
        return array.astype(str)
    if array.dtype.kind == "U":
        return array
    if array.dtype != object or array.size == 0 or not isinstance(array.flat[0], str):
        if array.dtype == object and array.size == 0 and array.ndim == 1:
            raise ValueError("No sequences were given: X is empty.")
        return None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    for index, item in enumerate(array.flat):
        if not isinstance(item, str):
            raise TypeError(f"Sequence {index} is {type(item).__name__} {item!r}, not a string.")
    return array.astype(str)



def encode_letters(array, letters, wildcards):
    """Codes of a string array (1-D sequences or 2-D single letters)."""
    if array.size == 0:
        raise ValueError("No sequences were given: X is empty.")
    if array.ndim == 2:
        lengths = np.char.str_len(array)
        if np.any(lengths != 1):
            row, col = np.argwhere(lengths != 1)[0]
            raise ValueError(
                f"A 2-D array of letters must hold one letter per cell; cell ({row}, {col}) "
                f"holds {array[row, col]!r}."
            )
        points = np.ascontiguousarray(array.astype("<U1")).view(np.uint32).reshape(array.shape)
    elif array.ndim == 1:
        lengths = np.char.str_len(array)
        width = int(lengths[0])
        different = np.flatnonzero(lengths != width)
        if different.size:
            i = int(different[0])
            raise ValueError(
                f"Sequences must all have the same length: sequence {i} has length "
                f"{lengths[i]}, sequence 0 has length {width}."
            )
        if width == 0:
            raise ValueError("Sequences have length 0: there is nothing to fit.")
        array = np.ascontiguousarray(array.astype(f"<U{width}"))
        points = array.view(np.uint32).reshape(array.shape[0], width)
    else:
        raise ValueError(f"Expected a 1-D array of sequences, got shape {array.shape}.")
    table = letter_table(letters, wildcards)
    codes = table[np.minimum(points, 127)]
    codes[points > 127] = -2
    unknown = codes == -2
    if unknown.any():
        row, col = np.argwhere(unknown)[0]
        raise ValueError(
            f"Unknown letter {chr(points[row, col])!r} in sequence {row} at position {col}: "
            f"the alphabet is {letters!r} and the wildcards (missing letters) are {wildcards!r}."
        )
    return codes.astype(code_dtype(len(letters)))


def as_codes(X, letters, wildcards, validate, bounded=True):
    """Checked letter codes (n, w) of sequences (strings) or of integer codes.

    Parameters
    ----------
    X : array-like
        Sequences as :func:`encode_sequences` takes them, or integer codes
        (-1 for a missing letter).
    letters, wildcards : str
        The alphabet and its wildcards, as :func:`check_alphabet` returns them.
    validate : callable(array, dtype=...) -> ndarray
        Checks the array's shape: ``validate_data`` or ``check_array`` with the
        caller's options.
    bounded : bool, default=True
        Whether integer codes must be letters of ``letters``. False accepts
        any code from -1 up, for an alphabet that is made to fit the codes.

    Returns
    -------
    codes : ndarray of shape (n, w)
        int8 (wider for more than 127 letters).
    """
    sequences = as_sequences(X)
    if sequences is not None:
        return validate(encode_letters(sequences, letters, wildcards), dtype=None)
    X = validate(X, dtype="numeric")
    if X.dtype.kind == "f":
        fractional = X != np.round(X)
        if fractional.any():
            row, col = np.argwhere(fractional)[0]
            raise ValueError(f"Letter codes must be integers; X[{row}, {col}] = {X[row, col]!r}.")
    outside = (X < MISSING) | (X >= len(letters)) if bounded else X < MISSING
    if outside.any():
        row, col = np.argwhere(outside)[0]
        allowed = (
            f"in 0..{len(letters) - 1} for the alphabet {letters!r}" if bounded else "integers >= 0"
        )
        raise ValueError(
            f"Letter codes must be {allowed} (or -1 for a missing letter); "
            f"X[{row}, {col}] = {X[row, col]!r}."
        )
    n_letters = len(letters) if bounded or X.size == 0 else max(len(letters), int(X.max()) + 1)
    return X.astype(code_dtype(n_letters))


def encode_ragged(sequences, letters, wildcards):
    """Sequences of any lengths as one padded code matrix, and their names.

    Parameters
    ----------
    sequences : dict of str to str, pandas Series or 1-column DataFrame, or 1-D array-like
        Named sequences (e.g. from :func:`skem.io.read_fasta`; a Series is
        named by its index), or a list of strings, of bytes, or of integer code
        arrays (``0..A-1``, -1 for a missing letter).
    letters, wildcards : str
        The alphabet and its wildcards, upper case (as :func:`check_alphabet` gives them).

    Returns
    -------
    codes : ndarray of shape (n_sequences, max_length)
        Letters ``0..A-1``, ``A`` for a missing letter (a wildcard), ``A + 1``
        for padding after the end of a shorter sequence. Non-negative, so that
        identical sequences compress fast (:func:`skem._rows.compress_rows`).
    names : ndarray of shape (n_sequences,)
        The sequences' names (their positions when they have none).

    Raises
    ------
    ValueError
        For no sequences, an empty sequence, or a letter outside the alphabet
        and its wildcards; the message names the sequence (by name) and the position.
    """
    A = len(letters)
    if isinstance(sequences, str):
        raise ValueError("Expected a list of sequences, got a single string.")
    if isinstance(sequences, dict):
        names, items = list(sequences.keys()), list(sequences.values())
    elif isinstance(sequences, pd.DataFrame):
        if sequences.shape[1] != 1:
            raise ValueError(
                f"A DataFrame of sequences must have one column, got {sequences.shape[1]}."
            )
        names, items = list(sequences.index), list(sequences.iloc[:, 0])
    elif isinstance(sequences, pd.Series):
        names, items = list(sequences.index), list(sequences)
    else:
        if isinstance(sequences, np.ndarray) and sequences.ndim == 2 and sequences.dtype.kind in "iu":
            items = list(sequences)  # equal-length integer codes, one sequence per row
        else:
            items = list(sequences)
        names = list(range(len(items)))
    if not items:
        raise ValueError("No sequences were given: X is empty.")
    table = letter_table(letters, wildcards)
    rows = []
    for name, item in zip(names, items):
        if isinstance(item, bytes):
            item = item.decode("ascii", errors="replace")
        if isinstance(item, str):
            try:
                points = np.frombuffer(item.encode("ascii"), dtype=np.uint8)
            except UnicodeEncodeError:
                bad = next(i for i, c in enumerate(item) if ord(c) > 127)
                raise ValueError(
                    f"Unknown letter {item[bad]!r} in sequence {name!r} at position {bad}: "
                    f"the alphabet is {letters!r} and the wildcards are {wildcards!r}."
                ) from None
            codes = table[points]
            unknown = np.flatnonzero(codes == -2)
            if unknown.size:
                bad = int(unknown[0])
                raise ValueError(
                    f"Unknown letter {item[bad]!r} in sequence {name!r} at position {bad}: "
                    f"the alphabet is {letters!r} and the wildcards (missing letters) are "
                    f"{wildcards!r}."
                )
        else:
            codes = np.asarray(item)
            if codes.ndim != 1 or (codes.size and codes.dtype.kind not in "iub"):
                raise ValueError(
                    f"Sequence {name!r} must be a string or a 1-D array of integer letter codes, "
                    f"got {type(item).__name__}."
                )
            outside = np.flatnonzero((codes < MISSING) | (codes >= A))
            if outside.size:
                bad = int(outside[0])
                raise ValueError(
                    f"Letter codes must be in 0..{A - 1} for the alphabet {letters!r} (or -1 for a "
                    f"missing letter); sequence {name!r} has {codes[bad]!r} at position {bad}."
                )
        if codes.size == 0:
            raise ValueError(f"Sequence {name!r} is empty.")
        rows.append(codes)
    lengths = np.array([row.size for row in rows])
    dtype = np.uint8 if A + 1 <= 255 else np.uint16
    padded = np.full((len(rows), lengths.max()), A + 1, dtype=dtype)
    flat = np.concatenate(rows).astype(np.int64)
    flat[flat < 0] = A
    padded[np.arange(lengths.max()) < lengths[:, None]] = flat
    return padded, np.asarray(names, dtype=object)

def is_nucleotide(letters):
    """Whether upper-case ``letters`` are DNA's or RNA's (in any order)."""
    return sorted(letters) in (sorted("ACGT"), sorted("ACGU"))


def default_letters(X):
    """The default alphabet's letters for validated codes ``X`` (or a dask array of rows).

    DNA's for codes up to 3 (strings are DNA: their codes are), else one
    letter per code ``0..max``, named by :data:`CODE_LETTERS`.
    """
    if X.dtype.kind not in "biuf":  # dask blocks of strings, read as DNA
        return DNA
    largest = X.max()
    if is_dask_array(X):
        largest = largest.compute()  # a pass over the blocks, before the model exists
    n_letters = int(largest) + 1 if np.isfinite(largest) else 0  # the blocks' check reports NaN
    if n_letters <= len(DNA):
        return DNA
    if n_letters > len(CODE_LETTERS):
        raise ValueError(
            f"Integer codes up to {n_letters - 1} need an alphabet of {n_letters} letters: "
            f"pass alphabet= (the default names at most {len(CODE_LETTERS)} letters)."
        )
    return CODE_LETTERS[:n_letters]

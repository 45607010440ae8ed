"""Sequences as letter codes: alphabets, encoding, one-hot windows, reverse complements.

Everything here is about data, not about a model: :class:`skem.MotifMixture`
fits the codes and one-hot windows made here, and :func:`sequence_windows`
cuts long sequences into the windows it fits and maps the fitted site
probabilities back (:meth:`SequenceWindows.sites`).

Codes. An alphabet of ``A`` letters is coded ``0..A-1`` in its order
(case-insensitive); a wildcard ('N', the IUPAC ambiguity codes, or 'X' for
other alphabets) is a missing letter, coded ``-1``. :func:`one_hot` expands
codes of width ``w`` into ``w * A`` indicator columns, a missing letter being
a row of zeros at its position; :func:`revcomp_permutation` is the column
permutation of that matrix that reverse-complements every window.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd

__all__ = [
    "SequenceWindows",
    "decode_sequences",
    "encode_sequences",
    "one_hot",
    "reverse_complement",
    "revcomp_permutation",
    "sequence_windows",
]

#: Wildcards of nucleotide alphabets: 'N' and the IUPAC ambiguity codes, all treated as unknown.
NUCLEOTIDE_WILDCARDS = "NRYSWKMBDHV"
#: Wildcard of other alphabets (proteins), unless it is itself a letter of the alphabet.
OTHER_WILDCARD = "X"
#: Code of a missing letter.
MISSING = -1


# --------------------------------------------------------------- alphabets


def _check_alphabet(alphabet, wildcards=None):
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


def _letter_table(letters, wildcards):
    """Code of each ASCII character: letters 0..A-1, wildcards -1, anything else -2."""
    table = np.full(128, -2, dtype=np.int16)
    for code, letter in enumerate(letters):
        table[ord(letter)] = table[ord(letter.lower())] = code
    for letter in wildcards:
        table[ord(letter)] = table[ord(letter.lower())] = MISSING
    return table


def _code_dtype(n_letters):
    """The smallest integer type that holds the codes ``-1..n_letters-1``."""
    return np.int8 if n_letters <= 127 else np.int16 if n_letters <= 2**15 - 1 else np.int32


def _as_sequences(X):
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


def encode_sequences(sequences, alphabet="ACGT", wildcards=None):
    """Encode equal-length sequences as integer letter codes.

    Parameters
    ----------
    sequences : array-like of str of shape (n_sequences,), or of shape (n_sequences, width)
        Sequences of one length (any case), or a 2-D array of single letters.
    alphabet : str, default="ACGT"
        The letters, coded ``0..len(alphabet)-1`` in this order (case-insensitive).
    wildcards : str, default=None
        Letters that stand for an unknown letter (coded -1). None means 'N' and
        the IUPAC ambiguity codes for nucleotide alphabets, 'X' otherwise.

    Returns
    -------
    codes : ndarray of shape (n_sequences, width)
        int8 (int16 for alphabets of more than 127 letters); -1 marks a wildcard.

    Raises
    ------
    ValueError
        For no sequences, sequences of different or zero length, or a letter
        outside the alphabet and wildcards (the message names the letter, its
        sequence and position).

    Examples
    --------
    >>> from skem.sequences import encode_sequences
    >>> encode_sequences(["ACGT", "tnca"])
    array([[ 0,  1,  2,  3],
           [ 3, -1,  1,  0]], dtype=int8)
    """
    letters, wildcards = _check_alphabet(alphabet, wildcards)
    array = _as_sequences(sequences)
    if array is None:
        raise ValueError("sequences must be strings.")
    return _encode(array, letters, wildcards)


def _encode(array, letters, wildcards):
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
    table = _letter_table(letters, wildcards)
    codes = table[np.minimum(points, 127)]
    codes[points > 127] = -2
    unknown = codes == -2
    if unknown.any():
        row, col = np.argwhere(unknown)[0]
        raise ValueError(
            f"Unknown letter {chr(points[row, col])!r} in sequence {row} at position {col}: "
            f"the alphabet is {letters!r} and the wildcards (missing letters) are {wildcards!r}."
        )
    return codes.astype(_code_dtype(len(letters)))


def _as_codes(X, letters, wildcards, validate, bounded=True):
    """Checked letter codes (n, w) of sequences (strings) or of integer codes.

    Parameters
    ----------
    X : array-like
        Sequences as :func:`encode_sequences` takes them, or integer codes
        (-1 for a missing letter).
    letters, wildcards : str
        The alphabet and its wildcards, as :func:`_check_alphabet` returns them.
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
    sequences = _as_sequences(X)
    if sequences is not None:
        return validate(_encode(sequences, letters, wildcards), dtype=None)
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
    return X.astype(_code_dtype(n_letters))


def encode_ragged(sequences, letters, wildcards):
    """Sequences of any lengths as one padded code matrix, and their names.

    Parameters
    ----------
    sequences : dict of str to str, pandas Series or 1-column DataFrame, or 1-D array-like
        Named sequences (e.g. from :func:`skem.io.read_fasta`; a Series is
        named by its index), or a list of strings, of bytes, or of integer code
        arrays (``0..A-1``, -1 for a missing letter).
    letters, wildcards : str
        The alphabet and its wildcards, upper case (as :func:`_check_alphabet` gives them).

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
    table = _letter_table(letters, wildcards)
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


def decode_sequences(codes, alphabet="ACGT", missing="N"):
    """Turn integer letter codes back into strings.

    Parameters
    ----------
    codes : array-like of int of shape (n_sequences, width)
        Codes ``0..len(alphabet)-1``; -1 for a missing letter.
    alphabet : str, default="ACGT"
        The letters.
    missing : str, default="N"
        The character written for code -1.

    Returns
    -------
    sequences : ndarray of str of shape (n_sequences,)
        The decoded sequences, missing letters as ``missing``.

    Examples
    --------
    >>> from skem.sequences import decode_sequences
    >>> decode_sequences([[0, 1, 2, 3], [3, -1, 1, 0]])
    array(['ACGT', 'TNCA'], dtype='<U4')
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D, got shape {codes.shape}.")
    symbols = np.array(list(alphabet.upper()) + [missing])
    if codes.size and (codes.min() < -1 or codes.max() >= len(alphabet)):
        raise ValueError(f"codes must be in -1..{len(alphabet) - 1}.")
    letters = symbols[np.where(codes < 0, len(alphabet), codes)]
    width = codes.shape[1]
    return np.ascontiguousarray(letters.astype("<U1")).view(f"<U{max(width, 1)}").reshape(-1)


def one_hot(codes, n_letters):
    """One-hot expansion of letter codes, a missing letter (-1) being a row of zeros.

    Parameters
    ----------
    codes : ndarray of shape (n, w)
        Codes ``-1..n_letters-1``.
    n_letters : int
        Alphabet size ``A``.

    Returns
    -------
    onehot : ndarray of shape (n, w * n_letters)
        float64; column ``i * A + a`` is the indicator of letter ``a`` at position ``i``.
    """
    n, w = codes.shape
    onehot = np.zeros((n, w * n_letters))
    rows, positions = np.nonzero(codes >= 0)
    onehot[rows, positions * n_letters + codes[rows, positions]] = 1.0
    return onehot


_COMPLEMENT_DNA = str.maketrans(
    "ACGTNRYSWKMBDHVacgtnryswkmbdhv", "TGCANYRSWMKVHDBtgcanyrswmkvhdb"
)
_COMPLEMENT_RNA = str.maketrans(
    "ACGUNRYSWKMBDHVacgunryswkmbdhv", "UGCANYRSWMKVHDBugcanyrswmkvhdb"
)


def _is_nucleotide(letters):
    """Whether upper-case ``letters`` are DNA's or RNA's (in any order)."""
    return sorted(letters) in (sorted("ACGT"), sorted("ACGU"))


def _check_nucleotides(alphabet):
    """Whether a nucleotide alphabet is RNA; a ValueError for other alphabets."""
    letters = alphabet.upper()
    if not _is_nucleotide(letters):
        raise ValueError(
            f"Reverse complements need a nucleotide alphabet (ACGT or ACGU), got {alphabet!r}."
        )
    return "U" in letters


def reverse_complement(sequence, alphabet="ACGT"):
    """The reverse complement of a nucleotide sequence (IUPAC codes complemented, case kept).

    Parameters
    ----------
    sequence : str
        The sequence.
    alphabet : {"ACGT", "ACGU"} in any order, default="ACGT"
        DNA or RNA (the complement of A is U for RNA).

    Returns
    -------
    str
        The reverse complement.

    Examples
    --------
    >>> from skem.sequences import reverse_complement
    >>> reverse_complement("AACGTn")
    'nACGTT'
    """
    table = _COMPLEMENT_RNA if _check_nucleotides(alphabet) else _COMPLEMENT_DNA
    return sequence.translate(table)[::-1]


def revcomp_permutation(width, alphabet="ACGT"):
    """Column permutation of the one-hot matrix that reverse-complements a window.

    Column ``i * A + a`` of the reverse complement's one-hot row is column
    ``(w - 1 - i) * A + c(a)`` of the window's, ``c`` being the complement;
    the permutation is its own inverse. So ``onehot[:, perm]`` encodes the
    reverse complements, ``onehot @ log_pwm[perm]`` scores them against a
    flattened log-PWM, and ``counts[perm]`` maps letter counts of reverse
    complements back onto the window's strand.

    Parameters
    ----------
    width : int
        Window width ``w``.
    alphabet : str, default="ACGT"
        ACGT or ACGU in any order (case-insensitive).

    Returns
    -------
    perm : ndarray of int of shape (width * 4,)
        Column ``j`` of a reverse-complemented one-hot window is column
        ``perm[j]`` of the forward one.

    Examples
    --------
    >>> from skem.sequences import encode_sequences, one_hot, revcomp_permutation
    >>> onehot = one_hot(encode_sequences(["AACG", "CGTT"]), 4)
    >>> bool((onehot[0, revcomp_permutation(4)] == onehot[1]).all())
    True
    """
    rna = _check_nucleotides(alphabet)
    letters = alphabet.upper()
    table = _COMPLEMENT_RNA if rna else _COMPLEMENT_DNA
    complement = np.array([letters.index(letter.translate(table)) for letter in letters])
    A = len(letters)
    positions = np.arange(width)[::-1]
    return (positions[:, None] * A + complement[None, :]).reshape(-1)


# ------------------------------------------------------------ windowing


@dataclass(frozen=True)
class SequenceWindows:
    """All windows of one width cut from a set of sequences, with where each came from.

    Attributes
    ----------
    windows : ndarray of str of shape (n_windows,)
        The windows (upper case), ready for :meth:`skem.MotifMixture.fit`. A window
        on the minus strand is the reverse complement of the forward-strand
        letters it covers.
    names : ndarray of shape (n_windows,)
        Name of the sequence each window comes from.
    starts : ndarray of int of shape (n_windows,)
        0-based offset of the window's leftmost letter on the forward strand.
    strands : ndarray of str of shape (n_windows,)
        '+' or '-'.
    width : int
        Window width.
    alphabet : str
        The alphabet given to :func:`sequence_windows` (for reverse complements).
    """

    windows: np.ndarray
    names: np.ndarray
    starts: np.ndarray
    strands: np.ndarray
    width: int
    alphabet: str = "ACGT"

    def __len__(self):
        return self.windows.shape[0]

    def to_frame(self):
        """The windows as a DataFrame with columns ``sequence, start, end, strand, window``.

        Returns
        -------
        pandas.DataFrame
            One row per window; ``end`` is exclusive (``sequence[start:end]``
            on the forward strand).
        """
        return pd.DataFrame(
            {
                "sequence": self.names,
                "start": self.starts,
                "end": self.starts + self.width,
                "strand": self.strands,
                "window": self.windows,
            }
        )

    def sites(self, probability, threshold=0.5, non_overlapping=True, minus_strand=None):
        """Windows whose site probability reaches ``threshold``, mapped back to their sequences.

        Parameters
        ----------
        probability : array-like of shape (n_windows,)
            Probability that each window is a site, for instance
            ``model.predict_proba(windows.windows)[:, 1]``.
        threshold : float, default=0.5
            Smallest probability reported.
        non_overlapping : bool, default=True
            Within each sequence, keep only the most probable of overlapping
            sites (on either strand), greedily, as MEME's site model does.
        minus_strand : array-like of shape (n_windows,), default=None
            Probability that each window holds the motif as its reverse
            complement, from a model fitted with ``revcomp=True``:
            ``model.predict_strand_proba(windows.windows)[:, 1]``. When given,
            a window whose value is above 0.5 is reported on the other strand
            than the window's, and its ``site`` is the reverse complement of the
            window (the motif instance as read on its strand).

        Returns
        -------
        sites : DataFrame
            Columns ``sequence, start, end, strand, site, probability``, in the
            order of the sequences and then of positions.
        """
        probability = np.asarray(probability, dtype=float).reshape(-1)
        if probability.shape[0] != len(self):
            raise ValueError(
                f"probability has {probability.shape[0]} entries, but there are {len(self)} windows."
            )
        hits = np.flatnonzero(probability >= threshold)
        if non_overlapping and hits.size:
            hits = hits[np.argsort(-probability[hits], kind="stable")]
            taken: dict = {}
            kept = []
            for index in hits:
                starts = taken.setdefault(self.names[index], [])
                start = self.starts[index]
                if all(abs(start - other) >= self.width for other in starts):
                    starts.append(start)
                    kept.append(index)
            hits = np.array(kept, dtype=np.intp)
        rank = pd.factorize(pd.Series(self.names, dtype=object))[0]
        hits = hits[np.lexsort((self.strands[hits], self.starts[hits], rank[hits]))]
        frame = self.to_frame().iloc[hits].rename(columns={"window": "site"})
        if minus_strand is not None:
            minus_strand = np.asarray(minus_strand, dtype=float).reshape(-1)
            if minus_strand.shape[0] != len(self):
                raise ValueError(
                    f"minus_strand has {minus_strand.shape[0]} entries, but there are "
                    f"{len(self)} windows."
                )
            flip = minus_strand[hits] > 0.5
            frame["strand"] = np.where(flip, np.where(frame["strand"] == "+", "-", "+"), frame["strand"])
            frame["site"] = [
                reverse_complement(site, self.alphabet) if flipped else site
                for site, flipped in zip(frame["site"], flip)
            ]
        frame["probability"] = probability[hits]
        return frame.reset_index(drop=True)


def sequence_windows(sequences, width, *, both_strands=False, alphabet="ACGT"):
    """Cut sequences of any length into all their windows of width ``width``.

    A mixture over these windows is MEME's TCM ("any number of sites") model
    without its non-overlap constraint; :meth:`SequenceWindows.sites` maps
    the fitted site probabilities back to sequences and positions.

    Parameters
    ----------
    sequences : dict of str to str, or iterable of str
        Named sequences (e.g. from :func:`skem.io.read_fasta`), or unnamed ones
        (named by their index). Sequences shorter than ``width`` give no windows.
    width : int
        Window width, at least 1.
    both_strands : bool, default=False
        Also cut the reverse complement of each sequence (nucleotides only),
        as separate windows. To find a motif on either strand, prefer the
        forward windows and ``MotifMixture(revcomp=True)``, which makes the
        strand of each site a hidden variable of the same window.
    alphabet : str, default="ACGT"
        Used only to complement ("ACGU" complements A with U).

    Returns
    -------
    SequenceWindows
        The windows with their sequence names, offsets and strands.

    Examples
    --------
    >>> from skem.sequences import sequence_windows
    >>> w = sequence_windows({"s1": "ACGTA"}, 3, both_strands=True)
    >>> w.windows.tolist(), w.starts.tolist(), w.strands.tolist()
    (['ACG', 'CGT', 'GTA', 'CGT', 'ACG', 'TAC'], [0, 1, 2, 0, 1, 2], ['+', '+', '+', '-', '-', '-'])
    """
    if not isinstance(width, (Integral, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    if isinstance(sequences, str):
        raise ValueError("Expected several sequences (a dict or a list), got a single string.")
    items = sequences.items() if isinstance(sequences, dict) else enumerate(sequences)
    if both_strands:
        rna = _check_nucleotides(alphabet)
        complement = np.arange(256, dtype=np.uint8)
        source, target = ("ACGUNRYSWKMBDHV", "UGCANYRSWMKVHDB") if rna else (
            "ACGTNRYSWKMBDHV", "TGCANYRSWMKVHDB"
        )
        complement[np.frombuffer(source.encode(), np.uint8)] = np.frombuffer(target.encode(), np.uint8)
    blocks, names, counts = [], [], []
    for name, sequence in items:
        if not isinstance(sequence, str):
            raise TypeError(f"Sequence {name!r} is {type(sequence).__name__}, not a string.")
        try:
            letters = np.frombuffer(sequence.upper().encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError as error:
            raise ValueError(f"Sequence {name!r} has a non-ASCII character.") from error
        n_windows = letters.size - width + 1
        if n_windows < 1:
            continue
        names.append(name)
        counts.append(n_windows)
        blocks.append(np.lib.stride_tricks.sliding_window_view(letters, width))
        if both_strands:
            # Window j of the reversed strand covers forward positions L-w-j .. L-1-j,
            # so reversing the list of windows orders them by forward start.
            reverse = complement[letters[::-1]]
            blocks.append(np.lib.stride_tricks.sliding_window_view(reverse, width)[::-1])
    if not blocks:
        raise ValueError(f"No sequence is at least {width} letters long: there are no windows.")
    strands_per_sequence = 2 if both_strands else 1
    counts = np.repeat(np.asarray(counts), strands_per_sequence)
    letters = np.ascontiguousarray(np.concatenate(blocks))
    return SequenceWindows(
        windows=letters.view(f"S{width}").reshape(-1).astype(f"<U{width}"),
        names=np.repeat(np.repeat(np.array(names), strands_per_sequence), counts),
        starts=np.concatenate([np.arange(count) for count in counts]),
        strands=np.repeat(np.tile(np.array(["+", "-"][:strands_per_sequence]), len(names)), counts),
        width=int(width),
        alphabet=alphabet,
    )

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

from ._letters import as_sequences, check_alphabet, encode_letters, is_nucleotide

__all__ = [
    "SequenceWindows",
    "decode_sequences",
    "encode_sequences",
    "one_hot",
    "reverse_complement",
    "revcomp_permutation",
    "sequence_windows",
]


# --------------------------------------------------------------- encoding


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
    letters, wildcards = check_alphabet(alphabet, wildcards)
    array = as_sequences(sequences)
    if array is None:
        raise ValueError("sequences must be strings.")
    return encode_letters(array, letters, wildcards)


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
    # Row a of the table is letter a's indicator; code -1 picks the last row, all zeros.
    table = np.vstack([np.eye(n_letters), np.zeros((1, n_letters))])
    return table[codes.astype(np.intp, copy=False)].reshape(n, w * n_letters)


_COMPLEMENT_DNA = str.maketrans(
    "ACGTNRYSWKMBDHVacgtnryswkmbdhv", "TGCANYRSWMKVHDBtgcanyrswmkvhdb"
)
_COMPLEMENT_RNA = str.maketrans(
    "ACGUNRYSWKMBDHVacgunryswkmbdhv", "UGCANYRSWMKVHDBugcanyrswmkvhdb"
)



def _check_nucleotides(alphabet):
    """Whether a nucleotide alphabet is RNA; a ValueError for other alphabets."""
    letters = alphabet.upper()
    if not is_nucleotide(letters):
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

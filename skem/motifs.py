"""Motif finding as a mixture of position-specific letter distributions.

Only this model's math and the sequence encoding live here; the EM loop,
restarts, chunking and the scikit-learn API come from :mod:`skem._base` and
:mod:`skem._em`.

Encoding. Windows of width ``w`` over an alphabet of ``A`` letters are coded
as integers ``0..A-1`` (``-1`` for a missing letter: 'N' or another wildcard)
and expanded once into a one-hot matrix ``E`` of shape ``(n, w*A)``; a missing
letter is a row of zeros at its position. With ``L_k = log pwms[k]`` flattened
to length ``w*A``, the E-step is one matrix product, ``log p(x | k) = E @ L_k``
(a missing letter contributes ``log 1 = 0``, which marginalizes it exactly),
and the M-step's expected letter counts are another, ``(w q)^T @ E``.

Finding a motif. The likelihood of a window mixture has many local optima: a
start that half-covers the motif converges to a *shifted* copy of it. The
default start (``init_params="random_from_data"``) follows MEME's remedy
(Bailey & Elkan 1994): many observed windows, each made into a fuzzy PWM, are
scored against the data at once (a matrix product over all candidates), the
best are refined by a few EM steps run side by side, and the best few of those
are continued; the best continuation starts the full fit.

Both strands (``revcomp=True``). The reverse complement of a one-hot window
is the same window with its positions reversed and its letters complemented:
a fixed permutation ``perm`` of the ``w*A`` columns, an involution. So
``log p(rc(x) | k) = E @ L_k[perm]``, and with the strand as a hidden state
the E-step is still one matrix product, over the columns ``[L_k..., L_k[perm]
for the motif components]``; the reverse-strand counts are folded back with
the same permutation (:func:`_state_log_prob`, :func:`_fold_states`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import BaseMixture, normalize_log_prob
from ._compat import Interval, StrOptions
from ._em import AdditiveStats, RowData, run_em

__all__ = [
    "MotifMixture",
    "SequenceWindows",
    "decode_sequences",
    "encode_sequences",
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
#: Letter probabilities are kept at or above this (only SQUAREM's extrapolation can approach it).
PROB_FLOOR = 1e-300
#: The one-hot matrix is stored for all rows when it takes at most this many bytes, else built per chunk.
ONEHOT_BYTES = 2 * 2**30

# The start search (init_params="random_from_data"); see MotifMixture's Notes.
#: Weighted draws of rows the search works on (all rows when there are fewer).
SEARCH_ROWS = 20_000
#: Observed windows tried as starts: a motif in a fraction f of windows is among
#: them with probability 1 - exp(-f * N_CANDIDATES) (99 % at f = 0.5 %).
N_CANDIDATES = 1000
#: Candidates kept after scoring, refined by SHORT_ITER side-by-side EM steps.
N_SHORTLIST, SHORT_ITER = 50, 10
#: The best refined candidates, continued for CONTINUE_ITER full EM steps.
N_CONTINUE, CONTINUE_ITER = 3, 50
#: Entries of one (rows x candidates) block of the candidate scoring.
SCORE_BLOCK = 2**22
#: Above this log-likelihood ratio, log1p(a expm1(d)) is computed as log(a) + d.
LOG_RATIO_MAX = 300.0
#: Refined candidates whose probabilities all differ by less than this are the same optimum.
DUPLICATE_DISTANCE = 0.2
#: Largest phase shift tried on the best candidates.
MAX_SHIFT = 3
#: EM steps on all rows that decide between the continued candidates (when the search used fewer).
FINAL_ITER = 5
#: A start puts this much of each position's probability on the background (MEME's spfuzz).
START_FUZZ = 0.5
#: Starting mixing proportion of a candidate motif.
START_WEIGHT = 0.02
#: log 2: the prior probability of each strand of a strand-aware component is 1/2.
LOG2 = float(np.log(2.0))


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
    return np.int8 if n_letters <= 127 else np.int16


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
    >>> from skem.motifs import encode_sequences
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
    >>> from skem.motifs import decode_sequences
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


def _check_nucleotides(alphabet):
    letters = alphabet.upper()
    if sorted(letters) not in (sorted("ACGT"), sorted("ACGU")):
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
    >>> from skem.motifs import reverse_complement
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
    >>> from skem.motifs import encode_sequences, one_hot, revcomp_permutation
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
        The windows (upper case), ready for :meth:`MotifMixture.fit`. A window
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
    >>> from skem.motifs import sequence_windows
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


# ----------------------------------------------------------------- model


@dataclass(frozen=True)
class MotifParams:
    weights: np.ndarray  # (K,)
    pwms: np.ndarray  # (K, w, A), rows sum to 1


@dataclass(frozen=True)
class MotifStats(AdditiveStats):
    resp_sum: np.ndarray  # (K,)       sum_i w_i q_ik
    counts: np.ndarray  # (K, w * A)     sum_i w_i q_ik [x_i at position p is letter a]


@dataclass(frozen=True)
class MotifData(RowData):
    """Windows as letter codes (n, w) and, when it fits in memory, their one-hot matrix.

    ``onehot`` has shape (n, w * A), or (n, 0) when it is built chunk by chunk instead.
    """

    codes: np.ndarray = None
    onehot: np.ndarray = None
    n_letters: int = 0
    _shared = ("n_letters",)

    def expanded(self):
        """The one-hot matrix of these rows, (n, w * A)."""
        if self.onehot.shape[1]:
            return self.onehot
        return one_hot(self.codes, self.n_letters)


def _normalize(counts):
    """Rows of the last axis scaled to sum to 1."""
    return counts / counts.sum(axis=-1, keepdims=True)


def motif_m_step(resp_sum, counts, pseudocount, tied_background):
    """MAP M-step of the motif mixture.

    Parameters
    ----------
    resp_sum : ndarray of shape (K,)
        ``sum_i w_i q_ik``.
    counts : ndarray of shape (K, w, A)
        Expected letter counts per component and position (missing letters excluded).
    pseudocount : float
        Dirichlet pseudocount ``beta`` added to each letter count.
    tied_background : bool
        Whether component 0 has one letter distribution for all positions.

    Returns
    -------
    weights : ndarray of shape (K,)
        ``resp_sum / sum``; a component without rows keeps 1e-10 of the total.
    pwms : ndarray of shape (K, w, A)
        ``theta[k, i, a] = (counts[k, i, a] + beta) / (sum_a counts[k, i, a] + A beta)``;
        for a tied background the counts are pooled over positions first.
    """
    total = resp_sum.sum()
    weights = np.maximum(resp_sum, 1e-10 * total)
    weights = weights / weights.sum()
    pwms = _normalize(counts + pseudocount)
    if tied_background:
        pwms[0] = _normalize(counts[0].sum(axis=0) + pseudocount)
    return weights, pwms


def _state_log_prob(onehot, log_pwms, perm=None, n_plain=0, log_weights=None):
    """Log joint probability of each row and hidden (component, strand) state, laid out (S, n).

    State ``c < C`` is log-PWM ``c`` read on the window's strand; with ``perm``,
    state ``C + j`` is log-PWM ``n_plain + j`` read on the reverse complement
    (its columns permuted by ``perm``), and both strand states of these
    strand-aware components carry the strand's prior ``log 1/2``. One matrix
    product computes all states.

    Parameters
    ----------
    onehot : ndarray of shape (n, w * A)
    log_pwms : ndarray of shape (C, w * A)
    perm : ndarray of shape (w * A,) or None
        :func:`revcomp_permutation`; None means every component is single-strand.
    n_plain : int
        Components ``0..n_plain-1`` are single-strand even with ``perm``.
    log_weights : ndarray of shape (C,), default=None
        Log mixing proportions added to each state (None adds nothing).

    Returns
    -------
    ndarray of shape (C + (C - n_plain if perm is not None else 0), n)
    """
    columns = log_pwms if perm is None else np.concatenate([log_pwms, log_pwms[n_plain:, perm]])
    log_prob = np.ascontiguousarray((onehot @ columns.T).T)
    if perm is None and log_weights is None:
        return log_prob
    offsets = np.zeros(log_pwms.shape[0]) if log_weights is None else np.asarray(log_weights, float)
    if perm is not None:
        offsets = np.concatenate([offsets, offsets[n_plain:]])
        offsets[n_plain:] -= LOG2
    log_prob += offsets[:, None]
    return log_prob


def _n_states_to_components(n_states, n_plain, stranded):
    return (n_states + n_plain) // 2 if stranded else n_states


def _component_log_prob(state_log_prob, n_plain, stranded):
    """Per-component log-likelihoods (C, n) from the states': log-sum-exp over the two strands."""
    C = _n_states_to_components(state_log_prob.shape[0], n_plain, stranded)
    if not stranded:
        return state_log_prob
    log_prob = state_log_prob[:C].copy()
    log_prob[n_plain:] = np.logaddexp(state_log_prob[n_plain:C], state_log_prob[C:])
    return log_prob


def _fold_states(state_values, n_plain, stranded, perm=None):
    """Per-component sums (C, ...) from per-state sums (S, ...): a reverse-strand state's sums are
    added to its component's. With ``perm``, the values are letter counts (S, w * A), and those of
    reverse complements are first mapped back onto the motif's strand (columns permuted)."""
    if not stranded:
        return state_values
    C = _n_states_to_components(state_values.shape[0], n_plain, True)
    folded = state_values[:C].copy()
    reverse = state_values[C:]
    folded[n_plain:] += reverse if perm is None else reverse[:, perm]
    return folded


class MotifMixture(BaseMixture):
    """Mixture of position-specific letter distributions: DNA (or protein) motif finding by EM.

    Each window of ``w`` letters comes from one of ``n_components``
    components; within component ``k`` its positions are independent, letter
    ``a`` at position ``i`` having probability ``pwms_[k, i, a]`` (a position
    weight matrix, PWM). With the default two components this is the
    motif-versus-background model; over all windows of longer sequences (see
    :func:`sequence_windows`) it is MEME's TCM model. Parameters are fitted by
    maximum a posteriori EM with a pseudocount.

    Parameters
    ----------
    n_components : int, default=2
        Number of components. With the default start, component 0 is the
        background and components 1.. are motifs.
    alphabet : str, default="ACGT"
        The letters (case-insensitive), coded ``0..A-1`` in this order. Any
        alphabet works, e.g. the 20 amino acids.
    wildcards : str, default=None
        Letters that mean "unknown": they are missing data, marginalized out.
        None means 'N' and the IUPAC ambiguity codes (R, Y, ...; their partial
        information is not used) for nucleotide alphabets, and 'X' otherwise.
    pseudocount : float > 0, default=0.1
        Added to the expected count of every letter at every position of every
        component (a Dirichlet prior, so the objective is the log posterior).
        It keeps every probability positive.
    background : {None, "position-independent"}, default=None
        None fits every component position by position. "position-independent"
        ties component 0 to one letter distribution for all positions (MEME's
        zero-order background).
    revcomp : bool, default=False
        Whether a motif may lie on either strand (MEME's ``-revcomp``): a
        component explains a window as its PWM or as the PWM's reverse
        complement, the strand being one more hidden variable (see Notes and
        :meth:`predict_strand_proba`). This applies to the motif components
        1, 2, ... and, with ``background=None``, to component 0 as well (all
        components are then alike, and the background cannot gain over a
        motif by being the only single-strand one). A tied background
        (``"position-independent"``) is read on the windows' strand only: it
        is invariant under reversal already, and converges faster: the strand
        of a near-uniform position-specific background is almost
        unidentifiable, a flat direction for EM. Needs a nucleotide alphabet
        (ACGT or ACGU in any order). Fit it to forward-strand windows
        (:func:`sequence_windows` with ``both_strands=False``).
    n_init : int, default=1
        Number of EM runs from different starts; the best final objective is kept.
    init_params : {"random_from_data", "kmeans", "k-means++", "random"}, default="random_from_data"
        How EM starts. "random_from_data" searches for motifs among observed
        windows as MEME does (see Notes). "kmeans" and "k-means++" cluster the
        one-hot windows; "random" draws random responsibilities. All respect
        ``sample_weight``.
    max_iter : int, default=200
        Maximum number of EM iterations per run.
    tol : float, default=1e-7
        Stop when the objective per (weighted) window changes by less than this.
    accelerate : {"none", "squarem"}, default="none"
        Plain EM, or SQUAREM extrapolation (fewer iterations on slowly converging data).
    chunk_size : int, default=None
        Windows per E-step chunk; None sizes chunks to about 64 MiB of work
        arrays. The fit does not depend on it.
    n_jobs : int, default=None
        Runs the ``n_init`` starts in parallel through joblib; results are
        identical to a serial fit.
    warm_start : bool, default=False
        Start from the previous fit's parameters (ignoring ``n_init``).
    random_state : int, RandomState instance or None, default=None
        Seeds the starts and :meth:`sample`.
    verbose : int, default=0
        1 prints a line per run, 2 also the objective every ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between two printed lines.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing proportions (for a motif: the fraction of windows that are sites).
    pwms_ : ndarray of shape (n_components, w, A)
        Letter probabilities per component and position; ``pwms_[k, i]`` sums to 1.
    background_ : ndarray of shape (A,)
        Zero-order background letter distribution: component 0 averaged over positions.
    log_odds_ : ndarray of shape (n_components, w, A)
        ``log2(pwms_ / background_)`` in bits (MEME's log-odds matrix).
    information_content_ : ndarray of shape (n_components, w)
        Information content of each position in bits, ``log2(A) - entropy``
        (the total height of a sequence-logo column).
    consensus_ : ndarray of str of shape (n_components,)
        Most probable letter at each position, per component.
    alphabet_ : str
        The alphabet, upper case.
    converged_ : bool
        Whether the best run met the stopping rule.
    n_iter_ : int
        EM iterations of the best run.
    lower_bound_ : float
        Objective per window of the training data at the fitted parameters:
        mean log-likelihood plus the log prior of the pseudocounts divided by
        the total weight.
    lower_bounds_ : ndarray of shape (`n_iter_` + 1,)
        The same along the best run, from its start.
    n_features_in_ : int
        The window width ``w``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame of codes with string column names.

    See Also
    --------
    skem.motifs.sequence_windows : Cut long sequences into windows and map sites back.
    skem.datasets.make_motif_sequences : Sequences with a planted motif.
    skem.io.write_meme, skem.io.write_jaspar : Save the fitted PWMs.
    skem.plotting.plot_logo : Sequence logo of a component.

    Notes
    -----
    The model is ``z_j ~ Categorical(weights)``, ``x_ji | z_j = k ~
    Categorical(pwms[k, i, :])`` independently over positions ``i``. EM
    updates: ``q_jk ∝ weights_k prod_i pwms[k, i, x_ji]`` (missing letters
    contribute 1); ``weights_k = sum_j w_j q_jk / sum_j w_j``;
    ``pwms[k, i, a] ∝ sum_j w_j q_jk [x_ji = a] + pseudocount``. In matrix
    form both steps are products with the one-hot matrix of the windows, of
    shape ``(n, w * A)``, which is stored once (8 w A bytes per distinct
    window; above 2 GiB it is rebuilt for each chunk instead).

    The default start (``init_params="random_from_data"``) is a motif search
    after MEME (Bailey & Elkan 1994). Component 0 starts as the letter
    frequencies of the data. Then, on a weighted draw of at most 20 000
    windows: up to 1000 distinct observed windows become candidate PWMs
    (probability 0.5 on the observed letter plus half of the background);
    all are scored at once by the likelihood of the data under the current
    mixture plus the candidate; the best 50 take 10 EM steps side by side
    (the rest of the mixture held fixed). The best 3 distinct results and
    their phase shifts by up to 3 positions (a start half-covering the
    motif otherwise stays shifted) are refined the same way; the best 3
    distinct ones are continued for 50 full EM steps, then for 5 steps on
    all windows, and the best starts the fit. Further motif components are
    added one at a time the same way. A motif in a fraction ``f`` of the
    windows is among the candidates with probability ``1 - exp(-1000 f)``;
    ``n_init`` repeats the search with other candidates.

    Both strands (``revcomp=True``). For a strand-aware component ``k``
    (every component but a tied background) the strand ``s_j`` of window
    ``j`` is hidden, each strand having probability
    1/2: ``p(x | k) = (p(x | pwms[k]) + p(rc(x) | pwms[k])) / 2``, where
    ``rc(x)`` is the reverse complement. The one-hot matrix of the reverse
    complements is the one-hot matrix with its ``w * A`` columns permuted
    (positions reversed, letters complemented; see
    :func:`~skem.motifs.revcomp_permutation`), so ``log p(rc(x) | k) = E @
    L_k[perm]``: the E-step is one matrix product over the columns of the
    ``2K`` (``2K - 1`` with a tied background) (component, strand) states,
    whose posteriors ``q_jk+`` and
    ``q_jk-`` sum to ``q_jk``. The M-step's expected letter counts are
    ``(w q_k+)^T E + ((w q_k-)^T E)[perm]``, a second product, so the counts
    stay additive over chunks and EM stays monotone. The motif search scores
    and refines its candidates under the same two-strand likelihood, and a
    candidate and its reverse complement count as the same optimum. The
    fitted PWM is in whichever orientation the search found;
    :meth:`predict_strand_proba` gives each window's strand posterior.

    Windows of both strands as separate rows (:func:`sequence_windows` with
    ``both_strands=True``, without ``revcomp``) hold each site once as the
    motif and once as its reverse complement; one component may then settle
    on a blend of the two orientations.

    Windows overlap (TCM without MEME's non-overlap constraint): a motif
    whose shifted copy resembles its reverse complement (a core such as
    CCGG) can explain one site by two or three overlapping windows, on either
    strand or with either ``revcomp``, and the fit may then prefer a blend of
    the shifts with a larger ``weights_[1]``.

    Identical windows are fitted once with their summed weight, which changes
    nothing but the speed.

    References
    ----------
    T. L. Bailey and C. Elkan (1994). Fitting a mixture model by expectation
    maximization to discover motifs in biopolymers. ISMB 2:28-36.

    Examples
    --------
    >>> from skem import MotifMixture
    >>> from skem.datasets import make_motif_windows
    >>> X, y, pwm = make_motif_windows(2000, width=8, motif_fraction=0.1, random_state=0)
    >>> model = MotifMixture(random_state=0).fit(X)
    >>> model.consensus_[1] == "".join("ACGT"[i] for i in pwm.argmax(axis=1))
    True
    >>> model.pwm().shape
    (8, 4)
    """

    _parameter_constraints: dict = {
        **BaseMixture._parameter_constraints,
        "alphabet": [str],
        "wildcards": [str, None],
        "pseudocount": [Interval(Real, 0.0, None, closed="neither")],
        "background": [StrOptions({"position-independent"}), None],
        "revcomp": ["boolean"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        alphabet="ACGT",
        wildcards=None,
        pseudocount=0.1,
        background=None,
        revcomp=False,
        n_init=1,
        init_params="random_from_data",
        max_iter=200,
        tol=1e-7,
        accelerate="none",
        chunk_size=None,
        n_jobs=None,
        warm_start=False,
        random_state=None,
        verbose=0,
        verbose_interval=10,
    ):
        super().__init__(
            n_init=n_init,
            init_params=init_params,
            max_iter=max_iter,
            tol=tol,
            accelerate=accelerate,
            chunk_size=chunk_size,
            n_jobs=n_jobs,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.n_components = n_components
        self.alphabet = alphabet
        self.wildcards = wildcards
        self.pseudocount = pseudocount
        self.background = background
        self.revcomp = revcomp

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        return tags

    # ---------------------------------------------------------------- data

    def _validate_X(self, X, reset):
        letters, wildcards = _check_alphabet(self.alphabet, self.wildcards)
        n_letters = len(letters)
        if self.revcomp and sorted(letters) not in (sorted("ACGT"), sorted("ACGU")):
            raise ValueError(
                f"revcomp=True needs a nucleotide alphabet (ACGT or ACGU, in any order), got "
                f"alphabet={self.alphabet!r}: only DNA and RNA have a reverse complement."
            )
        sequences = _as_sequences(X)
        if sequences is not None:
            codes = _encode(sequences, letters, wildcards)
            validate_data(self, codes, reset=reset, dtype=None, ensure_min_samples=1)
            return codes
        X = validate_data(self, X, reset=reset, dtype="numeric", ensure_min_samples=1)
        if X.dtype.kind == "f":
            fractional = X != np.round(X)
            if fractional.any():
                row, col = np.argwhere(fractional)[0]
                raise ValueError(
                    f"Letter codes must be integers; X[{row}, {col}] = {X[row, col]!r}."
                )
        outside = (X < MISSING) | (X >= n_letters)
        if outside.any():
            row, col = np.argwhere(outside)[0]
            raise ValueError(
                f"Letter codes must be in 0..{n_letters - 1} for the alphabet {letters!r} "
                f"(or -1 for a missing letter); X[{row}, {col}] = {X[row, col]!r}."
            )
        return X.astype(_code_dtype(n_letters))

    def _n_letters(self):
        return len(self.alphabet)

    def _prepare(self, X, weights):
        n_letters = self._n_letters()
        n, w = X.shape
        if n * w * n_letters * 8 <= ONEHOT_BYTES:
            onehot = one_hot(X, n_letters)
        else:
            onehot = np.zeros((n, 0))
        return MotifData(weights=weights, codes=X, onehot=onehot, n_letters=n_letters)

    def _work_per_row(self, data):
        lazy = 0 if data.onehot.shape[1] else data.codes.shape[1] * data.n_letters
        states = 2 * self.n_components - self._n_plain if self.revcomp else self.n_components
        return 4 * states + lazy

    @property
    def _tied(self):
        return self.background == "position-independent"

    # -------------------------------------------------------------- kernels

    @property
    def _n_plain(self):
        """Components 0.._n_plain-1 are single-strand even with revcomp=True: the tied background."""
        return 1 if self._tied else 0

    def _revcomp_perm(self, params):
        """The reverse-complement column permutation when some component is strand-aware, else None."""
        if not self.revcomp or params.pwms.shape[0] <= self._n_plain:
            return None
        return revcomp_permutation(params.pwms.shape[1], self.alphabet)

    def _estimate_log_prob(self, params, chunk):
        K = params.pwms.shape[0]
        perm = self._revcomp_perm(params)
        states = _state_log_prob(
            chunk.expanded(), np.log(params.pwms).reshape(K, -1), perm, self._n_plain
        )
        return _component_log_prob(states, self._n_plain, perm is not None).T

    def _e_step(self, params, chunk):
        # BaseMixture's E-step laid out as (states, n): the log-sum-exp over states
        # then runs along contiguous rows and shares one exponential with the
        # responsibilities, so that it costs less than the two matrix products.
        # With revcomp the states are (component, strand): still one product each way.
        onehot = chunk.expanded()
        K = params.pwms.shape[0]
        perm = self._revcomp_perm(params)
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        log_prob = _state_log_prob(
            onehot, np.log(params.pwms).reshape(K, -1), perm, self._n_plain, log_weights
        )
        resp, log_norm = normalize_log_prob(log_prob, axis=0)
        resp *= chunk.weights
        stranded = perm is not None
        stats = MotifStats(
            _fold_states(resp.sum(axis=1), self._n_plain, stranded),
            _fold_states(resp @ onehot, self._n_plain, stranded, perm),
        )
        return stats, float(chunk.weights @ log_norm)

    def _accumulate(self, chunk, weighted_resp):
        # Starting responsibilities (k-means, random) say nothing about the strand: the windows
        # count as read. (Half on each strand would start a motif rc-symmetric, which EM keeps.)
        counts = weighted_resp.T @ chunk.expanded()
        return MotifStats(weighted_resp.sum(axis=0), counts)

    def _m_step(self, stats, params):
        K = stats.resp_sum.shape[0]
        counts = stats.counts.reshape(K, -1, self._n_letters())
        weights, pwms = motif_m_step(stats.resp_sum, counts, self.pseudocount, self._tied)
        return MotifParams(weights, pwms)

    def _log_prior(self, params):
        log_pwms = np.log(params.pwms)
        total = log_pwms.sum()
        if self._tied:
            total -= log_pwms[0, 1:].sum()  # the tied background counts once
        return float(self.pseudocount * total)

    # -------------------------------------------------------- initialization

    def _initialize(self, data, random_state):
        if self.n_components == 1 or self.init_params != "random_from_data":
            return super()._initialize(data, random_state)
        return self._search_motifs(data, random_state)

    def _initial_resp(self, data, random_state):
        if data.n_rows < self.n_components and self.init_params != "random":
            # Fewer distinct windows than components: k-means cannot start; random responsibilities can.
            resp = random_state.uniform(size=(data.n_rows, self.n_components))
            return resp / resp.sum(axis=1, keepdims=True)
        return super()._initial_resp(data, random_state)

    def _init_features(self, data, rows):
        return data.take(rows).expanded()

    def _search_motifs(self, data, random_state):
        """MEME-style start: add motif components one by one from scored observed windows."""
        search = _search_rows(data, random_state)
        onehot = search.expanded()
        weights = search.weights
        K, A = self.n_components, data.n_letters
        w = data.codes.shape[1]
        resp = np.zeros((search.n_rows, K))
        resp[:, 0] = 1.0
        stats = self._accumulate(search, resp * weights[:, None])
        background = self._m_step(stats, None).pwms[0]
        params = MotifParams(np.ones(1), background[None])
        # The candidates are scored and refined under the model's own likelihood: with
        # revcomp, each is a motif on either strand.
        perm = revcomp_permutation(w, self.alphabet) if self.revcomp else None
        for k in range(1, K):
            # Log-density of each window under the mixture found so far.
            rest = self._score_samples(params, search)
            candidates = _candidate_pwms(search, background, random_state)
            alpha = np.full(candidates.shape[0], START_WEIGHT)
            best = _refine_candidates(
                onehot, weights, rest, candidates, alpha, self.pseudocount, A, N_SHORTLIST, perm
            )
            # Phase shifts: the best candidates moved by up to MAX_SHIFT positions,
            # so that a start half-covering the motif can still reach it.
            family = best + [
                (_shift(log_pwm, background, shift), alpha)
                for log_pwm, alpha in best
                for shift in range(-MAX_SHIFT, MAX_SHIFT + 1)
                if 0 < abs(shift) < w
            ]
            best = _refine_candidates(
                onehot, weights, rest, np.stack([log_pwm for log_pwm, _ in family]),
                np.array([alpha for _, alpha in family]), self.pseudocount, A, len(family), perm,
            )
            runs = []
            for log_pwm, alpha in best:
                start = MotifParams(
                    np.append(params.weights * (1.0 - alpha), alpha),
                    np.concatenate([params.pwms, np.exp(log_pwm).reshape(1, w, A)]),
                )
                runs.append(run_em(self, search, start, max_iter=CONTINUE_ITER, tol=0.0))
            if search is not data:
                # The search rows hold few sites of a rare motif: all the rows decide
                # between the continued candidates.
                chunk_rows = self._chunk_rows(data)
                runs = [
                    run_em(self, data, run.params, max_iter=FINAL_ITER, tol=0.0,
                           chunk_rows=chunk_rows)
                    for run in runs
                ]
            result = max(runs, key=lambda run: run.lower_bound)
            if self.verbose:
                print(
                    f"  motif search: component {k} from {len(candidates)} candidates, "
                    f"objective {result.lower_bound:.6g}"
                )
            params = result.params
        return params

    # ------------------------------------------------------ fitted attributes

    def _get_fitted_params(self):
        return MotifParams(self.weights_, self.pwms_)

    def _set_fitted_params(self, params):
        self.weights_ = params.weights
        self.pwms_ = params.pwms
        letters, _ = _check_alphabet(self.alphabet, self.wildcards)
        self.alphabet_ = letters
        self.background_ = self.pwms_[0].mean(axis=0)
        self.log_odds_ = np.log2(self.pwms_ / self.background_)
        A = self.pwms_.shape[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.sum(np.where(self.pwms_ > 0, self.pwms_ * np.log2(self.pwms_), 0.0), axis=2)
        self.information_content_ = np.log2(A) - entropy
        symbols = np.array(list(letters))
        self.consensus_ = np.array(["".join(symbols[row]) for row in self.pwms_.argmax(axis=2)])

    def _n_parameters(self):
        K, w, A = self.pwms_.shape
        per_component = w * (A - 1)
        n_pwm = (A - 1) + (K - 1) * per_component if self._tied else K * per_component
        return (K - 1) + n_pwm

    def _sample_component(self, params, k, n, random_state):
        cumulative = np.cumsum(params.pwms[k], axis=1)  # (w, A)
        u = random_state.uniform(size=(n, cumulative.shape[0], 1))
        codes = (u > cumulative[None, :, :-1]).sum(axis=2)
        if self._stranded(k):
            # Each draw lies on a random strand: half are read as their reverse complement.
            complement = revcomp_permutation(1, self.alphabet)
            minus = random_state.uniform(size=n) < 0.5
            codes[minus] = complement[codes[minus, ::-1]]
        return codes.astype(_code_dtype(cumulative.shape[1]))

    # ------------------------------------------------------------ SQUAREM

    def _pack(self, params):
        return np.concatenate([np.log(params.weights), np.log(params.pwms).ravel()])

    def _unpack(self, vector, params):
        K = params.weights.shape[0]
        log_weights = vector[:K]
        weights = np.exp(log_weights - log_weights.max())
        log_pwms = vector[K:].reshape(params.pwms.shape)
        if self._tied:
            log_pwms = log_pwms.copy()
            log_pwms[0] = log_pwms[0].mean(axis=0)
        pwms = np.exp(log_pwms - log_pwms.max(axis=2, keepdims=True))
        pwms = np.maximum(_normalize(pwms), PROB_FLOOR)
        return MotifParams(weights / weights.sum(), _normalize(pwms))

    # --------------------------------------------------------- results

    def _component(self, component):
        check_is_fitted(self)
        K = self.pwms_.shape[0]
        if component is None:
            return 1 if K > 1 else 0
        if not isinstance(component, (Integral, np.integer)) or not -K <= component < K:
            raise ValueError(f"component must be an integer in 0..{K - 1}, got {component!r}.")
        return int(component) % K

    def _stranded(self, k):
        return bool(self.revcomp) and k >= self._n_plain

    def predict_strand_proba(self, X, component=None):
        """Posterior probability of each strand for a window that is a site of ``component``.

        With ``revcomp=True`` the strand of a motif component is a hidden
        variable: ``P(- | x, z = k) = p(rc(x) | pwms_[k]) / (p(x | pwms_[k]) +
        p(rc(x) | pwms_[k]))``, where "-" means the window holds the motif as
        its reverse complement. For a single-strand component (the tied
        background, or any component when ``revcomp=False``) it is 1 for "+".

        Parameters
        ----------
        X : array-like of shape (n_samples, w)
            Windows, as for :meth:`predict_proba`.
        component : int, default=None
            Which component; None means 1 (the first motif).

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns "+" (the motif as read) and "-" (its reverse complement);
            rows sum to 1. Pass ``proba[:, 1]`` as ``minus_strand`` to
            :meth:`SequenceWindows.sites`.
        """
        k = self._component(component)
        data = self._prepare_new(X)
        if not self._stranded(k):
            proba = np.zeros((data.n_rows, 2))
            proba[:, 0] = 1.0
            return proba

        def strand_proba(params, chunk):
            log_pwm = np.log(params.pwms[k]).reshape(1, -1)
            perm = revcomp_permutation(params.pwms.shape[1], self.alphabet)
            states = _state_log_prob(chunk.expanded(), log_pwm, perm, 0)  # (2, n)
            return normalize_log_prob(states, axis=0)[0].T

        return self._chunked(strand_proba, data)

    def pwm(self, component=None, kind="probability"):
        """A component's matrix as a DataFrame (positions x letters, logomaker's layout).

        Parameters
        ----------
        component : int, default=None
            Which component; None means 1 (the first motif; 0 when there is one component).
        kind : {"probability", "log-odds", "information"}, default="probability"
            Letter probabilities; log-odds in bits against :attr:`background_`;
            or letter heights of a sequence logo in bits (probability times the
            position's information content).

        Returns
        -------
        DataFrame of shape (w, A)
            Index: positions 0..w-1; columns: the letters.
        """
        k = self._component(component)
        if kind == "probability":
            values = self.pwms_[k]
        elif kind == "log-odds":
            values = self.log_odds_[k]
        elif kind == "information":
            values = self.pwms_[k] * self.information_content_[k][:, None]
        else:
            raise ValueError(
                f"kind must be 'probability', 'log-odds' or 'information', got {kind!r}."
            )
        frame = pd.DataFrame(values, columns=list(self.alphabet_))
        frame.index.name = "position"
        return frame


def _search_rows(data, random_state):
    """At most SEARCH_ROWS distinct rows: all of them, or a weighted draw with counts as weights."""
    if data.n_rows <= SEARCH_ROWS:
        return data
    draws = random_state.multinomial(SEARCH_ROWS, data.weights / data.weights.sum())
    chosen = np.flatnonzero(draws)
    return replace(data.take(chosen), weights=draws[chosen].astype(float))


def _candidate_pwms(data, background, random_state):
    """Log-PWMs (C, w * A) made from up to N_CANDIDATES distinct observed windows.

    Each puts ``1 - START_FUZZ`` on the observed letter and spreads the rest
    like the background; a missing letter gives the background itself.
    """
    n = data.n_rows
    size = min(N_CANDIDATES, n)
    chosen = random_state.choice(n, size=size, replace=False, p=data.weights / data.weights.sum())
    onehot = data.expanded()[chosen]
    w, A = background.shape
    observed = onehot.reshape(size, w, A)
    pwms = (1.0 - START_FUZZ) * observed + (
        1.0 - (1.0 - START_FUZZ) * observed.sum(axis=2, keepdims=True)
    ) * background[None]
    return np.log(pwms).reshape(size, w * A)


def _shift(log_pwm, background, shift):
    """A log-PWM (w * A,) moved by ``shift`` positions (column i takes column i + shift); the
    positions moved in are the background's."""
    w, A = background.shape
    pwm = np.log(background).copy()
    source = log_pwm.reshape(w, A)
    if shift >= 0:
        pwm[: w - shift] = source[shift:]
    else:
        pwm[-shift:] = source[: w + shift]
    return pwm.reshape(-1)


def _refine_candidates(
    onehot, weights, rest, log_pwms, alpha, pseudocount, n_letters, shortlist, perm=None
):
    """Score candidate motifs against a fixed mixture, refine the best side by side.

    The candidate ``c`` forms the two-part mixture ``(1 - alpha_c) p_rest +
    alpha_c p_c``. Every candidate is scored by its log posterior at the start
    (one matrix product for all); the best ``shortlist`` take SHORT_ITER EM
    steps on ``(alpha_c, p_c)`` with ``p_rest`` fixed (a generalized EM, so
    each improves); the N_CONTINUE best are returned.

    Parameters
    ----------
    onehot : ndarray of shape (n, w * A)
    weights : ndarray of shape (n,)
    rest : ndarray of shape (n,)
        Log-density of each row under the fixed part of the mixture.
    log_pwms : ndarray of shape (C, w * A)
        Candidate log-PWMs.
    alpha : ndarray of shape (C,)
        Their starting mixing proportions.
    perm : ndarray of shape (w * A,), default=None
        With :func:`revcomp_permutation`, each candidate is a motif on either
        strand (``p_c(x) = (p(x | c) + p(rc(x) | c)) / 2``) as in the model,
        whose likelihood and strand posteriors come from the same kernels.
        Candidates that are each other's reverse complement count as duplicates.

    Returns
    -------
    list of (log_pwm, alpha)
        Up to N_CONTINUE distinct refined candidates, best first.
    """

    stranded = perm is not None

    def loglik(log_pwms, alpha):
        """Objective of each candidate, its log-responsibilities (n, C) and the (component,
        strand) states' log-likelihoods (S, n)."""
        # log((1 - a) p_rest + a p_c) = log p_rest + log1p(a expm1(d)), d = log(p_c / p_rest);
        # beyond LOG_RATIO_MAX the second term is log(a) + d to machine precision.
        states = _state_log_prob(onehot, log_pwms, perm)
        ratio = _component_log_prob(states, 0, stranded).T - rest[:, None]
        large = ratio > LOG_RATIO_MAX
        log_gain = np.log1p(alpha * np.expm1(np.minimum(ratio, LOG_RATIO_MAX)))
        if large.any():
            log_gain = np.where(large, np.log(alpha) + ratio, log_gain)
        prior = pseudocount * log_pwms.sum(axis=1)
        objective = weights @ (log_gain + rest[:, None]) + prior
        return objective, np.log(alpha) + ratio - log_gain, states

    if log_pwms.shape[0] > shortlist:
        # Scored in blocks of candidates, so the (n, C) work arrays stay small.
        block = max(1, SCORE_BLOCK // max(1, (1 + stranded) * onehot.shape[0]))
        score = np.concatenate(
            [
                loglik(log_pwms[start : start + block], alpha[start : start + block])[0]
                for start in range(0, log_pwms.shape[0], block)
            ]
        )
        keep = np.argsort(-score, kind="stable")[:shortlist]
        log_pwms, alpha = log_pwms[keep], alpha[keep]
    total = weights.sum()
    C = log_pwms.shape[0]
    for _ in range(SHORT_ITER):
        _, log_resp, states = loglik(log_pwms, alpha)
        weighted = (np.exp(log_resp) * weights[:, None]).T  # (C, n)
        alpha = np.clip(weighted.sum(axis=1) / total, 1e-10, 1.0 - 1e-10)
        if stranded:
            # Split each candidate's responsibility between its strands, as the model's E-step does.
            log_lik = _component_log_prob(states, 0, True)
            weighted = np.exp(states - np.concatenate([log_lik, log_lik])) * np.tile(weighted, (2, 1))
        counts = _fold_states(weighted @ onehot, 0, stranded, perm).reshape(C, -1, n_letters)
        log_pwms = np.log(_normalize(counts + pseudocount)).reshape(C, -1)
    score = loglik(log_pwms, alpha)[0]
    # The best N_CONTINUE distinct candidates: many starts reach the same optimum (with
    # revcomp, possibly as each other's reverse complement).
    pwms = np.exp(log_pwms)
    flipped = pwms[:, perm] if stranded else pwms

    def distance(c, other):
        gap = np.abs(pwms[c] - pwms[other]).max()
        return min(gap, np.abs(pwms[c] - flipped[other]).max()) if stranded else gap

    kept: list[int] = []
    for c in np.argsort(-score, kind="stable"):
        if all(distance(c, other) > DUPLICATE_DISTANCE for other in kept):
            kept.append(c)
            if len(kept) == N_CONTINUE:
                break
    return [(log_pwms[c], float(alpha[c])) for c in kept]

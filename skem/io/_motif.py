"""Sequence and motif files: FASTA in; MEME minimal motif format and JASPAR out and back in.

Readers name the file and line of any malformed input in a ValueError. They
return plain data (dicts of strings, DataFrames of letter probabilities or
counts) and contain no estimator logic.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections import Counter

import numpy as np
import pandas as pd

from ._text import TextLines

__all__ = ["read_fasta", "read_jaspar", "read_meme", "write_jaspar", "write_meme"]

#: Characters allowed in FASTA sequence lines: letters and '*' (a stop). Gaps ('-', '.')
#: are alignment columns, not sequence: they are rejected where they are read.
_SEQUENCE_LINE = re.compile(r"[A-Za-z*]*")


def read_fasta(path, *, uppercase=True):
    """Read sequences from a FASTA file (plain or gzip-compressed).

    Sequence lines may be wrapped at any width; blank lines and surrounding
    whitespace are ignored, and lower case (soft-masked) letters are accepted.
    Lines may end in LF, CRLF or a lone CR, and a UTF-8 byte-order mark is
    ignored.

    Parameters
    ----------
    path : str, path-like or file object
        The file. Compression is detected from its content, not its name.
    uppercase : bool, default=True
        Return the sequences in upper case.

    Returns
    -------
    sequences : dict of str to str
        Sequence name (the header's first word) to sequence, in file order.

    Raises
    ------
    ValueError
        For an empty file, text that is not UTF-8, a truncated gzip stream,
        sequence lines before the first header, an empty name, a repeated
        name, a header without sequence, or a character that is not a letter
        or '*' -- notably the gap characters '-' and '.' of an alignment. The
        message names the file, the line and the record.

    Examples
    --------
    >>> import io
    >>> from skem.io import read_fasta
    >>> read_fasta(io.StringIO(">s1 first\\nACGT\\nac\\n\\n>s2\\nGG\\n"))
    {'s1': 'ACGTAC', 's2': 'GG'}
    """
    lines = TextLines(path)
    sequences: dict[str, str] = {}
    name, header_line, parts = None, 0, []

    def finish():
        if name is None:
            return
        if not parts:
            raise lines.error(f"record {name!r} has no sequence", header_line)
        sequence = "".join(parts)
        sequences[name] = sequence.upper() if uppercase else sequence

    for number, line in lines.numbered():
        text = line.strip()
        if not text:
            continue
        if text.startswith(">"):
            finish()
            words = text[1:].split()
            if not words:
                raise lines.error("header without a sequence name", number)
            name, header_line, parts = words[0], number, []
            if name in sequences:
                raise lines.error(f"sequence name {name!r} appears twice", number)
            continue
        if text.startswith(";"):  # old-style FASTA comment
            continue
        if name is None:
            raise lines.error("sequence data before the first '>' header", number)
        compact = "".join(text.split())
        if not _SEQUENCE_LINE.fullmatch(compact):
            column, bad = next(
                (i, c) for i, c in enumerate(compact) if not _SEQUENCE_LINE.fullmatch(c)
            )
            what = "gap character" if bad in "-." else "unexpected character"
            hint = " (an alignment? remove the gaps)" if bad in "-." else ""
            raise lines.error(
                f"record {name!r}: {what} {bad!r} at position "
                f"{sum(map(len, parts)) + column + 1} of the sequence{hint}", number
            )
        parts.append(compact)
    finish()
    if not sequences:
        raise ValueError(f"{lines.name}: no FASTA records found.")
    return sequences


# ----------------------------------------------------------------- motifs


def _as_motifs(motifs, alphabet):
    """Normalize motifs to a list of (name, ndarray (w, A))."""
    if isinstance(motifs, dict):
        items = list(motifs.items())
    else:
        array = np.asarray(motifs, dtype=float)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise ValueError(
                f"motifs must be a dict of name to matrix or an array (n_motifs, w, A), "
                f"got shape {array.shape}."
            )
        items = [(f"motif{i + 1}", matrix) for i, matrix in enumerate(array)]
    result = []
    for name, matrix in items:
        if isinstance(matrix, pd.DataFrame):
            columns = [str(c).upper() for c in matrix.columns]
            if columns != list(alphabet):
                if sorted(columns) != sorted(alphabet):
                    raise ValueError(
                        f"motif {name!r} has the letters {''.join(columns)!r} as columns; "
                        f"pass alphabet={''.join(columns)!r} (got {alphabet!r})."
                    )
                matrix = matrix.iloc[:, [columns.index(c) for c in alphabet]]
        matrix = np.asarray(matrix, dtype=float)
        if matrix.ndim != 2 or matrix.shape[1] != len(alphabet) or matrix.shape[0] == 0:
            raise ValueError(
                f"motif {name!r} must be a (w, {len(alphabet)}) matrix for alphabet "
                f"{alphabet!r}, got shape {matrix.shape}."
            )
        if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
            raise ValueError(f"motif {name!r} must be finite and non-negative.")
        empty = matrix.sum(axis=1) == 0
        if empty.any():
            raise ValueError(f"motif {name!r}: position {int(np.argmax(empty)) + 1} is all zeros "
                             "(no letter probabilities or counts).")
        if not re.fullmatch(r"\S+", str(name)):
            raise ValueError(f"motif name {name!r} must be one word without whitespace.")
        result.append((str(name), matrix))
    if not result:
        raise ValueError("No motifs to write.")
    return result


def _number(value):
    """The shortest text that reads back as exactly ``value`` (``repr``), without a trailing ``.0``.

    ``0.25``, ``1e-07`` and ``3`` (a whole count, as JASPAR writes it): MEME,
    Biopython and our readers parse them all with ``float``.
    """
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _per_motif(values, name, what, accept):
    """The value of ``values`` (a number, a dict by motif name, or None) for motif ``name``, checked."""
    value = values.get(name) if isinstance(values, dict) else values
    if value is not None and not accept(float(value)):
        raise ValueError(f"{what} of motif {name!r} must be {accept.__doc__}, got {value!r}.")
    return value


def _positive(value):
    """a finite number > 0"""
    return bool(np.isfinite(value) and value > 0)


def _non_negative(value):
    """a finite number >= 0"""
    return bool(np.isfinite(value) and value >= 0)


def _evalue(value):
    """a number >= 0 (inf allowed)"""
    return value >= 0  # also refuses nan


def _check_alphabet(alphabet):
    """The letters in upper case: distinct, and no whitespace (they are words in the files)."""
    letters = str(alphabet).upper()
    if not letters or len(set(letters)) != len(letters) or any(c.isspace() for c in letters):
        raise ValueError(f"alphabet must be distinct letters without whitespace, got {alphabet!r}.")
    return letters


def _writer(path):
    if isinstance(path, (str, os.PathLike)):
        if os.fspath(path).endswith(".gz"):
            return gzip.open(path, "wt", encoding="utf-8")
        return open(path, "w", encoding="utf-8")
    return _Unclosed(path)


class _Unclosed(io.TextIOBase):
    """A caller's open file used in a ``with`` block without closing it."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        return self.handle.write(text)

    def close(self):
        pass


def write_meme(path, motifs, *, alphabet=None, background=None, nsites=None, evalues=None,
               strands="+ -"):
    """Write motifs in the MEME minimal motif format (version 4).

    The output reads in the MEME suite and in Biopython
    (``Bio.motifs.parse(handle, "minimal")``): ``nsites=`` is written as an
    integer (rounded; at least 1) and ``E=`` in scientific notation.
    Probabilities and background frequencies are written in full (the
    shortest text that reads back as the same double: ``1e-07``, not
    ``0.000000``), so :func:`read_meme` returns exactly the normalized rows.

    Parameters
    ----------
    path : str, path-like or text file object
        Destination (gzip-compressed if the name ends in ".gz").
    motifs : dict of str to array-like of shape (w, A), or array-like of shape (n_motifs, w, A)
        Letter-probability matrices (rows are renormalized to sum to 1). A dict
        maps motif names (one word each) to matrices or DataFrames with the
        letters as columns; an array gets the names motif1, motif2, ...
    alphabet : str, default=None
        The letters, in the matrices' column order. None takes the columns of
        the first DataFrame among ``motifs`` (e.g. ``"ACGU"``), else ``"ACGT"``.
    background : array-like of shape (A,), default=None
        Background letter frequencies (finite, non-negative, not all zero;
        normalized to sum to 1); None writes uniform frequencies.
    nsites : float or dict of str to float, default=None
        Number of sites behind each motif (written as the integer ``nsites=``).
    evalues : float or dict of str to float, default=None
        E-value of each motif (written as ``E=``).
    strands : str or None, default="+ -"
        The ``strands:`` line (omitted when None, as for proteins).

    Examples
    --------
    >>> import io
    >>> from skem.io import write_meme
    >>> out = io.StringIO()
    >>> write_meme(out, {"m1": [[0.5, 0.5, 0, 0], [0, 0, 0, 1]]})
    >>> print(out.getvalue().splitlines()[10])
    letter-probability matrix: alength= 4 w= 2
    """
    if alphabet is None:
        frames = [m for m in (motifs.values() if isinstance(motifs, dict) else []) if
                  isinstance(m, pd.DataFrame)]
        alphabet = "".join(str(c) for c in frames[0].columns) if frames else "ACGT"
    alphabet = _check_alphabet(alphabet)
    items = _as_motifs(motifs, alphabet)
    if background is None:
        background = np.full(len(alphabet), 1.0 / len(alphabet))
    background = np.asarray(background, dtype=float)
    if (background.shape != (len(alphabet),) or not np.all(np.isfinite(background))
            or np.any(background < 0) or not background.sum() > 0):
        raise ValueError(f"background must be {len(alphabet)} finite non-negative frequencies, "
                         f"not all zero; got {background.tolist()}.")
    background = background / background.sum()
    sites = {name: _per_motif(nsites, name, "nsites", _non_negative) for name, _ in items}
    evalue = {name: _per_motif(evalues, name, "the E-value", _evalue) for name, _ in items}
    with _writer(path) as out:
        out.write("MEME version 4\n\n")
        out.write(f"ALPHABET= {alphabet}\n\n")
        if strands:
            out.write(f"strands: {strands}\n\n")
        out.write("Background letter frequencies\n")
        # single spaces: Biopython splits this line at " "
        out.write(" ".join(f"{a} {_number(f)}" for a, f in zip(alphabet, background)) + "\n\n")
        for name, matrix in items:
            probabilities = matrix / matrix.sum(axis=1, keepdims=True)
            header = f"letter-probability matrix: alength= {len(alphabet)} w= {matrix.shape[0]}"
            if sites[name] is not None:
                header += f" nsites= {max(int(round(float(sites[name]))), 1)}"
            if evalue[name] is not None:
                header += f" E= {float(evalue[name]):.1e}"
            out.write(f"MOTIF {name}\n{header}\n")
            for row in probabilities:
                out.write(" " + " ".join(_number(p) for p in row) + "\n")
            out.write("\n")


_BUILTIN_ALPHABETS = {"DNA": "ACGT", "RNA": "ACGU", "PROTEIN": "ACDEFGHIKLMNPQRSTVWY"}
_ALPHABET_CORE = re.compile(r"^([A-Za-z0-9*\-.])(?:\s+\"[^\"]*\")?(?:\s+[0-9A-Fa-f]{6})?"
                            r"(?:\s*~\s*([A-Za-z0-9*\-.])(?:\s+\"[^\"]*\")?(?:\s+[0-9A-Fa-f]{6})?)?$")


def _read_alphabet_block(lines, stream, number, text):
    """The core letters of a MEME 5 ``ALPHABET "name" ... END ALPHABET`` block (or of a
    one-line ``ALPHABET DNA`` naming a built-in alphabet)."""
    words = text.split()
    name = words[1].strip('"').upper() if len(words) > 1 else ""
    if len(words) == 2 and not words[1].startswith('"'):
        if name in _BUILTIN_ALPHABETS:
            return _BUILTIN_ALPHABETS[name]
        raise lines.error(f"unknown alphabet {words[1]!r}", number)
    letters = []
    for number, line in stream:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.upper().startswith("END ALPHABET"):
            break
        if "=" in entry:  # an alias or wildcard ("N = ACGT"), not a core letter
            continue
        match = _ALPHABET_CORE.match(entry)
        if not match:
            raise lines.error(f"malformed alphabet letter line {entry!r} (or a missing 'END ALPHABET')", number)
        letters.extend(letter.upper() for letter in match.groups() if letter)
    else:
        raise lines.error("ALPHABET block without 'END ALPHABET'", number)
    if not letters and name in _BUILTIN_ALPHABETS:
        return _BUILTIN_ALPHABETS[name]
    # MEME orders the core letters alphabetically (matrix columns follow that order).
    return "".join(sorted(dict.fromkeys(letters)))


_MATRIX_HEADER = re.compile(r"letter-probability matrix:(.*)")


def _is_row_of_numbers(text):
    """Whether a line is whitespace-separated numbers (a matrix row), e.g. ``0.1 0.2 0.3 0.4``."""
    try:
        [float(value) for value in text.split()]
    except ValueError:
        return False
    return True

_KEY_VALUE = re.compile(r"(\w+)\s*=\s*(\S+)")


def read_meme(path):
    """Read the motifs of a MEME minimal motif file (or of MEME's text output).

    Parameters
    ----------
    path : str, path-like or file object
        The file (plain or gzip).

    Returns
    -------
    motifs : dict of str to DataFrame
        Motif name to letter-probability matrix (positions x letters). Each
        DataFrame's ``attrs`` hold ``alt_name``, ``nsites`` and ``E`` when the
        file gives them, and ``background`` (a dict letter -> frequency) and
        ``strands`` from the file's header.

    Raises
    ------
    ValueError
        For a missing alphabet, a malformed or short matrix (a file cut
        inside a matrix is named on the matrix's header line), a ``MOTIF``
        line with no matrix after it, or numbers that are not probabilities
        (nan included); the message names the file and line.
    """
    lines = TextLines(path)
    stream = lines.numbered()
    alphabet, background, strands = None, None, None
    motifs: dict[str, pd.DataFrame] = {}
    version_seen = False
    name, alt_name, motif_line = None, None, 0
    finished = None  # (name, w, header line) of a matrix just read, until a line that is not a row
    for number, line in stream:
        text = line.strip()
        if finished is not None and text and _is_row_of_numbers(text):
            done, width, header_line = finished
            raise lines.error(f"motif {done!r} has more matrix rows than the w= {width} of its "
                              f"header (line {header_line}).", number)
        if text:
            finished = None
        if text.startswith("MEME version"):
            version_seen = True
        elif text.startswith("ALPHABET="):
            alphabet = text.split("=", 1)[1].strip().upper()
            if not alphabet or len(set(alphabet)) != len(alphabet):
                raise lines.error(f"malformed alphabet {alphabet!r}", number)
        elif text.startswith("ALPHABET") and not text.startswith("ALPHABET="):
            # MEME 5's custom alphabet block: ALPHABET "name" [RNA-LIKE|DNA-LIKE|PROTEIN-LIKE],
            # then one line per core letter ("A", "A 'name' colour", or "A ~ T" pairs for
            # complementable alphabets), aliases ("N = ACGT") and "END ALPHABET".
            alphabet = _read_alphabet_block(lines, stream, number, text)
        elif text.startswith("strands:"):
            strands = text.split(":", 1)[1].strip()
        elif text.startswith("Background letter frequencies"):
            number, values = next(stream, (number, ""))
            tokens = values.split()
            try:
                background = {
                    tokens[i]: float(tokens[i + 1]) for i in range(0, len(tokens) - 1, 2)
                }
            except ValueError as error:
                raise lines.error(f"malformed background frequencies {values!r}", number) from error
            if not all(0 <= v <= 1 for v in background.values()):  # also refuses nan
                raise lines.error(f"background frequencies are not probabilities: {values!r}", number)
        elif text.startswith("MOTIF"):
            words = text.split()
            if len(words) < 2:
                raise lines.error("MOTIF line without a name", number)
            if name is not None:  # the previous MOTIF line had no matrix before this one
                raise lines.error(f"motif {name!r} has no letter-probability matrix "
                                  f"(the next MOTIF line is line {number}).", motif_line)
            name, alt_name = words[1], (words[2] if len(words) > 2 else None)
            motif_line = number
            if name in motifs:
                raise lines.error(f"motif name {name!r} appears twice", number)
        elif _MATRIX_HEADER.match(text):
            if name is None:
                raise lines.error("letter-probability matrix before any MOTIF line", number)
            if alphabet is None:
                raise lines.error("no 'ALPHABET=' line before the first matrix", number)
            fields = dict(_KEY_VALUE.findall(_MATRIX_HEADER.match(text).group(1)))
            try:
                width = int(fields["w"])
                alength = int(fields.get("alength", len(alphabet)))
            except (KeyError, ValueError) as error:
                raise lines.error(f"matrix header needs 'w= <int>': {text!r}", number) from error
            if width < 1:
                raise lines.error(f"motif {name!r} has w= {width}; a motif has at least one "
                                  "position", number)
            if alength != len(alphabet):
                raise lines.error(f"alength= {alength} does not match the alphabet {alphabet!r}", number)
            rows, header_line = [], number
            while len(rows) < width:
                item = next(stream, None)
                if item is None:
                    raise lines.error(f"motif {name!r} announces w= {width} rows; the file ends "
                                      f"after {len(rows)} of them.", header_line)
                number, row_text = item
                if not row_text.strip():
                    continue
                try:
                    row = [float(v) for v in row_text.split()]
                except ValueError as error:
                    raise lines.error(f"matrix row is not numbers: {row_text!r}", number) from error
                if len(row) != alength:
                    raise lines.error(f"matrix row has {len(row)} values, expected {alength}", number)
                # written as "not in [0, 1]" so that nan, for which every comparison is False, fails
                if not all(0 <= v <= 1 for v in row) or abs(sum(row) - 1) > 0.01:
                    raise lines.error(f"matrix row is not probabilities: {row_text!r}", number)
                rows.append(row)
            frame = pd.DataFrame(rows, columns=list(alphabet))
            frame.index.name = "position"
            frame.attrs.update({"alt_name": alt_name, "background": background, "strands": strands})
            for key, cast in (("nsites", float), ("E", float)):
                if key in fields:
                    try:
                        frame.attrs[key] = cast(fields[key])
                    except ValueError as error:
                        raise lines.error(f"malformed {key}= {fields[key]!r}", number) from error
            motifs[name] = frame
            finished = (name, width, header_line)
            name = None
    if name is not None:  # a MOTIF line with no matrix after it: the file was cut
        raise lines.error(f"motif {name!r} has no letter-probability matrix "
                          "(the file ends before it).", motif_line)
    if not version_seen and not motifs:
        raise ValueError(f"{lines.name}: not a MEME motif file (no 'MEME version' line).")
    if not motifs:
        raise ValueError(f"{lines.name}: no motifs found.")
    return motifs


def write_jaspar(path, motifs, *, alphabet="ACGT", nsites=None, names=None):
    """Write motifs in JASPAR's count-matrix format.

    Parameters
    ----------
    path : str, path-like or text file object
        Destination (gzip-compressed if the name ends in ".gz").
    motifs : dict of str to array-like of shape (w, A), or array-like of shape (n_motifs, w, A)
        Count matrices, or probability matrices together with ``nsites``.
        Dict keys are the matrix IDs (e.g. "MA0004.1").
    alphabet : str, default="ACGT"
        The letters, in the matrices' column order; one row is written per letter.
    nsites : float or dict of str to float, default=None
        When given, the matrices are probabilities and are scaled to this many
        sites (> 0). Counts are written in full (the shortest text that reads
        back as the same double; whole counts without decimals).
    names : dict of str to str, default=None
        Optional names written after each ID on its header line (one word,
        as Biopython reads it).

    Examples
    --------
    >>> import io
    >>> from skem.io import write_jaspar
    >>> out = io.StringIO()
    >>> write_jaspar(out, {"MA0000.1": [[3, 0, 0, 1], [0, 4, 0, 0]]})
    >>> print(out.getvalue().strip())
    >MA0000.1
    A [ 3 0 ]
    C [ 0 4 ]
    G [ 0 0 ]
    T [ 1 0 ]
    """
    alphabet = _check_alphabet(alphabet)
    items = _as_motifs(motifs, alphabet)
    sites = {name: _per_motif(nsites, name, "nsites", _positive) for name, _ in items}
    labels = {name: (names or {}).get(name) for name, _ in items}
    for name, label in labels.items():
        if label and not re.fullmatch(r"\S+", str(label)):
            raise ValueError(f"the name of matrix {name!r} must be one word without whitespace, "
                             f"got {label!r}.")
    with _writer(path) as out:
        for name, matrix in items:
            counts = (matrix if sites[name] is None
                      else matrix / matrix.sum(axis=1, keepdims=True) * sites[name])
            out.write(f">{name}" + (f" {labels[name]}" if labels[name] else "") + "\n")
            for letter, column in zip(alphabet, counts.T):
                out.write(f"{letter} [ " + " ".join(_number(c) for c in column) + " ]\n")
            out.write("\n")


_JASPAR_ROW = re.compile(r"([A-Za-z])\s*\[([^\]]*)\]\s*")


def read_jaspar(path, *, alphabet="ACGT"):
    """Read count matrices from a JASPAR-format file.

    Parameters
    ----------
    path : str, path-like or file object
        The file (plain or gzip).
    alphabet : str, default="ACGT"
        The letters: every matrix has one row per letter, in any order.

    Returns
    -------
    motifs : dict of str to DataFrame
        Matrix ID to counts (positions x letters, the letters in ``alphabet``
        order); ``attrs["name"]`` holds the name after the ID, if any.

    Raises
    ------
    ValueError
        For rows before a header, malformed rows, a letter not in
        ``alphabet`` or missing from a matrix, rows of different lengths
        (naming the row that differs from most), repeated IDs or letters;
        the message names the file and line.
    """
    alphabet = alphabet.upper()
    lines = TextLines(path)
    motifs: dict[str, pd.DataFrame] = {}
    current, label, rows, header_line = None, None, {}, 0
    row_lines = {}  # letter -> line number, for rows of the current matrix

    def finish():
        if current is None:
            return
        if not rows:
            raise lines.error(f"matrix {current!r} has no rows", header_line)
        lengths = [len(values) for values in rows.values()]
        if len(set(lengths)) != 1:
            # the odd row out is the one that differs from most rows (ties: from the first)
            common = Counter(lengths).most_common(1)[0][0]
            letter = next(k for k, values in rows.items() if len(values) != common)
            raise lines.error(f"row {letter!r} of matrix {current!r} has {len(rows[letter])} "
                              f"counts, other rows {common}", row_lines[letter])
        missing = [letter for letter in alphabet if letter not in rows]
        if missing:
            raise lines.error(f"matrix {current!r} has no row for {', '.join(map(repr, missing))} "
                              f"(alphabet {alphabet!r}; rows {''.join(rows)!r})", header_line)
        frame = pd.DataFrame({letter: rows[letter] for letter in alphabet})
        frame.index.name = "position"
        frame.attrs["name"] = label
        motifs[current] = frame

    for number, line in lines.numbered():
        text = line.strip()
        if not text:
            continue
        if text.startswith(">"):
            finish()
            words = text[1:].split(maxsplit=1)
            if not words:
                raise lines.error("header without a matrix ID", number)
            current, label, rows, header_line = words[0], (words[1] if len(words) > 1 else None), {}, number
            if current in motifs:
                raise lines.error(f"matrix ID {current!r} appears twice", number)
            continue
        if current is None:
            raise lines.error("matrix row before the first '>' header", number)
        match = _JASPAR_ROW.fullmatch(text)
        if not match:
            raise lines.error(f"expected a row like 'A [ 1 2 3 ]', got {text!r}", number)
        letter = match.group(1).upper()
        if letter not in alphabet:
            raise lines.error(f"letter {letter!r} of matrix {current!r} is not in the alphabet "
                              f"{alphabet!r}", number)
        if letter in rows:
            raise lines.error(f"letter {letter!r} appears twice in matrix {current!r}", number)
        try:
            values = [float(v) for v in match.group(2).split()]
        except ValueError as error:
            raise lines.error(f"counts are not numbers: {text!r}", number) from error
        if not values or any(v < 0 or not np.isfinite(v) for v in values):
            raise lines.error(f"counts must be non-negative numbers: {text!r}", number)
        rows[letter] = values
        row_lines[letter] = number
    finish()
    if not motifs:
        raise ValueError(f"{lines.name}: no JASPAR matrices found.")
    return motifs

"""Transcript-quantification files: salmon, kallisto, alignments and BAM/SAM in; abundance tables out.

Readers return arrays and metadata and contain no estimator logic. Every
malformed input raises ValueError naming the file and the line (BAM, being
binary, by record). Text inputs may be gzip-compressed whatever their name.
Formats (PEERS.md section 2.3-2.4):

salmon ``--dumpEq`` (``aux_info/eq_classes.txt[.gz]``) ::

    <number of transcripts T>
    <number of classes E>
    <T transcript names, one per line>
    <k> <tid_1> ... <tid_k> [<w_1> ... <w_k>] <count>     (E lines, tab-separated)

kallisto: ``matrix.ec`` lines ``<ec id>\\t<comma-separated transcript ids>``;
``transcripts.txt`` one name per line; counts per class either as a
MatrixMarket coordinate matrix (samples or cells x classes, as written by
``kallisto quant-tcc`` inputs and ``bustools count --tcc``) or as lines
``<ec id>\\t<count>``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._text import TextLines

__all__ = [
    "AlignedReads",
    "EquivalenceClasses",
    "alignments_to_matrix",
    "check_table_names",
    "lengths_file_kind",
    "read_kallisto_abundance",
    "read_kallisto_tcc",
    "read_lengths",
    "read_salmon_eq_classes",
    "read_salmon_quant",
    "write_kallisto_abundance",
    "write_salmon_dir",
    "write_salmon_quant",
]

#: Text that pandas (its default ``na_values``) and R (``NA``, empty) read as a missing value.
MISSING_VALUES = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
#: Exact column names of the field's abundance tables (PEERS.md section 2.3).
KALLISTO_COLUMNS = ("target_id", "length", "eff_length", "est_counts", "tpm")
SALMON_COLUMNS = ("Name", "Length", "EffectiveLength", "TPM", "NumReads")


class EquivalenceClasses(NamedTuple):
    """Equivalence classes read from a quantifier's dump.

    Attributes
    ----------
    X : csr_matrix of shape (n_classes, n_transcripts)
        1 where a class is compatible with a transcript, or salmon's
        per-transcript weight when the dump has weights.
    counts : ndarray of shape (n_classes,)
        Reads in each class: pass as ``sample_weight``.
    transcript_names : ndarray of str of shape (n_transcripts,)
    weighted : bool
        Whether ``X`` holds salmon's weights. They already include the
        ``1 / effective length`` factor: fit them with
        ``TranscriptQuantifier(x_includes_length=True, effective_lengths=...)``.
    """

    X: sp.csr_matrix
    counts: np.ndarray
    transcript_names: np.ndarray
    weighted: bool


class AlignedReads(NamedTuple):
    """A reads x transcripts matrix built from alignments.

    Attributes
    ----------
    X : csr_matrix of shape (n_reads, n_transcripts)
        Compatibility (1) or summed alignment weight of each read on each transcript.
    read_names : ndarray of shape (n_reads,)
    transcript_names : ndarray of shape (n_transcripts,)
    transcript_lengths : ndarray of shape (n_transcripts,) or None
        Reference lengths when the source has them (a BAM/SAM header).
    """

    X: sp.csr_matrix
    read_names: np.ndarray
    transcript_names: np.ndarray
    transcript_lengths: np.ndarray | None


# ------------------------------------------------------------ text helpers


def _parse_int(text, lines, what, minimum=0):
    try:
        value = int(text)
    except ValueError:
        raise lines.error(f"{what} must be an integer, got {text!r}.") from None
    if value < minimum:
        raise lines.error(f"{what} must be >= {minimum}, got {value}.")
    return value


def _parse_float(text, lines, what, nonnegative=True):
    try:
        value = float(text)
    except ValueError:
        raise lines.error(f"{what} must be a number, got {text!r}.") from None
    if not np.isfinite(value) or (nonnegative and value < 0):
        kind = "finite non-negative" if nonnegative else "finite"
        raise lines.error(f"{what} must be a {kind} number, got {text!r}.")
    return value


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_names(lines, iterator, count):
    names = []
    for _ in range(count):
        name = next(iterator, None)
        if name is None:
            raise lines.error(f"the file ends after {len(names)} of {count} transcript names.")
        if not name.strip() or "\t" in name:
            raise lines.error(f"expected a transcript name, got {name!r}.")
        names.append(name.strip())
    return names


def _check_unique(names, lines, first_line):
    seen = {}
    for offset, name in enumerate(names):
        if name in seen:
            raise lines.error(
                f"transcript name {name!r} repeats line {first_line + seen[name]}.",
                first_line + offset,
            )
        seen[name] = offset


# ------------------------------------------------------------------ salmon


def read_salmon_eq_classes(path):
    """Read salmon's equivalence-class dump (``salmon quant --dumpEq``).

    Parameters
    ----------
    path : str or path-like
        ``aux_info/eq_classes.txt`` or ``eq_classes.txt.gz``, with or without
        the per-transcript weights of ``--dumpEqWeights``.

    Returns
    -------
    EquivalenceClasses
        ``X`` (classes x transcripts), ``counts``, ``transcript_names``,
        ``weighted``. With weights, the same transcript set may appear in
        several classes with different weights; they are kept apart.

    Raises
    ------
    ValueError
        On a malformed file, naming the file and line.

    Examples
    --------
    >>> from skem.io import read_salmon_eq_classes  # doctest: +SKIP
    >>> eq = read_salmon_eq_classes("quant/aux_info/eq_classes.txt.gz")  # doctest: +SKIP
    >>> model = TranscriptQuantifier(x_includes_length=eq.weighted, ...)  # doctest: +SKIP
    >>> model.fit(eq.X, sample_weight=eq.counts)  # doctest: +SKIP
    """
    lines = TextLines(path)
    iterator = iter(lines)
    header = []
    for what in ("number of transcripts", "number of equivalence classes"):
        text = next(iterator, None)
        if text is None:
            raise lines.error(f"the file ends before the {what}.", lines.number + 1)
        header.append(_parse_int(text.strip(), lines, f"the {what}", minimum=1))
    n_transcripts, n_classes = header
    names = _read_names(lines, iterator, n_transcripts)
    _check_unique(names, lines, 3)

    indptr, indices, values, counts = [0], [], [], []
    weighted = None
    for text in iterator:
        if len(counts) == n_classes:
            if text.strip():
                raise lines.error(f"more than the {n_classes} equivalence classes announced on line 2.")
            continue
        fields = text.split("\t")
        k = _parse_int(fields[0], lines, "the class size", minimum=1)
        if len(fields) == k + 2:
            has_weights = False
        elif len(fields) == 2 * k + 2:
            has_weights = True
        else:
            raise lines.error(
                f"a class of {k} transcripts needs {k + 2} fields (or {2 * k + 2} with weights), "
                f"got {len(fields)}."
            )
        if weighted is None:
            weighted = has_weights
        elif has_weights != weighted:
            raise lines.error("some classes have weights and others do not.")
        ids = [_parse_int(f, lines, "a transcript id") for f in fields[1 : k + 1]]
        if max(ids) >= n_transcripts:
            raise lines.error(f"transcript id {max(ids)} is out of range 0..{n_transcripts - 1}.")
        if len(set(ids)) != k:
            raise lines.error("a transcript id repeats within the class.")
        if has_weights:
            weights = [_parse_float(f, lines, "a weight") for f in fields[k + 1 : 2 * k + 1]]
        else:
            weights = [1.0] * k
        counts.append(_parse_float(fields[-1], lines, "the read count"))
        indices.extend(ids)
        values.extend(weights)
        indptr.append(len(indices))
    if len(counts) < n_classes:
        raise lines.error(
            f"the file ends after {len(counts)} of the {n_classes} equivalence classes announced on line 2."
        )
    X = sp.csr_matrix(
        (np.asarray(values, float), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
        shape=(n_classes, n_transcripts),
    )
    X.sort_indices()
    names = np.asarray(names, dtype=object)
    return EquivalenceClasses(X, np.asarray(counts, float), names, bool(weighted))


def _read_table(path, columns, kinds):
    """A tab-separated table with exactly ``columns`` as header; ``kinds`` are "str"/"float"."""
    lines = TextLines(path)
    iterator = iter(lines)
    header = next(iterator, None)
    if header is None or tuple(header.split("\t")) != tuple(columns):
        raise lines.error(f"expected the header {chr(9).join(columns)!r}, got {header!r}.", 1)
    data = {name: [] for name in columns}
    first_seen = {}
    for text in iterator:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != len(columns):
            raise lines.error(f"expected {len(columns)} tab-separated fields, got {len(fields)}.")
        if fields[0] in first_seen:
            raise lines.error(f"{columns[0]} {fields[0]!r} repeats line {first_seen[fields[0]]}.")
        first_seen[fields[0]] = lines.number
        for name, kind, field in zip(columns, kinds, fields):
            data[name].append(field if kind == "str" else _parse_float(field, lines, name))
    return pd.DataFrame(
        {name: np.asarray(data[name], dtype=object if kind == "str" else float)
         for name, kind in zip(columns, kinds)}
    )


def read_salmon_quant(path):
    """Read salmon's ``quant.sf``.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    pandas.DataFrame
        Columns ``Name, Length, EffectiveLength, TPM, NumReads``.

    Raises
    ------
    ValueError
        On a malformed file, naming the file and line.
    """
    return _read_table(path, SALMON_COLUMNS, ("str", "float", "float", "float", "float"))


def read_kallisto_abundance(path):
    """Read kallisto's ``abundance.tsv``.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    pandas.DataFrame
        Columns ``target_id, length, eff_length, est_counts, tpm``.

    Raises
    ------
    ValueError
        On a malformed file, naming the file and line.
    """
    return _read_table(path, KALLISTO_COLUMNS, ("str", "float", "float", "float", "float"))


def read_lengths(path, *, effective=False):
    """Transcript lengths from salmon's ``quant.sf``, kallisto's ``abundance.tsv`` or a two-column table.

    Parameters
    ----------
    path : str or path-like
        A ``quant.sf`` or ``abundance.tsv`` (recognized by its header), or
        lines ``<name>\t<length>`` with an optional header line.
    effective : bool, default=False
        Return the tool's effective lengths (``EffectiveLength`` of
        ``quant.sf``, ``eff_length`` of ``abundance.tsv``) instead of the
        lengths. A two-column table has none: ValueError.

    Returns
    -------
    lengths : pandas.Series
        Lengths (float) indexed by transcript name, in file order; named
        ``"length"`` or ``"eff_length"``.

    Raises
    ------
    ValueError
        On a malformed file, a repeated transcript name, or a length that
        is not positive, naming the file, the line and the transcript; for
        ``effective=True`` on a file without effective lengths.

    See Also
    --------
    lengths_file_kind : Which of the three formats a file is.
    """
    kind = lengths_file_kind(path)
    if kind != "table":
        table = read_salmon_quant(path) if kind == "salmon" else read_kallisto_abundance(path)
        names, length, eff = (
            ("Name", "Length", "EffectiveLength") if kind == "salmon"
            else ("target_id", "length", "eff_length")
        )
        column = eff if effective else length
        values = table[column].to_numpy()
        bad = values <= 0
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"{os.fspath(path)}, line {k + 2}: transcript {table[names].iloc[k]!r} has "
                f"{column} {values[k]:g}; lengths must be positive."
            )
        return pd.Series(values, index=table[names].to_numpy(),
                         name="eff_length" if effective else "length")
    if effective:
        raise ValueError(
            f"{os.fspath(path)}: a two-column lengths table has no effective lengths "
            "(salmon's quant.sf and kallisto's abundance.tsv have them)."
        )
    lines = TextLines(path)
    names, lengths, first_seen = [], [], {}
    for text in lines:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 2:
            raise lines.error(f"expected 2 tab-separated fields (name, length), got {len(fields)}.")
        if lines.number == 1 and not _is_number(fields[1]) and fields[1].strip() not in MISSING_VALUES:
            continue  # a header ("name<TAB>length"); "A<TAB>NA" is transcript A without a length
        length = _parse_float(fields[1], lines, f"the length of {fields[0]!r}", nonnegative=False)
        if length <= 0:
            raise lines.error(f"transcript {fields[0]!r} has length {fields[1]!r}; lengths must be positive.")
        if fields[0] in first_seen:
            raise lines.error(f"transcript name {fields[0]!r} repeats line {first_seen[fields[0]]}.")
        first_seen[fields[0]] = lines.number
        names.append(fields[0])
        lengths.append(length)
    if not names:
        raise ValueError(f"{lines.name}: no transcript lengths found.")
    return pd.Series(np.asarray(lengths), index=np.asarray(names, dtype=object), name="length")


def lengths_file_kind(path):
    """Which kind of lengths file ``path`` is, from its first line.

    Parameters
    ----------
    path : str or path-like
        A file for :func:`read_lengths`.

    Returns
    -------
    kind : {"salmon", "kallisto", "table"}
        salmon's ``quant.sf``, kallisto's ``abundance.tsv`` (both with
        effective lengths), or a two-column table of lengths.
    """
    probe = iter(TextLines(path))
    first = next(probe, None)
    probe.close()
    header = None if first is None else tuple(first.split("\t"))
    return {SALMON_COLUMNS: "salmon", KALLISTO_COLUMNS: "kallisto"}.get(header, "table")


# ---------------------------------------------------------------- kallisto


def read_kallisto_tcc(ec_file, transcripts_file, counts_file, *, sample=None):
    """Read kallisto's transcript-compatibility counts: EC list, transcript names, counts per EC.

    Parameters
    ----------
    ec_file : str or path-like
        ``matrix.ec``: lines ``<ec id>\\t<comma-separated 0-based transcript ids>``.
    transcripts_file : str or path-like
        ``transcripts.txt``: one transcript name per line.
    counts_file : str or path-like
        Either a MatrixMarket coordinate matrix of shape (samples or cells,
        ECs) (column ``j`` is EC id ``j - 1``), or lines ``<ec id>\\t<count>``.
    sample : int, default=None
        Row of the MatrixMarket matrix to read (0-based); None sums all rows.

    Returns
    -------
    EquivalenceClasses
        One row of ``X`` per EC of ``ec_file`` (0/1), its count, the names,
        and ``weighted=False``.

    Raises
    ------
    ValueError
        On a malformed file or an EC id unknown to ``ec_file``, naming the file and line.
    """
    names_lines = TextLines(transcripts_file)
    names, first_seen = [], {}
    for text in names_lines:
        if "\t" in text:  # kallisto's names have no tab: a table is not a list of names
            raise names_lines.error(f"expected one transcript name per line, got {text!r} (a tab).")
        name = text.strip()
        if not name:
            continue
        if name in first_seen:  # numbered by line: blank lines are skipped
            raise names_lines.error(f"transcript name {name!r} repeats line {first_seen[name]}.")
        first_seen[name] = names_lines.number
        names.append(name)
    if not names:
        raise ValueError(f"{names_lines.name}: no transcript names found.")

    lines = TextLines(ec_file)
    ec_row, indptr, indices = {}, [0], []
    for text in lines:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 2:
            raise lines.error(f"expected '<ec id>\\t<transcript ids>', got {len(fields)} fields.")
        ec = _parse_int(fields[0], lines, "the EC id")
        if ec in ec_row:
            raise lines.error(f"EC id {ec} repeats.")
        ids = [_parse_int(f, lines, "a transcript id") for f in fields[1].split(",")]
        if max(ids) >= len(names):
            raise lines.error(
                f"transcript id {max(ids)} is out of range for the {len(names)} names of {names_lines.name}."
            )
        if len(set(ids)) != len(ids):
            raise lines.error("a transcript id repeats within the EC.")
        ec_row[ec] = len(ec_row)
        indices.extend(sorted(ids))
        indptr.append(len(indices))
    if not ec_row:
        raise ValueError(f"{lines.name}: no equivalence classes found.")
    X = sp.csr_matrix(
        (np.ones(len(indices)), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
        shape=(len(ec_row), len(names)),
    )
    counts = _read_ec_counts(counts_file, ec_row, sample)
    return EquivalenceClasses(X, counts, np.asarray(names, dtype=object), False)


def _read_ec_counts(path, ec_row, sample):
    lines = TextLines(path)
    iterator = iter(lines)
    counts = np.zeros(len(ec_row))
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{lines.name}: the counts file is empty.")
    if first.startswith("%%MatrixMarket"):
        banner = first.lower().split()
        if banner[1:3] != ["matrix", "coordinate"] or len(banner) != 5 or banner[3] not in {
                "real", "integer", "double"}:
            raise lines.error(f"only real or integer MatrixMarket coordinate matrices are "
                              f"supported, got {first!r}.")
        if banner[4] != "general":
            # a symmetric file stores half the entries of a square matrix; counts are samples x ECs
            raise lines.error(f"a MatrixMarket matrix of counts (samples x ECs) is 'general', "
                              f"got {banner[4]!r}.")
        size = None
        entries = 0
        for text in iterator:
            if text.startswith("%") or not text.strip():
                continue
            fields = text.split()
            if size is None:
                if len(fields) != 3:
                    raise lines.error("expected the size line '<rows> <columns> <entries>'.")
                size = [_parse_int(f, lines, "a matrix size") for f in fields]
                if sample is not None and not 0 <= sample < size[0]:
                    raise ValueError(f"{lines.name}: sample={sample} but the matrix has {size[0]} rows.")
                continue
            if len(fields) != 3:
                raise lines.error(f"expected '<row> <column> <value>', got {len(fields)} fields.")
            entries += 1
            if entries > size[2]:
                raise lines.error(f"more than the {size[2]} entries announced on the size line.")
            row = _parse_int(fields[0], lines, "the row", minimum=1)
            column = _parse_int(fields[1], lines, "the column", minimum=1)
            if row > size[0] or column > size[1]:
                raise lines.error(f"entry ({row}, {column}) is outside the {size[0]} x {size[1]} matrix.")
            if sample is not None and row - 1 != sample:
                continue
            ec = column - 1
            if ec not in ec_row:
                raise lines.error(f"EC id {ec} (column {column}) is not in the EC file.")
            counts[ec_row[ec]] += _parse_float(fields[2], lines, "the count")
        if size is None:
            raise lines.error("the file ends before the size line.")
        if entries < size[2]:
            raise lines.error(f"the file ends after {entries} of the {size[2]} entries announced "
                              "on the size line.")
    else:
        for text in _chain(first, iterator):
            if not text.strip():
                continue
            fields = text.split("\t")
            if len(fields) != 2:
                raise lines.error(f"expected '<ec id>\\t<count>', got {len(fields)} fields.")
            ec = _parse_int(fields[0], lines, "the EC id")
            if ec not in ec_row:
                raise lines.error(f"EC id {ec} is not in the EC file.")
            counts[ec_row[ec]] += _parse_float(fields[1], lines, "the count")
    if not counts.sum() > 0:
        raise ValueError(f"{lines.name}: no counts (every equivalence class has count 0"
                         f"{'' if sample is None else f' in row {sample}'}).")
    return counts


def _chain(first, rest):
    yield first
    yield from rest


# -------------------------------------------------------------- alignments


def alignments_to_matrix(
    table, *, read="read_id", transcript="transcript_id", weight=None, transcripts=None
):
    """Build a reads x transcripts matrix from a long table of alignments.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per alignment.
    read, transcript : str, default="read_id", "transcript_id"
        Columns with the read and transcript of each alignment.
    weight : str, default=None
        Column with an alignment likelihood (>= 0). Without it, the matrix
        holds 1 for every (read, transcript) pair that aligns; with it, the
        weights of repeated (read, transcript) pairs are summed (alignments at
        several positions of one transcript).
    transcripts : array-like of str, default=None
        All transcript names, in the column order wanted (transcripts without
        alignments get empty columns). Default: in order of first appearance.

    Returns
    -------
    AlignedReads
        ``X``, ``read_names`` (in order of first appearance),
        ``transcript_names``, ``transcript_lengths=None``.

    Raises
    ------
    ValueError
        For a missing column, a transcript not in ``transcripts``, or a
        negative or non-finite weight, naming the row by its index label
        (as ``row 3``, or ``line 5`` when the index is named "line").
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError("table must be a pandas DataFrame.")
    for column in (read, transcript) + (() if weight is None else (weight,)):
        if column not in table.columns:
            raise ValueError(f"the alignment table has no column {column!r}.")
    if len(table) == 0:
        raise ValueError("the alignment table has no rows.")
    read_codes, read_names = pd.factorize(table[read], sort=False)
    if transcripts is None:
        transcript_codes, transcript_names = pd.factorize(table[transcript], sort=False)
    else:
        transcript_names = pd.Index(np.asarray(transcripts, dtype=object))
        if transcript_names.has_duplicates:
            raise ValueError("transcripts has repeated names.")
        transcript_codes = transcript_names.get_indexer(table[transcript])
    for codes, column in ((read_codes, read), (transcript_codes, transcript)):
        if np.any(codes < 0):
            row = int(np.argmax(codes < 0))
            problem = "is missing" if pd.isna(table[column].iloc[row]) else "is not among transcripts"
            raise ValueError(f"alignment table {_row_label(table, row)}: {column} {problem}.")
    if weight is None:
        values = np.ones(len(table))
    else:
        values = pd.to_numeric(table[weight], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"alignment table {_row_label(table, row)}: weight {str(table[weight].iloc[row])!r} "
                "is not a finite non-negative number."
            )
    X = sp.csr_matrix(
        (values, (read_codes, transcript_codes)), shape=(len(read_names), len(transcript_names))
    )  # duplicates are summed
    if weight is None:
        X.data = np.minimum(X.data, 1.0)
    X.sort_indices()
    return AlignedReads(
        X, np.asarray(read_names, dtype=object), np.asarray(transcript_names, dtype=object), None
    )


def _row_label(table, row):
    """``row <label>``, or ``<index name> <label>`` when the index is named (e.g. "line")."""
    label = table.index[row]
    return f"{table.index.name} {label}" if table.index.name else f"row {label!r}"


# ----------------------------------------------------------------- writers


def _abundance_table(abundance):
    table = getattr(abundance, "abundance_", abundance)
    if not isinstance(table, pd.DataFrame):
        raise TypeError("abundance must be a fitted TranscriptQuantifier or its abundance_ DataFrame.")
    missing = [c for c in KALLISTO_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"the abundance table lacks the columns {missing}.")
    check_table_names(table["target_id"].astype(str), "transcript")
    return table


def check_table_names(names, what):
    """Refuse names that a tab-separated table cannot carry so that every reader reads them back.

    Our readers, pandas (``read_csv(sep="\\t")``) and R's (tximport's
    ``readr``, ``read.delim``) read a name back exactly unless it has a tab
    or a line break (they split it), starts with a double quote (they take
    it as quoting), has leading or trailing whitespace (R drops it), or is
    empty or a missing-value marker such as ``NA`` (:data:`MISSING_VALUES`).

    Parameters
    ----------
    names : iterable of str
        The names to write.
    what : str
        What the names are, for the message ("transcript").

    Raises
    ------
    ValueError
        Naming the first such name and its position.

    Examples
    --------
    >>> from skem.io import check_table_names
    >>> check_table_names(["tx1", 'a"b', "with space"], "transcript")
    >>> check_table_names(["tx1", "NA"], "transcript")
    Traceback (most recent call last):
    ...
    ValueError: transcript 2 ('NA') is empty or reads as a missing value (pandas and R read NA, nan, NULL, ...): rename it to write a table that reads back the same.
    """
    for number, name in enumerate(names, start=1):
        if name in MISSING_VALUES:
            problem = "is empty or reads as a missing value (pandas and R read NA, nan, NULL, ...)"
        elif any(character in name for character in "\t\n\r"):
            problem = "has a tab or a line break"
        elif name.startswith('"'):
            problem = "starts with a double quote, which table readers take as quoting"
        elif name != name.strip():
            problem = "has leading or trailing whitespace, which R's table readers drop"
        else:
            continue
        raise ValueError(f"{what} {number} ({name!r}) {problem}: rename it to write a table "
                         "that reads back the same.")


def _write(table, path):
    # The names were checked (check_table_names): nothing needs quoting, and a quote inside a
    # name is written as itself (QUOTE_MINIMAL would write a"b as "a""b").
    table.to_csv(os.fspath(path), sep="\t", index=False, lineterminator="\n",
                 quoting=csv.QUOTE_NONE)


def _lengths_column(values):
    values = np.asarray(values, dtype=float)
    return values.astype(np.int64) if np.all(values == np.round(values)) else values


def write_kallisto_abundance(abundance, path):
    """Write kallisto's ``abundance.tsv``: ``target_id, length, eff_length, est_counts, tpm``.

    Parameters
    ----------
    abundance : TranscriptQuantifier or pandas.DataFrame
        A fitted estimator, or its ``abundance_`` table. Extra columns
        (bootstrap standard deviations) are not written.
    path : str or path-like
        Output file (tab-separated, with a header, as kallisto writes it).

    Raises
    ------
    ValueError
        For a transcript name that a table reader would not read back the
        same (see :func:`check_table_names`).
    """
    table = _abundance_table(abundance)
    out = pd.DataFrame(
        {
            "target_id": table["target_id"].astype(str),
            "length": _lengths_column(table["length"]),
            "eff_length": table["eff_length"].astype(float),
            "est_counts": table["est_counts"].astype(float),
            "tpm": table["tpm"].astype(float),
        }
    )
    _write(out, path)


def write_salmon_quant(abundance, path):
    """Write salmon's ``quant.sf``: ``Name, Length, EffectiveLength, TPM, NumReads``.

    Parameters
    ----------
    abundance : TranscriptQuantifier or pandas.DataFrame
        A fitted estimator, or its ``abundance_`` table.
    path : str or path-like
        Output file (tab-separated, with a header, as salmon writes it).

    Raises
    ------
    ValueError
        For a transcript name that a table reader would not read back the
        same (see :func:`check_table_names`).
    """
    table = _abundance_table(abundance)
    out = pd.DataFrame(
        {
            "Name": table["target_id"].astype(str),
            "Length": _lengths_column(table["length"]),
            "EffectiveLength": table["eff_length"].astype(float),
            "TPM": table["tpm"].astype(float),
            "NumReads": table["est_counts"].astype(float),
        }
    )
    _write(out, path)


def write_salmon_dir(estimator, directory):
    """Write a salmon-like output folder, with bootstraps where tximport finds them.

    Files: ``quant.sf``, ``cmd_info.json``, ``aux_info/meta_info.json``
    and, when the estimator has bootstrap replicates, salmon's layout
    ``aux_info/bootstrap/bootstraps.gz`` (gzip-compressed float64 counts,
    one replicate after another, transcripts in ``quant.sf`` order) and
    ``aux_info/bootstrap/names.tsv.gz`` (the names on one tab-separated
    line). ``tximport(files, type="salmon")`` then imports the replicates as
    ``infReps``; ``meta_info.json`` has ``num_bootstraps``, ``num_targets``
    and ``samp_type: "bootstrap"``.

    Parameters
    ----------
    estimator : TranscriptQuantifier
        A fitted estimator (``n_bootstraps >= 0``).
    directory : str or path-like
        Output folder, created if needed.

    Returns
    -------
    directory : pathlib.Path
        The folder written.

    Raises
    ------
    ValueError
        For a transcript name that a table reader would not read back the
        same (as :func:`write_salmon_quant`), before any file is written.
    """
    table = _abundance_table(estimator)
    replicates = np.asarray(getattr(estimator, "bootstrap_est_counts_", np.empty((0, len(table)))))
    directory = Path(directory)
    aux = directory / "aux_info"
    aux.mkdir(parents=True, exist_ok=True)
    write_salmon_quant(table, directory / "quant.sf")
    (directory / "cmd_info.json").write_text(
        json.dumps({"skem": "TranscriptQuantifier", "auxDir": "aux_info"}, indent=2) + "\n"
    )
    names = table["target_id"].astype(str).tolist()
    meta = {
        "num_targets": len(names),
        "num_bootstraps": int(replicates.shape[0]),
        "samp_type": "bootstrap" if replicates.shape[0] else "none",
        "num_processed": float(table["est_counts"].sum()),
    }
    (aux / "meta_info.json").write_text(json.dumps(meta, indent=2) + "\n")
    if replicates.shape[0]:
        boot = aux / "bootstrap"
        boot.mkdir(exist_ok=True)
        with gzip.GzipFile(boot / "bootstraps.gz", "wb", mtime=0) as handle:
            handle.write(np.ascontiguousarray(replicates, dtype="<f8").tobytes())
        with gzip.GzipFile(boot / "names.tsv.gz", "wb", mtime=0) as handle:
            handle.write(("\t".join(names) + "\n").encode())
    return directory

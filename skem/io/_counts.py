"""Count matrices as users have them: CSV/TSV tables, Cell Ranger's Matrix Market folders, AnnData ``.h5ad``.

Every reader returns a :class:`CountMatrix`: rows are samples or cells,
columns are features (genes), with the names the input gave them. Matrix
Market and ``.h5ad`` counts stay sparse (CSR), never densified. Every entry
is checked to be a count, a finite non-negative integer, and a bad one is
named with its file and its place in it (line, row and column; cell and
gene), as is every malformed or missing file, before any fitting.

``anndata`` is optional: it is imported when an ``.h5ad`` file is read or
written (``pip install 'skem[h5ad]'``).
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._text import TextLines

__all__ = [
    "CountMatrix",
    "annotate_h5ad",
    "count_format",
    "read_10x_mtx",
    "read_count_table",
    "read_counts",
    "read_h5ad",
    "read_number_table",
    "select_features",
]

_GZIP_MAGIC = b"\x1f\x8b"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Errors of decompressing or decoding a file that do not name it.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)
#: Cell Ranger's file names (version 3 and later; ``genes.tsv`` before), tried in this order.
_MATRIX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
_FEATURE_NAMES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
_BARCODE_NAMES = ("barcodes.tsv.gz", "barcodes.tsv")
_GENE_EXPRESSION = "Gene Expression"


@dataclass(frozen=True)
class CountMatrix:
    """A matrix of counts with the names of its rows and features.

    Attributes
    ----------
    matrix : ndarray or scipy.sparse.csr_matrix of shape (n_rows, n_features)
        Finite non-negative integer counts as float64; sparse (CSR) when the
        file was sparse (Matrix Market, sparse ``.h5ad``).
    rows : pandas.Index
        Row (sample or cell) names; a RangeIndex when the file had none.
    features : pandas.Index
        Feature (gene) names.
    source : str
        Where the counts were read from, for messages.
    """

    matrix: np.ndarray | sp.csr_matrix
    rows: pd.Index
    features: pd.Index
    source: str


# ------------------------------------------------------------------ entry checks


def _first_bad_count(values):
    """The position in the 1-D ``values`` of the first entry that is not a count, and why; else None.

    The reason completes a message about the value: ``'-3' is negative (counts are ...)``.
    """
    values = np.asarray(values)
    finite = np.isfinite(values)
    bad = ~finite | (values < 0) | (values != np.floor(np.where(finite, values, 0)))
    if not bad.any():
        return None
    position = int(np.argmax(bad))
    value = values[position]
    if np.isnan(value):  # a missing or unreadable value
        reason = "is not a number"
    elif not finite[position]:
        reason = "is infinite or too large"
    elif value < 0:
        reason = "is negative"
    else:
        reason = "is not an integer"
    return position, f"{reason} (counts are non-negative integers)"


# ------------------------------------------------------------------ text tables


def _read_text(path):
    """The file's text: gunzipped if it is gzip (by its first bytes), decoded as UTF-8."""
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except _STREAM_ERRORS as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if b"\x00" in raw:
        raise ValueError(f"{path}: not a text table (binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text table (not UTF-8 text)") from None
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    return text


def _first_fields(text):
    """The separator (tab if the header line has tabs and no more commas than tabs, else comma)
    and the fields of the first non-blank line."""
    header = next(line for line in text.splitlines() if line.strip())
    sep = "\t" if 0 < header.count(",") < header.count("\t") or (
        "\t" in header and "," not in header) else ","
    return sep, next(csv.reader([header], delimiter=sep))


def _is_number(text):
    return not np.isnan(pd.to_numeric(pd.Series([text]), errors="coerce").iloc[0])


def _line_of_row(text, row, header):
    """The file line (from 1) of data row ``row`` (from 0); blank lines are skipped, as pandas does."""
    seen = -1 if header else 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if seen == row:
                return number
            seen += 1
    return None


def _check_row_lengths(path, text, sep, header):
    """A row with fewer fields than the header (pandas pads it with empty values) is an error."""
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=sep) if row]
    width = max(len(rows[0]), len(rows[1]) if len(rows) > 1 else 0)  # write.table: header short
    for number, row in enumerate(rows[1 if header else 0:], start=1):
        if len(row) < width:
            raise ValueError(f"{path}: row {number} ({row[0]!r}) has {len(row)} fields, "
                             f"fewer fields than the header ({width})")


def _where(path, text, table, row, column, header):
    """``FILE, line L: row R ('name'), column 'C'`` for a message about one value of a table."""
    line = _line_of_row(text, row, header)
    name = "" if isinstance(table.index, pd.RangeIndex) else f" ({table.index[row]!r})"
    return f"{path}, line {line}: row {row + 1}{name}, column {table.columns[column]!r}"


def _parse_table(path, header):
    """The text of ``path``, its table of strings and of finite numbers (row names as the index of
    both), and whether it has a header line."""
    path = Path(path)
    text = _read_text(path)
    sep, first = _first_fields(text)
    if header == "auto":
        header = not _is_number(first[-1])
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, header=0 if header else None,
                            keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: {str(error).strip().splitlines()[0]}") from None
    # Row names: a first column whose header cell is empty (R's write.csv), a header one field
    # short (R's write.table, which pandas reads into the index), or a first column with no
    # number in it. Otherwise the first column holds counts and a word in it is an error.
    header_is_short = not isinstance(table.index, pd.RangeIndex)
    if table.shape[1] > 1 and not header_is_short:
        first_column = table.columns[0]
        unnamed = header and (str(first_column).startswith("Unnamed: 0")
                              or str(first_column).strip() == "")
        if unnamed or pd.to_numeric(table[first_column], errors="coerce").isna().all():
            table = table.set_index(first_column)
            table.index.name = None if unnamed or not header else first_column
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError(f"{path}: the table has no rows or no count columns")
    values = table.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row, column = np.argwhere(bad)[0]
        if table.iat[row, column] == "":
            _check_row_lengths(path, text, sep, header)
        hint = ("; a first column of row names needs an empty header cell, a header one field "
                "short, or no number among the names" if column == 0 else "")
        raise ValueError(f"{_where(path, text, table, row, column, header)}: "
                         f"{table.iat[row, column]!r} is not numeric{hint}")
    numbers = values.to_numpy(dtype=np.float64)
    infinite = ~np.isfinite(numbers)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        raise ValueError(f"{_where(path, text, table, row, column, header)}: "
                         f"{table.iat[row, column]!r} is infinite or too large")
    frame = pd.DataFrame(numbers, index=table.index, columns=[str(c) for c in table.columns])
    return text, table, frame, header


def read_number_table(path, *, header=True):
    """Read a CSV/TSV table of finite numbers, with row names when it has them.

    Parameters
    ----------
    path : str or Path
        CSV or TSV (the separator is detected from the first line), plain or
        gzipped (detected from the content).
    header : bool or "auto", default=True
        Whether the first line names the columns; "auto": it does unless its
        last field is a number (a header-less table of size factors).

    Returns
    -------
    DataFrame
        One float column per value column. The first column is the index of
        row names when its header cell is empty (R's ``write.csv``), when the
        header is one field short (R's ``write.table``) or when it holds no
        number; otherwise the index is a RangeIndex.

    Raises
    ------
    ValueError
        Naming the file for an empty, binary, undecodable or truncated
        file, a ragged row, and (with line, row and column) a value that is
        not a number or is infinite.
    """
    return _parse_table(path, header)[2]


def read_count_table(path):
    """Read a CSV/TSV table of counts (rows x features), as :func:`read_number_table` reads it.

    Parameters
    ----------
    path : str or Path
        CSV or TSV, plain or gzipped, with a header line of feature names.

    Returns
    -------
    CountMatrix
        Dense counts, the row names (a RangeIndex when there are none) and
        the feature names.

    Raises
    ------
    ValueError
        As :func:`read_number_table`, and for a value that is negative or not
        an integer, naming the file, line, row and column.
    """
    text, table, numbers, header = _parse_table(path, True)
    matrix = numbers.to_numpy()
    found = _first_bad_count(matrix.reshape(-1))
    if found is not None:
        row, column = divmod(found[0], matrix.shape[1])
        raise ValueError(f"{_where(path, text, table, row, column, header)}: "
                         f"{table.iat[row, column]!r} {found[1]}")
    return CountMatrix(matrix, numbers.index, pd.Index(numbers.columns), str(path))


# ------------------------------------------------------------------ Cell Ranger (Matrix Market)


def _open_binary(path):
    """``path`` opened for reading bytes, gunzipped when its content is gzip."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _tenx_paths(path):
    """The matrix, features and barcodes files of a Cell Ranger folder or of its matrix file."""
    path = Path(path)
    if path.is_dir():
        folder, prefix = path, ""
        matrix = next((folder / n for n in _MATRIX_NAMES if (folder / n).is_file()), None)
        if matrix is None:
            raise ValueError(f"{folder}: no matrix.mtx.gz or matrix.mtx in this folder "
                             f"(a Cell Ranger matrix folder has matrix.mtx.gz, features.tsv.gz "
                             f"and barcodes.tsv.gz)")
    else:
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        folder, matrix = path.parent, path
        # GEO's layout: GSM123_matrix.mtx.gz beside GSM123_barcodes.tsv.gz.
        cut = path.name.find("matrix.mtx")
        prefix = path.name[:cut] if cut >= 0 else ""

    def beside(names, what):
        for name in names:
            if (folder / (prefix + name)).is_file():
                return folder / (prefix + name)
        raise ValueError(f"{matrix}: no {what} file beside it "
                         f"({' or '.join(prefix + n for n in names)} in {folder})")

    return matrix, beside(_FEATURE_NAMES, "features"), beside(_BARCODE_NAMES, "barcodes")


def _tsv_fields(path):
    """The tab-separated fields of each line of ``path``, with the line numbers."""
    lines = TextLines(path)
    table = [(number, line.split("\t")) for number, line in lines.numbered()]
    if not table:
        raise ValueError(f"{path}: the file is empty")
    for number, fields in table:
        if not fields[0].strip():
            raise lines.error("empty name", number)
    return table


def _read_barcodes(path):
    table = _tsv_fields(path)
    barcodes, first_line = [], {}
    for number, fields in table:
        barcode = fields[0]
        if barcode in first_line:
            raise ValueError(f"{path}, line {number}: barcode {barcode!r} repeats line "
                             f"{first_line[barcode]}")
        first_line[barcode] = number
        barcodes.append(barcode)
    return pd.Index(barcodes)


def _read_features(path):
    """(ids, names, types) of a features.tsv (id, name, type) or an older genes.tsv (id, name)."""
    table = _tsv_fields(path)
    width = len(table[0][1])
    for number, fields in table:
        if len(fields) != width:
            raise ValueError(f"{path}, line {number}: {len(fields)} tab-separated fields, "
                             f"line {table[0][0]} has {width}")
    ids = [fields[0] for _, fields in table]
    names = [fields[1] if width > 1 else fields[0] for _, fields in table]
    types = [fields[2] for _, fields in table] if width > 2 else [_GENE_EXPRESSION] * len(ids)
    return ids, names, types


def _make_unique(names):
    """The names with repeats made unique as anndata and scanpy do: the second ``X`` becomes ``X-1``.

    Parameters
    ----------
    names : sequence of str
        Names, possibly repeated.

    Returns
    -------
    pandas.Index
        The first occurrence of each name unchanged, later ones suffixed
        ``-1``, ``-2``... (skipping suffixed names that already exist).
    """
    index = pd.Index(names, dtype=object)
    repeated = index.duplicated(keep="first")
    if not repeated.any():
        return index
    values, taken, counter = index.to_numpy().copy(), set(index), defaultdict(int)
    for position in np.flatnonzero(repeated):
        name = values[position]
        while True:
            counter[name] += 1
            candidate = f"{name}-{counter[name]}"
            if candidate not in taken:
                break
        taken.add(candidate)
        values[position] = candidate
    return pd.Index(values, dtype=object)


def _matrix_market_header(path, handle):
    """(shape, number of entries, field, number of header lines) of a Matrix Market stream."""
    banner = handle.readline().decode("utf-8", "replace").split()
    if len(banner) != 5 or banner[0] != "%%MatrixMarket" or banner[1].lower() != "matrix":
        raise ValueError(f"{path}, line 1: not a Matrix Market file "
                         f"(expected '%%MatrixMarket matrix coordinate integer general')")
    layout, field, symmetry = (word.lower() for word in banner[2:])
    if layout != "coordinate" or field not in {"integer", "real"} or symmetry != "general":
        raise ValueError(f"{path}, line 1: a '{layout} {field} {symmetry}' matrix; counts are "
                         f"a 'coordinate integer general' (or real) matrix")
    number = 1
    while True:
        line = handle.readline().decode("utf-8", "replace")
        number += 1
        if not line:
            raise ValueError(f"{path}: no size line after the header")
        if not line.startswith("%"):
            break
    try:
        n_rows, n_columns, n_entries = (int(word) for word in line.split())
    except ValueError:
        raise ValueError(f"{path}, line {number}: expected the size line 'rows columns "
                         f"entries', got {line.strip()!r}") from None
    return (n_rows, n_columns), n_entries, number


def _read_matrix_market_entries(path, handle, shape, n_entries, header_lines, features, barcodes):
    """The entries (gene, cell, count) of the stream after its header, each checked."""
    try:
        table = pd.read_csv(handle, sep=r"\s+", header=None, names=["row", "column", "value"],
                            skip_blank_lines=False, low_memory=False)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame({"row": [], "column": [], "value": []})
    except pd.errors.ParserError as error:
        # pandas counts lines from where it started reading: after the header.
        raise ValueError(f"{path}: after line {header_lines}: "
                         f"{str(error).strip().splitlines()[0]}") from None
    except _STREAM_ERRORS as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if len(table) != n_entries:
        raise ValueError(f"{path}: {len(table)} entries, but line {header_lines} says {n_entries}")

    def where(position):
        return f"{path}, line {header_lines + 1 + position}"

    columns = {}
    for name, size in (("row", shape[0]), ("column", shape[1])):
        numbers = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~((numbers >= 1) & (numbers <= size) & (numbers == np.floor(numbers)))
        if bad.any():
            position = int(np.argmax(bad))
            raise ValueError(f"{where(position)}: {name} index {str(table[name].iat[position])!r} is "
                             f"not an integer from 1 to {size}")
        columns[name] = numbers.astype(np.int64) - 1
    values = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=np.float64)
    found = _first_bad_count(values)
    if found is not None:
        position = found[0]
        gene, cell = columns["row"][position], columns["column"][position]
        raise ValueError(f"{where(position)} (gene {features[gene]!r}, barcode "
                         f"{barcodes[cell]!r}): {str(table['value'].iat[position])!r} {found[1]}")
    return columns["row"], columns["column"], values


def read_10x_mtx(path, *, gene_names="symbols", gene_expression_only=True):
    """Read Cell Ranger's Matrix Market output: genes x cells on disk, cells x genes returned.

    Parameters
    ----------
    path : str or Path
        The folder (``filtered_feature_bc_matrix/``) holding ``matrix.mtx.gz``,
        ``features.tsv.gz`` and ``barcodes.tsv.gz`` (or the uncompressed
        names, or Cell Ranger 2's ``genes.tsv``), or the matrix file itself,
        whose prefix (GEO's ``GSM123_matrix.mtx.gz``) the other two share.
    gene_names : {"symbols", "ids"}, default="symbols"
        Name genes by their symbols (the second column of the features,
        repeats made unique as scanpy does: ``X``, ``X-1``) or their ids
        (the first column, e.g. Ensembl ids).
    gene_expression_only : bool, default=True
        Keep only features of type "Gene Expression" (antibody capture and
        other feature types are left out, as scanpy's ``read_10x_mtx`` does).

    Returns
    -------
    CountMatrix
        Sparse (CSR) counts of shape (n_barcodes, n_genes), rows named by the
        barcodes, features by ``gene_names``.

    Raises
    ------
    ValueError
        Naming the file: a missing matrix, features or barcodes file; a
        header that is not a general coordinate integer (or real) matrix; a
        number of genes or barcodes that differs from the matrix's shape; a
        repeated barcode; and, with its line, gene and barcode, an entry that
        is not a non-negative integer or lies outside the matrix, or a
        repeated entry.
    """
    if gene_names not in {"symbols", "ids"}:
        raise ValueError(f"gene_names must be 'symbols' or 'ids', got {gene_names!r}")
    matrix_path, features_path, barcodes_path = _tenx_paths(path)
    ids, symbols, types = _read_features(features_path)
    barcodes = _read_barcodes(barcodes_path)
    names = _make_unique(symbols) if gene_names == "symbols" else pd.Index(ids, dtype=object)
    try:
        with _open_binary(matrix_path) as handle:
            shape, n_entries, header_lines = _matrix_market_header(matrix_path, handle)
            if shape != (len(names), len(barcodes)):
                raise ValueError(
                    f"{matrix_path}: the matrix is {shape[0]} genes x {shape[1]} cells, but "
                    f"{features_path.name} lists {len(names)} features and "
                    f"{barcodes_path.name} {len(barcodes)} barcodes"
                )
            genes, cells, values = _read_matrix_market_entries(
                matrix_path, handle, shape, n_entries, header_lines, names, barcodes)
    except _STREAM_ERRORS as error:
        raise ValueError(f"cannot read {matrix_path}: {error}") from None
    counts = sp.csr_matrix((values, (cells, genes)), shape=(shape[1], shape[0]))
    if counts.nnz != len(values):  # csr_matrix sums repeated entries
        order = np.lexsort((genes, cells))
        same = (np.diff(cells[order]) == 0) & (np.diff(genes[order]) == 0)
        repeat = int(order[1:][same].min())
        raise ValueError(f"{matrix_path}, line {header_lines + 1 + repeat}: a second entry for "
                         f"gene {names[genes[repeat]]!r}, barcode {barcodes[cells[repeat]]!r}")
    keep = np.asarray(types) == _GENE_EXPRESSION
    if gene_expression_only and not keep.all():
        counts, names = counts[:, np.flatnonzero(keep)].tocsr(), names[keep]
    return CountMatrix(counts, barcodes, names, str(matrix_path))


# ------------------------------------------------------------------ AnnData


def _anndata():
    try:
        import anndata
    except ImportError:
        raise ImportError("reading or writing .h5ad files needs anndata: "
                          "pip install 'skem[h5ad]'") from None
    return anndata


def _load_h5ad(path):
    anndata = _anndata()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        return anndata.read_h5ad(path)
    except (OSError, KeyError, TypeError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not an AnnData .h5ad file ({message})") from None


def read_h5ad(path, *, layer=None, highly_variable=False):
    """Read the counts of an AnnData ``.h5ad`` file: cells x genes, as scanpy keeps them.

    Parameters
    ----------
    path : str or Path
        An ``.h5ad`` file.
    layer : str, default=None
        Read ``layers[layer]`` instead of ``X`` (raw counts are often kept in
        a layer such as "counts" when ``X`` is normalized).
    highly_variable : bool, default=False
        Keep only the genes where ``var["highly_variable"]`` is True (as
        scanpy's ``highly_variable_genes`` marks them).

    Returns
    -------
    CountMatrix
        Sparse (CSR) counts, rows named by ``obs_names``, features by
        ``var_names``.

    Raises
    ------
    ImportError
        When anndata is not installed.
    ValueError
        Naming the file: not an ``.h5ad`` file, a missing layer, no ``X``,
        no usable ``highly_variable`` column, and, with its cell and gene, an
        entry that is not a non-negative integer (such as a normalized value).
    """
    path = Path(path)
    adata = _load_h5ad(path)
    if layer is None:
        matrix, what = adata.X, "X"
    elif layer in adata.layers:
        matrix, what = adata.layers[layer], f"layer {layer!r}"
    else:
        raise ValueError(f"{path}: no layer {layer!r} (its layers: "
                         f"{', '.join(map(repr, adata.layers)) or 'none'})")
    if matrix is None:
        raise ValueError(f"{path}: X is empty; name a layer of counts "
                         f"(its layers: {', '.join(map(repr, adata.layers)) or 'none'})")
    if not (sp.issparse(matrix) or isinstance(matrix, np.ndarray)):
        raise ValueError(f"{path}: {what} is a {type(matrix).__name__}, not an array or a "
                         f"sparse matrix")
    counts = sp.csr_matrix(matrix, dtype=np.float64)
    found = _first_bad_count(counts.data)
    if found is not None:
        row = int(np.searchsorted(counts.indptr, found[0], side="right")) - 1
        gene = counts.indices[found[0]]
        layers = ", ".join(map(repr, adata.layers))
        hint = (f"; is {what} normalized? the file's layers: {layers}"
                if layers and found[1].startswith("is not an integer") else "")
        raise ValueError(f"{path}, {what}: cell {adata.obs_names[row]!r} (row {row + 1}), gene "
                         f"{adata.var_names[gene]!r} (column {gene + 1}): "
                         f"{float(counts.data[found[0]])!r} {found[1]}{hint}")
    features = pd.Index(adata.var_names, dtype=object)
    if highly_variable:
        if "highly_variable" not in adata.var:
            raise ValueError(f"{path}: var has no 'highly_variable' column (scanpy's "
                             f"sc.pp.highly_variable_genes adds it)")
        column = adata.var["highly_variable"]
        if column.dtype != bool:
            raise ValueError(f"{path}: var['highly_variable'] is {column.dtype}, not True/False")
        keep = column.to_numpy()
        if not keep.any():
            raise ValueError(f"{path}: no gene has var['highly_variable'] True")
        counts, features = counts[:, np.flatnonzero(keep)].tocsr(), features[keep]
    return CountMatrix(counts, pd.Index(adata.obs_names, dtype=object), features, str(path))


def annotate_h5ad(source, destination, labels, proba, *, info=None):
    """Write a copy of an ``.h5ad`` file with a clustering: ``obs["skem_component"]``, ``obsm["skem_proba"]``.

    Parameters
    ----------
    source : str or Path
        The ``.h5ad`` file the clustered counts were read from.
    destination : str or Path
        The copy to write (not ``source``).
    labels : array-like of int, shape (n_obs,)
        The component of each cell; stored as a categorical of strings
        ("0", "1"...), as scanpy stores clusters, with every component a
        category.
    proba : array-like of shape (n_obs, n_components)
        The posterior probability of each component for each cell.
    info : dict, default=None
        Stored as ``uns["skem"]`` (for example the options of the fit).

    Returns
    -------
    pathlib.Path
        ``destination``.

    Raises
    ------
    ImportError
        When anndata is not installed.
    ValueError
        When ``destination`` is ``source``, the number of cells differs from
        the file's, or the copy cannot be written (naming it).
    """
    source, destination = Path(source), Path(destination)
    if destination.resolve() == source.resolve():
        raise ValueError(f"{destination}: the copy with the clustering must not replace the input")
    anndata = _anndata()
    adata = _load_h5ad(source)
    labels, proba = np.asarray(labels), np.asarray(proba, dtype=np.float64)
    if labels.shape != (adata.n_obs,) or proba.shape[0] != adata.n_obs:
        raise ValueError(f"{source}: {adata.n_obs} cells, but {len(labels)} labels and "
                         f"{proba.shape[0]} rows of probabilities")
    categories = [str(k) for k in range(proba.shape[1])]
    adata.obs["skem_component"] = pd.Categorical(labels.astype(str), categories=categories)
    adata.obsm["skem_proba"] = proba
    if info is not None:
        adata.uns["skem"] = dict(info)
    # pandas 3 reads the file's names as its string dtype, which anndata (0.11 and later) writes
    # only when allowed; older anndata has neither the dtype nor the setting.
    allow = {"allow_write_nullable_strings": True} if hasattr(
        anndata.settings, "allow_write_nullable_strings") else {}
    try:
        with anndata.settings.override(**allow):
            adata.write_h5ad(destination)
    except OSError as error:
        raise ValueError(f"cannot write {destination}: {error.strerror or error}") from None
    return destination


# ------------------------------------------------------------------ any of them


def count_format(path):
    """The format of a count file or folder: "10x", "h5ad" or "table".

    Parameters
    ----------
    path : str or Path
        A folder (Cell Ranger's), a ``.mtx``/``.mtx.gz`` file, an ``.h5ad`` (or
        any HDF5) file, or a text table.

    Returns
    -------
    str
        "10x" for a folder or a Matrix Market file, "h5ad" for a name ending
        in ``.h5ad`` or HDF5 content, else "table".
    """
    path = Path(path)
    name = path.name.lower()
    if path.is_dir() or name.endswith((".mtx", ".mtx.gz")):
        return "10x"
    if name.endswith(".h5ad"):
        return "h5ad"
    try:
        with open(path, "rb") as handle:
            if handle.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
                return "h5ad"
    except OSError:
        pass  # the table reader names a missing or unreadable file
    return "table"


def read_counts(path, *, layer=None, highly_variable=False, gene_names="symbols"):
    """Read counts (rows = cells or samples, columns = genes) from any format :func:`count_format` knows.

    Parameters
    ----------
    path : str or Path
        A CSV/TSV table (:func:`read_count_table`), a Cell Ranger folder or
        ``.mtx[.gz]`` file (:func:`read_10x_mtx`) or an ``.h5ad`` file
        (:func:`read_h5ad`).
    layer : str, default=None
        For ``.h5ad`` only: the layer to read instead of ``X``.
    highly_variable : bool, default=False
        For ``.h5ad`` only: keep the genes marked ``var["highly_variable"]``.
    gene_names : {"symbols", "ids"}, default="symbols"
        For Cell Ranger output only: name genes by symbol or by id.

    Returns
    -------
    CountMatrix
        The counts with the names of rows and features.

    Raises
    ------
    ValueError
        An option that does not apply to the file's format, or anything the
        format's reader refuses (naming the file).
    """
    kind = count_format(path)
    if kind != "h5ad" and (layer is not None or highly_variable):
        raise ValueError(f"{path}: a layer and highly-variable genes apply to .h5ad input only")
    if kind != "10x" and gene_names != "symbols":
        raise ValueError(f"{path}: gene ids apply to Cell Ranger (Matrix Market) input only")
    if kind == "10x":
        return read_10x_mtx(path, gene_names=gene_names)
    if kind == "h5ad":
        return read_h5ad(path, layer=layer, highly_variable=highly_variable)
    return read_count_table(path)


def select_features(counts, path):
    """Keep the features named in a file, one name a line, in the file's order.

    Parameters
    ----------
    counts : CountMatrix
        Counts with feature names.
    path : str or Path
        A text file (plain or gzipped) of feature names, one a line; blank
        lines are skipped.

    Returns
    -------
    CountMatrix
        The counts of the listed features only.

    Raises
    ------
    ValueError
        Naming the file and line: a name that is not a feature of ``counts``,
        or a name listed twice; or a file without names.
    """
    lines = TextLines(path)
    wanted, first_line = [], {}
    position = pd.Index(counts.features)
    if not position.is_unique:
        repeated = position[position.duplicated()][0]
        raise ValueError(f"{counts.source}: feature {repeated!r} is named twice; cannot select "
                         f"features by name from {path}")
    for number, line in lines.numbered():
        name = line.strip()
        if not name:
            continue
        if name in first_line:
            raise lines.error(f"gene {name!r} repeats line {first_line[name]}", number)
        if name not in position:
            raise lines.error(f"gene {name!r} is not a feature of {counts.source}", number)
        first_line[name] = number
        wanted.append(name)
    if not wanted:
        raise ValueError(f"{path}: no gene names in the file")
    columns = position.get_indexer(wanted)
    matrix = counts.matrix[:, columns]
    return CountMatrix(matrix.tocsr() if sp.issparse(matrix) else matrix, counts.rows,
                       position[columns], counts.source)

"""The count readers of skem.io on files written by the field's own libraries, and on bad files.

Cell Ranger folders are written by ``scipy.io.mmwrite`` with Cell Ranger's file names, ``.h5ad``
files by anndata, tables by pandas (``tests/count_files.py``); every bad file must raise a
ValueError naming the file and, where it applies, the line and the entry.
"""

import gzip
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from count_files import simulated_cells, write_10x, write_csv, write_h5ad, write_lines

from skem.io import (
    CountMatrix,
    annotate_h5ad,
    count_format,
    read_10x_mtx,
    read_count_table,
    read_counts,
    read_h5ad,
    read_number_table,
    select_features,
)

anndata = pytest.importorskip("anndata")


@pytest.fixture(scope="module")
def cells():
    return simulated_cells()


def _matrix_lines(folder):
    return gzip.decompress((folder / "matrix.mtx.gz").read_bytes()).decode().splitlines()


def _rewrite_matrix(folder, lines):
    write_lines(folder / "matrix.mtx.gz", lines)


# ------------------------------------------------------------------ Cell Ranger


def test_10x_folder_is_read_as_cells_by_genes(tmp_path, cells):
    counts = read_10x_mtx(write_10x(tmp_path / "filtered_feature_bc_matrix", cells))
    assert sp.isspmatrix_csr(counts.matrix)
    np.testing.assert_array_equal(counts.matrix.toarray(), cells.counts)
    assert list(counts.rows) == cells.barcodes
    assert list(counts.features) == cells.symbols
    ids = read_10x_mtx(tmp_path / "filtered_feature_bc_matrix", gene_names="ids")
    assert list(ids.features) == cells.gene_ids


def test_10x_matrix_file_and_version_2_layout(tmp_path, cells):
    write_10x(tmp_path / "v2", cells, version=2)  # genes.tsv, plain matrix.mtx and barcodes.tsv
    write_10x(tmp_path / "geo", cells, prefix="GSM1_")  # GEO: GSM1_matrix.mtx.gz and siblings
    for path in (tmp_path / "v2", tmp_path / "v2" / "matrix.mtx",
                 tmp_path / "geo" / "GSM1_matrix.mtx.gz"):
        counts = read_counts(path)
        np.testing.assert_array_equal(counts.matrix.toarray(), cells.counts)
        assert list(counts.rows) == cells.barcodes and list(counts.features) == cells.symbols


@pytest.mark.filterwarnings("ignore:Suffix used:UserWarning")  # anndata's, on "Actb-1"
def test_repeated_symbols_are_made_unique_as_anndata_does(tmp_path, cells):
    symbols = ["Actb", "Actb", "Actb-1", "Gapdh", "Actb"] + cells.symbols[5:]
    repeated = type(cells)(cells.counts, cells.labels, cells.barcodes, cells.gene_ids, symbols)
    counts = read_10x_mtx(write_10x(tmp_path / "m", repeated))
    expected = anndata.utils.make_index_unique(pd.Index(symbols, dtype=object))
    assert list(counts.features) == list(expected)
    assert counts.features.is_unique


def test_10x_keeps_gene_expression_features_only(tmp_path, cells):
    types = ["Gene Expression"] * (len(cells.symbols) - 2) + ["Antibody Capture"] * 2
    counts = read_10x_mtx(write_10x(tmp_path / "m", cells, types=types))
    assert list(counts.features) == cells.symbols[:-2]
    np.testing.assert_array_equal(counts.matrix.toarray(), cells.counts[:, :-2])
    everything = read_10x_mtx(tmp_path / "m", gene_expression_only=False)
    assert everything.matrix.shape == cells.counts.shape


def _break_entry(field, value):
    """Replace the value of the first entry (line 4: banner, comment, size line)."""

    def change(lines):
        lines[0] = lines[0].replace("integer", field)
        row, column, _ = lines[3].split()
        lines[3] = f"{row} {column} {value}"
        return lines

    return change


@pytest.mark.parametrize(
    "change, words",
    [
        (_break_entry("integer", "-3"), ["line 4", "'-3'", "negative", "Gene0"]),
        (_break_entry("real", "2.5"), ["line 4", "'2.5'", "not an integer", "Gene0"]),
        (_break_entry("integer", "2.5"), ["line 4", "'2.5'", "not an integer"]),
        (_break_entry("real", "inf"), ["line 4", "infinite"]),
        (_break_entry("real", "1e400"), ["line 4", "infinite"]),
        (_break_entry("integer", "seven"), ["line 4", "'seven'", "not a number"]),
        (lambda lines: lines[:3] + ["99 1 3"] + lines[4:], ["line 4", "row index '99'", "1 to 12"]),
        (lambda lines: lines[:-1], ["entries", "line 3 says"]),
        (lambda lines: lines + [lines[3]], ["entries"]),
        (lambda lines: [lines[0], lines[1], lines[2].replace(" 406", " 407")] + lines[3:4]
         + lines[3:], ["second entry", "Gene0"]),
        (lambda lines: [lines[0].replace("general", "symmetric")] + lines[1:], ["symmetric"]),
        (lambda lines: [lines[0].replace("integer", "pattern")] + lines[1:], ["pattern"]),
        (lambda lines: ["hello"] + lines[1:], ["line 1", "not a Matrix Market file"]),
        (lambda lines: lines[:2] + ["12 61 406"] + lines[3:], ["61 cells", "60 barcodes"]),
        (lambda lines: lines[:2] + ["13 60 406"] + lines[3:], ["13 genes", "12 features"]),
        (lambda lines: lines[:2] + ["12 sixty 406"] + lines[3:], ["line 3", "size line"]),
        (lambda lines: lines[:5] + [""] + lines[5:], ["line 6", "empty line"]),
        (lambda lines: lines[:5] + ["1 2 3 4"] + lines[6:], ["line 6", "4 fields, expected 3"]),
    ],
)
def test_bad_matrix_market_entries_are_named(tmp_path, cells, change, words):
    folder = write_10x(tmp_path / "m", cells)
    lines = _matrix_lines(folder)
    assert lines[2].split() == ["12", "60", "406"]  # the fixture these edits assume
    _rewrite_matrix(folder, change(lines))
    with pytest.raises(ValueError) as error:
        read_10x_mtx(folder)
    message = str(error.value)
    assert "matrix.mtx.gz" in message
    for word in words:
        assert word in message


def test_blank_lines_at_the_end_of_a_matrix_are_harmless(tmp_path, cells):
    folder = write_10x(tmp_path / "m", cells)
    _rewrite_matrix(folder, _matrix_lines(folder) + ["", ""])
    np.testing.assert_array_equal(read_10x_mtx(folder).matrix.toarray(), cells.counts)


def test_a_repeated_entry_is_named_on_its_second_line(tmp_path, cells):
    folder = write_10x(tmp_path / "m", cells)
    lines = _matrix_lines(folder)
    size = lines[2].split()
    _rewrite_matrix(folder, lines[:2] + [f"{size[0]} {size[1]} {int(size[2]) + 1}"]
                    + lines[3:] + [lines[5]])
    with pytest.raises(ValueError, match=f"line {len(lines) + 1}: a second entry"):
        read_10x_mtx(folder)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda f: (f / "barcodes.tsv.gz").unlink(), ["barcodes", "barcodes.tsv.gz"]),
        (lambda f: (f / "features.tsv.gz").unlink(), ["features", "features.tsv.gz", "genes.tsv"]),
        (lambda f: (f / "matrix.mtx.gz").unlink(), ["no matrix.mtx.gz"]),
        (lambda f: write_lines(f / "barcodes.tsv.gz", ["AAAC-1", "AAAG-1", "AAAC-1"]),
         ["barcodes.tsv.gz", "line 3", "repeats line 1"]),
        (lambda f: write_lines(f / "features.tsv.gz", ["E1\tA\tGene Expression", "E2\tB"]),
         ["features.tsv.gz", "line 2"]),
        (lambda f: write_lines(f / "barcodes.tsv.gz", []), ["barcodes.tsv.gz", "empty"]),
        (lambda f: (f / "matrix.mtx.gz").write_bytes((f / "matrix.mtx.gz").read_bytes()[:-30]),
         ["matrix.mtx.gz"]),
    ],
)
def test_bad_10x_folders_are_named(tmp_path, cells, damage, words):
    folder = write_10x(tmp_path / "m", cells)
    damage(folder)
    with pytest.raises(ValueError) as error:
        read_10x_mtx(folder)
    for word in words:
        assert word in str(error.value)


def test_missing_10x_path(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_10x_mtx(tmp_path / "nowhere" / "matrix.mtx.gz")


# ------------------------------------------------------------------ AnnData


def test_h5ad_x_and_layer(tmp_path, cells):
    counts = read_h5ad(write_h5ad(tmp_path / "raw.h5ad", cells))
    assert sp.isspmatrix_csr(counts.matrix)
    np.testing.assert_array_equal(counts.matrix.toarray(), cells.counts)
    assert list(counts.rows) == cells.barcodes and list(counts.features) == cells.symbols
    layered = read_h5ad(write_h5ad(tmp_path / "norm.h5ad", cells, normalized_x=True),
                        layer="counts")
    np.testing.assert_array_equal(layered.matrix.toarray(), cells.counts)


def test_dense_h5ad(tmp_path, cells):
    adata = anndata.AnnData(cells.counts.astype(np.int32),
                            obs=pd.DataFrame(index=pd.Index(cells.barcodes, dtype=object)),
                            var=pd.DataFrame(index=pd.Index(cells.symbols, dtype=object)))
    adata.write_h5ad(tmp_path / "dense.h5ad")
    counts = read_counts(tmp_path / "dense.h5ad")
    assert sp.isspmatrix_csr(counts.matrix)
    np.testing.assert_array_equal(counts.matrix.toarray(), cells.counts)


def test_normalized_x_is_refused_naming_the_entry_and_the_layers(tmp_path, cells):
    path = write_h5ad(tmp_path / "norm.h5ad", cells, normalized_x=True)
    with pytest.raises(ValueError) as error:
        read_h5ad(path)
    message = str(error.value)
    for word in ("norm.h5ad", "X", cells.barcodes[0], "not an integer", "'counts'"):
        assert word in message


@pytest.mark.parametrize(
    "value, layers, words, absent",
    [(-2.0, {"counts": "copy"}, ["negative"], "normalized"),
     (0.5, {}, ["not an integer", "is X normalized? the file has no layers"], "'counts'")],
)
def test_bad_h5ad_entry_names_cell_and_gene(tmp_path, cells, value, layers, words, absent):
    counts = cells.counts.copy()
    counts[4, 7] = value
    adata = anndata.AnnData(sp.csr_matrix(counts),
                            obs=pd.DataFrame(index=pd.Index(cells.barcodes, dtype=object)),
                            var=pd.DataFrame(index=pd.Index(cells.symbols, dtype=object)),
                            layers={name: sp.csr_matrix(cells.counts) for name in layers})
    adata.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(ValueError) as error:
        read_h5ad(tmp_path / "bad.h5ad")
    message = str(error.value)
    for word in ("bad.h5ad, X", cells.barcodes[4], "row 5", "Gene7", "column 8", *words):
        assert word in message
    assert absent not in message


def test_highly_variable_genes(tmp_path, cells):
    flags = np.arange(len(cells.symbols)) % 3 == 0
    path = write_h5ad(tmp_path / "hv.h5ad", cells, highly_variable=flags)
    counts = read_h5ad(path, highly_variable=True)
    assert list(counts.features) == [s for s, f in zip(cells.symbols, flags) if f]
    np.testing.assert_array_equal(counts.matrix.toarray(), cells.counts[:, flags])
    with pytest.raises(ValueError, match="highly_variable"):
        read_h5ad(write_h5ad(tmp_path / "plain.h5ad", cells), highly_variable=True)


@pytest.mark.parametrize(
    "make, options, words",
    [
        (lambda p, c: write_h5ad(p, c), {"layer": "spliced"}, ["no layer 'spliced'", "none"]),
        (lambda p, c: write_h5ad(p, c, normalized_x=True), {"layer": "raw"},
         ["no layer 'raw'", "'counts'"]),
        (lambda p, c: p.write_bytes(b"not hdf5 at all"), {}, ["not an AnnData .h5ad file"]),
        (lambda p, c: None, {}, ["no such file"]),
    ],
)
def test_bad_h5ad_files_are_named(tmp_path, cells, make, options, words):
    path = tmp_path / "cells.h5ad"
    make(path, cells)
    with pytest.raises(ValueError) as error:
        read_h5ad(path, **options)
    assert "cells.h5ad" in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_without_anndata_the_error_names_the_extra(tmp_path, cells, monkeypatch):
    path = write_h5ad(tmp_path / "raw.h5ad", cells)
    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(ImportError, match=r"skem\[h5ad\]"):
        read_h5ad(path)


def test_annotate_h5ad_writes_a_copy_scanpy_reads(tmp_path, cells):
    source = write_h5ad(tmp_path / "norm.h5ad", cells, normalized_x=True)
    proba = np.column_stack([cells.labels == 0, cells.labels == 1, np.zeros(60)]).astype(float)
    annotate_h5ad(source, tmp_path / "out.h5ad", cells.labels, proba, info={"n_components": 3})
    adata = anndata.read_h5ad(tmp_path / "out.h5ad")
    assert isinstance(adata.obs["skem_component"].dtype, pd.CategoricalDtype)
    assert list(adata.obs["skem_component"].cat.categories) == ["0", "1", "2"]
    assert list(adata.obs["skem_component"].astype(int)) == list(cells.labels)
    np.testing.assert_array_equal(adata.obsm["skem_proba"], proba)
    assert adata.uns["skem"]["n_components"] == 3
    # The copy keeps everything else: names, X and layers; the input is unchanged.
    original = anndata.read_h5ad(source)
    assert list(adata.obs_names) == cells.barcodes
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), cells.counts)
    np.testing.assert_array_equal(adata.X.toarray(), original.X.toarray())
    assert "skem_component" not in original.obs
    with pytest.raises(ValueError, match="must not replace the input"):
        annotate_h5ad(source, source, cells.labels, proba)
    with pytest.raises(ValueError, match="60 cells, but 59 labels"):
        annotate_h5ad(source, tmp_path / "x.h5ad", cells.labels[:-1], proba[:-1])


# ------------------------------------------------------------------ tables and any format


def test_count_format(tmp_path, cells):
    write_10x(tmp_path / "m", cells)
    assert count_format(tmp_path / "m") == "10x"
    assert count_format(tmp_path / "m" / "matrix.mtx.gz") == "10x"
    assert count_format(write_h5ad(tmp_path / "a.h5ad", cells)) == "h5ad"
    (tmp_path / "renamed.dat").write_bytes((tmp_path / "a.h5ad").read_bytes())
    assert count_format(tmp_path / "renamed.dat") == "h5ad"  # HDF5 by content
    assert count_format(write_csv(tmp_path / "c.csv", cells)) == "table"


def test_csv_table_and_the_same_counts_from_every_format(tmp_path, cells):
    table = read_counts(write_csv(tmp_path / "c.csv", cells))
    assert isinstance(table, CountMatrix) and isinstance(table.matrix, np.ndarray)
    reference = pd.read_csv(tmp_path / "c.csv", index_col=0)
    np.testing.assert_array_equal(table.matrix, reference.to_numpy())
    assert list(table.rows) == cells.barcodes and list(table.features) == cells.symbols
    for other in (read_counts(write_10x(tmp_path / "m", cells)),
                  read_counts(write_h5ad(tmp_path / "a.h5ad", cells))):
        np.testing.assert_array_equal(other.matrix.toarray(), table.matrix)
        assert list(other.rows) == list(table.rows)
        assert list(other.features) == list(table.features)


def test_format_options_apply_to_their_format_only(tmp_path, cells):
    path = write_csv(tmp_path / "c.csv", cells)
    with pytest.raises(ValueError, match=".h5ad input only"):
        read_counts(path, layer="counts")
    with pytest.raises(ValueError, match="Cell Ranger"):
        read_counts(path, gene_names="ids")


def _table(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, rows, features",
    [
        (",a,b\nr1,1,2\nr2,3,4\n", ["r1", "r2"], ["a", "b"]),  # R's write.csv
        ("a b\nr1 1 2\nr2 3 4\n".replace(" ", "\t"), ["r1", "r2"], ["a", "b"]),  # write.table
        ("cell,a,b\nr1,1,2\nr2,3,4\n", ["r1", "r2"], ["a", "b"]),  # no number among the names
        ("a,b,c\n1,2,3\n4,5,6\n", [0, 1], ["a", "b", "c"]),  # no row names
    ],
)
def test_row_name_rule(tmp_path, text, rows, features):
    counts = read_count_table(_table(tmp_path, text))
    assert list(counts.rows) == rows and list(counts.features) == features


@pytest.mark.parametrize(
    "text, words",
    [
        ("a,b,c\n1,2,3\nx,5,6\n4,5,6\n", ["line 3", "row 2", "column 'a'", "'x'", "row names"]),
        ("a,b\n1,2\n\n3,-4\n", ["line 4", "row 2", "column 'b'", "'-4'", "negative"]),
        ("a,b\n1,inf\n", ["line 2", "column 'b'", "'inf'", "infinite"]),
        ("a,b\n1,1e400\n", ["line 2", "column 'b'", "'1e400'", "infinite"]),
        ("a,b\n1,2.5\n", ["line 2", "column 'b'", "'2.5'", "not an integer"]),
        (",a,b\nr1,1,2\nr2,3,x\n", ["line 3", "'r2'", "column 'b'", "'x'", "not numeric"]),
    ],
)
def test_bad_table_values_name_file_line_row_and_column(tmp_path, text, words):
    with pytest.raises(ValueError) as error:
        read_count_table(_table(tmp_path, text))
    message = str(error.value)
    assert message.startswith(str(tmp_path / "t.csv"))
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "text, index, values, index_name",
    [
        ("0.5\n1.5\n2\n", [0, 1, 2], [0.5, 1.5, 2], None),  # no header: the first value stays
        ("size_factor\n0.5\n1.5\n", [0, 1], [0.5, 1.5], None),
        ("r1,0.5\nr2,1.5\n", ["r1", "r2"], [0.5, 1.5], None),  # row names without a header
        (",size_factor\nr1,0.5\nr2,1.5\n", ["r1", "r2"], [0.5, 1.5], None),
        ("cell,size_factor\nr1,0.5\nr2,1.5\n", ["r1", "r2"], [0.5, 1.5], "cell"),
    ],
)
def test_number_table_header_auto(tmp_path, text, index, values, index_name):
    table = read_number_table(_table(tmp_path, text), header="auto")
    assert list(table.index) == index and table.index.name == index_name
    np.testing.assert_array_equal(table.iloc[:, 0], values)


def test_select_features(tmp_path, cells):
    counts = read_counts(write_csv(tmp_path / "c.csv", cells))
    path = tmp_path / "genes.txt"
    path.write_text("Gene3\n\nGene1\n")
    chosen = select_features(counts, path)
    assert list(chosen.features) == ["Gene3", "Gene1"]
    np.testing.assert_array_equal(chosen.matrix, cells.counts[:, [3, 1]])
    sparse = select_features(read_counts(write_10x(tmp_path / "m", cells)), path)
    assert sp.isspmatrix_csr(sparse.matrix)
    np.testing.assert_array_equal(sparse.matrix.toarray(), cells.counts[:, [3, 1]])
    path.write_text("Gene3\nNotAGene\n")
    with pytest.raises(ValueError, match=r"genes.txt, line 2: gene 'NotAGene' is not a feature"):
        select_features(counts, path)
    path.write_text("Gene3\nGene1\nGene3\n")
    with pytest.raises(ValueError, match=r"genes.txt, line 3: gene 'Gene3' repeats line 1"):
        select_features(counts, path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no gene names"):
        select_features(counts, path)


@pytest.mark.parametrize(
    "text, rows, features",
    [
        (",a,b\n1,1,2\n2,3,4\n", ["1", "2"], ["a", "b"]),  # write.csv, R's default row names
        ("a\tb\n1\t1\t2\n2\t3\t4\n", ["1", "2"], ["a", "b"]),  # write.table, default names
        ("gene,1\tgene2\tgene3\nr1\t1\t2\t3\n", ["r1"], ["gene,1", "gene2", "gene3"]),
        ("a,b\tc\n1,2\n", [0], ["a", "b\tc"]),  # as many tabs as commas: CSV
        ("a\tb\n1\t2\n", [0], ["a", "b"]),
        ("\x1fa,b\n1,2\n", [0], ["\x1fa", "b"]),  # one byte of the gzip magic is not gzip
    ],
)
def test_row_names_and_separators(tmp_path, text, rows, features):
    counts = read_count_table(_table(tmp_path, text))
    assert list(counts.rows) == rows and list(counts.features) == features


@pytest.mark.parametrize(
    "text, words",
    [
        ("a,b\n1,\n", ["line 2", "column 'b'", "'' is not numeric"]),  # empty, not short
        ("a\tb\nr1\t1\t2\nr2\t3\n", ["row 2", "'r2'", "fewer fields"]),  # write.table, short row
        ("geneA\nx\ny\n", ["line 2", "'x' is not numeric"]),  # one column, no number
        ("a,b\n", ["no rows"]),
    ],
)
def test_malformed_tables(tmp_path, text, words):
    with pytest.raises(ValueError) as error:
        read_count_table(_table(tmp_path, text))
    for word in words:
        assert word in str(error.value)


def test_number_table_has_a_header_by_default(tmp_path):
    table = read_number_table(_table(tmp_path, "1.5\n2.5\n3.5\n"))
    assert list(table.columns) == ["1.5"] and list(table.iloc[:, 0]) == [2.5, 3.5]


def test_one_column_gene_list_names_genes_by_it(tmp_path, cells):
    folder = write_10x(tmp_path / "m", cells, version=2)
    write_lines(folder / "genes.tsv", cells.gene_ids)
    for gene_names in ("symbols", "ids"):
        counts = read_10x_mtx(folder, gene_names=gene_names)
        assert list(counts.features) == cells.gene_ids


def test_count_matrix_is_immutable(tmp_path, cells):
    counts = read_counts(write_csv(tmp_path / "c.csv", cells))
    with pytest.raises(AttributeError):
        counts.rows = None


def test_gzipped_table_is_read_by_content(tmp_path, cells):
    write_csv(tmp_path / "c.csv", cells)
    (tmp_path / "c.txt").write_bytes(gzip.compress((tmp_path / "c.csv").read_bytes()))
    counts = read_count_table(tmp_path / "c.txt")
    np.testing.assert_array_equal(counts.matrix, cells.counts)


def test_an_empty_matrix_with_a_trailing_blank_line(tmp_path, cells):
    folder = write_10x(tmp_path / "m", cells)
    _rewrite_matrix(folder, _matrix_lines(folder)[:2] + ["12 60 0", ""])
    assert read_10x_mtx(folder).matrix.nnz == 0


def test_annotate_h5ad_checks_the_probabilities_too(tmp_path, cells):
    source = write_h5ad(tmp_path / "raw.h5ad", cells)
    proba = np.eye(2)[cells.labels]
    with pytest.raises(ValueError, match="60 cells, but 60 labels and 59 rows"):
        annotate_h5ad(source, tmp_path / "x.h5ad", cells.labels, proba[:-1])

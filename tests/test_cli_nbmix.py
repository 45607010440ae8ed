"""``skem nbmix`` on the count tables users have: R's write.csv / write.table output, TSV under
any extension, size factors from a file -- and one line naming the file for every bad table.

The fixtures in ``tests/data/nbmix/`` were written by R 4 (``write.csv``, ``write.table``) from
simulated negative-binomial counts with log-normal size factors; the bad ones were derived from
them (a stray value, a long and a short row, empty, binary and truncated-gzip files).
"""

import errno
import os
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold, cross_val_score

from count_files import simulated_cells, write_10x, write_csv, write_h5ad

from skem import NegBinMixture
from skem.cli import main

DATA = Path(__file__).parent / "data" / "nbmix"
FEATURES = ["geneA", "geneB", "geneC"]


def _run(tmp_path, *argv):
    out = tmp_path / "out"
    code = main(["-q", "nbmix", *map(str, argv), "-o", str(out), "--n-init", "1", "--force"])
    return code, out


def _reference_counts():
    """The R table read independently of skem's reader: the quoted first column is the index."""
    return pd.read_csv(DATA / "r_write_csv.csv", index_col=0)


@pytest.mark.parametrize("name", ["r_write_csv.csv", "r_write_table.txt", "tab_separated.csv"])
def test_r_tables_have_row_names_not_a_count_feature(tmp_path, name):
    code, out = _run(tmp_path, DATA / name, "-k", "2")
    assert code == 0
    parameters = pd.read_csv(out / "parameters.tsv", sep="\t")
    assert sorted(set(parameters["feature"])) == FEATURES
    assignments = pd.read_csv(out / "assignments.tsv", sep="\t", index_col="row")
    reference = _reference_counts()
    assert list(assignments.index) == list(reference.index)
    # The same fit as the estimator on the table read by pandas.
    model = NegBinMixture(2, n_init=1, random_state=0).fit(reference)
    expected = model.component_means().stack().rename("mean")
    got = parameters.set_index(["component", "feature"])["mean"]
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=1e-8)
    weights = parameters.groupby("component")["weight"].first()
    np.testing.assert_allclose(weights, model.weights_, rtol=1e-8)


def test_size_factors_from_a_file(tmp_path):
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "-k", "2",
                     "--size-factors", DATA / "size_factors.csv")
    assert code == 0
    factors = pd.read_csv(DATA / "size_factors.csv", index_col=0)["size_factor"]
    assignments = pd.read_csv(out / "assignments.tsv", sep="\t", index_col="row")
    np.testing.assert_allclose(assignments["size_factor"], factors.loc[assignments.index])
    counts = _reference_counts()
    model = NegBinMixture(2, n_init=1, random_state=0).fit(counts, size_factors=factors.to_numpy())
    np.testing.assert_allclose(
        assignments.filter(like="posterior_").to_numpy(),
        model.predict_proba(counts, size_factors=factors.to_numpy()), atol=1e-8,
    )


def test_library_size_factors_option(tmp_path):
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "-k", "2", "--size-factors", "library")
    assert code == 0
    counts = _reference_counts()
    assignments = pd.read_csv(out / "assignments.tsv", sep="\t", index_col="row")
    totals = counts.sum(axis=1)
    np.testing.assert_allclose(assignments["size_factor"], totals / totals.mean())


def _cv_by_hand(counts, k, rows, seed, folds=5):
    """Mean held-out log-likelihood per row of ``k`` components over shuffled folds of ``rows``,
    the folds drawn as select_n_components draws them (after the subsample, from the seed that
    also seeds the fits' starts)."""
    rng = np.random.RandomState(seed)
    if rows is not None:
        rows = np.sort(rng.choice(len(counts), rows, replace=False))
        counts = counts.iloc[rows]
    split = KFold(folds, shuffle=True, random_state=rng.randint(np.iinfo(np.int32).max))
    return cross_val_score(NegBinMixture(k, n_init=1, random_state=seed), counts.to_numpy(),
                           cv=split).mean()


def test_model_selection_reports_per_row_quantities(tmp_path, capsys):
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "--k-range", "1-2", "--seed", "3")
    assert code == 0
    table = pd.read_csv(out / "model_selection.tsv", sep="\t", index_col="K",
                        float_precision="round_trip")
    assert list(table.columns) == ["n_parameters", "log_likelihood_per_row", "BIC",
                                   "cv_log_likelihood_per_row", "cv_log_likelihood_per_row_sd",
                                   "n_iter", "converged"]
    counts = _reference_counts()
    for k in (1, 2):
        model = NegBinMixture(k, n_init=1, random_state=3).fit(counts)
        assert table.loc[k, "n_parameters"] == (k - 1) + 3 * k + 1  # weights, means, shared dispersion
        assert table.loc[k, "log_likelihood_per_row"] == pytest.approx(model.score(counts), rel=1e-8)
        assert table.loc[k, "BIC"] == pytest.approx(model.bic(counts), rel=1e-8)
        assert table.loc[k, "n_iter"] == model.n_iter_
    assert table["converged"].all()
    # Held-out and training log-likelihoods per row are of one scale (not a total beside a mean).
    ratio = table["cv_log_likelihood_per_row"] / table["log_likelihood_per_row"]
    assert np.all((ratio > 0.8) & (ratio < 1.5))
    # 5-fold cross-validation over shuffled folds, as scikit-learn runs it.
    for k in (1, 2):
        assert table.loc[k, "cv_log_likelihood_per_row"] == pytest.approx(
            _cv_by_hand(counts, k, None, seed=3), rel=1e-8)


def test_k_range_cross_validates_on_a_subsample_of_big_inputs(tmp_path, capsys, monkeypatch):
    from skem.cli import _nbmix

    monkeypatch.setattr(_nbmix, "CV_ROWS", 30)  # "big": more rows than the subsample
    assert main(["nbmix", str(DATA / "r_write_csv.csv"), "--k-range", "1-3", "--n-init", "1",
                 "--seed", "5", "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(tmp_path / "out" / "model_selection.tsv", sep="\t", index_col="K",
                        float_precision="round_trip")
    counts = _reference_counts()
    for k in (1, 2, 3):
        assert table.loc[k, "cv_log_likelihood_per_row"] == pytest.approx(
            _cv_by_hand(counts, k, 30, seed=5), rel=1e-8)
        # BIC on all rows, not on the subsample.
        model = NegBinMixture(k, n_init=1, random_state=5).fit(counts)
        assert table.loc[k, "BIC"] == pytest.approx(model.bic(counts), rel=1e-8)
    best, best_cv = table["BIC"].idxmin(), table["cv_log_likelihood_per_row"].idxmax()
    said = [line for line in captured.err.splitlines() if "chose K" in line]
    assert len(said) == 1
    assert said[0].endswith(f"chose K = {best} of 1-3 by BIC (fits on all 40 rows); "
                            f"cross-validated log-likelihood per row (5 folds on a uniform "
                            f"subsample of 30 rows) prefers K = {best_cv}")
    assert f"K by BIC: {best}; K by cross-validated log-likelihood: {best_cv}." in captured.out


@pytest.mark.parametrize(
    "name, words",
    [
        ("stray_value.csv", ["row 7", "cell7", "geneC", "12a", "not numeric"]),
        ("ragged_long.csv", ["line"]),
        ("ragged_short.csv", ["cell6", "fewer fields"]),
        ("empty.csv", ["empty"]),
        ("binary.csv", ["binary"]),
        ("truncated.csv.gz", ["cannot read"]),
        ("missing.csv", ["no such file"]),
    ],
)
def test_bad_tables_end_in_one_line_naming_the_file(tmp_path, capsys, name, words):
    code, out = _run(tmp_path, DATA / name, "-k", "2")
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skem nbmix: error: ")
    assert name in lines[0]
    for word in words:
        assert word in lines[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "options, words",
    [
        (["-k", "0"], ["-k", "0"]),
        (["--k-range", "a-b"], ["--k-range"]),
        (["--k-range", "3-1"], ["--k-range"]),
        (["--k-range", "1-99"], ["--k-range", "40 rows"]),
        (["--size-factors", "nowhere.csv"], ["--size-factors", "nowhere.csv"]),
        (["--dispersion", "lots"], ["--dispersion"]),
        (["--dispersion", "inf"], ["--dispersion", "'inf'"]),
        (["--dispersion", "-1"], ["--dispersion", "'-1'"]),
        (["--k-range", "0-2"], ["--k-range", "'0-2'"]),
    ],
)
def test_bad_options_name_the_option(tmp_path, capsys, options, words):
    code, _ = _run(tmp_path, DATA / "r_write_csv.csv", *options)
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    for word in words:
        assert word in lines[0]


def test_size_factor_file_must_cover_every_row(tmp_path, capsys):
    partial = tmp_path / "partial.csv"
    pd.read_csv(DATA / "size_factors.csv", index_col=0).iloc[:-3].to_csv(partial)
    code, _ = _run(tmp_path, DATA / "r_write_csv.csv", "--size-factors", partial)
    assert code == 2
    err = capsys.readouterr().err
    assert "partial.csv" in err and "cell38" in err and "3 rows missing" in err


# ------------------------------------------------------------------ single-cell files (issue 22)


def _run_in(folder, *argv):
    """Run skem nbmix into ``folder/out``, replacing an earlier run's results (--force)."""
    out = folder / "out"
    code = main(["-q", "nbmix", *map(str, argv), "-o", str(out), "--force", "--n-init", "1"])
    return code, out


def _assignments(out):
    # round_trip: pandas before 3.0 reads the last digit of some floats inexactly by default
    return pd.read_csv(out / "assignments.tsv", sep="\t", index_col="row", float_precision="round_trip")


def test_h5ad_and_cell_ranger_inputs_give_the_labels_of_the_csv(tmp_path):
    cells = simulated_cells()
    folder = write_10x(tmp_path / "filtered_feature_bc_matrix", cells)
    inputs = {
        "csv": [write_csv(tmp_path / "counts.csv", cells)],
        "10x": [folder],
        "mtx": [folder / "matrix.mtx.gz"],
        "h5ad": [write_h5ad(tmp_path / "raw.h5ad", cells)],
        "layer": [write_h5ad(tmp_path / "norm.h5ad", cells, normalized_x=True),
                  "--layer", "counts"],
    }
    results = {}
    for name, argv in inputs.items():
        (tmp_path / name).mkdir()
        code, out = _run_in(tmp_path / name, *argv, "-k", "2", "--size-factors", "library")
        assert code == 0, name
        results[name] = (_assignments(out),
                         pd.read_csv(out / "parameters.tsv", sep="\t",
                                     index_col=["component", "feature"]))
    # The sparse inputs (Cell Ranger, .h5ad) give identical results.
    sparse, sparse_parameters = results["10x"]
    assert list(sparse.index) == cells.barcodes
    assert list(sparse_parameters.index.get_level_values("feature").unique()) == cells.symbols
    for name in ("mtx", "h5ad", "layer"):
        assignments, parameters = results[name]
        pd.testing.assert_frame_equal(assignments, sparse, rtol=1e-9)
        pd.testing.assert_frame_equal(parameters, sparse_parameters, rtol=1e-9)
    # The dense CSV gives the same clusters and fit, up to the numbering of the components:
    # NegBinMixture's start may number them differently on a dense and a sparse matrix.
    table, table_parameters = results["csv"]
    assert list(table.index) == cells.barcodes
    same = {int(a): int(b) for a, b in zip(table["component"], sparse["component"])}
    assert sorted(same.values()) == [0, 1]  # one to one
    np.testing.assert_array_equal([same[a] for a in table["component"]], sparse["component"])
    assert len(set(zip(cells.labels, sparse["component"]))) == 2  # the simulated groups
    order = [next(a for a, b in same.items() if b == k) for k in range(2)]
    means = table_parameters["mean"].unstack("feature")
    assert list(means.columns) == sorted(cells.symbols)
    np.testing.assert_allclose(means.loc[order].to_numpy(),
                               sparse_parameters["mean"].unstack("feature").to_numpy(),
                               rtol=1e-6)


def test_write_h5ad_hands_the_clusters_to_anndata(tmp_path):
    anndata = pytest.importorskip("anndata")
    cells = simulated_cells()
    source = write_h5ad(tmp_path / "norm.h5ad", cells, normalized_x=True)
    target = tmp_path / "clustered.h5ad"
    code, out = _run_in(tmp_path, source, "--layer", "counts", "--k-range", "1-3",
                        "--write-h5ad", target)
    assert code == 0
    assignments = _assignments(out)
    adata = anndata.read_h5ad(target)
    assert list(adata.obs_names) == list(assignments.index)
    assert list(adata.obs["skem_component"].astype(int)) == list(assignments["component"])
    np.testing.assert_allclose(adata.obsm["skem_proba"],
                               assignments.filter(like="posterior_").to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), cells.counts)
    assert adata.uns["skem"]["layer"] == "counts"
    assert "skem_component" not in anndata.read_h5ad(source).obs


def test_gene_selection(tmp_path):
    cells = simulated_cells()
    flags = np.arange(len(cells.symbols)) < 5
    source = write_h5ad(tmp_path / "hv.h5ad", cells, highly_variable=flags)
    genes = tmp_path / "genes.txt"
    genes.write_text("Gene7\nGene2\n")
    for run, options, expected in (("hv", ["--highly-variable"], cells.symbols[:5]),
                                   ("list", ["--genes", genes], ["Gene7", "Gene2"])):
        (tmp_path / run).mkdir()  # one output folder a run: skem refuses to mix two runs
        code, out = _run_in(tmp_path / run, source, "-k", "2", *options)
        assert code == 0
        parameters = pd.read_csv(out / "parameters.tsv", sep="\t")
        assert list(parameters["feature"].unique()) == expected
    folder = write_10x(tmp_path / "m", cells)
    code, out = _run_in(folder, folder, "-k", "2", "--gene-ids")
    assert code == 0
    assert list(pd.read_csv(out / "parameters.tsv", sep="\t")["feature"].unique()) == \
        cells.gene_ids


@pytest.mark.parametrize(
    "make, options, words",
    [
        ("csv", ["--layer", "counts"], ["--layer", ".h5ad", "counts.csv"]),
        ("csv", ["--write-h5ad", "{tmp}/x.h5ad"], ["--write-h5ad", "counts.csv"]),
        ("csv", ["--highly-variable"], ["--highly-variable"]),
        ("csv", ["--gene-ids"], ["--gene-ids", "counts.csv"]),
        ("csv", ["--genes", "{tmp}/none.txt"], ["--genes", "none.txt"]),
        ("h5ad", ["--layer", "spliced"], ["raw.h5ad", "no layer 'spliced'"]),
        ("h5ad", ["--write-h5ad", "{tmp}/no/x.h5ad"], ["--write-h5ad", "no such folder"]),
        ("h5ad", ["--write-h5ad", "{tmp}/raw.h5ad"], ["--write-h5ad", "replace the input"]),
        ("norm", [], ["norm.h5ad", "not an integer", "'counts'"]),
        ("10x", ["--genes", "{tmp}/bad_genes.txt"], ["bad_genes.txt", "line 2", "'Nope'"]),
    ],
)
def test_single_cell_input_errors(tmp_path, capsys, make, options, words):
    cells = simulated_cells()
    source = {"csv": lambda: write_csv(tmp_path / "counts.csv", cells),
              "h5ad": lambda: write_h5ad(tmp_path / "raw.h5ad", cells),
              "norm": lambda: write_h5ad(tmp_path / "norm.h5ad", cells, normalized_x=True),
              "10x": lambda: write_10x(tmp_path / "m", cells)}[make]()
    (tmp_path / "bad_genes.txt").write_text("Gene1\nNope\n")
    options = [option.format(tmp=tmp_path) for option in options]
    code, out = _run_in(tmp_path, source, "-k", "2", *options)
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skem nbmix: error: ")
    for word in words:
        assert word in lines[0]
    assert not out.exists()


# ------------------------------------------------------------------ issue 20's nbmix defects


@pytest.mark.parametrize(
    "value, words",
    [("-1", ["line 5", "row 4", "column 'c'", "'-1'", "negative"]),
     ("inf", ["line 5", "row 4", "column 'c'", "'inf'", "infinite"]),
     ("1e400", ["line 5", "row 4", "column 'c'", "'1e400'", "infinite"])],
)
def test_bad_values_name_file_line_row_and_column(tmp_path, capsys, value, words):
    table = pd.DataFrame(np.arange(40).reshape(10, 4) % 7, columns=list("abcd")).astype(object)
    table.iat[3, 2] = value
    table.to_csv(tmp_path / "counts.csv", index=False)
    code, _ = _run(tmp_path, tmp_path / "counts.csv", "-k", "2")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'counts.csv'}, line 5" in err
    for word in words:
        assert word in err


def test_a_stray_word_in_a_first_column_of_counts_is_an_error(tmp_path, capsys):
    table = pd.DataFrame(np.arange(40).reshape(10, 4) % 7, columns=list("abcd")).astype(object)
    table.iat[6, 0] = "seven"
    table.to_csv(tmp_path / "counts.csv", index=False)
    code, _ = _run(tmp_path, tmp_path / "counts.csv", "-k", "2")
    assert code == 2
    err = capsys.readouterr().err
    for word in ("counts.csv, line 8", "column 'a'", "'seven'", "not numeric", "row names"):
        assert word in err


def test_a_header_less_size_factor_file_keeps_its_first_value(tmp_path):
    factors = np.linspace(0.5, 2.0, 40)
    path = tmp_path / "factors.txt"
    path.write_text("".join(f"{float(value)!r}\n" for value in factors))
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "-k", "2", "--size-factors", path)
    assert code == 0
    np.testing.assert_array_equal(_assignments(out)["size_factor"], factors)


def test_k_and_k_range_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _run(tmp_path, DATA / "r_write_csv.csv", "-k", "2", "--k-range", "1-3")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--k-range" in err and "-k" in err and "not allowed" in err


@pytest.mark.parametrize("text", ["1-", "-3", "2", "1-3-5"])
def test_k_range_needs_both_ends(tmp_path, capsys, text):
    code, _ = _run(tmp_path, DATA / "r_write_csv.csv", "--k-range", text)
    assert code == 2
    assert "--k-range must look like 1-8" in capsys.readouterr().err


def test_progress_lines_say_what_was_read_and_fitted(tmp_path, capsys):
    assert main(["nbmix", str(DATA / "r_write_csv.csv"), "--k-range", "1-2", "--n-init", "1",
                 "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "read 40 rows x 3 features (dense)" in err
    assert "fitting K = 1-2 on all 40 rows, then 5-fold cross-validation on all 40 rows" in err
    assert "chose K = " in err


def test_a_k_range_of_one_value_fits_that_k(tmp_path):
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "--k-range", "2-2")
    assert code == 0
    assert list(_assignments(out).filter(like="posterior_").columns) == ["posterior_0",
                                                                         "posterior_1"]


def test_a_write_failure_names_the_output_not_the_input(tmp_path, capsys, monkeypatch):
    def full_disk(self, path, *args, **kwargs):
        # What writing a table to a full disk raises (as writing to /dev/full shows): no file name.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "-k", "2")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"skem nbmix: error: cannot write {out / 'assignments.tsv'}: "
                   f"{os.strerror(errno.ENOSPC)}")


def _code_blocks(path, language):
    """The code blocks of one language of an rst page, in order, continuation lines joined."""
    blocks, lines = [], path.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() == f".. code-block:: {language}":
            block = []
            for text in lines[number + 2:]:
                if text and not text.startswith("   "):
                    break
                block.append(text[3:])
            blocks.append("\n".join(block).strip().replace("\\\n", " "))
    return blocks


@pytest.mark.slow
def test_the_single_cell_page_runs(tmp_path, monkeypatch):
    """Every command and Python block of docs/user_guide/single_cell.rst, on simulated files."""
    pytest.importorskip("anndata")
    page = Path(__file__).parents[1] / "docs" / "user_guide" / "single_cell.rst"
    cells = simulated_cells()
    write_10x(tmp_path / "filtered_feature_bc_matrix", cells)
    write_h5ad(tmp_path / "pbmc.h5ad", cells, normalized_x=True,
               highly_variable=np.arange(len(cells.symbols)) % 4 != 3)
    monkeypatch.chdir(tmp_path)
    commands = _code_blocks(page, "bash")
    assert len(commands) == 2
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["skem", "nbmix"]
        assert main(["-q", *argv[1:]]) == 0, command
    namespace = {}
    blocks = _code_blocks(page, "python")
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 -- the page's own code
    assert (tmp_path / "pbmc_skem.h5ad").is_file()
    assert len(namespace["labels"]) == len(cells.barcodes)

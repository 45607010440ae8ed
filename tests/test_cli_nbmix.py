"""``skem nbmix`` on the count tables users have: R's write.csv / write.table output, TSV under
any extension, size factors from a file -- and one line naming the file for every bad table.

The fixtures in ``tests/data/nbmix/`` were written by R 4 (``write.csv``, ``write.table``) from
simulated negative-binomial counts with log-normal size factors; the bad ones were derived from
them (a stray value, a long and a short row, empty, binary and truncated-gzip files).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skem import NegBinMixture
from skem.cli import main

DATA = Path(__file__).parent / "data" / "nbmix"
FEATURES = ["geneA", "geneB", "geneC"]


def _run(tmp_path, *argv):
    out = tmp_path / "out"
    code = main(["-q", "nbmix", *map(str, argv), "-o", str(out), "--n-init", "1"])
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


def test_model_selection_reports_per_row_quantities(tmp_path, capsys):
    code, out = _run(tmp_path, DATA / "r_write_csv.csv", "--k-range", "1-2")
    assert code == 0
    table = pd.read_csv(out / "model_selection.tsv", sep="\t", index_col="K")
    assert list(table.columns) == ["n_parameters", "log_likelihood_per_row", "BIC",
                                   "cv_log_likelihood_per_row"]
    counts = _reference_counts()
    for k in (1, 2):
        model = NegBinMixture(k, n_init=1, random_state=0).fit(counts)
        assert table.loc[k, "log_likelihood_per_row"] == pytest.approx(model.score(counts), rel=1e-8)
        assert table.loc[k, "BIC"] == pytest.approx(model.bic(counts), rel=1e-8)
    # Held-out and training log-likelihoods per row are of one scale (not a total beside a mean).
    ratio = table["cv_log_likelihood_per_row"] / table["log_likelihood_per_row"]
    assert np.all((ratio > 0.8) & (ratio < 1.5))


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

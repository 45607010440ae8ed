"""Every writer read back -- by our reader, by a plain table reader, and where
installed by the field's reader (Biopython for MEME and JASPAR) -- on data
that is not already normalized, and checked against what the format means
(salmon's TPM from NumReads and EffectiveLength, MEME rows summing to 1).
"""

import io
import re

import numpy as np
import pandas as pd
import pytest

from skem import TranscriptQuantifier
from skem.io import (
    read_jaspar,
    read_kallisto_abundance,
    read_lengths,
    read_meme,
    read_salmon_quant,
    write_jaspar,
    write_kallisto_abundance,
    write_meme,
)
from skem.io import write_salmon_quant

#: Count matrices whose rows do not sum to one (and differ in their sums).
COUNT_MOTIFS = {
    "first": np.array([[3.0, 1.0, 0.0, 2.0], [0.0, 0.5, 5.0, 1.0], [7.0, 7.0, 7.0, 0.25]]),
    "second": np.array([[10.0, 0.0, 0.0, 30.0], [1.0, 2.0, 3.0, 4.0]]),
}
BACKGROUND = np.array([3.0, 1.0, 1.0, 2.0])  # not normalized either


def _normalized(matrix):
    return matrix / matrix.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ quantification


@pytest.fixture(scope="module")
def quantifier():
    """A fit whose lengths, effective lengths and counts are all different numbers."""
    rng = np.random.default_rng(0)
    X = (rng.random((300, 5)) < 0.4).astype(float)
    X[np.arange(300), rng.integers(0, 5, 300)] = 1.0
    return TranscriptQuantifier(
        lengths=[1500, 800, 2300, 650, 4100], fragment_length=180.0, fragment_length_sd=40.0,
        transcript_names=["tA", "tB", "tC", "tD", "tE"],
    ).fit(X, sample_weight=rng.uniform(0.5, 3.0, 300))


def test_salmon_quant_writes_length_and_effective_length_columns(quantifier, tmp_path):
    path = tmp_path / "quant.sf"
    write_salmon_quant(quantifier, path)
    plain = pd.read_csv(path, sep="\t")  # any table reader sees the same file
    assert list(plain.columns) == ["Name", "Length", "EffectiveLength", "TPM", "NumReads"]
    assert not np.allclose(quantifier.effective_lengths_, [1500, 800, 2300, 650, 4100])
    for table in (plain, read_salmon_quant(path)):
        assert list(table["Name"]) == ["tA", "tB", "tC", "tD", "tE"]
        np.testing.assert_array_equal(table["Length"], [1500, 800, 2300, 650, 4100])
        np.testing.assert_allclose(table["EffectiveLength"], quantifier.effective_lengths_, rtol=1e-12)
        np.testing.assert_allclose(table["NumReads"], quantifier.est_counts_, rtol=1e-12)
        # What the format means: TPM from NumReads per effective base (salmon's definition).
        per_base = table["NumReads"] / table["EffectiveLength"]
        np.testing.assert_allclose(table["TPM"], 1e6 * per_base / per_base.sum(), rtol=1e-9)
    # read_lengths takes salmon's Length, not its EffectiveLength.
    lengths = read_lengths(path)
    np.testing.assert_array_equal(lengths.loc[["tE", "tA"]], [4100, 1500])


def test_kallisto_abundance_round_trip(quantifier, tmp_path):
    path = tmp_path / "abundance.tsv"
    write_kallisto_abundance(quantifier, path)
    plain = pd.read_csv(path, sep="\t")
    assert list(plain.columns) == ["target_id", "length", "eff_length", "est_counts", "tpm"]
    for table in (plain, read_kallisto_abundance(path)):
        np.testing.assert_array_equal(table["length"], [1500, 800, 2300, 650, 4100])
        np.testing.assert_allclose(table["eff_length"], quantifier.effective_lengths_, rtol=1e-12)
        np.testing.assert_allclose(table["est_counts"], quantifier.est_counts_, rtol=1e-12)
        per_base = table["est_counts"] / table["eff_length"]
        np.testing.assert_allclose(table["tpm"], 1e6 * per_base / per_base.sum(), rtol=1e-9)
    np.testing.assert_array_equal(read_lengths(path).loc[["tD", "tB"]], [650, 800])


def test_read_lengths_two_column_table_is_by_name(tmp_path):
    path = tmp_path / "lengths.tsv"
    path.write_text("name\tlength\ntZ\t120\ntA\t3400.5\ntM\t77\n")
    lengths = read_lengths(path)
    assert lengths["tA"] == 3400.5 and lengths["tZ"] == 120 and lengths["tM"] == 77


# -------------------------------------------------------------------------- MEME


def test_write_meme_normalizes_rows(tmp_path):
    path = tmp_path / "motifs.meme"
    write_meme(path, COUNT_MOTIFS, background=BACKGROUND, nsites={"first": 12, "second": 40})
    motifs = read_meme(path)
    assert list(motifs) == ["first", "second"]
    for name, counts in COUNT_MOTIFS.items():
        np.testing.assert_allclose(motifs[name].to_numpy(), _normalized(counts), atol=1e-6)
        np.testing.assert_allclose(motifs[name].to_numpy().sum(axis=1), 1.0, atol=1e-5)
        assert list(motifs[name].columns) == list("ACGT")
    np.testing.assert_allclose(list(motifs["first"].attrs["background"].values()),
                               BACKGROUND / BACKGROUND.sum(), atol=1e-6)
    assert motifs["first"].attrs["nsites"] == 12 and motifs["second"].attrs["nsites"] == 40


def test_write_meme_is_read_by_biopython(tmp_path):
    bio_motifs = pytest.importorskip("Bio.motifs")
    path = tmp_path / "motifs.meme"
    # Biopython rounds probability x nsites to whole counts: many sites keep the rounding small.
    write_meme(path, COUNT_MOTIFS, background=BACKGROUND, nsites=100000)
    with open(path) as handle:
        record = bio_motifs.parse(handle, "minimal")
    assert [motif.name for motif in record] == ["first", "second"]
    for motif, counts in zip(record, COUNT_MOTIFS.values()):
        frequencies = np.array([motif.counts.normalize()[letter] for letter in "ACGT"]).T
        np.testing.assert_allclose(frequencies, _normalized(counts), atol=2e-5)
        np.testing.assert_allclose([motif.background[a] for a in "ACGT"],
                                   BACKGROUND / BACKGROUND.sum(), atol=1e-6)


def test_fitted_motifs_round_trip_through_meme(tmp_path):
    from skem import MotifMixture
    from skem.datasets import make_motif_windows
    from skem.sequences import encode_sequences

    X, _, _ = make_motif_windows(400, width=6, motif_fraction=0.3, random_state=0)
    model = MotifMixture(init_params="kmeans", random_state=0).fit(encode_sequences(X))
    path = tmp_path / "fit.meme"
    write_meme(path, {"background": model.pwms_[0], "motif": model.pwm(1)},
               background=model.background_)
    back = read_meme(path)
    np.testing.assert_allclose(back["motif"].to_numpy(), model.pwms_[1], atol=1e-6)
    np.testing.assert_allclose(back["background"].to_numpy(), model.pwms_[0], atol=1e-6)


# ------------------------------------------------------------------------ JASPAR


def test_jaspar_round_trip_counts_and_scaled_probabilities(tmp_path):
    path = tmp_path / "counts.jaspar"
    write_jaspar(path, COUNT_MOTIFS, names={"first": "ONE"})
    back = read_jaspar(path)
    for name, counts in COUNT_MOTIFS.items():
        np.testing.assert_allclose(back[name][list("ACGT")].to_numpy(), counts, atol=0.005)
    assert back["first"].attrs["name"] == "ONE"
    # Probabilities (here unnormalized) with nsites: counts that sum to nsites at every position.
    scaled = tmp_path / "scaled.jaspar"
    write_jaspar(scaled, COUNT_MOTIFS, nsites={"first": 20, "second": 50})
    back = read_jaspar(scaled)
    for name, sites in (("first", 20), ("second", 50)):
        expected = _normalized(COUNT_MOTIFS[name]) * sites
        np.testing.assert_allclose(back[name][list("ACGT")].to_numpy(), expected, atol=0.005)


def test_write_jaspar_is_read_by_biopython(tmp_path):
    bio_motifs = pytest.importorskip("Bio.motifs")
    path = tmp_path / "counts.jaspar"
    write_jaspar(path, COUNT_MOTIFS, names={"first": "ONE", "second": "TWO"})
    with open(path) as handle:
        record = list(bio_motifs.parse(handle, "jaspar"))
    assert [(m.matrix_id, m.name) for m in record] == [("first", "ONE"), ("second", "TWO")]
    for motif, counts in zip(record, COUNT_MOTIFS.values()):
        np.testing.assert_allclose(np.array([motif.counts[a] for a in "ACGT"]).T, counts, atol=0.005)


def test_meme_written_by_biopython_is_read_by_ours(tmp_path):
    """The other direction: a file in the field's writer's layout reads back the same."""
    bio_motifs = pytest.importorskip("Bio.motifs")
    motif = bio_motifs.Motif(
        alphabet="ACGT", counts={a: list(COUNT_MOTIFS["first"][:, i]) for i, a in enumerate("ACGT")}
    )
    motif.name = "bio"
    text = bio_motifs.write([motif], "jaspar")
    back = read_jaspar(io.StringIO(text))
    np.testing.assert_allclose(next(iter(back.values()))[list("ACGT")].to_numpy(),
                               COUNT_MOTIFS["first"], atol=0.005)


# ------------------------------------------------------ hostile values (issue 20)

#: Probabilities MEME's six decimals turned into 0 (1e-7) or into 1 (1 - 1e-7), and one that no
#: fixed number of decimals keeps (1e-300).
TINY = {
    "tiny": np.array([[1e-7, 1e-300, 0.5, 0.5 - 1e-7], [1 - 1e-7, 1e-7, 0.0, 0.0],
                      [1 / 3, 1 / 3, 1 / 6, 1 / 6]]),
}
#: Counts that two decimals round (0.123456789 -> 0.12, 1e-9 -> 0).
ODD_COUNTS = {
    "odd": np.array([[0.123456789, 1e-9, 1e6 + 0.5, 2.0], [3.0, 0.0, 1 / 3, 7.25]]),
}


def test_meme_probabilities_read_back_exactly(tmp_path):
    path = tmp_path / "tiny.meme"
    background = np.array([1e-7, 0.3, 0.3, 0.4 - 1e-7])
    write_meme(path, TINY, background=background, nsites=20)
    back = read_meme(path)["tiny"]
    # the written rows are the normalized ones, to the last bit
    np.testing.assert_array_equal(back.to_numpy(), _normalized(TINY["tiny"]))
    assert back.to_numpy()[0, 1] == 1e-300 and back.to_numpy()[1, 1] == 1e-7
    np.testing.assert_array_equal(list(back.attrs["background"].values()),
                                  background / background.sum())


def test_meme_with_tiny_probabilities_is_read_by_biopython(tmp_path):
    bio_motifs = pytest.importorskip("Bio.motifs")
    path = tmp_path / "tiny.meme"
    background = np.array([1e-7, 0.3, 0.3, 0.4 - 1e-7])
    write_meme(path, TINY, background=background, nsites=10**7, evalues=1e-30)
    with open(path) as handle:
        (motif,) = bio_motifs.parse(handle, "minimal")
    assert motif.name == "tiny" and motif.num_occurrences == 10**7
    # Biopython rounds probability x nsites to whole counts: 1e-7 x 1e7 is one site, not zero
    counts = np.array([motif.counts[a] for a in "ACGT"]).T
    np.testing.assert_array_equal(counts, np.round(_normalized(TINY["tiny"]) * 10**7))
    assert [motif.background[a] for a in "ACGT"] == list(background / background.sum())


def test_jaspar_counts_read_back_exactly_by_ours_and_biopython(tmp_path):
    path = tmp_path / "odd.jaspar"
    write_jaspar(path, ODD_COUNTS)
    np.testing.assert_array_equal(read_jaspar(path)["odd"].to_numpy(), ODD_COUNTS["odd"])
    assert "A [ 0.123456789 3 ]" in path.read_text()  # whole counts as JASPAR writes them
    bio_motifs = pytest.importorskip("Bio.motifs")
    with open(path) as handle:
        (motif,) = bio_motifs.parse(handle, "jaspar")
    np.testing.assert_array_equal(np.array([motif.counts[a] for a in "ACGT"]).T, ODD_COUNTS["odd"])


def test_jaspar_scaled_probabilities_sum_to_nsites_exactly_as_computed(tmp_path):
    path = tmp_path / "scaled.jaspar"
    write_jaspar(path, TINY, nsites=37)
    np.testing.assert_array_equal(read_jaspar(path)["tiny"].to_numpy(),
                                  TINY["tiny"] / TINY["tiny"].sum(axis=1, keepdims=True) * 37)


@pytest.mark.parametrize("writer", [write_meme, write_jaspar])
@pytest.mark.parametrize("matrix, message", [
    (np.array([[0.5, 0.5, 0, 0], [0, 0, 0, 0]]), "'m': position 2 is all zeros"),
    (np.array([[0.5, np.nan, 0, 0]]), "finite and non-negative"),
])
def test_writers_refuse_matrices_without_probabilities(tmp_path, writer, matrix, message):
    with pytest.raises(ValueError, match=message):
        writer(tmp_path / "x", {"m": matrix})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("background", [[0, 0, 0, 0], [np.nan, 1, 1, 1], [np.inf, 1, 1, 1],
                                        [-1, 1, 1, 1]])
def test_write_meme_refuses_a_background_without_frequencies(tmp_path, background):
    with pytest.raises(ValueError, match="background must be 4 finite non-negative frequencies"):
        write_meme(tmp_path / "x.meme", TINY, background=background)
    assert not (tmp_path / "x.meme").exists()


@pytest.mark.parametrize("writer, option, value, message", [
    (write_meme, "nsites", np.nan, "nsites of motif 'tiny' must be a finite number >= 0"),
    (write_meme, "nsites", -1, "nsites of motif 'tiny'"),
    (write_meme, "evalues", np.nan, r"the E-value of motif 'tiny' must be a number >= 0"),
    (write_jaspar, "nsites", 0, "nsites of motif 'tiny' must be a finite number > 0"),
    (write_jaspar, "nsites", np.inf, "nsites of motif 'tiny'"),
    (write_jaspar, "names", {"tiny": "two words"}, "one word"),
    (write_jaspar, "names", {"tiny": "a\nb"}, "one word"),
])
def test_writers_refuse_header_values_that_do_not_read_back(tmp_path, writer, option, value, message):
    with pytest.raises(ValueError, match=message):
        writer(tmp_path / "x", TINY, **{option: value})


#: Names that a tab-separated table cannot carry: pandas, tximport (readr) or ours would read
#: something else back.
UNWRITABLE_NAMES = ["t\tab", "new\nline", "carriage\rreturn", '"quoted"', " padded", "NA", "nan",
                    ""]


@pytest.mark.parametrize("name", UNWRITABLE_NAMES)
@pytest.mark.parametrize("writer", [write_salmon_quant, write_kallisto_abundance])
def test_quant_writers_refuse_names_that_do_not_read_back(quantifier, tmp_path, writer, name):
    table = quantifier.abundance_.copy()
    table.loc[2, "target_id"] = name
    with pytest.raises(ValueError, match=rf"transcript 3 \({re.escape(repr(name))}\)"):
        writer(table, tmp_path / "out.tsv")
    assert not (tmp_path / "out.tsv").exists()


#: Names that read back exactly: quotes inside, spaces inside, '#', unicode, a number-like word.
HOSTILE_NAMES = ['a"b', "with space", "#hash", "ünï©ødé", "x'y", "tE"]


def _hostile_table(quantifier):
    table = quantifier.abundance_.copy()
    table["target_id"] = HOSTILE_NAMES[: len(table)]
    table.loc[0, "est_counts"] = 1e-300  # tiny, and zero, counts keep their exact value
    table.loc[1, "est_counts"] = 0.0
    return table


def test_quant_tables_with_hostile_names_read_back_exactly(quantifier, tmp_path):
    table = _hostile_table(quantifier)
    write_salmon_quant(table, tmp_path / "quant.sf")
    write_kallisto_abundance(table, tmp_path / "abundance.tsv")
    for back in (read_salmon_quant(tmp_path / "quant.sf"),
                 pd.read_csv(tmp_path / "quant.sf", sep="\t")):
        assert list(back["Name"]) == list(table["target_id"])
        np.testing.assert_array_equal(back["NumReads"], table["est_counts"])
    for back in (read_kallisto_abundance(tmp_path / "abundance.tsv"),
                 pd.read_csv(tmp_path / "abundance.tsv", sep="\t")):
        assert list(back["target_id"]) == list(table["target_id"])
        np.testing.assert_array_equal(back["est_counts"], table["est_counts"])
    assert list(read_lengths(tmp_path / "quant.sf").index) == list(table["target_id"])


def test_quant_sf_with_hostile_names_is_read_by_pytximport(quantifier, tmp_path):
    import warnings

    pytximport = pytest.importorskip("pytximport")
    table = _hostile_table(quantifier)
    write_salmon_quant(table, tmp_path / "quant.sf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytximport's own notes
        data = pytximport.tximport([tmp_path / "quant.sf"], data_type="salmon",
                                   return_transcript_data=True, output_type="xarray")
    names = list(data["transcript_id"].to_numpy())
    assert sorted(names) == sorted(table["target_id"])
    order = [list(table["target_id"]).index(name) for name in names]
    np.testing.assert_array_equal(data["counts"].to_numpy()[:, 0], table["est_counts"].to_numpy()[order])

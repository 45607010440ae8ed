"""The command line against a direct library fit, on shuffled and renamed
inputs, with each option changing what it should (and nothing else).
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skem import NegBinMixture, TranscriptQuantifier
from skem.cli import main

NAMES = np.array(["ENST0009.2", "tx_b", "ENST0001.1", "Zeta-1", "alpha"])
LENGTHS = np.array([1450.0, 300.0, 2210.0, 120.0, 980.0])


@pytest.fixture(scope="module")
def alignments():
    """Reads x transcripts (0/1), the same as a long alignment table in shuffled row order."""
    rng = np.random.default_rng(0)
    abundance = np.array([0.4, 0.1, 0.3, 0.05, 0.15])
    n_reads = 800
    origin = rng.choice(5, size=n_reads, p=abundance)
    X = (rng.random((n_reads, 5)) < 0.25).astype(float)
    X[np.arange(n_reads), origin] = 1.0
    reads, transcripts = np.nonzero(X)
    table = pd.DataFrame({"read_id": [f"read{r:05d}" for r in reads], "transcript_id": NAMES[transcripts]})
    table = table.sample(frac=1.0, random_state=1).reset_index(drop=True)
    return X, table


def _write_lengths(path, names, lengths):
    """A two-column lengths table in an order of its own, with an extra transcript."""
    order = np.random.default_rng(2).permutation(len(names))
    rows = [f"{names[i]}\t{lengths[i]:g}" for i in order] + ["not_aligned\t5000"]
    path.write_text("name\tlength\n" + "\n".join(rows) + "\n")


def _quant(tmp_path, alignments, *options, name="out"):
    X, table = alignments
    table.to_csv(tmp_path / "aln.tsv", sep="\t", index=False)
    _write_lengths(tmp_path / "lengths.tsv", NAMES, LENGTHS)
    out = tmp_path / name
    argv = ["-q", "quant", "--alignments", str(tmp_path / "aln.tsv"),
            "--lengths", str(tmp_path / "lengths.tsv"), *options, "-o", str(out)]
    assert main(argv) == 0
    return pd.read_csv(out / "abundance.tsv", sep="\t").set_index("target_id").loc[NAMES]


def _library(X, **params):
    return TranscriptQuantifier(lengths=LENGTHS, transcript_names=NAMES, **params).fit(sp.csr_matrix(X))


def _effective_length_by_hand(length, mean, sd=None):
    """kallisto's and salmon's definition, summed term by term: the mean number of start
    positions ``L - f + 1`` over fragment lengths ``f <= min(L, 1000)`` (the normal density
    discretized, truncated there and renormalized); at least 1."""
    if sd is None:
        return max(length - mean + 1.0, 1.0)
    support = np.arange(1, 1001)
    density = np.exp(-0.5 * ((support - mean) / sd) ** 2)
    fits = support <= length
    value = np.sum(density[fits] * (length - support[fits] + 1.0)) / np.sum(density[fits])
    return max(value, 1.0)


def test_quant_matches_a_direct_library_fit(tmp_path, alignments):
    X, _ = alignments
    table = _quant(tmp_path, alignments)
    model = _library(X)
    expected = model.abundance_.set_index("target_id").loc[NAMES]
    np.testing.assert_array_equal(table["length"], LENGTHS)
    np.testing.assert_allclose(table["eff_length"], LENGTHS)
    np.testing.assert_allclose(table["est_counts"], expected["est_counts"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(table["tpm"], expected["tpm"], rtol=1e-6, atol=1e-6)


def test_quant_lengths_are_matched_by_name(tmp_path, alignments):
    """The lengths file lists transcripts in another order (and one more): each transcript
    gets its own length, whatever the order of the file or of the alignments."""
    table = _quant(tmp_path, alignments)
    for name, length in zip(NAMES, LENGTHS):
        assert table.loc[name, "length"] == length
        assert table.loc[name, "eff_length"] == pytest.approx(length)


@pytest.mark.parametrize("sd", [None, 30.0])
def test_quant_fragment_length_changes_effective_lengths(tmp_path, alignments, sd):
    X, _ = alignments
    options = ["--fragment-length", "200"] + ([] if sd is None else ["--fragment-sd", str(sd)])
    table = _quant(tmp_path, alignments, *options)
    expected_eff = [_effective_length_by_hand(length, 200.0, sd) for length in LENGTHS]
    np.testing.assert_allclose(table["eff_length"], expected_eff, rtol=1e-9)
    assert table.loc["tx_b", "eff_length"] < 102 and table.loc["Zeta-1", "eff_length"] < 12
    np.testing.assert_array_equal(table["length"], LENGTHS)  # lengths as given, unchanged
    # The abundances follow: those of a library fit with the same fragment length ...
    model = _library(X, fragment_length=200.0, fragment_length_sd=sd)
    expected = model.abundance_.set_index("target_id").loc[NAMES]
    np.testing.assert_allclose(table["est_counts"], expected["est_counts"], rtol=1e-6, atol=1e-6)
    # ... and not those without one.
    without = _library(X).abundance_.set_index("target_id").loc[NAMES]
    assert np.max(np.abs(table["est_counts"] - without["est_counts"])) > 1.0


def test_quant_prior_and_method_reach_the_library(tmp_path, alignments):
    X, _ = alignments
    table = _quant(tmp_path, alignments, "--method", "vbem", "--prior", "50")
    expected = _library(X, method="vbem", prior=50.0).abundance_.set_index("target_id").loc[NAMES]
    np.testing.assert_allclose(table["est_counts"], expected["est_counts"], rtol=1e-6, atol=1e-6)
    plain = _library(X).abundance_.set_index("target_id").loc[NAMES]
    assert np.max(np.abs(table["est_counts"] - plain["est_counts"])) > 1.0


# ------------------------------------------------------------------------ nbmix


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(3)
    means = np.array([[2.0, 30.0, 8.0], [25.0, 3.0, 9.0], [10.0, 10.0, 40.0]])
    labels = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])
    dispersion = np.array([[0.1], [0.5], [0.2]])
    size = 1.0 / dispersion[labels]
    X = rng.negative_binomial(size, size / (size + means[labels]))
    frame = pd.DataFrame(X, columns=["gene_z", "gene_a", "gene_m"],
                         index=[f"cell{i:03d}" for i in rng.permutation(300)])
    return frame.sample(frac=1.0, random_state=4)


def _nbmix(tmp_path, counts, *options):
    counts.to_csv(tmp_path / "counts.tsv", sep="\t", index_label="cell")
    out = tmp_path / "nb"
    assert main(["-q", "nbmix", str(tmp_path / "counts.tsv"), *options, "-o", str(out)]) == 0
    parameters = pd.read_csv(out / "parameters.tsv", sep="\t")
    assignments = pd.read_csv(out / "assignments.tsv", sep="\t", index_col="row")
    return parameters, assignments


def _by_component(parameters, column, features):
    wide = parameters.pivot(index="component", columns="feature", values=column)
    return wide[features].to_numpy()


@pytest.mark.parametrize("dispersion", ["component", "feature", "0"])
def test_nbmix_matches_a_direct_library_fit(tmp_path, counts, dispersion):
    parameters, assignments = _nbmix(
        tmp_path, counts, "-k", "3", "--dispersion", dispersion, "--n-init", "2", "--seed", "5"
    )
    features = list(counts.columns)
    value = dispersion if dispersion in ("component", "feature") else float(dispersion)
    model = NegBinMixture(3, dispersion=value, n_init=2, max_iter=200, random_state=5).fit(counts)
    np.testing.assert_allclose(_by_component(parameters, "mean", features), model.means_, rtol=1e-9)
    phi = _by_component(parameters, "dispersion", features)
    np.testing.assert_allclose(phi, model.dispersion_, rtol=1e-9, atol=1e-12)
    if dispersion == "component":
        np.testing.assert_allclose(phi, phi[:, :1] * np.ones(3))
    elif dispersion == "feature":
        np.testing.assert_allclose(phi, phi[:1] * np.ones((3, 1)))
    else:
        np.testing.assert_array_equal(phi, float(dispersion))
    # Assignments are per row name, in the file's row order, and are the library's predictions.
    assert list(assignments.index) == list(counts.index)
    np.testing.assert_array_equal(assignments["component"], model.predict(counts))
    posterior = assignments[[f"posterior_{k}" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(posterior, model.predict_proba(counts), rtol=1e-9, atol=1e-12)


def test_nbmix_k_changes_the_number_of_components(tmp_path, counts):
    parameters, assignments = _nbmix(tmp_path, counts, "-k", "2")
    assert sorted(parameters["component"].unique()) == [0, 1]
    assert [c for c in assignments.columns if c.startswith("posterior_")] == ["posterior_0", "posterior_1"]


def test_nbmix_seed_and_n_init_reach_the_library(tmp_path, counts):
    """--n-init and --seed are the estimator's: the same fit as the library with them."""
    parameters, _ = _nbmix(tmp_path, counts, "-k", "2", "--n-init", "3", "--seed", "11",
                           "--max-iter", "50")
    model = NegBinMixture(2, n_init=3, max_iter=50, random_state=11).fit(counts)
    np.testing.assert_allclose(_by_component(parameters, "mean", list(counts.columns)),
                               model.means_, rtol=1e-9)
    np.testing.assert_allclose(parameters.groupby("component")["weight"].first(), model.weights_,
                               rtol=1e-9)

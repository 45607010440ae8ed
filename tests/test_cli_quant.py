"""``skem quant``: lengths files, option errors, bootstraps, TCC and BAM inputs, run in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skem import TranscriptQuantifier
from skem.cli import main
from skem.datasets import make_transcript_reads
from skem.transcripts import effective_lengths

FRAG = 100


@pytest.fixture(scope="module")
def salmon_like(tmp_path_factory):
    """Unweighted classes in salmon's dump, and a quant.sf whose EffectiveLength differs from Length."""
    directory = tmp_path_factory.mktemp("salmon")
    X, counts, truth = make_transcript_reads(4000, n_genes=6, random_state=3)
    names = [str(n) for n in truth.transcript_names]
    X = sp.csr_matrix(X)
    lines = [str(len(names)), str(X.shape[0]), *names]
    for row in range(X.shape[0]):
        tids = X.indices[X.indptr[row] : X.indptr[row + 1]]
        lines.append("\t".join(map(str, [len(tids), *tids, int(counts[row])])))
    (directory / "eq_classes.txt").write_text("\n".join(lines) + "\n")
    eff = effective_lengths(truth.lengths, 150.0, 20.0)  # the file's own, not L - 100 + 1
    pd.DataFrame({"Name": names, "Length": truth.lengths.astype(int), "EffectiveLength": eff,
                  "TPM": 0.0, "NumReads": 0.0}).to_csv(directory / "quant.sf", sep="\t", index=False)
    return directory, X, counts, truth, names, eff


def quant(argv, capsys=None):
    code = main(["quant", *map(str, argv)])
    return code, (capsys.readouterr().err if capsys is not None else "")


def test_lengths_from_quant_sf_use_its_effective_lengths(tmp_path, salmon_like, capsys):
    directory, X, counts, truth, names, eff = salmon_like
    code, err = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                       directory / "quant.sf", "-o", tmp_path / "out"], capsys)
    assert code == 0
    assert "using the EffectiveLength column of quant.sf as effective lengths" in err
    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    np.testing.assert_allclose(table["eff_length"], eff)
    np.testing.assert_array_equal(table["length"], truth.lengths)
    reference = TranscriptQuantifier(effective_lengths=eff).fit(X, sample_weight=counts)
    np.testing.assert_allclose(table["tpm"], reference.tpm_, rtol=1e-6, atol=1e-3)


def test_fragment_length_overrides_the_files_effective_lengths(tmp_path, salmon_like, capsys):
    directory, *_, truth, names, eff = salmon_like
    code, err = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                       directory / "quant.sf", "--fragment-length", FRAG, "-o", tmp_path / "out"],
                      capsys)
    assert code == 0 and "not the file's EffectiveLength column" in err
    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    np.testing.assert_allclose(table["eff_length"], truth.lengths - FRAG + 1)


def test_fragment_sd_without_mean_is_an_error(tmp_path, salmon_like, capsys):
    directory, *_ = salmon_like
    code, err = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                       directory / "quant.sf", "--fragment-sd", 20, "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert "--fragment-sd needs --fragment-length" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before any work

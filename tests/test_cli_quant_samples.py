"""``skem quant-samples``: a manifest of samples quantified locally or on a dask scheduler."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from skem import TranscriptQuantifier
from skem.cli import main
from skem.datasets import make_transcript_reads
from skem.samples import quantify_samples
from skem.transcripts import equivalence_classes
from test_samples import write_kallisto, write_salmon


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two salmon samples, one kallisto sample, a lengths table listing transcripts backwards."""
    directory = tmp_path_factory.mktemp("study")
    reads, _, truth = make_transcript_reads(6000, n_genes=5, collapse=False, random_state=2)
    names = [str(n) for n in truth.transcript_names]
    salmon = {}
    for i, name in enumerate(["A", "B"]):
        X, counts = equivalence_classes(reads[i * 2000 : (i + 1) * 2000])
        salmon[name] = write_salmon(directory / f"{name}.txt", X, counts, names)
    X, counts = equivalence_classes(reads[4000:])
    kallisto = write_kallisto(directory / "C", X, counts, names)
    lengths = pd.Series(truth.lengths, index=names)[::-1]
    lengths.to_csv(directory / "lengths.tsv", sep="\t", header=False)
    salmon_manifest = pd.DataFrame({"sample": ["A", "B"], "eq_classes": ["A.txt", "B.txt"]})
    salmon_manifest.to_csv(directory / "salmon.tsv", sep="\t", index=False)
    kallisto_manifest = pd.DataFrame({"sample": ["C"], "matrix_ec": ["C/matrix.ec"],
                                      "transcripts": ["C/transcripts.txt"], "counts": ["C/counts.tsv"]})
    kallisto_manifest.to_csv(directory / "kallisto.tsv", sep="\t", index=False)
    return directory, {**salmon, "C": kallisto}, lengths


def run(argv, capsys):
    code = main(["quant-samples", *map(str, argv)])
    return code, capsys.readouterr()


def expected(sources, lengths, fragment_length):
    estimator = TranscriptQuantifier(lengths=lengths.to_numpy(), fragment_length=fragment_length,
                                     transcript_names=list(lengths.index))
    return quantify_samples(sources, estimator)


def test_manifest_quantified_on_this_machine(study, tmp_path, capsys):
    directory, sources, lengths = study
    code, captured = run([directory / "salmon.tsv", "--lengths", directory / "lengths.tsv",
                          "--fragment-length", 100, "--n-jobs", 2, "-o", tmp_path], capsys)
    assert code == 0, captured.err
    table = pd.read_csv(tmp_path / "quant.tsv", sep="\t")
    want = expected({"A": sources["A"], "B": sources["B"]}, lengths, 100)
    pd.testing.assert_frame_equal(table, want, rtol=1e-10)
    tpm = pd.read_csv(tmp_path / "tpm.tsv", sep="\t", index_col="target_id")
    assert list(tpm.columns) == ["A", "B"] and list(tpm.index) == list(lengths.index)
    np.testing.assert_allclose(tpm["B"], want[want["sample"] == "B"]["tpm"], rtol=1e-10)
    assert "2 samples over" in captured.err and "A " in captured.out


def test_kallisto_manifest_on_a_scheduler(study, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    directory, sources, lengths = study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cluster start-up chatter (ports, resources)
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
    with cluster:
        code, captured = run([directory / "kallisto.tsv", "--lengths", directory / "lengths.tsv",
                              "--scheduler", cluster.scheduler_address, "-o", tmp_path], capsys)
    assert code == 0, captured.err
    assert "on the cluster at tcp://127.0.0.1" in captured.err
    table = pd.read_csv(tmp_path / "quant.tsv", sep="\t", dtype={"sample": str})
    pd.testing.assert_frame_equal(table, expected({"C": sources["C"]}, lengths, None), rtol=1e-10)


@pytest.mark.parametrize("content, message", [
    ("name\teq_classes\nA\tA.txt\n", "needs a 'sample' column"),
    ("sample\tfile\nA\tA.txt\n", "needs an eq_classes column"),
    ("sample\teq_classes\n", "lists no samples"),
    ("sample\teq_classes\nA\tA.txt\nA\tB.txt\n", "line 3: sample 'A' is listed twice"),
    ("sample\teq_classes\nA\tnowhere.txt\n", "line 2: sample 'A': no such file"),
    ("sample\tmatrix_ec\ttranscripts\tcounts\trow\nC\tC/matrix.ec\tC/transcripts.txt\tC/counts.tsv\tx\n",
     "row must be an integer"),
])
def test_manifest_errors_are_one_line(study, tmp_path, capsys, content, message):
    directory, _, _ = study
    manifest = directory / "bad.tsv"
    manifest.write_text(content)
    code, captured = run([manifest, "--lengths", directory / "lengths.tsv", "-o", tmp_path / "out"],
                         capsys)
    assert code == 2
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_sample_with_other_transcripts_is_named(study, tmp_path, capsys):
    directory, _, lengths = study
    lengths.iloc[1:].to_csv(tmp_path / "fewer.tsv", sep="\t", header=False)
    code, captured = run([directory / "salmon.tsv", "--lengths", tmp_path / "fewer.tsv",
                          "-o", tmp_path / "out"], capsys)
    assert code == 2 and "Sample 'A': its transcripts are not" in captured.err

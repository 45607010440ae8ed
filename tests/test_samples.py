"""quantify_samples: many samples' files read and fitted in parallel (joblib or dask cluster)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import skem.samples
from skem import TranscriptQuantifier
from skem.datasets import make_transcript_reads
from skem.samples import _active_client, quantify_samples
from skem.transcripts import equivalence_classes


def write_salmon(path, X, counts_, names):
    X = sp.csr_matrix(X)
    lines = [str(len(names)), str(X.shape[0]), *names]
    for row, count in zip(range(X.shape[0]), counts_):
        tids = X.indices[X.indptr[row] : X.indptr[row + 1]]
        lines.append("\t".join(map(str, [len(tids), *tids, count])))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_kallisto(directory, X, counts_, names):
    X = sp.csr_matrix(X)
    directory.mkdir()
    ecs = [",".join(map(str, X.indices[X.indptr[r] : X.indptr[r + 1]])) for r in range(X.shape[0])]
    (directory / "matrix.ec").write_text("".join(f"{i}\t{ec}\n" for i, ec in enumerate(ecs)))
    (directory / "transcripts.txt").write_text("".join(f"{name}\n" for name in names))
    (directory / "counts.tsv").write_text("".join(f"{i}\t{c:g}\n" for i, c in enumerate(counts_)))
    return tuple(str(directory / f) for f in ("matrix.ec", "transcripts.txt", "counts.tsv"))


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Three samples of the same transcriptome: two salmon dumps and one kallisto TCC set."""
    directory = tmp_path_factory.mktemp("quant")
    reads, _, truth = make_transcript_reads(9000, n_genes=6, collapse=False, random_state=10)
    names = [str(n) for n in truth.transcript_names]
    sources, expected = {}, {}
    for i, name in enumerate(["A", "B", "C"]):
        X, counts_ = equivalence_classes(reads[i * 3000 : (i + 1) * 3000])
        if name == "C":
            sources[name] = write_kallisto(directory / name, X, counts_, names)
        else:
            sources[name] = write_salmon(directory / f"{name}.txt", X, counts_, names)
        expected[name] = (X, counts_, names)
    return sources, expected, truth


def expected_table(expected, estimator):
    tables = []
    for name, (X, counts_, names) in expected.items():
        model = estimator.set_params(transcript_names=names).fit(X, sample_weight=counts_)
        table = model.abundance_[["target_id", "eff_length", "est_counts", "tpm"]].copy()
        table.insert(0, "sample", name)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def test_quantify_samples_with_joblib(samples):
    sources, expected, truth = samples
    estimator = TranscriptQuantifier(lengths=truth.lengths, fragment_length=100)
    table = quantify_samples(sources, estimator, n_jobs=2, backend="joblib")
    assert list(table.columns) == ["sample", "target_id", "eff_length", "est_counts", "tpm"]
    pd.testing.assert_frame_equal(table, expected_table(expected, estimator), rtol=1e-12)
    by_position = quantify_samples(list(sources.values()), estimator)
    assert by_position["sample"].unique().tolist() == [0, 1, 2]


def test_quantify_samples_on_a_cluster(samples, monkeypatch):
    distributed = pytest.importorskip("distributed")
    sources, expected, truth = samples
    estimator = TranscriptQuantifier(lengths=truth.lengths, fragment_length=100, n_bootstraps=2,
                                     random_state=0)
    serial = quantify_samples(sources, estimator, backend="joblib")

    def read_on_the_driver(*args, **kwargs):
        raise AssertionError("a sample was read on the driver")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cluster start-up chatter (ports, resources)
        # Worker processes: the fits run where the files are read, not in this process.
        client = distributed.Client(n_workers=2, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    set_as_default=False)
    with client:
        # The workers import skem.samples themselves: the readers patched here are the
        # driver's only, and a task that read on the driver would fail.
        monkeypatch.setattr(skem.samples, "read_salmon_eq_classes", read_on_the_driver)
        monkeypatch.setattr(skem.samples, "read_kallisto_tcc", read_on_the_driver)
        assert _active_client(required=False) is None  # not the default client
        given = quantify_samples(sources, estimator, client=client)
        with client.as_current():
            assert _active_client(required=False) is client
            active = quantify_samples(sources, estimator)  # the client is active: dask
    assert list(given.columns) == [
        "sample", "target_id", "eff_length", "est_counts", "tpm", "est_counts_sd", "tpm_sd"
    ]
    pd.testing.assert_frame_equal(given, serial, rtol=1e-12)
    pd.testing.assert_frame_equal(active, serial, rtol=1e-12)


def test_columns_are_matched_to_the_estimators_transcript_names(samples):
    sources, expected, truth = samples
    names = expected["A"][2]
    estimator = TranscriptQuantifier(lengths=truth.lengths, fragment_length=100)
    table = quantify_samples(sources, estimator)
    # The same transcripts listed backwards, with their lengths: the same abundances.
    backwards = TranscriptQuantifier(lengths=truth.lengths[::-1], fragment_length=100,
                                     transcript_names=names[::-1])
    reordered = quantify_samples(sources, backwards)
    key = ["sample", "target_id"]
    # (Another column order rounds the sums differently, and EM stops at tol: not 1e-12.)
    pd.testing.assert_frame_equal(reordered.sort_values(key, ignore_index=True),
                                  table.sort_values(key, ignore_index=True), rtol=1e-6)
    fewer = TranscriptQuantifier(lengths=truth.lengths[1:], transcript_names=names[1:])
    with pytest.raises(ValueError, match=rf"Sample 'B': .* e\.g\. {names[0]!r}"):
        quantify_samples({"B": sources["B"]}, fewer)


def test_quantify_samples_errors(samples):
    sources, _, _ = samples
    with pytest.raises(ValueError, match="No samples"):
        quantify_samples({})
    with pytest.raises(ValueError, match="backend"):
        quantify_samples(sources, backend="ray")
    with pytest.raises(ValueError, match="one or the other"):
        quantify_samples(sources, backend="joblib", client=object())
    with pytest.raises(TypeError, match="eq_classes"):
        quantify_samples([42], backend="joblib")
    with pytest.raises(ValueError, match="line"):  # the reader names the file and line
        quantify_samples({"bad": sources["C"][1]}, backend="joblib")


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # importing it now raises ImportError
    with pytest.raises(ImportError, match=r"skem\[dask\]"):
        _active_client(required=True)
    assert _active_client(required=False) is None


def test_gene_abundance_and_wide_tables(samples):
    from skem.samples import gene_abundance, wide_table

    sources, expected, truth = samples
    table = quantify_samples(sources)
    tx2gene = pd.DataFrame({"tx": truth.transcript_names, "gene": [f"G{g}" for g in truth.gene]})
    genes = gene_abundance(table, tx2gene)
    # sums per sample and gene, checked against a direct group-by of the tidy table
    joined = table.merge(tx2gene, left_on="target_id", right_on="tx")
    direct = joined.groupby(["sample", "gene"])[["est_counts", "tpm"]].sum()
    got = genes.set_index(["sample", "gene_id"])[["est_counts", "tpm"]]
    pd.testing.assert_frame_equal(got.sort_index(), direct.rename_axis(["sample", "gene_id"]).sort_index())
    # effective length: TPM-weighted mean (tximport), for one gene of sample A worked by hand
    model = TranscriptQuantifier(transcript_names=list(truth.transcript_names))
    X, counts_, names = expected["A"]
    one = model.fit(X, sample_weight=counts_).abundance_
    gene0 = one[truth.gene == 0]
    weighted = np.sum(gene0["tpm"] * gene0["eff_length"]) / gene0["tpm"].sum()
    assert gene_abundance(model, tx2gene).set_index("gene_id").loc["G0", "eff_length"] == pytest.approx(weighted)
    wide = wide_table(table, "tpm")
    assert list(wide.columns) == ["A", "B", "C"] and list(wide.index) == list(truth.transcript_names)
    np.testing.assert_allclose(wide["B"], table[table["sample"] == "B"]["tpm"])
    assert list(wide_table(genes).columns) == ["A", "B", "C"]
    with pytest.raises(ValueError, match="no gene for transcript"):
        gene_abundance(table, tx2gene.iloc[1:])
    with pytest.raises(ValueError, match="to two genes"):
        gene_abundance(table, pd.concat([tx2gene, pd.DataFrame({"tx": [tx2gene.tx[0]], "gene": ["X"]})]))

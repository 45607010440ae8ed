"""README.md's Python examples run as written, on small files made here under the names they use."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skem.datasets import example_path

README = Path(__file__).parents[1] / "README.md"


def _examples():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _salmon_folder(folder):
    """``quant/`` as salmon --dumpEq leaves it: equivalence classes and quant.sf."""
    aux = folder / "quant" / "aux_info"
    aux.mkdir(parents=True)
    shutil.copy(example_path("transcripts_eq_classes.txt.gz"), aux / "eq_classes.txt.gz")
    lengths = pd.read_csv(example_path("transcripts_lengths.tsv"), sep="\t")
    quant = pd.DataFrame({
        "Name": lengths["Name"], "Length": lengths["Length"],
        "EffectiveLength": np.maximum(lengths["Length"] - 150.0, 1.0),
        "TPM": 0.0, "NumReads": 0.0,
    })
    quant.to_csv(folder / "quant" / "quant.sf", sep="\t", index=False)


def _bam(path):
    """A few single-end reads on two transcripts, some multi-mapped."""
    pysam = pytest.importorskip("pysam")
    header = {"HD": {"VN": "1.6", "SO": "unsorted"},
              "SQ": [{"SN": "A", "LN": 1000}, {"SN": "B", "LN": 600}]}
    rng = np.random.default_rng(0)
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i in range(60):
            targets = [("A", 0)] if i < 30 else [("B", 0)] if i < 45 else [("A", 0), ("B", 0x100)]
            for ref, secondary in targets:
                record = pysam.AlignedSegment(out.header)
                record.query_name = f"read{i}"
                record.query_sequence = "A" * 50
                record.flag = secondary
                record.reference_name = ref
                record.reference_start = int(rng.integers(0, 500))
                record.cigarstring = "50M"
                record.mapping_quality = 255
                record.set_tag("AS", 0)
                out.write(record)


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path, monkeypatch, capsys):
    examples = _examples()
    assert len(examples) >= 4
    _salmon_folder(tmp_path)
    _bam(tmp_path / "reads.bam")
    with gzip.open(example_path("motif_sequences.fa.gz"), "rb") as source:
        (tmp_path / "peaks.fa").write_bytes(source.read())
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for example in examples:
        exec(compile(example, str(README), "exec"), namespace)  # one session, in order
    assert (tmp_path / "skem_quant" / "quant.sf").exists()
    assert "component" in capsys.readouterr().out

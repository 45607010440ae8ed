"""The output folder of ``skem quant``, ``skem motif`` and ``skem nbmix``: one policy for all three.

A folder that exists and is not empty is refused before any work unless
``--force``; with ``--force`` the files the earlier skem run listed in its
``skem_files.txt`` are deleted before the new results are written, so a
folder never holds the results of two runs; other files are kept, with a
warning.
"""

import numpy as np
import pandas as pd
import pytest

from skem.cli import main
from skem.cli._common import MANIFEST
from skem.datasets import example_path, make_negbin_mixture

EQ_CLASSES = str(example_path("transcripts_eq_classes.txt.gz"))
LENGTHS = str(example_path("transcripts_lengths.tsv"))


def files(folder):
    """Every file below ``folder``, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def listed(folder):
    """The files the manifest of ``folder`` lists."""
    lines = (folder / MANIFEST).read_text().splitlines()
    assert lines[0].startswith("# ")
    return lines[1:]


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    X, _ = make_negbin_mixture(120, weights=(0.5, 0.5), means=((2.0, 30.0), (30.0, 2.0)),
                               dispersion=0.1, random_state=0)
    path = tmp_path_factory.mktemp("counts") / "counts.csv"
    pd.DataFrame(X.astype(int), columns=["g1", "g2"]).to_csv(path, index=False)
    return str(path)


def quant(out, *options):
    return main(["-q", "quant", "--eq-classes", EQ_CLASSES, "--lengths", LENGTHS,
                 "--fragment-length", "100", *options, "-o", str(out)])


@pytest.mark.parametrize("command", ["nbmix", "quant", "motif"])
def test_a_folder_that_is_not_empty_is_refused_before_any_work(tmp_path, capsys, counts, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "quant.sf").write_text("an earlier result\n")
    inputs = {"nbmix": [counts], "quant": ["--eq-classes", EQ_CLASSES, "--lengths", LENGTHS],
              "motif": [str(example_path("motif_sequences.fa.gz")), "-w", "8"]}[command]
    assert main([command, *inputs, "-o", str(out)]) == 2
    err = capsys.readouterr().err  # progress is on: no line means no work was started
    assert err.strip().splitlines() == [
        f"skem {command}: error: -o {out}: the folder is not empty (quant.sf); give --force to "
        "replace skem's results there, or another folder"
    ]
    assert files(out) == ["quant.sf"] and (out / "quant.sf").read_text() == "an earlier result\n"


def test_an_empty_or_new_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    assert quant(tmp_path / "empty") == 0
    assert quant(tmp_path / "new" / "nested") == 0
    for out in (tmp_path / "empty", tmp_path / "new" / "nested"):
        assert listed(out) == ["abundance.tsv", "aux_info/meta_info.json", "cmd_info.json",
                               "quant.sf"]
        assert files(out) == sorted(listed(out) + [MANIFEST])


def test_a_second_run_needs_force_and_names_the_earlier_run(tmp_path, capsys):
    assert quant(tmp_path / "q") == 0
    assert quant(tmp_path / "q") == 2
    assert "the folder holds the results of an earlier skem run; give --force" in capsys.readouterr().err
    assert quant(tmp_path / "q", "--force") == 0


def test_force_leaves_no_bootstraps_of_an_earlier_run(tmp_path):
    out = tmp_path / "q"
    assert quant(out, "--bootstraps", "3") == 0
    assert "aux_info/bootstrap/bootstraps.gz" in listed(out)
    assert quant(out, "--force") == 0
    assert files(out) == sorted(["abundance.tsv", "aux_info/meta_info.json", "cmd_info.json",
                          "quant.sf", MANIFEST])
    assert not (out / "aux_info" / "bootstrap").exists()  # the emptied folder too


def test_force_leaves_no_model_selection_of_a_k_range_run(tmp_path, counts):
    out = tmp_path / "nb"
    assert main(["-q", "nbmix", counts, "--k-range", "1-2", "--n-init", "1", "-o", str(out)]) == 0
    assert "model_selection.tsv" in files(out)
    assert main(["-q", "nbmix", counts, "-k", "2", "--n-init", "1", "-o", str(out), "--force"]) == 0
    assert files(out) == sorted(["assignments.tsv", "parameters.tsv", MANIFEST])


def test_force_leaves_no_logo_of_an_earlier_motif(tmp_path):
    pytest.importorskip("logomaker")
    out = tmp_path / "m"
    fasta = str(example_path("motif_sequences.fa.gz"))
    assert main(["-q", "motif", fasta, "-w", "8", "--n-motifs", "2", "-o", str(out)]) == 0
    assert "logo_motif2.png" in files(out)
    assert main(["-q", "motif", fasta, "-w", "8", "-o", str(out), "--force"]) == 0
    assert files(out) == sorted(["logo_motif1.png", MANIFEST, "motifs.meme", "sites.tsv"])


def test_force_keeps_files_skem_did_not_write_and_says_so(tmp_path, capsys):
    out = tmp_path / "q"
    assert quant(out) == 0
    (out / "notes.txt").write_text("mine")
    (out / "aux_info" / "mine.txt").write_text("mine too")
    capsys.readouterr()
    assert quant(out, "--force") == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "aux_info" / "mine.txt").read_text() == "mine too"
    assert capsys.readouterr().err.splitlines() == [
        f"skem quant: warning: -o {out}: kept aux_info/mine.txt, notes.txt, not written by skem"
    ]
    assert "notes.txt" not in listed(out) and "quant.sf" in listed(out)


def test_a_run_that_fails_before_writing_keeps_the_earlier_results(tmp_path):
    out = tmp_path / "q"
    assert quant(out) == 0
    before = (out / "quant.sf").read_text()
    bad = tmp_path / "bad.txt"
    bad.write_text("2\n1\nt1\nt2\n1\t5\t3\n")  # transcript id 5 of 2
    assert main(["-q", "quant", "--eq-classes", str(bad), "--lengths", LENGTHS,
                 "-o", str(out), "--force"]) == 2
    assert (out / "quant.sf").read_text() == before and "quant.sf" in listed(out)


def test_a_run_that_fails_while_writing_lists_what_it_wrote(tmp_path, monkeypatch):
    import skem.io

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(skem.io, "write_salmon_dir", fail, raising=False)
    out = tmp_path / "q"
    assert quant(out) == 2
    assert listed(out) == ["abundance.tsv"]  # written before the failure: the next --force clears it
    monkeypatch.undo()
    assert quant(out, "--force") == 0
    assert "quant.sf" in listed(out)


@pytest.mark.parametrize("entry", ["../outside.txt", "/etc/hostname"])
def test_a_manifest_pointing_outside_the_folder_deletes_nothing(tmp_path, capsys, entry):
    out = tmp_path / "q"
    assert quant(out) == 0
    (tmp_path / "outside.txt").write_text("keep")
    with open(out / MANIFEST, "a") as handle:
        handle.write(entry + "\n")
    assert quant(out, "--force") == 2
    assert "is not a path inside the folder" in capsys.readouterr().err
    assert (tmp_path / "outside.txt").read_text() == "keep" and (out / "quant.sf").is_file()


def test_results_match_with_and_without_force(tmp_path):
    """--force changes where the files go, never what they hold."""
    assert quant(tmp_path / "a") == 0
    assert quant(tmp_path / "b") == 0
    assert quant(tmp_path / "b", "--force") == 0
    a = pd.read_csv(tmp_path / "a" / "quant.sf", sep="\t")
    b = pd.read_csv(tmp_path / "b" / "quant.sf", sep="\t")
    np.testing.assert_array_equal(a["NumReads"], b["NumReads"])

"""Write the small example data sets shipped in skem/data (run from the repository root).

    python scripts/make_example_data.py

Every file is simulated from known parameters with a fixed seed, so the
loaders in :mod:`skem.datasets` can return the truth beside the data.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from skem.datasets import make_motif_sequences, make_negbin_mixture, make_transcript_reads
from skem.io import write_meme

DATA = Path(__file__).resolve().parents[1] / "skem" / "data"


def _gzip_text(path):
    """A gzip text file without a timestamp, so that rerunning the script changes no bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")


def negbin_counts():
    """600 cells x 8 genes from three cell types with over-dispersed (phi = 0.2) counts."""
    genes = ["CD3E", "CD19", "LYZ", "NKG7", "MS4A1", "GNLY", "S100A8", "ACTB"]
    means = np.array([
        [12.0, 0.5, 1.0, 2.0, 0.3, 1.0, 0.5, 40.0],  # T cells
        [0.5, 15.0, 0.8, 0.3, 10.0, 0.2, 0.4, 35.0],  # B cells
        [0.3, 0.4, 30.0, 0.5, 0.2, 0.3, 25.0, 50.0],  # monocytes
    ])
    X, y = make_negbin_mixture(600, weights=(0.5, 0.3, 0.2), means=means, dispersion=0.2,
                               random_state=2024)
    frame = pd.DataFrame(X.astype(int), columns=genes)
    frame.insert(0, "cell_type", np.array(["T cell", "B cell", "monocyte"])[y])
    frame.index = [f"cell{i:04d}" for i in range(len(frame))]
    frame.index.name = "cell"
    frame.to_csv(DATA / "negbin_counts.csv.gz", compression={"method": "gzip", "mtime": 0})


def transcripts():
    """Equivalence classes of 200 000 reads (salmon's --dumpEq format), lengths and the truth."""
    X, counts, truth = make_transcript_reads(200_000, n_genes=60, fragment_length=100,
                                             random_state=2024)
    names = truth.transcript_names
    lines = [str(len(names)), str(X.shape[0]), *names]
    for row, count in zip(X, counts):
        ids = row.indices
        lines.append("\t".join([str(ids.size), *map(str, ids), str(int(count))]))
    with _gzip_text(DATA / "transcripts_eq_classes.txt.gz") as handle:
        handle.write("\n".join(lines) + "\n")
    pd.DataFrame({"Name": names, "Length": truth.lengths.astype(int)}).to_csv(
        DATA / "transcripts_lengths.tsv", sep="\t", index=False
    )
    pd.DataFrame({"target_id": names, "true_counts": truth.counts, "true_tpm": truth.tpm}).to_csv(
        DATA / "transcripts_truth.tsv", sep="\t", index=False, float_format="%.6g"
    )


def motif_sequences():
    """300 sequences of 120 nt; 80 % carry one site of a 12-nt motif (MEME's ZOOPS case)."""
    sequences, sites, pwm = make_motif_sequences(
        300, 120, width=12, site_probability=0.8, random_state=2024
    )
    with _gzip_text(DATA / "motif_sequences.fa.gz") as handle:
        for name, sequence in sequences.items():
            handle.write(f">{name}\n")
            handle.writelines(sequence[i:i + 60] + "\n" for i in range(0, len(sequence), 60))
    write_meme(DATA / "motif_truth.meme", pwm[None], nsites=len(sites))
    sites.to_csv(DATA / "motif_sites.tsv", sep="\t", index=False)


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    negbin_counts()
    transcripts()
    motif_sequences()

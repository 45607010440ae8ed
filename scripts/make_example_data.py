"""Write the small example data sets shipped in skem/data (run from the repository root).

    python scripts/make_example_data.py

Every file is simulated from known parameters with a fixed seed, so the
loaders in :mod:`skem.datasets` can return the truth beside the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skem.datasets import make_negbin_mixture

DATA = Path(__file__).resolve().parents[1] / "skem" / "data"


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
    frame.to_csv(DATA / "negbin_counts.csv.gz")


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    negbin_counts()

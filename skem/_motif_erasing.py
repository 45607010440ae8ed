"""Several motifs of one set of sequences: MEME's probabilistic erasing.

After the first motif is fitted, each further motif is searched and fitted on
the sequences weighted by the erasing weights of the earlier ones
(:func:`erasing_weights`), so that it cannot find an earlier motif's sites
again.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._em import e_pass, run_em
from ._sequence_sites import SequenceMotifParams

__all__ = ["erase", "erasing_weights", "find_motifs"]


def erasing_weights(model, motifs, data, chunk_size=None):
    """MEME's erasing weights: ``prod_k (1 - coverage_k)`` of each position of ``data``.

    ``coverage_k(t)`` is the posterior probability, on either strand, that
    position ``t`` lies in a site of motif ``k``, computed on the sequences as
    erased by the motifs before ``k`` (as each was found).

    Parameters
    ----------
    model : skem._motif_sequences.SequenceMotifModel
    motifs : sequence of SequenceMotifParams
        One motif each, in the order found.
    data : skem._sequence_sites.SequenceData
        The sequences (not erased).
    chunk_size : int, default=None

    Returns
    -------
    ndarray of shape (n_sequences, max_length)
    """
    erased = np.ones(data.codes.shape)
    for motif in motifs:
        erased = erase(model, motif, data, erased, chunk_size)
    return erased


def erase(model, motif, data, erased, chunk_size=None):
    """The erasing weights ``erased`` (n, max_length) times ``1 - coverage`` of ``motif``, whose
    coverage is computed on ``data`` erased by ``erased`` (the sequences it was found on)."""
    current = model.with_erased(data, erased)
    return erased * (1.0 - model.coverage(motif, current, chunk_size))


def find_motifs(model, first, data, n_motifs, controls, random_state):
    """All motifs of a fit: the first (``first``, fitted), then more by erasing.

    Each further motif is searched and fitted on the sequences with the
    erasing weights of the earlier ones (:func:`erasing_weights`, MEME's
    probabilistic erasing). The E-value and expected number of sites of each
    motif are computed on the sequences as erased when it was found.

    Returns
    -------
    SequenceMotifParams
        All motifs, with ``log10_evalues`` and ``nsites``.
    """
    found = [first]
    erased = np.ones(data.codes.shape)
    evalues, nsites = [], []
    for k in range(n_motifs):
        current = model.with_erased(data, erased) if k else data
        if k:
            start = model.initialize(current, random_state, controls)
            result = run_em(model, current, start, controls)
            if not result.converged and controls.max_iter > 0:
                warnings.warn(
                    f"The EM run of motif {k + 1} did not converge in max_iter={controls.max_iter} "
                    "iterations.", ConvergenceWarning,
                )
            found.append(result.params)
        motif = found[k]
        stats, _ = e_pass(model, motif, current, controls.chunk_size)
        evalues.append(model.log10_evalue(motif, current, controls.chunk_size))
        nsites.append(stats.n_sites)
        if k + 1 < n_motifs:
            erased = erase(model, motif, data, erased, controls.chunk_size)
    return SequenceMotifParams(
        background=first.background,
        pwms=tuple(motif.pwms[0] for motif in found),
        site_probs=np.array([float(motif.site_probs[0]) for motif in found]),
        log10_evalues=np.array(evalues),
        nsites=np.array(nsites),
    )

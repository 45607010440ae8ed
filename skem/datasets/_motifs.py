"""Simulated sequences with a planted motif of known position weight matrix."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._letters import check_alphabet
from ..sequences import decode_sequences, reverse_complement, revcomp_permutation


def make_motif_pwm(width=10, *, alphabet="ACGT", concentration=0.2, palindromic=False,
                   random_state=None):
    """Draw a random position weight matrix.

    Each position's letter distribution is drawn from a symmetric Dirichlet
    distribution; a small ``concentration`` gives sharp positions (0.2 gives
    about 1.2 bits per position for DNA, typical of transcription-factor
    motifs, with some weak positions).

    Parameters
    ----------
    width : int, default=10
        Number of positions.
    alphabet : str, default="ACGT"
        The letters.
    concentration : float > 0, default=0.2
        Dirichlet concentration of every letter.
    palindromic : bool, default=False
        Make the PWM its own reverse complement (nucleotide alphabets), as
        the sites of dimeric transcription factors: the first ``width // 2``
        positions are drawn, the last ones are their complements in reverse
        order, and an odd width's middle position is averaged with its
        complement. The drawn positions keep their sharpness (unlike averaging
        a whole PWM with its reverse complement).
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    pwm : ndarray of shape (width, len(alphabet))
        Rows sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skem.datasets import make_motif_pwm
    >>> pwm = make_motif_pwm(6, palindromic=True, random_state=0)
    >>> bool(np.allclose(pwm, pwm[::-1, ::-1]))  # ACGT reversed is the complement
    True
    """
    rng = check_random_state(random_state)
    letters, _ = check_alphabet(alphabet)
    if not isinstance(width, (Integral, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    if not concentration > 0:
        raise ValueError(f"concentration must be positive, got {concentration!r}.")
    pwm = rng.dirichlet(np.full(len(letters), float(concentration)), size=width)
    if palindromic:
        # Reverse-complement the columns; a palindrome equals its image, so the second
        # half is the first half's image and the middle column its own.
        complement = revcomp_permutation(1, letters)
        image = pwm[::-1][:, complement]
        half = width // 2
        pwm[width - half :] = image[width - half :]
        if width % 2:
            pwm[half] = (pwm[half] + pwm[half, complement]) / 2
    return pwm


def _check_pwm(pwm, width, alphabet, background, rng):
    letters, _ = check_alphabet(alphabet)
    A = len(letters)
    if pwm is None:
        pwm = make_motif_pwm(width, alphabet=letters, random_state=rng)
    pwm = np.asarray(pwm, dtype=float)
    if pwm.ndim != 2 or pwm.shape[1] != A:
        raise ValueError(f"pwm must have shape (width, {A}), got {pwm.shape}.")
    if np.any(pwm < 0) or not np.allclose(pwm.sum(axis=1), 1.0):
        raise ValueError("pwm rows must be probabilities that sum to 1.")
    background = np.full(A, 1.0 / A) if background is None else np.asarray(background, float)
    if background.shape != (A,) or np.any(background < 0) or not np.isclose(background.sum(), 1):
        raise ValueError(f"background must be {A} probabilities that sum to 1.")
    return letters, pwm, background


def _draw(probabilities, n, rng):
    """``n`` rows of codes, position i drawn from ``probabilities[i]`` (shape (w, A))."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.uniform(size=(n, probabilities.shape[0], 1))
    return (u > cumulative[None, :, :-1]).sum(axis=2)


def make_motif_windows(
    n_samples=1000,
    *,
    width=10,
    motif_fraction=0.1,
    pwm=None,
    alphabet="ACGT",
    background=None,
    random_state=None,
):
    """Windows of one width, a fraction of which are sites of a known motif.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of windows.
    width : int, default=10
        Window width (ignored when ``pwm`` is given).
    motif_fraction : float in [0, 1], default=0.1
        Probability that a window is a site.
    pwm : array-like of shape (width, A), default=None
        The motif; None draws one with :func:`make_motif_pwm`.
    alphabet : str, default="ACGT"
        The letters.
    background : array-like of shape (A,), default=None
        Letter distribution outside sites; None is uniform.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of str of shape (n_samples,)
        The windows.
    y : ndarray of int of shape (n_samples,)
        1 for a site, 0 for background.
    pwm : ndarray of shape (width, A)
        The motif that generated the sites.

    Examples
    --------
    >>> from skem.datasets import make_motif_windows
    >>> X, y, pwm = make_motif_windows(5, width=6, random_state=0)
    >>> X.shape, y.shape, pwm.shape
    ((5,), (5,), (6, 4))
    """
    rng = check_random_state(random_state)
    letters, pwm, background = _check_pwm(pwm, width, alphabet, background, rng)
    if not 0 <= motif_fraction <= 1:
        raise ValueError(f"motif_fraction must be in [0, 1], got {motif_fraction!r}.")
    w = pwm.shape[0]
    y = (rng.uniform(size=n_samples) < motif_fraction).astype(int)
    codes = _draw(np.tile(background, (w, 1)), n_samples, rng)
    codes[y == 1] = _draw(pwm, int(y.sum()), rng)
    return decode_sequences(codes, letters), y, pwm


def make_motif_sequences(
    n_sequences=100,
    length=150,
    *,
    width=10,
    site_probability=1.0,
    pwm=None,
    alphabet="ACGT",
    background=None,
    both_strands=False,
    random_state=None,
):
    """Sequences with zero or one planted site each (MEME's ZOOPS model), of one motif or several.

    Parameters
    ----------
    n_sequences : int, default=100
        Number of sequences.
    length : int, default=150
        Length of every sequence (at least the motif width).
    width : int, default=10
        Motif width (ignored when ``pwm`` is given).
    site_probability : float in [0, 1] or sequence of them, default=1.0
        Probability that a sequence has a site (1 is one site per sequence,
        OOPS); with several motifs, one per motif or one for all.
    pwm : array-like of shape (width, A), list of them, or None, default=None
        The motif; None draws one with :func:`make_motif_pwm`. A list of
        PWMs (any widths) plants each motif independently, with zero or one
        site per sequence each, at a uniformly drawn start among those where it
        overlaps no site already planted in the sequence (the site is left
        out when there is none).
    alphabet : str, default="ACGT"
        The letters.
    background : array-like of shape (A,), default=None
        Letter distribution outside sites; None is uniform.
    both_strands : bool, default=False
        Plant each site on a random strand (as the reverse complement of a
        motif instance on the minus strand); nucleotide alphabets only.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    sequences : dict of str to str
        Sequences named "seq0", "seq1", ...
    sites : DataFrame
        One row per planted site: ``sequence, start, end, strand, site``, where
        ``start`` is the 0-based forward-strand offset and ``site`` the motif
        instance as read on its strand; with a list of PWMs, a first column
        ``motif`` numbers them from 1 (as :meth:`skem.SequenceMotifMixture.sites` does).
    pwm : ndarray of shape (width, A), or list of them
        The motif (the motifs, for a list).

    Examples
    --------
    >>> from skem.datasets import make_motif_sequences
    >>> sequences, sites, pwm = make_motif_sequences(3, 40, width=8, random_state=0)
    >>> len(sequences), len(sites), pwm.shape
    (3, 3, (8, 4))

    Two motifs, each in about half of the sequences:

    >>> from skem.datasets import make_motif_pwm
    >>> pwms = [make_motif_pwm(8, random_state=1), make_motif_pwm(12, random_state=2)]
    >>> sequences, sites, _ = make_motif_sequences(
    ...     20, 60, pwm=pwms, site_probability=0.5, random_state=0)
    >>> sorted(sites["motif"].unique().tolist())
    [1, 2]
    """
    rng = check_random_state(random_state)
    if isinstance(pwm, (list, tuple)):
        return _several_motifs(n_sequences, length, site_probability, pwm, alphabet, background,
                               both_strands, rng)
    letters, pwm, background = _check_pwm(pwm, width, alphabet, background, rng)
    w = pwm.shape[0]
    if not isinstance(length, (Integral, np.integer)) or length < w:
        raise ValueError(f"length must be an integer >= the motif width {w}, got {length!r}.")
    if not 0 <= site_probability <= 1:
        raise ValueError(f"site_probability must be in [0, 1], got {site_probability!r}.")
    codes = _draw(np.tile(background, (length, 1)), n_sequences, rng)
    has_site = rng.uniform(size=n_sequences) < site_probability
    starts = rng.randint(0, length - w + 1, size=n_sequences)
    minus = (rng.uniform(size=n_sequences) < 0.5) & both_strands
    instances = decode_sequences(_draw(pwm, n_sequences, rng), letters)
    sequences = decode_sequences(codes, letters).tolist()
    rows = []
    for i in np.flatnonzero(has_site):
        site = str(instances[i])
        forward = reverse_complement(site, letters) if minus[i] else site
        start = int(starts[i])
        sequences[i] = sequences[i][:start] + forward + sequences[i][start + w :]
        rows.append((f"seq{i}", start, start + w, "-" if minus[i] else "+", site))
    names = [f"seq{i}" for i in range(n_sequences)]
    sites = pd.DataFrame(rows, columns=["sequence", "start", "end", "strand", "site"])
    return dict(zip(names, sequences)), sites, pwm


def _several_motifs(n_sequences, length, site_probability, pwms, alphabet, background,
                    both_strands, rng):
    """make_motif_sequences with a list of PWMs: each motif planted without overlaps."""
    checked = [_check_pwm(p, None, alphabet, background, rng) for p in pwms]
    if not checked:
        raise ValueError("pwm is an empty list: give at least one PWM.")
    letters, _, background = checked[0]
    pwms = [pwm for _, pwm, _ in checked]
    widths = [pwm.shape[0] for pwm in pwms]
    if not isinstance(length, (Integral, np.integer)) or length < max(widths):
        raise ValueError(f"length must be an integer >= the widest motif's {max(widths)}, "
                         f"got {length!r}.")
    probabilities = np.broadcast_to(np.asarray(site_probability, dtype=float), (len(pwms),))
    if np.any((probabilities < 0) | (probabilities > 1)):
        raise ValueError(f"site_probability must be in [0, 1], got {site_probability!r}.")
    codes = _draw(np.tile(background, (length, 1)), n_sequences, rng)
    sequences = decode_sequences(codes, letters).tolist()
    taken = np.zeros((n_sequences, length), dtype=bool)
    rows = []
    for k, (pwm, w, p) in enumerate(zip(pwms, widths, probabilities)):
        has_site = rng.uniform(size=n_sequences) < p
        minus = (rng.uniform(size=n_sequences) < 0.5) & both_strands
        instances = decode_sequences(_draw(pwm, n_sequences, rng), letters)
        # Starts whose w positions are all free: a sliding sum of the taken positions.
        covered = np.lib.stride_tricks.sliding_window_view(taken, w, axis=1).any(axis=2)
        for i in np.flatnonzero(has_site):
            free = np.flatnonzero(~covered[i])
            if free.size == 0:
                continue
            start = int(free[rng.randint(free.size)])
            site = str(instances[i])
            forward = reverse_complement(site, letters) if minus[i] else site
            sequences[i] = sequences[i][:start] + forward + sequences[i][start + w :]
            taken[i, start : start + w] = True
            rows.append((k + 1, f"seq{i}", start, start + w, "-" if minus[i] else "+", site))
    names = [f"seq{i}" for i in range(n_sequences)]
    sites = pd.DataFrame(rows, columns=["motif", "sequence", "start", "end", "strand", "site"])
    return dict(zip(names, sequences)), sites, pwms

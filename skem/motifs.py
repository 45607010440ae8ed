"""Motif finding over aligned rows of letters: :class:`MotifMixture`, the seed's window model.

Each row (a window of ``w`` letters) comes from one of ``K`` components, each
a position weight matrix (PWM); the math is :class:`skem._motif_windows.MotifModel`
and its default start the search of :mod:`skem._window_search`. Whole
sequences of any lengths, with MEME's site models, are
:class:`skem.SequenceMotifMixture`'s (:mod:`skem.sequence_motifs`). Letter
codes, one-hot windows, reverse complements and windows cut from long
sequences are in :mod:`skem.sequences` (re-exported here).
"""

from __future__ import annotations

import warnings
from functools import partial
from numbers import Real
from typing import ClassVar

from sklearn.utils.validation import check_array, validate_data

from ._base import BaseMixture
from ._compat import Interval, StrOptions
from ._dask import is_dask_array
from ._letters import DNA, as_codes, check_alphabet, default_letters, is_nucleotide
from ._motif_windows import MotifModel
from ._pwm import MotifParams, PWMResultsMixin, pwm_summaries
from .sequences import __all__ as _SEQUENCE_NAMES
from .sequences import (  # noqa: F401  (re-exported: they lived here before skem.sequences)
    SequenceWindows,
    decode_sequences,
    encode_sequences,
    one_hot,
    reverse_complement,
    revcomp_permutation,
    sequence_windows,
)

__all__ = ["MotifMixture", *_SEQUENCE_NAMES]


class MotifMixture(PWMResultsMixin, BaseMixture):
    """Mixture of position-specific letter distributions: DNA (or protein) motif finding by EM.

    Each window of ``w`` letters comes from one of ``n_components``
    components; within component ``k`` its positions are independent, letter
    ``a`` at position ``i`` having probability ``pwms_[k, i, a]`` (a position
    weight matrix, PWM). With the default two components this is the
    motif-versus-background model; over all windows of longer sequences (see
    :func:`sequence_windows`) it is MEME's TCM model. Parameters are fitted by
    maximum a posteriori EM with a pseudocount.

    Parameters
    ----------
    n_components : int, default=2
        Number of components. With the default start, component 0 is the
        background and components 1.. are motifs.
    alphabet : str or None, default=None
        The letters (case-insensitive), coded ``0..A-1`` in this order. Any
        alphabet works, e.g. the 20 amino acids; a letter outside it and its
        wildcards, or an integer code outside ``-1..A-1``, is an error that
        names it and its position. None (the default) reads strings as DNA
        (``"ACGT"``) and fits integer codes whatever they are: the letters
        are the codes ``0..A-1`` with ``A = max(4, largest code + 1)``, found
        by ``fit`` and published as :attr:`alphabet_`. Four letters are
        DNA's, ``"ACGT"`` (the codes :func:`encode_sequences` gives by
        default); more are named by the digits and then the capitals,
        ``"0123456789AB..."`` (at most 36 letters: name larger alphabets).
        After ``fit``, new windows (``predict``, a warm start) are read in
        the fitted alphabet; a warm start on codes whose letters differ
        starts afresh, with a warning (see ``warm_start``).
    wildcards : str, default=None
        Letters that mean "unknown": they are missing data, marginalized out.
        None means 'N' and the IUPAC ambiguity codes (R, Y, ...; their partial
        information is not used) for nucleotide alphabets, and 'X' otherwise.
    pseudocount : float > 0, default=0.1
        Added to the expected count of every letter at every position of every
        component (a Dirichlet prior, so the objective is the log posterior).
        It keeps every probability positive.
    background : {None, "position-independent"}, default=None
        None fits every component position by position. "position-independent"
        ties component 0 to one letter distribution for all positions (MEME's
        zero-order background).
    revcomp : bool, default=False
        Whether a motif may lie on either strand (MEME's ``-revcomp``): a
        component explains a window as its PWM or as the PWM's reverse
        complement, the strand being one more hidden variable (see Notes and
        :meth:`predict_strand_proba`). This applies to the motif components
        1, 2, ... and, with ``background=None``, to component 0 as well (all
        components are then alike, and the background cannot gain over a
        motif by being the only single-strand one). A tied background
        (``"position-independent"``) is read on the windows' strand only: it
        is invariant under reversal already, and converges faster: the strand
        of a near-uniform position-specific background is almost
        unidentifiable, a flat direction for EM. Needs a nucleotide alphabet
        (ACGT or ACGU in any order). Fit it to forward-strand windows
        (:func:`sequence_windows` with ``both_strands=False``).
    n_init : int, default=1
        Number of starts. With more than one, each candidate runs 20 EM steps
        on one common sample of at most 10 000 rows, and the best there is
        fitted on all rows (``n_init`` short runs plus one fit; see :meth:`fit`).
    init_params : {"random_from_data", "kmeans", "k-means++", "random"}, default="random_from_data"
        How EM starts. "random_from_data" searches for motifs among observed
        windows as MEME does (see Notes). "kmeans" and "k-means++" cluster the
        one-hot windows; "random" draws random responsibilities. All respect
        ``sample_weight``.
    max_iter : int, default=200
        Maximum number of EM iterations per run.
    tol : float, default=1e-9
        Stop when the objective per (weighted) window changes by less than
        ``tol * max(1, |objective|)``.
    accelerate : {"none", "squarem"} or None, default=None
        Plain EM (None or "none"), or SQUAREM extrapolation (fewer iterations
        on slowly converging data).
    chunk_size : int, default=None
        Windows per E-step chunk, in the fit and in its start search; None
        sizes chunks to about 32 MiB of work arrays. The fit does not depend
        on it.
    n_jobs : int, default=None
        Runs the ``n_init`` candidate starts in parallel through joblib; results are
        identical to a serial fit.
    warm_start : bool, default=False
        Start from the previous fit's parameters (ignoring ``n_init``). A
        changed ``n_components``, ``alphabet``, ``wildcards``, ``background``,
        ``revcomp`` or window width (or, with the default alphabet, other
        letters found in the data) changes the parameters' shape: the fit
        then warns and starts afresh from ``init_params``.
    random_state : int, RandomState instance or None, default=None
        Seeds the starts and :meth:`sample`.
    verbose : int, default=0
        1 prints a line per run, 2 also the objective every ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between two printed lines.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing proportions (for a motif: the fraction of windows that are sites).
    pwms_ : ndarray of shape (n_components, w, A)
        Letter probabilities per component and position; ``pwms_[k, i]`` sums to 1.
    background_ : ndarray of shape (A,)
        Zero-order background letter distribution: component 0 averaged over positions.
    log_odds_ : ndarray of shape (n_components, w, A)
        ``log2(pwms_ / background_)`` in bits (MEME's log-odds matrix).
    information_content_ : ndarray of shape (n_components, w)
        Information content of each position in bits, ``log2(A) - entropy``
        (the total height of a sequence-logo column).
    consensus_ : ndarray of str of shape (n_components,)
        Most probable letter at each position, per component.
    alphabet_ : str
        The alphabet of the fit, upper case: ``alphabet``, or for the default
        one the letters found from the data (see ``alphabet``).
    converged_ : bool
        Whether the best run met the stopping rule.
    n_iter_ : int
        EM iterations of the best run.
    lower_bound_ : float
        Objective per window of the training data at the fitted parameters:
        mean log-likelihood plus the log prior of the pseudocounts divided by
        the total weight.
    lower_bounds_ : ndarray of shape (`n_iter_`,)
        The same after each iteration of the best run.
    n_features_in_ : int
        The window width ``w``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame of codes with string column names.

    See Also
    --------
    SequenceMotifMixture : MEME's site models over whole sequences of any lengths.
    skem.sequences.sequence_windows : Cut long sequences into windows and map sites back.
    skem.datasets.make_motif_sequences : Sequences with a planted motif.
    skem.io.write_meme, skem.io.write_jaspar : Save the fitted PWMs.
    skem.plotting.plot_logo : Sequence logo of a component.

    Notes
    -----
    The model is ``z_j ~ Categorical(weights)``, ``x_ji | z_j = k ~
    Categorical(pwms[k, i, :])`` independently over positions ``i``. EM
    updates: ``q_jk ∝ weights_k prod_i pwms[k, i, x_ji]`` (missing letters
    contribute 1); ``weights_k = sum_j w_j q_jk / sum_j w_j``;
    ``pwms[k, i, a] ∝ sum_j w_j q_jk [x_ji = a] + pseudocount``. In matrix
    form both steps are products with the one-hot matrix of the windows, of
    shape ``(n, w * A)``, which is stored once (8 w A bytes per distinct
    window; above 2 GiB it is rebuilt for each chunk instead).

    The default start (``init_params="random_from_data"``) is a motif search
    after MEME (Bailey & Elkan 1994). Component 0 starts as the letter
    frequencies of the data. Then, from a weighted draw of at most 20 000
    windows, up to 1000 distinct observed windows become candidate PWMs
    (probability 0.5 on the observed letter plus half of the background).
    On a draw of 1500 of those windows, all candidates are scored at once
    by the likelihood under the current mixture plus the candidate; the best
    20 take 10 EM steps side by side (the rest of the mixture held fixed).
    The best 3 distinct results and their phase shifts by up to 3 positions
    (a start half-covering the motif otherwise stays shifted) are refined
    the same way; the best 3 distinct ones are continued by full EM on 5000
    windows (to a relative change of 1e-8, at most 50 steps), and the
    objective on all windows picks the one that starts the fit. That draw
    suffices when the chosen mixture, continued by EM on all windows until
    it converges (1e-8, at most 50 steps), puts at least 100 of its 1500
    windows in each component (on a small draw, a
    shifted blend of a rare motif can take more windows than the motif has
    sites); otherwise the same is done on a draw 4 times larger, up to all
    20 000 windows, where the continued candidates take 50 EM steps and
    then 5 on all windows. The fit then converges to its own
    ``tol`` on all windows. Further motif components are added one at a
    time the same way. A motif in a fraction ``f`` of the windows is among
    the candidates with probability ``1 - exp(-1000 f)``;
    ``n_init`` repeats the search with other candidates. Every EM run of the
    search, the candidates' side-by-side steps included, is one of the
    engine's, with the same kernels, ``chunk_size`` and check that the
    objective never decreases as the fit.

    Both strands (``revcomp=True``). For a strand-aware component ``k``
    (every component but a tied background) the strand ``s_j`` of window
    ``j`` is hidden, each strand having probability
    1/2: ``p(x | k) = (p(x | pwms[k]) + p(rc(x) | pwms[k])) / 2``, where
    ``rc(x)`` is the reverse complement. The one-hot matrix of the reverse
    complements is the one-hot matrix with its ``w * A`` columns permuted
    (positions reversed, letters complemented; see
    :func:`~skem.sequences.revcomp_permutation`), so ``log p(rc(x) | k) = E @
    L_k[perm]``: the E-step is one matrix product over the columns of the
    ``2K`` (``2K - 1`` with a tied background) (component, strand) states,
    whose posteriors ``q_jk+`` and
    ``q_jk-`` sum to ``q_jk``. The M-step's expected letter counts are
    ``(w q_k+)^T E + ((w q_k-)^T E)[perm]``, a second product, so the counts
    stay additive over chunks and EM stays monotone. The motif search scores
    and refines its candidates under the same two-strand likelihood, and a
    candidate and its reverse complement count as the same optimum. The
    fitted PWM is in whichever orientation the search found;
    :meth:`predict_strand_proba` gives each window's strand posterior.

    Windows of both strands as separate rows (:func:`sequence_windows` with
    ``both_strands=True``, without ``revcomp``) hold each site once as the
    motif and once as its reverse complement; one component may then settle
    on a blend of the two orientations.

    Windows overlap (TCM without MEME's non-overlap constraint): a motif
    whose shifted copy resembles its reverse complement (a core such as
    CCGG) can explain one site by two or three overlapping windows, on either
    strand or with either ``revcomp``, and the fit may then prefer a blend of
    the shifts with a larger ``weights_[1]``.

    Identical windows are fitted once with their summed weight, which changes
    nothing but the speed.

    References
    ----------
    T. L. Bailey and C. Elkan (1994). Fitting a mixture model by expectation
    maximization to discover motifs in biopolymers. ISMB 2:28-36.

    Examples
    --------
    >>> from skem import MotifMixture
    >>> from skem.datasets import make_motif_windows
    >>> X, y, pwm = make_motif_windows(2000, width=8, motif_fraction=0.1, random_state=0)
    >>> model = MotifMixture(random_state=0).fit(X)
    >>> model.consensus_[1] == "".join("ACGT"[i] for i in pwm.argmax(axis=1))
    True
    >>> model.pwm().shape
    (8, 4)

    Integer codes with the default alphabet fit whatever their range:

    >>> import numpy as np
    >>> codes = np.random.default_rng(0).integers(0, 6, size=(100, 5))
    >>> MotifMixture(random_state=0).fit(codes).alphabet_
    '012345'
    """

    _parameter_constraints: dict = {
        **BaseMixture._parameter_constraints,
        "alphabet": [str, None],
        "wildcards": [str, None],
        "pseudocount": [Interval(Real, 0.0, None, closed="neither")],
        "background": [StrOptions({"position-independent"}), None],
        "revcomp": ["boolean"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        alphabet=None,
        wildcards=None,
        pseudocount=0.1,
        background=None,
        revcomp=False,
        n_init=1,
        init_params="random_from_data",
        max_iter=200,
        tol=1e-9,
        accelerate=None,
        chunk_size=None,
        n_jobs=None,
        warm_start=False,
        random_state=None,
        verbose=0,
        verbose_interval=10,
    ):
        super().__init__(
            n_init=n_init,
            init_params=init_params,
            max_iter=max_iter,
            tol=tol,
            accelerate=accelerate,
            chunk_size=chunk_size,
            n_jobs=n_jobs,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.n_components = n_components
        self.alphabet = alphabet
        self.wildcards = wildcards
        self.pseudocount = pseudocount
        self.background = background
        self.revcomp = revcomp

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        return tags

    # ---------------------------------------------------------------- model

    #: Hyperparameters that fix the shape of the fitted parameters: a warm start with any of
    #: them changed starts afresh (see BaseEM).
    _structural_params: ClassVar[tuple[str, ...]] = (
        "n_components", "alphabet", "wildcards", "background", "revcomp",
    )

    def _validate_X(self, X, reset):
        validate = partial(validate_data, self, reset=reset, ensure_min_samples=1)
        if not reset:  # read like the training windows: new rows, or a warm start
            return as_codes(X, self._model.letters, self._model.wildcards, validate)
        if self.alphabet is not None:
            return as_codes(X, *check_alphabet(self.alphabet, self.wildcards), validate)
        return self._default_codes(X, validate)

    def _default_codes(self, X, validate):
        """Codes of ``X`` for the default alphabet: strings are DNA, integer codes letters of
        their own (:func:`skem._letters.default_letters` names them)."""
        return as_codes(X, *check_alphabet(DNA, self.wildcards), validate, bounded=False)

    def _warm_start_params(self, X):
        previous = super()._warm_start_params(X)
        if previous is None or self.alphabet is not None:
            return previous
        # With the default alphabet the letters come from the data: other codes can give
        # other letters, which change the PWMs' shape as a structural parameter does, and
        # take the same rule (warn, start afresh).
        codes = X if is_dask_array(X) else self._default_codes(X, check_array)
        letters = default_letters(codes)
        if letters != self.alphabet_:
            warnings.warn(
                f"warm_start=True cannot continue the previous fit of {type(self).__name__}: "
                f"the data's letters {letters!r} (alphabet=None) are not the fitted "
                f"{self.alphabet_!r}. Fitting afresh from init_params={self.init_params!r}.",
                UserWarning,
                stacklevel=4,
            )
            return None
        return previous

    def _build_model(self, X, sample_weight, **row_metadata):
        self._check_n_samples(X)
        alphabet = default_letters(X) if self.alphabet is None else self.alphabet
        letters, wildcards = check_alphabet(alphabet, self.wildcards)
        if self.revcomp and not is_nucleotide(letters):
            found = "" if self.alphabet is not None else f" (letters {letters!r} for the codes)"
            raise ValueError(
                f"revcomp=True needs a nucleotide alphabet (ACGT or ACGU, in any order), got "
                f"alphabet={self.alphabet!r}{found}: only DNA and RNA have a reverse complement."
            )
        return MotifModel(
            n_components=self.n_components,
            init_params=self.init_params,
            letters=letters,
            wildcards=wildcards,
            pseudocount=self.pseudocount,
            tied_background=self.background == "position-independent",
            revcomp=self.revcomp,
        )

    def _get_fitted_params(self):
        return MotifParams(self.weights_, self.pwms_)

    def _set_fitted_params(self, params):
        self.weights_ = params.weights
        self.pwms_ = params.pwms
        self.alphabet_ = self._model.letters
        self.background_ = self.pwms_[0].mean(axis=0)
        self.log_odds_, self.information_content_, self.consensus_ = pwm_summaries(
            self.pwms_, self.background_, self.alphabet_
        )

    # --------------------------------------------------------- results

    def predict_strand_proba(self, X, component=None):
        """Posterior probability of each strand for a window that is a site of ``component``.

        With ``revcomp=True`` the strand of a motif component is a hidden
        variable: ``P(- | x, z = k) = p(rc(x) | pwms_[k]) / (p(x | pwms_[k]) +
        p(rc(x) | pwms_[k]))``, where "-" means the window holds the motif as
        its reverse complement. For a single-strand component (the tied
        background, or any component when ``revcomp=False``) it is 1 for "+".

        Parameters
        ----------
        X : array-like of shape (n_samples, w)
            Windows, as for :meth:`predict_proba`.
        component : int, default=None
            Which component; None means 1 (the first motif).

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns "+" (the motif as read) and "-" (its reverse complement);
            rows sum to 1. Pass ``proba[:, 1]`` as ``minus_strand`` to
            :meth:`SequenceWindows.sites`.
        """
        k = self._component(component)
        return self._per_row(X, partial(self._model.strand_proba, k))

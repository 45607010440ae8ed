"""Compiled (numba) kernels of the negative-binomial E-step with size factors.

Imported only by :func:`skem._negbin_kernels.compiled_kernels`, lazily, when
numba is installed (``pip install skem[fast]``); the NumPy functions of
:mod:`skem._negbin_kernels` compute the same sums and are the reference in the
tests. Compilation is cached on disk (``cache=True``), so only the first use
on a machine pays for it.

Why compiled: with size factors ``s_i`` every non-zero entry and component
needs ``log(1 + phi_kd s_i mu_kd)`` (the row's log-likelihood) and
``x s_i / (1 + phi_kd s_i mu_kd)`` (the slope of the M-step's bound), one
transcendental function per entry and component that no table can share:
the rows' size factors are all different. NumPy evaluates them in several
passes over ``(entries, K)`` work arrays and then sums them with sparse
products; here the sums are accumulated on the spot (the fit's E-step:
:func:`e_step_sums`, one pass per row for the log-density and, once the
row's responsibilities are known, one for the statistics; scoring:
:func:`entry_sums`), and the log-density takes one logarithm per row
and component (of a running product, :func:`entry_sums`), not one per
entry. numba's own ``log`` is a scalar call into the C library (about
4 ns); :func:`log_exact` is fdlibm's algorithm (musl's ``log``, within
1 ulp) written in arithmetic that the compiler vectorizes.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["e_step_sums", "entry_statistics", "entry_sums", "log_exact"]

_jit = numba.njit(cache=True, error_model="numpy", nogil=True)


@intrinsic
def _bits_of(typingctx, value):
    """The IEEE-754 bits of a float64, as an int64 (a bit cast, free in machine code)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float64 with these IEEE-754 bits."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


# fdlibm's e_log.c: ln 2 split in two, and the minimax polynomial of
# log((1 + s) / (1 - s)) / s - 2 in s**2 on [0, 0.1716**2] (error below 2**-58.45).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@numba.njit(cache=True, error_model="numpy", inline="always")
def log_exact(value):
    """``log(value)`` for finite normal ``value > 0``, within 1 ulp (fdlibm / musl ``log``).

    ``value = 2**k m`` with ``m`` in ``[sqrt(2)/2, sqrt(2))`` by integer arithmetic on the
    bits (no branch), then ``log m = f - f**2/2 + s (f**2/2 + R(s**2))`` with ``f = m - 1``,
    ``s = f / (2 + f)``. Zero, subnormal, infinite or NaN input is not handled (the E-step
    passes ``1 + phi s mu >= 1``).
    """
    bits = _bits_of(value)
    high = (bits >> 32) + (0x3FF00000 - 0x3FE6A09E)
    exponent = (high >> 20) - 0x3FF
    high = (high & 0x000FFFFF) + 0x3FE6A09E
    m = _float_of((high << 32) | (bits & 0xFFFFFFFF))
    f = m - 1.0
    half_square = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    odd = w * (_LG2 + w * (_LG4 + w * _LG6))
    even = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    k = float(exponent)
    return s * (half_square + odd + even) + k * _LN2_LO - half_square + f + k * _LN2_HI


#: Entries with an integer count up to this multiply their factor ``1 + phi s mu`` into the
#: row's running product this many times; other counts take a logarithm.
MAX_PRODUCT_POWER = 4
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE = 0x3FF0000000000000


@numba.njit(cache=True, error_model="numpy", inline="always")
def _move_exponents(mantissa, exponent):
    """Move each running product's binary exponent into ``exponent``, leaving it in [1, 2),
    so that more factors can be multiplied in without overflow (exactly: no rounding)."""
    for k in range(mantissa.size):
        bits = _bits_of(mantissa[k])
        exponent[k] += (bits >> 52) - 1023
        mantissa[k] = _float_of((bits & _MANTISSA) | _ONE)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _add_entry(mantissa, exponent, terms, factors, x, s, pending, max_factors, small_power):
    """Take one entry of count ``x`` into a row's sums: its factor ``1 + phi_mu s`` (a row of
    ``factors`` per component) multiplied ``x`` times into the running products when ``x`` is
    a small integer, else ``x log(...)`` subtracted from ``terms``. Returns the new number of
    factors pending since the last exponent move (at most ``max_factors``)."""
    if x == 1.0 and pending < max_factors:  # most entries of sparse counts
        for k in range(mantissa.size):
            mantissa[k] *= 1.0 + factors[k] * s
        return pending + 1
    if x == np.floor(x) and x <= small_power:
        power = int(x)
        if pending + power > max_factors:
            _move_exponents(mantissa, exponent)
            pending = 0
        for _ in range(power):
            for k in range(mantissa.size):
                mantissa[k] *= 1.0 + factors[k] * s
        return pending + power
    for k in range(mantissa.size):
        terms[k] -= x * log_exact(1.0 + factors[k] * s)
    return pending


@_jit
def entry_sums(indptr, columns, pair_index, pair_values, size_factors, phi_mu, pair_table,
               max_factors, log_density, totals):
    """Per row ``i`` and component ``k``, over the row's stored entries ``e``::

        log_density[i, k] = sum_e pair_table[pair_e, k] - x_e log(1 + phi_mu[d_e, k] s_i)

    and ``totals[i] = sum_e x_e``.

    A sum of logarithms is the logarithm of a product: the factors ``1 + phi s mu`` of
    entries with small integer counts (most entries of sparse counts are 1 or 2) are
    multiplied into a running product per component, and one logarithm per row and
    component ends it. The product is kept as a mantissa and an integer exponent, and
    renormalized (exact bit operations) after at most ``max_factors`` factors, few enough
    that it cannot overflow in between (see :func:`skem._negbin_kernels.max_factors`). Each
    product rounds once (relative ``2**-53``), as each term of a sum of logarithms does,
    so the result is as accurate as the sum, with ``nnz / n`` times fewer logarithms.

    Parameters
    ----------
    indptr, columns, pair_index : ndarray
        The rows' stored entries in CSR form: (n + 1,), (nnz,) features, (nnz,) pairs.
    pair_values : ndarray of shape (U,)
        The count of each pair.
    size_factors : ndarray of shape (n,)
    phi_mu : ndarray of shape (D, K)
        ``phi_kd mu_kd``, laid out by feature; finite and non-negative.
    pair_table : ndarray of shape (U, K)
        The per-pair terms of the log-density.
    max_factors : int
        Factors multiplied between renormalizations.
    log_density : ndarray of shape (n, K)
        Output, overwritten.
    totals : ndarray of shape (n,)
        Output, overwritten.
    """
    n_components = phi_mu.shape[1]
    small_power = min(MAX_PRODUCT_POWER, max_factors)
    mantissa = np.empty(n_components)
    exponent = np.empty(n_components, dtype=np.int64)
    terms = np.empty(n_components)
    for i in range(indptr.size - 1):
        s = size_factors[i]
        mantissa[:] = 1.0
        exponent[:] = 0
        terms[:] = 0.0
        total = 0.0
        pending = 0
        for e in range(indptr[i], indptr[i + 1]):
            pair = pair_index[e]
            x = pair_values[pair]
            d = columns[e]
            total += x
            for k in range(n_components):
                terms[k] += pair_table[pair, k]
            pending = _add_entry(mantissa, exponent, terms, phi_mu[d], x, s, pending, max_factors,
                                 small_power)
        for k in range(n_components):
            power = float(exponent[k])
            log_density[i, k] = terms[k] - (log_exact(mantissa[k]) + power * _LN2_LO
                                            + power * _LN2_HI)
        totals[i] = total


@_jit
def entry_statistics(indptr, columns, pair_index, pair_values, size_factors, phi_mu,
                     weighted_resp, hist, slope):
    """Add the stored entries' statistics, given the rows' ``w_i q_ik`` (``weighted_resp``,
    (n, K)): ``hist[pair, k] += w q`` (U, K) and ``slope[d, k] += w q x s / (1 + phi_mu[d, k]
    s)`` (D, K). Other arguments as in :func:`entry_sums`. (The count sums follow from
    ``hist``, per pair rather than per entry.)"""
    n_components = phi_mu.shape[1]
    resp = np.empty(n_components)
    for i in range(indptr.size - 1):
        s = size_factors[i]
        resp[:] = weighted_resp[i]
        for e in range(indptr[i], indptr[i + 1]):
            pair = pair_index[e]
            xs = pair_values[pair] * s
            d = columns[e]
            for k in range(n_components):
                hist[pair, k] += resp[k]
                slope[d, k] += resp[k] * xs / (1.0 + phi_mu[d, k] * s)


@_jit
def e_step_sums(indptr, columns, pair_index, pair_values, size_factors, row_weights,
                feature_work, pair_work, max_factors, log_weights, linear, at_nodes, exact_nodes,
                node_values, node_points, node_signs, center, half_width, node_mass, size_sum,
                resp_sum):
    """One fused E-step over a chunk's rows with size factors: each row's log-density, its
    responsibilities, and their statistics, row by row, with nothing kept per row or entry.

    Per row ``i``, first over its stored entries ``e`` (as :func:`entry_sums`)::

        log p_ik = log_weights[k] + sum_e pair_table[pair_e, k] - x_e log(1 + phi_mu[d_e, k] s_i)
                   + x_i log s_i - s_i linear[k] + sum_m L_m(s_i) at_nodes[m, k]

    with ``L`` the interpolation weights of ``s_i`` at the size nodes (as
    :meth:`skem._negbin_kernels.SizeNodes.weights`; ``s_i = 0`` takes none); then ``q_ik``
    by log-sum-exp, times the row weight ``w_i``; then, again over the row's entries, the
    statistics of :func:`entry_statistics`, and ``size_sum[k] += w q s``, ``resp_sum[k]
    += w q``, ``node_mass[k, m] += w q L_m``.

    Parameters
    ----------
    indptr, columns, pair_index, pair_values, size_factors, max_factors
        As in :func:`entry_sums`.
    row_weights : ndarray of shape (n,)
    feature_work : ndarray of shape (D, 2 K)
        ``phi_mu`` (as in :func:`entry_sums`) in its first K columns; the slope is added to
        the last K.
    pair_work : ndarray of shape (U, 2 K)
        ``pair_table`` (as in :func:`entry_sums`) in its first K columns; the histogram is
        added to the last K. (Side by side, the statistics of an entry land in the cache
        lines that its log-density has just read.)
    log_weights, linear : ndarray of shape (K,)
        Log mixing proportions and the zero terms' linear part (``split_zero_terms``).
    at_nodes : ndarray of shape (M, K)
        The zero terms' part at the size nodes.
    exact_nodes : bool
        Whether the nodes are the distinct size factors themselves.
    node_values, node_points, node_signs : ndarray of shape (M,)
        The nodes' size factors, their positions ``(log value - center) / half_width`` and the
        barycentric weights' signs (halved at both ends).
    center, half_width : float
    node_mass, size_sum, resp_sum : ndarray
        (K, M), (K,), (K,): added to.

    Returns
    -------
    float
        ``sum_i w_i log sum_k p_ik``.
    """
    n_components = log_weights.size
    # Unsigned indices: numba then omits the checks for negative indices, which keeps the
    # loops over components tight (about 10 % of the kernel's time).
    nk = np.uint64(n_components)
    n_nodes = node_values.size
    mantissa = np.empty(n_components)
    exponent = np.empty(n_components, dtype=np.int64)
    terms = np.empty(n_components)
    resp = np.empty(n_components)
    node_weight = np.empty(n_nodes)
    small_power = min(MAX_PRODUCT_POWER, max_factors)
    loglik = 0.0
    for i in range(indptr.size - 1):
        s = size_factors[i]
        start = indptr[i]
        mantissa[:] = 1.0
        exponent[:] = 0
        terms[:] = 0.0
        total = 0.0
        pending = 0
        for e in range(start, indptr[i + 1]):
            pair = np.uint64(pair_index[e])
            x = pair_values[pair]
            d = np.uint64(columns[e])
            total += x
            for k in range(nk):
                terms[k] += pair_work[pair, k]
            pending = _add_entry(mantissa, exponent, terms, feature_work[d], x, s, pending,
                                 max_factors, small_power)
        # The zero terms: exact in s, and interpolated at the size nodes.
        node_weight[:] = 0.0
        log_s = 0.0
        if s > 0:
            log_s = np.log(s)
            if exact_nodes:
                node_weight[np.searchsorted(node_values, s)] = 1.0
            else:
                t = (log_s - center) / half_width
                hit = -1
                weight_sum = 0.0
                for m in range(n_nodes):
                    difference = t - node_points[m]
                    if difference == 0.0:
                        hit = m
                        break
                    node_weight[m] = node_signs[m] / difference
                    weight_sum += node_weight[m]
                if hit >= 0:
                    node_weight[:] = 0.0
                    node_weight[hit] = 1.0
                else:
                    for m in range(n_nodes):
                        node_weight[m] /= weight_sum
        for k in range(nk):
            power = float(exponent[k])
            resp[k] = (terms[k] - (log_exact(mantissa[k]) + power * _LN2_LO + power * _LN2_HI)
                       + total * log_s - s * linear[k])
        for m in range(n_nodes):
            if node_weight[m] != 0.0:
                for k in range(nk):
                    resp[k] += node_weight[m] * at_nodes[m, k]
        top = -np.inf
        for k in range(nk):
            resp[k] += log_weights[k]
            top = max(top, resp[k])
        if not np.isfinite(top):
            top = 0.0
        norm = 0.0
        for k in range(nk):
            resp[k] = np.exp(resp[k] - top)
            norm += resp[k]
        w = row_weights[i]
        loglik += w * (np.log(norm) + top)
        scale = w / norm
        for k in range(nk):
            resp[k] *= scale
            resp_sum[k] += resp[k]
            size_sum[k] += resp[k] * s
        if exact_nodes:
            if s > 0:
                node = np.searchsorted(node_values, s)
                for k in range(nk):
                    node_mass[k, node] += resp[k]
        else:
            # Laid out (K, M): the inner loop runs over the nodes, contiguous.
            for k in range(nk):
                for m in range(n_nodes):
                    node_mass[k, m] += resp[k] * node_weight[m]
        for e in range(start, indptr[i + 1]):
            pair = np.uint64(pair_index[e])
            xs = pair_values[pair] * s
            d = np.uint64(columns[e])
            for k in range(nk):
                pair_work[pair, nk + k] += resp[k]
            for k in range(nk):
                feature_work[d, nk + k] += resp[k] * xs / (1.0 + feature_work[d, k] * s)
    return loglik

"""Compiled (numba) EPG kernels for FISP trains: the fingerprint, and its forward sensitivities.

The physics is that of :func:`gradmr.sim.epg.fisp.fisp_signal` (read its docstring first); this module only makes it
fast. Three facts do the work:

1. **Real states.** With one RF phase φ for every pulse and no off-resonance, in the frame rotated by φ every F state
   stays purely imaginary and every Z state real. Writing ``F⁺_k = i·p_k``, ``F⁻_k = −i·m_k`` the pulse becomes
   real arithmetic: with ``σ = p + m``,

       σ' = cos α · σ − 2 sin α · z,   z' = cos α · z + ½ sin α · σ,   and p − m is unchanged,

   so ``p' = p + ½(σ' − σ)`` and ``m' = m + ½(σ' − σ)``. The sample is ``F⁺₀ = i·e^{iφ}·p₀``.
2. **Shifts without copies.** The dephasing of every TR moves F⁺_k to k + 1 and F⁻_k to k − 1. Storing ``p_k`` at
   TR n in ``p_buf[N − n + k]`` and ``m_k`` in ``m_buf[n + k]`` makes that move a change of offset; only the new
   ``F⁺₀ = conj(F⁻₁)`` (``p₀ ← m₁``) is written. States above ``n_states − 1`` are dropped (truncation).
3. **Atoms in SIMD lanes, states in cache.** Atoms are processed in blocks of :data:`LANES`; the innermost loop
   runs over the atoms of a block (contiguous, branch-free: it vectorises), the buffers of a block (≈ 140 kB for
   1000 TRs) stay in the L2 cache, and blocks run in parallel (``prange``).

Forward sensitivities (:func:`fisp_sensitivities`) carry ∂(p, m, z)/∂T1, ∂/∂T2 and ∂/∂B1 with the states through
the same recursion: O(atoms × states) memory, no tape over the TRs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["LANES", "fisp_kernel", "fisp_sensitivities"]

#: Atoms per block (one AVX-512 register of float32).
LANES = 16
#: States smaller than this (relative to M0 = 1) are stored as 0. High orders of short-T2 tissues decay towards
#: zero through the subnormal range of float32 (< 1.2e-38), where x86 arithmetic takes microcode assists: without
#: this, float32 fingerprints of random tissues (T2 from 5 ms) at 64 states took ≈ 6× longer (the sensitivities
#: ≈ 3×). Costs ≈ 10–40 % (kernel) and ≈ 40–60 % (sensitivities) where nothing underflows. Far below any signal.
FLUSH = 1e-30


@njit(inline="always", cache=True)
def _flush(x):  # pragma: no cover - compiled
    """``x``, or 0 where ``|x| < FLUSH``."""
    return x if abs(x) >= FLUSH else x - x


@njit(parallel=True, fastmath=True, cache=True)
def fisp_kernel(flip, tr, te, t1, t2, b1, n_states, z_start, ti, half, out):  # pragma: no cover - compiled
    """Fingerprints ``out[a, n] = p₀`` (real) of atoms ``a`` (t1, t2, b1: (A,)) for one train (flip, tr, te: (N,)).

    ``z_start`` is Z₀ before the inversion delay relaxes it for ``ti`` seconds (1 without inversion, −efficiency
    after one); ``half`` is 0.5 in the working dtype (it types the arithmetic); ``out`` (A, N) of that dtype.
    """
    n_tr = flip.shape[0]
    atoms = t1.shape[0]
    one = half + half
    lanes = LANES
    for blk in prange((atoms + lanes - 1) // lanes):
        a0 = blk * lanes
        p = np.zeros((n_tr + n_states + 1, lanes), out.dtype)
        m = np.zeros((n_tr + n_states + 1, lanes), out.dtype)
        z = np.zeros((n_states, lanes), out.dtype)
        r1 = np.empty(lanes)
        r2 = np.empty(lanes)
        bb = np.empty(lanes)
        for j in range(lanes):
            a = min(a0 + j, atoms - 1)  # the last block repeats its last atom in unused lanes
            r1[j] = 1.0 / t1[a]
            r2[j] = 1.0 / t2[a]
            bb[j] = b1[a]
            z[0, j] = 1.0 + (z_start - 1.0) * math.exp(-ti * r1[j])
        c = np.empty(lanes, out.dtype)
        s = np.empty(lanes, out.dtype)
        hc1 = np.empty(lanes, out.dtype)
        hs = np.empty(lanes, out.dtype)
        e1 = np.empty(lanes, out.dtype)
        e2 = np.empty(lanes, out.dtype)
        ete = np.empty(lanes, out.dtype)
        for n in range(n_tr):
            for j in range(lanes):
                alpha = flip[n] * bb[j]
                c[j] = math.cos(alpha)
                s[j] = math.sin(alpha)
                hc1[j] = half * (c[j] - one)
                hs[j] = half * s[j]
                e1[j] = math.exp(-tr[n] * r1[j])
                e2[j] = math.exp(-tr[n] * r2[j])
                ete[j] = math.exp(-te[n] * r2[j])
            top = min(n + 1, n_states)
            o = n_tr - n
            for j in range(lanes):
                if a0 + j < atoms:
                    sig = p[o, j] + m[n, j]
                    out[a0 + j, n] = (p[o, j] + hc1[j] * sig - s[j] * z[0, j]) * ete[j]
            for k in range(top):
                for j in range(lanes):
                    pk = p[o + k, j]
                    mk = m[n + k, j]
                    zk = z[k, j]
                    sig = pk + mk
                    ds = hc1[j] * sig - s[j] * zk
                    z[k, j] = _flush((c[j] * zk + hs[j] * sig) * e1[j])
                    p[o + k, j] = _flush((pk + ds) * e2[j])
                    m[n + k, j] = _flush((mk + ds) * e2[j])
            for j in range(lanes):
                z[0, j] += one - e1[j]
                p[o - 1, j] = m[n + 1, j]
    return out


@njit(parallel=True, fastmath=True, cache=True)
def fisp_sensitivities(flip, tr, te, t1, t2, b1, n_states, z_start, ti, half, out, jac):  # pragma: no cover
    """As :func:`fisp_kernel`, plus ``jac[a, n, j] = ∂p₀/∂θ_j`` for θ = (T1, T2, B1), carried forward with the states.

    Row 0 of the buffers is the state, rows 1–3 its derivatives with respect to T1, T2 and B1. The pulse is linear
    in the state and independent of T1/T2, so those rows go through the same rotation; B1 adds the derivative of the
    rotation itself (α = flip · B1); relaxation adds ∂E/∂T times the state.
    """
    n_tr = flip.shape[0]
    atoms = t1.shape[0]
    one = half + half
    lanes = LANES
    for blk in prange((atoms + lanes - 1) // lanes):
        a0 = blk * lanes
        size = n_tr + n_states + 1
        p = np.zeros((4, size, lanes), out.dtype)
        m = np.zeros((4, size, lanes), out.dtype)
        z = np.zeros((4, n_states, lanes), out.dtype)
        r1 = np.empty(lanes)
        r2 = np.empty(lanes)
        bb = np.empty(lanes)
        for j in range(lanes):
            a = min(a0 + j, atoms - 1)
            r1[j] = 1.0 / t1[a]
            r2[j] = 1.0 / t2[a]
            bb[j] = b1[a]
            e1ti = math.exp(-ti * r1[j])
            z[0, 0, j] = 1.0 + (z_start - 1.0) * e1ti
            z[1, 0, j] = (z_start - 1.0) * e1ti * ti * r1[j] * r1[j]
        c = np.empty(lanes, out.dtype)
        s = np.empty(lanes, out.dtype)
        hc1 = np.empty(lanes, out.dtype)
        hs = np.empty(lanes, out.dtype)
        dhc1 = np.empty(lanes, out.dtype)
        dsn = np.empty(lanes, out.dtype)
        dc = np.empty(lanes, out.dtype)
        dhs = np.empty(lanes, out.dtype)
        e1 = np.empty(lanes, out.dtype)
        e2 = np.empty(lanes, out.dtype)
        de1 = np.empty(lanes, out.dtype)
        de2 = np.empty(lanes, out.dtype)
        ete = np.empty(lanes, out.dtype)
        dete = np.empty(lanes, out.dtype)
        for n in range(n_tr):
            for j in range(lanes):
                alpha = flip[n] * bb[j]
                ca = math.cos(alpha)
                sa = math.sin(alpha)
                c[j] = ca
                s[j] = sa
                hc1[j] = half * (c[j] - one)
                hs[j] = half * s[j]
                dhc1[j] = -0.5 * sa * flip[n]  # ∂/∂B1 of the pulse coefficients
                dsn[j] = ca * flip[n]
                dc[j] = -sa * flip[n]
                dhs[j] = 0.5 * ca * flip[n]
                x1 = math.exp(-tr[n] * r1[j])
                x2 = math.exp(-tr[n] * r2[j])
                xt = math.exp(-te[n] * r2[j])
                e1[j] = x1
                e2[j] = x2
                de1[j] = x1 * tr[n] * r1[j] * r1[j]  # ∂E1/∂T1
                de2[j] = x2 * tr[n] * r2[j] * r2[j]  # ∂E2/∂T2
                ete[j] = xt
                dete[j] = xt * te[n] * r2[j] * r2[j]
            top = min(n + 1, n_states)
            o = n_tr - n
            for k in range(top):
                for j in range(lanes):
                    pk = p[0, o + k, j]
                    mk = m[0, n + k, j]
                    zk = z[0, k, j]
                    sig = pk + mk
                    ds = hc1[j] * sig - s[j] * zk
                    zr = c[j] * zk + hs[j] * sig
                    pr = pk + ds
                    mr = mk + ds
                    p1 = p[1, o + k, j]
                    m1 = m[1, n + k, j]
                    z1 = z[1, k, j]
                    sig1 = p1 + m1
                    ds1 = hc1[j] * sig1 - s[j] * z1
                    zr1 = c[j] * z1 + hs[j] * sig1
                    p2 = p[2, o + k, j]
                    m2 = m[2, n + k, j]
                    z2 = z[2, k, j]
                    sig2 = p2 + m2
                    ds2 = hc1[j] * sig2 - s[j] * z2
                    zr2 = c[j] * z2 + hs[j] * sig2
                    pb = p[3, o + k, j]
                    mb = m[3, n + k, j]
                    zb = z[3, k, j]
                    sigb = pb + mb
                    dsb = hc1[j] * sigb - s[j] * zb + dhc1[j] * sig - dsn[j] * zk
                    zrb = c[j] * zb + hs[j] * sigb + dc[j] * zk + dhs[j] * sig
                    if k == 0 and a0 + j < atoms:
                        out[a0 + j, n] = pr * ete[j]
                        jac[a0 + j, n, 0] = (p1 + ds1) * ete[j]
                        jac[a0 + j, n, 1] = (p2 + ds2) * ete[j] + pr * dete[j]
                        jac[a0 + j, n, 2] = (pb + dsb) * ete[j]
                    p[0, o + k, j] = _flush(pr * e2[j])
                    m[0, n + k, j] = _flush(mr * e2[j])
                    z[0, k, j] = _flush(zr * e1[j])
                    p[1, o + k, j] = _flush((p1 + ds1) * e2[j])
                    m[1, n + k, j] = _flush((m1 + ds1) * e2[j])
                    z[1, k, j] = _flush(zr1 * e1[j] + zr * de1[j])
                    p[2, o + k, j] = _flush((p2 + ds2) * e2[j] + pr * de2[j])
                    m[2, n + k, j] = _flush((m2 + ds2) * e2[j] + mr * de2[j])
                    z[2, k, j] = _flush(zr2 * e1[j])
                    p[3, o + k, j] = _flush((pb + dsb) * e2[j])
                    m[3, n + k, j] = _flush((mb + dsb) * e2[j])
                    z[3, k, j] = _flush(zrb * e1[j])
            for j in range(lanes):
                z[0, 0, j] += one - e1[j]
                z[1, 0, j] -= de1[j]
                for r in range(4):
                    p[r, o - 1, j] = m[r, n + 1, j]
    return out, jac

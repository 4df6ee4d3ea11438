"""Bloch isochromat simulator: the reference every faster simulator is checked against.

Every voxel (and every tissue pool in it) is represented by ``spins_per_voxel`` isochromats
spread over the voxel volume. Each isochromat is propagated exactly:

* **RF** (instantaneous, at the start of a repetition): the rotation of ``docs/conventions.md``
  with the flip angle scaled by the voxel's ``b1``; in the (M⁺, M⁻, Mz) basis
  ``M⁺' = cos²(α/2) M⁺ + e^{2iφ} sin²(α/2) M⁻ − i e^{iφ} sin α Mz`` and
  ``Mz' = sin α · Im(e^{−iφ} M⁺) + cos α Mz``.
* **Free precession and relaxation** over an event of duration ``dt`` with gradient moment ``k``:
  ``M⁺ ← M⁺ · e^{−dt/T2} · e^{−2πi (k·r + Δf·dt)}`` and ``Mz ← 1 + (Mz − 1) e^{−dt/T1}``
  (magnetisation is stored relative to M0 = PD and weighted by PD at the receiver).

Between two RF pulses free precession and relaxation commute, so the state after any number
of events depends only on the summed moment and the summed duration. The simulator uses
this: for each repetition it takes the cumulative moment and time at the end of every ADC
event and evaluates all samples of the repetition at once (in chunks that bound the memory),
then the state at the end of the repetition for the next pulse. The Python loop runs over
repetitions only; everything else is vectorised over samples × pools × voxels × spins.

Spin positions
    Each voxel holds a regular sub-grid of ``spins_per_voxel`` spins at the centres of equal
    sub-cells of the voxel (offsets ``((j + ½)/n − ½)·voxel_size`` per axis). In 2D (``z = 1``)
    the sub-grid spans x and y only (all spins in the slice plane); in 3D it spans x, y and z.
    The sub-grid dimensions are the most balanced factorisation of ``spins_per_voxel``
    (64 → 8 × 8 in 2D, 4 × 4 × 4 in 3D); choose a square (2D) or a cube (3D) for an isotropic
    sub-grid. A moment of ``m / voxel_size`` cycles per metre with ``m`` a non-zero integer that is
    not a multiple of the sub-grid size ``n`` along that axis dephases a voxel exactly to zero; but
    a moment of ``n`` cycles per voxel refocuses it again (aliasing of the sub-grid). Spoiled
    sequences therefore need ``n`` above the spoiler moment accumulated while transverse
    magnetisation lives (a few T2): with 2 cycles per voxel per TR and 4 spins per axis, coherent
    echoes reappear every second TR.

T2' (reversible dephasing)
    With ``t2dash=True`` spin ``j`` of a voxel gets the extra frequency offset
    ``tan(π(u_j − ½)) / (2π T2')`` with ``u_j = (j + ½)/N``: the stratified quantiles of a
    Lorentzian (Cauchy) distribution of half-width ``1/(2π T2')``, so the ensemble FID decays as
    ``exp(−|t|/T2')`` and a spin echo refocuses it. The quantiles are assigned to the positions by
    a random permutation per voxel drawn from ``seed`` so that offset and position are
    uncorrelated; the result is deterministic for a given seed. A finite set of offsets only
    approximates the exponential: the largest deviation of the FID from ``exp(−t/T2')`` over
    ``t ≤ 3 T2'`` is about ``0.35/√N`` (0.10 at N = 64, 5e-3 at N = 4096), because the outermost
    quantiles are too sparse to average out; use many spins where the T2' decay must be accurate.

Diffusion
    Isochromats at fixed positions cannot diffuse (that would need a random walk). If any
    voxel has ``d > 0``, ``diffusion="error"`` (the default) raises and ``diffusion="ignore"``
    simulates without diffusion.

Everything is differentiable with autograd (PD, T1, T2, T2', B0, B1, coil sensitivities, voxel
size, flip angles and phases, event times, gradient moments, ADC phases). Memory for a backward
pass grows with samples × spins; use small problems for optimisation with this simulator.
"""

from __future__ import annotations

import math

import torch

from ..._tensors import complex_dtype, expi
from ...phantom.core import VoxelPhantom
from ...sequence.core import Sequence

__all__ = ["simulate_bloch", "subgrid_shape", "spin_offsets", "lorentzian_quantiles"]

#: Elements (samples × spins) evaluated at once per chunk: small enough to stay in cache-friendly
#: allocations (larger chunks were slower on CPU), large enough to amortise the Python overhead.
_CHUNK_ELEMENTS = 1 << 18

_DIFFUSION_MODES = ("error", "ignore")


def subgrid_shape(spins_per_voxel: int, dims: int) -> tuple[int, ...]:
    """The most balanced factorisation of ``spins_per_voxel`` into ``dims`` factors (largest first)."""
    n = int(spins_per_voxel)
    if dims == 1:
        return (n,)
    best: tuple[int, ...] | None = None
    for a in range(1, n + 1):
        if n % a:
            continue
        rest = subgrid_shape(n // a, dims - 1)
        cand = tuple(sorted((a, *rest), reverse=True))
        if best is None or cand[0] / cand[-1] < best[0] / best[-1]:
            best = cand
    assert best is not None
    return best


def spin_offsets(spins_per_voxel: int, three_d: bool, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Spin offsets within a voxel as fractions of the voxel size, shape ``(spins, 3)`` in (x, y, z).

    A regular sub-grid at the centres of equal sub-cells, in ``[−½, ½)``; z offsets are 0 in 2D.
    """
    shape = subgrid_shape(spins_per_voxel, 3 if three_d else 2)
    axes = [(torch.arange(n, dtype=dtype, device=device) + 0.5) / n - 0.5 for n in shape]
    if not three_d:
        axes.append(torch.zeros(1, dtype=dtype, device=device))
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.flatten() for g in grids], dim=-1)


def lorentzian_quantiles(spins_per_voxel: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Stratified quantiles ``tan(π(u − ½))`` of the standard Cauchy distribution, ``u = (j + ½)/N``."""
    u = (torch.arange(spins_per_voxel, dtype=torch.float64) + 0.5) / spins_per_voxel
    return torch.tan(math.pi * (u - 0.5)).to(dtype=dtype, device=device)


def simulate_bloch(
    sequence: Sequence,
    phantom: VoxelPhantom,
    *,
    spins_per_voxel: int = 64,
    t2dash: bool = True,
    diffusion: str = "error",
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Simulate the signal of ``sequence`` on ``phantom`` with Bloch isochromats.

    Parameters
    ----------
    sequence : Sequence
        Repetitions of one RF pulse followed by events; its tensors are cast to the phantom's dtype.
    phantom : VoxelPhantom
        Maps ``(pools, z, y, x)``; the real dtype of ``phantom.pd`` sets the precision.
    spins_per_voxel : int
        Isochromats per voxel and pool, on a regular sub-grid of the voxel (see the module docs).
    t2dash : bool
        Give the spins Lorentzian frequency offsets of half-width ``1/(2π T2')``.
    diffusion : {"error", "ignore"}
        What to do if the phantom has ``d > 0``: isochromats cannot represent diffusion.
    seed : int
        Seed of the permutation that pairs T2' offsets with positions.
    progress : bool
        Show a tqdm progress bar over the repetitions.

    Returns
    -------
    Tensor, shape ``(samples, coils)``
        Complex signal in ADC order (complex128 for a float64 phantom). A voxel of PD 1 fully
        excited by a uniform coil of sensitivity 1 gives ``|s| = 1``; the signal is
        ``Σ_voxels Σ_pools coil · PD · mean_spins(M⁺/M0) · e^{−i φ_adc}``.
    """
    if diffusion not in _DIFFUSION_MODES:
        raise ValueError(f"diffusion must be one of {_DIFFUSION_MODES}, got {diffusion!r}")
    if isinstance(spins_per_voxel, bool) or int(spins_per_voxel) != spins_per_voxel or spins_per_voxel < 1:
        raise ValueError(f"spins_per_voxel must be a positive integer, got {spins_per_voxel!r}")
    spins_per_voxel = int(spins_per_voxel)
    if diffusion == "error" and bool((phantom.d > 0).any()):
        raise ValueError(
            "the phantom has diffusion (d > 0), which the isochromat Bloch simulator cannot represent "
            "(it would need a random walk of the spins); pass diffusion='ignore' to simulate without it, "
            "or use a simulator that models diffusion"
        )

    real = phantom.pd.dtype
    cplx = complex_dtype(real)
    device = phantom.pd.device
    pools = phantom.pool_count
    nz, ny, nx = phantom.grid_shape
    n = spins_per_voxel

    def flat(t: torch.Tensor) -> torch.Tensor:  # (pools, z, y, x) -> (pools, voxels)
        return t.reshape(pools, -1)

    pd = flat(phantom.pd)
    coil = phantom.coil_sens.reshape(phantom.coil_count, -1).to(cplx)  # (coils, voxels)
    centres = phantom.positions().to(device=device, dtype=real)  # (voxels, 3)
    voxels_all = centres.shape[0]

    # Lorentzian quantiles, permuted per voxel (generated for all voxels so that masking
    # empty voxels does not change the pairing of the others).
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.rand(voxels_all, n, generator=gen).argsort(dim=-1).to(device)

    # Skip voxels without protons unless PD itself is differentiated.
    if pd.requires_grad:
        active = None
    else:
        active = (pd != 0).any(dim=0).nonzero().flatten()

    def sel(t: torch.Tensor) -> torch.Tensor:  # select active voxels along the last dim
        return t if active is None else t.index_select(-1, active)

    pd = sel(pd)
    coil = sel(coil)
    centres = centres if active is None else centres.index_select(0, active)
    perm = perm if active is None else perm.index_select(0, active)
    voxels = centres.shape[0]

    offsets = spin_offsets(n, nz > 1, dtype=real, device=device)  # (spins, 3)
    r = centres[:, None, :] + offsets[None, :, :] * phantom.voxel_size.to(real)  # (voxels, spins, 3)

    r1 = (1.0 / sel(flat(phantom.t1)))[..., None]  # (pools, voxels, 1)
    r2 = 1.0 / sel(flat(phantom.t2))  # (pools, voxels)
    b1 = sel(flat(phantom.b1))[..., None]
    df = sel(flat(phantom.b0))[..., None].expand(pools, voxels, n)  # (pools, voxels, spins) [Hz]
    if t2dash:
        q = lorentzian_quantiles(n, dtype=real, device=device)[perm]  # (voxels, spins)
        df = df + q / (2 * math.pi * sel(flat(phantom.t2dash))[..., None])
    # phase per unit (moment, time): −2π (r, Δf), so that phase = [k, t] @ basis.T; (spins_total, 4)
    basis = (-2 * math.pi) * torch.cat([r.expand(pools, voxels, n, 3), df[..., None]], dim=-1).reshape(-1, 4)
    # receive weights: coil · PD / spins, (pools, voxels, coils)
    weight = pd[..., None].to(cplx) * coil.T[None] / n

    # Magnetisation relative to M0 = PD, as real tensors (pools, voxels, spins): complex
    # elementwise maths is several times slower than real on CPU.
    mx = torch.zeros(pools, voxels, n, dtype=real, device=device)
    my = torch.zeros(pools, voxels, n, dtype=real, device=device)
    mz = torch.ones(pools, voxels, n, dtype=real, device=device)

    reps = iter(sequence)
    if progress:
        from tqdm import tqdm

        reps = tqdm(reps, total=len(sequence), desc="Bloch", unit="rep")

    signals = []
    spins_total = pools * voxels * n
    chunk = max(1, _CHUNK_ELEMENTS // max(spins_total, 1))
    for rep in reps:
        rep = rep.to(device=device, dtype=real)
        # ---- RF pulse: the rotation of docs/conventions.md, flip scaled by B1, written out in
        # real components (M⁺ = mx + i·my):
        #   M⁺' = cos²(α/2) M⁺ + e^{2iφ} sin²(α/2) M⁻ − i e^{iφ} sin α Mz
        #   Mz' = sin α · Im(e^{−iφ} M⁺) + cos α Mz
        angle, phi = rep.pulse_angle, rep.pulse_phase
        if angle.requires_grad or phi.requires_grad or float(angle) != 0.0:
            a = b1 * angle
            ca, sa = torch.cos(a), torch.sin(a)
            half_p, half_m = 0.5 * (1 + ca), 0.5 * (1 - ca)
            cp, sp = torch.cos(phi), torch.sin(phi)
            c2, s2 = torch.cos(2 * phi), torch.sin(2 * phi)
            mx, my, mz = (
                half_p * mx + half_m * (c2 * mx + s2 * my) + (sa * sp) * mz,
                half_p * my + half_m * (s2 * mx - c2 * my) - (sa * cp) * mz,
                sa * (cp * my - sp * mx) + ca * mz,
            )
        if rep.event_count == 0:
            continue
        # ---- free precession and relaxation: cumulative moment and time since the pulse
        kt = torch.cat([torch.cumsum(rep.gradm, dim=0), torch.cumsum(rep.event_time, dim=0)[:, None]], dim=1)
        adc = rep.adc_usage
        if bool(adc.any()):
            kt_adc = kt[adc]
            demod = expi(-rep.adc_phase[adc])
            for start in range(0, kt_adc.shape[0], chunk):
                rows = kt_adc[start : start + chunk]
                cos, sin = _rotation(rows, basis, mx.shape)
                sx = torch.einsum("rpvn,pvn->rpv", cos, mx) - torch.einsum("rpvn,pvn->rpv", sin, my)
                sy = torch.einsum("rpvn,pvn->rpv", sin, mx) + torch.einsum("rpvn,pvn->rpv", cos, my)
                decay = torch.exp(-rows[:, 3, None, None] * r2)  # (rows, pools, voxels)
                mv = torch.complex(sx * decay, sy * decay)
                signals.append(torch.einsum("rpv,pvc->rc", mv, weight) * demod[start : start + chunk, None])
        total = kt[-1:]
        cos, sin = _rotation(total, basis, mx.shape)
        decay = torch.exp(-total[0, 3] * r2)[..., None]
        mx, my = decay * (cos[0] * mx - sin[0] * my), decay * (sin[0] * mx + cos[0] * my)
        mz = 1 + (mz - 1) * torch.exp(-total[0, 3] * r1)

    if not signals:
        return torch.zeros(0, phantom.coil_count, dtype=cplx, device=device)
    return torch.cat(signals, dim=0)


def _rotation(kt: torch.Tensor, basis: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the precession phase −2π (k·r + Δf t) for rows ``kt = [k, t]`` (rows, 4).

    Returns two tensors of shape ``(rows, pools, voxels, spins)``.
    """
    phase = (kt @ basis.T).reshape(kt.shape[0], *shape)
    return torch.cos(phase), torch.sin(phase)

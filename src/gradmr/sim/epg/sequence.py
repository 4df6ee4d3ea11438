"""EPG of a core :class:`~gradmr.sequence.Sequence`: the same sequence that drives the PDG and Bloch simulators.

The extended phase graph describes a voxel whose gradients dephase it by whole cycles along one direction. A
sequence fits that model when every non-zero gradient moment of an event is an integer multiple of one unit moment
``Δk`` along one direction (spoilers, crushers, FISP dephasers); the unit is found from the sequence (the smallest
non-zero moment) unless given. Each event then: free precession (T1, T2, off-resonance) for its duration, a shift of
every state by its number of units, and — if it is an ADC event — the sample F⁺₀ demodulated by the ADC phase.
The signal of a voxel is PD · F⁺₀ · coil sensitivity, summed over voxels and pools.

Not modelled (state them when comparing): T2′ (a Lorentzian line is not a phase graph), diffusion, and any spatial
encoding — imaging gradients that do not fit the unit raise ``ValueError`` naming the repetition and event.

The state vector is ``f_k`` for k = −(K−1) … K−1 with ``f_k = F⁺_k`` (k ≥ 0) and ``f_{−k} = conj(F⁻_k)``: a shift is
then a move of the whole array, and off-resonance multiplies every ``f`` by the same phase.
"""

from __future__ import annotations

import math

import torch

from ..._tensors import complex_dtype
from ...phantom.core import VoxelPhantom
from ...sequence.core import Sequence
from .fisp import DEFAULT_STATES

__all__ = ["epg_shifts", "simulate_epg"]

#: Relative tolerance for "an integer multiple of the unit moment" and "parallel to the unit direction".
SHIFT_TOLERANCE = 1e-6


def epg_shifts(sequence: Sequence, unit_moment=None) -> list[torch.Tensor]:
    """Integer EPG shift of every event (a list of ``(events,)`` int tensors, one per repetition).

    ``unit_moment`` (3,) [1/m] is the moment of one shift; by default the smallest non-zero event moment of the
    sequence. Raises ``ValueError`` if a moment is not parallel to it or not an integer multiple of it.
    """
    moments = [rep.gradm.detach().double() for rep in sequence]
    if unit_moment is None:
        norms = torch.cat([m.norm(dim=1) for m in moments]) if moments else torch.zeros(0)
        nonzero = norms[norms > 0]
        if nonzero.numel() == 0:
            return [torch.zeros(m.shape[0], dtype=torch.long) for m in moments]
        unit = torch.cat(moments)[norms == nonzero.min()][0]
    else:
        unit = torch.as_tensor(unit_moment, dtype=torch.float64).reshape(3)
        if float(unit.norm()) == 0:
            raise ValueError("unit_moment must be non-zero")
    u2 = float(unit @ unit)
    shifts = []
    for r, m in enumerate(moments):
        n = (m @ unit) / u2
        rounded = torch.round(n)
        residual = (m - rounded[:, None] * unit).norm(dim=1)
        bad = residual > SHIFT_TOLERANCE * math.sqrt(u2) * torch.clamp(rounded.abs(), min=1)
        if bool(bad.any()):
            e = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"repetition {r}, event {e}: gradient moment {m[e].tolist()} 1/m is not an integer multiple of the "
                f"EPG unit {unit.tolist()} 1/m — the sequence does not fit the EPG model (use PDG or Bloch)"
            )
        shifts.append(rounded.long())
    return shifts


def _shift(f: torch.Tensor, n: int) -> torch.Tensor:
    """Move every state by n orders (f_k ← f_{k−n}); what leaves the window is dropped, what enters is 0."""
    if n == 0:
        return f
    size = f.shape[-1]
    if abs(n) >= size:
        return torch.zeros_like(f)
    zeros = torch.zeros(f.shape[:-1] + (abs(n),), dtype=f.dtype, device=f.device)
    if n > 0:
        return torch.cat([zeros, f[..., :-n]], -1)
    return torch.cat([f[..., -n:], zeros], -1)


def simulate_epg(
    sequence: Sequence,
    phantom: VoxelPhantom,
    *,
    n_states: int = DEFAULT_STATES,
    unit_moment=None,
) -> torch.Tensor:
    """EPG signal ``(samples, coils)`` of ``sequence`` on ``phantom`` (complex, in ADC order).

    Each (pool, voxel) is one EPG (batched); ``n_states`` orders are kept on each side of k = 0. Differentiable in
    every sequence and tissue parameter the model uses (PD, T1, T2, B0, B1, coils, flip angles, phases, event
    times, ADC phases). T2′ and diffusion are ignored (see the module docs).
    """
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 1:
        raise ValueError(f"n_states must be an integer ≥ 1, got {n_states!r}")
    sequence.validate()
    shifts = epg_shifts(sequence, unit_moment)
    dtype = phantom.t1.dtype
    cdtype = complex_dtype(dtype)
    pools = phantom.pool_count
    pd = phantom.pd.reshape(pools, -1)
    keep = (pd > 0).reshape(-1) if not phantom.pd.requires_grad else torch.ones(pd.numel(), dtype=torch.bool)

    def flat(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1)[keep]

    t1, t2 = flat(phantom.t1), flat(phantom.t2)
    b1, df = flat(phantom.b1), flat(phantom.b0)
    weight = flat(phantom.pd)
    grid = phantom.pd[0].numel()
    coil = phantom.coil_sens.reshape(phantom.coil_count, grid).repeat(1, pools)[:, keep]  # (coils, V)
    k = n_states
    v = t1.shape[0]
    f = torch.zeros(v, 2 * k - 1, dtype=cdtype, device=t1.device)  # index k-1 is k = 0
    z = torch.zeros(v, k, dtype=cdtype, device=t1.device)
    z = torch.cat([torch.ones(v, 1, dtype=cdtype, device=t1.device), z[:, 1:]], 1)
    unit = torch.zeros(k, dtype=dtype, device=t1.device)
    unit[0] = 1
    w = 2 * math.pi * df[:, None]
    samples = []
    for rep, rep_shifts in zip(sequence, shifts, strict=True):
        alpha = rep.pulse_angle * b1[:, None]
        phi = rep.pulse_phase
        if bool((rep.pulse_angle != 0).item()) or rep.pulse_angle.requires_grad:
            e_phi = torch.exp(1j * phi.to(cdtype))
            c2 = torch.cos(alpha / 2) ** 2
            s2 = torch.sin(alpha / 2) ** 2
            sa, ca = torch.sin(alpha), torch.cos(alpha)
            fp = f[:, k - 1 :]
            fm = f[:, :k].flip(-1).conj()
            fp, fm, z = (
                c2 * fp + e_phi * e_phi * s2 * fm - 1j * e_phi * sa * z,
                s2 * fp / (e_phi * e_phi) + c2 * fm + 1j * sa * z / e_phi,
                -0.5j * sa * fp / e_phi + 0.5j * e_phi * sa * fm + ca * z,
            )
            f = torch.cat([fm.conj().flip(-1)[:, :-1], fp], 1)
        for e in range(rep.event_count):
            dt = rep.event_time[e]
            e2 = torch.exp(-dt / t2)[:, None]
            e1 = torch.exp(-dt / t1)[:, None]
            f = f * (e2 * torch.exp(-1j * w * dt))
            z = z * e1 + (1 - e1) * unit
            f = _shift(f, int(rep_shifts[e]))
            if bool(rep.adc_usage[e]):
                f0 = f[:, k - 1] * weight * torch.exp(-1j * rep.adc_phase[e].to(cdtype))
                samples.append((coil * f0).sum(-1))
    if not samples:
        return torch.zeros(0, phantom.coil_count, dtype=cdtype)
    return torch.stack(samples)

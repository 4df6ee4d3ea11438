"""PDG main pass: all voxels, only the planned states, fully differentiable.

The costly step of any PDG is *encoding*: summing every emitting state over every voxel
for every ADC sample. Here the readout of a repetition is factored as

    s_j = Σ_s Σ_r A_j(r) · W_s(r) · f_sj

* ``A_j(r) = exp(−u_j (1/T2 ± 1/T2′) − 2πi (u_j·B0 + κ_j·r))`` depends only on the time
  ``u_j`` and moment ``κ_j`` of sample j since the start of the ADC window and on the phantom;
  it is shared by all states (and by all repetitions with the same readout);
* ``W_s(r)`` is the state's magnetisation at the window start times PD, coil sensitivity and
  the phase of its dephasing (k_s, τ_s);
* ``f_sj`` holds what varies per (state, sample) but not per voxel: the voxel-shape factor, the
  sign of τ_s + u_j for the Lorentzian T2′ decay exp(−|τ|/T2′), and the Taylor terms of the
  diffusion attenuation accrued during the window.

so the whole readout is one complex matrix product ``(samples × voxels) @ (voxels × states)``
instead of one exponential per (sample, voxel, state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from ..._tensors import cexp, expi
from ...sequence.core import Repetition, Sequence
from .plan import PdgPlan
from .voxel_shape import voxel_dephasing

_TWO_PI = 2 * math.pi
#: Highest Taylor order of the in-window diffusion factor; a readout needing more raises (the
#: diffusion weighting inside an ADC window is then far beyond any imaging readout's).
_MAX_TAYLOR = 8


@dataclass
class _Tissue:
    """Flattened phantom: every (pool, voxel) is one spin population. Shapes ``(voxels,)``.

    The state amplitudes depend only on T1, T2, D and B1 (B0 and T2′ act through each
    state's dephasing time τ at the readout), so the graph runs once per *distinct*
    (T1, T2, D, B1): ``k_t1 … k_b1`` have shape ``(tissues,)`` and ``tissue_index`` maps
    each voxel to its tissue (``None`` when every voxel is its own tissue).
    """

    k_t1: torch.Tensor
    k_t2: torch.Tensor
    k_d: torch.Tensor
    k_b1: torch.Tensor
    tissue_index: torch.Tensor | None
    pd: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    t2dash: torch.Tensor
    d: torch.Tensor
    b0: torch.Tensor
    b1: torch.Tensor
    pos: torch.Tensor  # (voxels, 3)
    coil: torch.Tensor  # (coils, voxels)
    voxel_size: torch.Tensor
    has_diffusion: bool


@dataclass
class _State:
    p: torch.Tensor  # (n_p, voxels) complex
    p_k: torch.Tensor  # (n_p, 3)
    p_tau: torch.Tensor  # (n_p,)
    z: torch.Tensor  # (n_z, voxels) complex
    z_k: torch.Tensor
    z_tau: torch.Tensor
    z0: torch.Tensor  # (voxels,) real

    def flat(self) -> tuple[torch.Tensor, ...]:
        return (self.p, self.p_k, self.p_tau, self.z, self.z_k, self.z_tau, self.z0)


def _diffusion_terms(dt: torch.Tensor, g: torch.Tensor):
    """Cumulative integrals for the b-factor of a state entering the events with dephasing k.

    For events with durations ``dt`` and moments ``g`` (moment rising linearly in each event)
    the diffusion exponent after event e is (2π)² (|k|² T_e + 2 k·P_e + Q_e). Returns
    ``(T, P, Q)`` of shapes ``(events,)``, ``(events, 3)``, ``(events,)``.
    """
    k_prev = torch.cumsum(g, 0) - g
    T = torch.cumsum(dt, 0)
    P = torch.cumsum(dt[:, None] * (k_prev + g / 2), 0)
    Q = torch.cumsum(dt * ((k_prev**2).sum(1) + (k_prev * g).sum(1) + (g**2).sum(1) / 3), 0)
    return T, P, Q


def _b_exponent(k: torch.Tensor, T, P, Q) -> torch.Tensor:
    """(2π)²(|k|²T + 2k·P + Q) for states ``k (n, 3)`` and terms of shape ``(…)``/``(…, 3)`` → ``(n, …)``."""
    return _TWO_PI**2 * ((k**2).sum(-1)[:, None] * T[None] + 2 * k @ P.transpose(-1, -2) + Q[None])


def _pulse(rep: Repetition, rp, st: _State, t: _Tissue) -> _State:
    """Split every state at the repetition's RF pulse into the planned children."""
    angle = rep.pulse_angle * t.k_b1  # (tissues,)
    c2 = torch.cos(angle / 2) ** 2
    s2 = torch.sin(angle / 2) ** 2
    sn = torch.sin(angle)
    cs = torch.cos(angle)
    e1 = expi(rep.pulse_phase)
    e2 = expi(2 * rep.pulse_phase)
    m_i = -1j * e1  # −i e^{iφ}
    src = rp.p_src
    p_parts = [c2 * st.p[src["p"]], (e2 * s2) * st.p[src["p_conj"]].conj()]
    k_parts = [st.p_k[src["p"]], -st.p_k[src["p_conj"]]]
    tau_parts = [st.p_tau[src["p"]], -st.p_tau[src["p_conj"]]]
    if len(src["z0"]):
        p_parts.append((m_i * sn * st.z0)[None])
        k_parts.append(st.p_k.new_zeros(1, 3))
        tau_parts.append(st.p_tau.new_zeros(1))
    half = m_i * sn / 2
    p_parts += [half * st.z[src["z"]], half * st.z[src["z_conj"]].conj()]
    k_parts += [st.z_k[src["z"]], -st.z_k[src["z_conj"]]]
    tau_parts += [st.z_tau[src["z"]], -st.z_tau[src["z_conj"]]]
    zs = rp.z_src
    z_parts = [cs * st.z[zs["z"]], (-1j * e1.conj() * sn) * st.p[zs["p"]]]
    zk_parts = [st.z_k[zs["z"]], st.p_k[zs["p"]]]
    ztau_parts = [st.z_tau[zs["z"]], st.p_tau[zs["p"]]]
    p, p_k, p_tau = _gather(p_parts, k_parts, tau_parts, rp.p_dest, rp.p_first, rp.p_count, rp.merged)
    z, z_k, z_tau = _gather(z_parts, zk_parts, ztau_parts, rp.z_dest, rp.z_first, rp.z_count, rp.merged)
    return _State(p=p, p_k=p_k, p_tau=p_tau, z=z, z_k=z_k, z_tau=z_tau, z0=cs * st.z0)


def _gather(parts, k_parts, tau_parts, dest, first, count, merged):
    """Concatenate the candidate children and merge those the plan merged."""
    mag = torch.cat(parts)
    k = torch.cat(k_parts)
    tau = torch.cat(tau_parts)
    if not merged:
        return mag, k, tau
    out = mag.new_zeros(count, mag.shape[1]).index_add(0, dest, mag)
    return out, k[first], tau[first]


@dataclass
class _Readout:
    """One repetition's readout, waiting for its matrix product.

    ``terms`` holds ``(sign, cols, factor)``: the signal of the repetition is
    Σ_terms Σ_states (A^sign @ cols.T)[j, (state, coil)] · factor[j, state].
    """

    key: object
    u: torch.Tensor
    kappa: torch.Tensor
    terms: list
    n_samples: int
    demod: torch.Tensor  # (samples,) complex, e^{−iφ_adc}


def _readout(
    rep: Repetition, rp, emitted, t: _Tissue, voxel_shape: str, dtype, rep_index: int, cache: bool
) -> _Readout | None:
    """Prepare the repetition's readout (see :class:`_Readout`); ``None`` if nothing emits.

    ``emitted`` is ``(amplitudes (n_e, tissues), k (n_e, 3), τ (n_e,))`` of the emitting states
    right after the repetition's pulse. The 0/1 decisions (sinc band edge, sign of τ) use the
    plan's float64 (k, τ): a Cartesian sample sits exactly on the band edge, and the k of a
    state followed over many repetitions in float32 is off by more than the edge's slack.
    """
    adc = rep.adc_usage
    n_s = int(adc.sum())
    amp, p_k, p_tau = emitted
    if amp.shape[0] == 0:
        return None
    dt, g = rep.event_time, rep.gradm
    cum_t, cum_g = torch.cumsum(dt, 0), torch.cumsum(g, 0)
    first = int(torch.nonzero(adc)[0])
    t_w = cum_t[first] - dt[first]
    k_w = cum_g[first] - g[first]
    # sums over the window only, so that equal readouts give bitwise equal u and κ
    # whatever the phase encoding before them
    u = torch.cumsum(dt[first:], 0)[adc[first:]]  # (samples,)
    kappa = torch.cumsum(g[first:], 0)[adc[first:]]  # (samples, 3)

    a_s = amp if t.tissue_index is None else amp[:, t.tissue_index]  # (n_e, voxels)
    k_s = p_k + k_w  # dephasing at the window start
    tau_s = p_tau + t_w
    re = -t_w / t.t2[None].expand_as(a_s.real)
    phase = -_TWO_PI * (k_s @ t.pos.T + tau_s[:, None] * t.b0[None])
    taylor_coef = None
    if t.has_diffusion:
        T, P, Q = _diffusion_terms(dt, g)
        c = _b_exponent(p_k, T, P, Q)  # (n_e, events), cumulative
        c_w = c[:, first - 1] if first > 0 else torch.zeros_like(c[:, 0])
        re = re - c_w[:, None] * t.d[None]
        dc = (c[:, adc] - c_w[:, None]).clamp_min(0)  # (n_e, samples)
        bound = float(t.d.detach().max()) * float(dc.detach().max()) if dc.numel() else 0.0
        tol = 1e-7 if dtype == torch.complex64 else 1e-13
        order = 0
        while bound ** (order + 1) / math.factorial(order + 1) > tol and order < _MAX_TAYLOR:
            order += 1
        if bound ** (order + 1) / math.factorial(order + 1) > tol:
            raise NotImplementedError(
                f"diffusion weighting during the ADC window is too strong for the PDG readout (D·Δb = {bound:.3g}); "
                "move diffusion gradients out of the ADC window"
            )
        taylor_coef = [(-dc) ** p / math.factorial(p) for p in range(order + 1)]
    w = a_s * t.pd[None] * cexp(re, phase)  # (n_e, voxels)

    g64, dt64 = rep.gradm.detach().double(), rep.event_time.detach().double()
    cg64, ct64 = torch.cumsum(g64, 0), torch.cumsum(dt64, 0)
    k64 = rp.emit_k.to(g64.device)[:, None, :] + cg64[adc][None]  # (n_e, samples, 3)
    if voxel_shape == "sinc":
        shape_f = voxel_dephasing(k64, t.voxel_size.double(), voxel_shape).to(u.dtype)  # (n_e, samples)
    else:
        shape_f = voxel_dephasing(k_s[:, None, :] + kappa[None], t.voxel_size, voxel_shape)
    tau_j = (rp.emit_tau.to(g64.device)[:, None] + ct64[adc][None]) >= 0  # sign of τ at each sample
    terms = []
    for sign, mask in ((1, tau_j), (-1, ~tau_j)):
        if not bool(mask.any()):
            continue
        w_sign = w * torch.exp(-sign * tau_s[:, None] / t.t2dash[None])
        factor = (shape_f * mask).T  # (samples, n_e)
        for p, coef in enumerate(taylor_coef if taylor_coef is not None else [None]):
            w_p = w_sign * t.d[None] ** p if p else w_sign
            cols = (w_p[:, None, :] * t.coil[None]).reshape(-1, w_p.shape[-1])  # (n_e·coils, voxels)
            terms.append((sign, cols, factor if coef is None else factor * coef.T))
    if cache:
        # equal up to 1 ps and 1e-6 1/m is equal: the matrix of the first such readout is reused
        key = (
            torch.round(u.detach().double() / 1e-12).to(torch.int64).cpu().numpy().tobytes(),
            torch.round(kappa.detach().double() / 1e-6).to(torch.int64).cpu().numpy().tobytes(),
        )
    else:
        key = rep_index
    return _Readout(key=key, u=u, kappa=kappa, terms=terms, n_samples=n_s, demod=expi(-rep.adc_phase[adc]))


def _encode_all(readouts: list, t: _Tissue, cdtype) -> list[torch.Tensor]:
    """Signals of all prepared readouts: one matrix product per distinct (A, sign)."""
    n_c = t.coil.shape[0]
    out: list = [None] * len(readouts)
    groups: dict = {}
    for i, ro in enumerate(readouts):
        if ro is None:
            continue
        for sign, cols, factor in ro.terms:
            groups.setdefault((ro.key, sign), []).append((i, cols, factor))
    for (_, sign), items in groups.items():
        ro0 = readouts[items[0][0]]
        rate = 1 / t.t2 + sign / t.t2dash
        phase = -_TWO_PI * (ro0.u[:, None] * t.b0[None] + ro0.kappa @ t.pos.T)
        a = cexp(-ro0.u[:, None] * rate[None], phase)  # (samples, voxels)
        y = a @ torch.cat([c for _, c, _ in items]).T  # (samples, Σ n_e·coils)
        pos = 0
        for i, cols, factor in items:
            n = cols.shape[0]
            part = y[:, pos : pos + n].reshape(y.shape[0], -1, n_c)
            pos += n
            contrib = (part * factor[:, :, None]).sum(1)
            out[i] = contrib if out[i] is None else out[i] + contrib
    return [
        None
        if ro is None
        else (torch.zeros(ro.n_samples, n_c, dtype=cdtype, device=ro.demod.device) if out[i] is None else out[i])
        * ro.demod[:, None]
        for i, ro in enumerate(readouts)
    ]


def _relax(rep: Repetition, st: _State, t: _Tissue) -> _State:
    """Free evolution of every state over the whole repetition (after its samples were taken)."""
    dt, g = rep.event_time, rep.gradm
    total_t = dt.sum()
    e2 = torch.exp(-total_t / t.k_t2)
    e1 = torch.exp(-total_t / t.k_t1)
    p = st.p * e2[None]
    z = st.z * e1[None]
    if t.has_diffusion and dt.numel():
        T, P, Q = _diffusion_terms(dt, g)
        beta = _b_exponent(st.p_k, T[-1:], P[-1:], Q[-1:])[:, 0]
        p = p * torch.exp(-beta[:, None] * t.k_d[None])
        beta_z = _TWO_PI**2 * (st.z_k**2).sum(1) * total_t
        z = z * torch.exp(-beta_z[:, None] * t.k_d[None])
    moment = g.sum(0)
    return _State(
        p=p,
        p_k=st.p_k + moment,
        p_tau=st.p_tau + total_t,
        z=z,
        z_k=st.z_k,
        z_tau=st.z_tau,
        z0=st.z0 * e1 + (1 - e1),
    )


def run_plan(
    sequence: Sequence,
    plan: PdgPlan,
    tissue: _Tissue,
    *,
    voxel_shape: str,
    checkpoint_every: int | None,
    progress: bool,
) -> torch.Tensor:
    """Execute the planned graph; returns the signal ``(samples, coils)``."""
    real = tissue.pd.dtype
    cdtype = torch.complex128 if real == torch.float64 else torch.complex64
    dev = tissue.pd.device
    v = tissue.k_t1.shape[0]  # the graph runs per tissue
    n_c = tissue.coil.shape[0]
    cache = not any(r.event_time.requires_grad or r.gradm.requires_grad for r in sequence)
    st = _State(
        p=torch.zeros(0, v, dtype=cdtype, device=dev),
        p_k=torch.zeros(0, 3, dtype=real, device=dev),
        p_tau=torch.zeros(0, dtype=real, device=dev),
        z=torch.zeros(0, v, dtype=cdtype, device=dev),
        z_k=torch.zeros(0, 3, dtype=real, device=dev),
        z_tau=torch.zeros(0, dtype=real, device=dev),
        z0=torch.ones(v, dtype=real, device=dev),
    )
    reps = [r.to(dev, real) for r in sequence]
    adc_reps = [i for i, r in enumerate(reps) if r.adc_count]

    def run_chunk(start: int, stop: int, *flat):
        """Evolve the states over repetitions [start, stop); also return the emitting states of
        every repetition with samples (they are all the readout needs)."""
        s = _State(*flat[:7])
        emitted = []
        for i in range(start, stop):
            s = _pulse(reps[i], plan.reps[i], s, tissue)
            if reps[i].adc_count:
                e = plan.reps[i].emit
                emitted += [s.p[e], s.p_k[e], s.p_tau[e]]
            s = _relax(reps[i], s, tissue)
        return (*s.flat(), *emitted)

    n = len(reps)
    step = n if not checkpoint_every else max(1, int(checkpoint_every))
    use_checkpoint = bool(checkpoint_every) and torch.is_grad_enabled()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="PDG", unit="rep")
    flat = st.flat()
    emitted: list = []
    for start in range(0, n, step):
        stop = min(n, start + step)
        if use_checkpoint:
            out = checkpoint(run_chunk, start, stop, *flat, use_reentrant=False)
        else:
            out = run_chunk(start, stop, *flat)
        flat, em = out[:7], out[7:]
        emitted += [em[j : j + 3] for j in range(0, len(em), 3)]
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    readouts = [
        _readout(reps[i], plan.reps[i], e, tissue, voxel_shape, cdtype, i, cache)
        for i, e in zip(adc_reps, emitted, strict=True)
    ]
    signals = [
        torch.zeros(ro_n, n_c, dtype=cdtype, device=dev) if sig is None else sig
        for sig, ro_n in zip(
            _encode_all(readouts, tissue, cdtype),
            [int(r.adc_usage.sum()) for r in reps if r.adc_count],
            strict=True,
        )
    ]
    return torch.cat(signals) if signals else torch.zeros(0, n_c, dtype=cdtype, device=dev)

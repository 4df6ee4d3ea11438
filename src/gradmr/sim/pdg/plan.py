"""PDG pre-pass: which states exist and which of them carry signal (no autograd).

The Phase Distribution Graph (Endres et al., MRM 2023) describes the magnetisation as a
sum of *states*. A transverse state (``+``) holds M⁺ with a dephasing k (1/m) and a
dephasing time τ (s); a longitudinal state (``z``) holds Mz = Re[b·exp(iθ)] with its own
k and τ; ``z0`` is the relaxed, undephased longitudinal magnetisation that recovers
towards M0. At every RF pulse each state splits into children:

==========  ===========================================  ============
child       from                                         (k, τ)
==========  ===========================================  ============
``+``       ``+`` · cos²(α/2)                            (k, τ)
``+``       conj(``+``) · e^{2iφ} sin²(α/2)              (−k, −τ)
``+``       ``z0`` · (−i e^{iφ} sin α)                   (0, 0)
``+``       ``z`` · (−i/2 e^{iφ} sin α)                  (k, τ)
``+``       conj(``z``) · (−i/2 e^{iφ} sin α)            (−k, −τ)
``z``       ``z`` · cos α                                (k, τ)
``z``       ``+`` · (−i e^{−iφ} sin α)                   (k, τ)
``z0``      ``z0`` · cos α                               (0, 0)
==========  ===========================================  ============

States are never merged: every state's k and τ is an exact function of the sequence, so
gradients with respect to gradient moments and event times stay exact.

The pre-pass runs this graph for a handful of representative tissues of the phantom. It
tracks each state twice: its exact complex amplitude (RF phases included; B0, T2′ and the
voxel position give all paths merged into one state the same phase, so they cannot change its
size), and an upper bound of what the paths merged into it can contribute — the sum of their
bounds, capped at 1, the largest a Fourier coefficient of magnetisation can be. Candidates
smaller than ``min_magnitude`` are dropped (a path costs at most its own size); when more than
``max_states`` remain, the largest by exact size are kept. A state's *latent signal* — the
largest bound it or any descendant emits with — bounds what dropping it costs; the main pass
simulates only states with latent signal ≥ ``min_latent`` and computes the signal only of
states that emit ≥ ``min_emitted`` in a repetition. (Bounds alone, uncapped, once also ranked
the states for the cap: over long trains of long-T2 tissue they grew without limit and the cap
then dropped the freshly excited states — an MRF train of CSF lost its signal after ≈ 400
repetitions.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ...sequence.core import Sequence
from .voxel_shape import voxel_dephasing

#: Child kinds of transverse states, in the order the main pass concatenates them.
P_KINDS = ("p", "p_conj", "z0", "z", "z_conj")
#: Child kinds of longitudinal states.
Z_KINDS = ("z", "p")


@dataclass
class RepPlan:
    """The states of one repetition, built from the previous repetition's states.

    Children are first listed as *candidates*: ``p_src[kind]`` gives the parent index (into
    the previous ``+`` or ``z`` states) of every ``+`` candidate of that kind, concatenated in
    the order of :data:`P_KINDS`. Candidates with identical (k, τ) are merged into one state:
    ``p_dest`` maps each candidate to its state and ``p_first`` names, for each state, the
    candidate whose (k, τ) it takes. ``z_*`` likewise for :data:`Z_KINDS`. ``emit`` indexes
    the ``+`` states whose signal is computed in this repetition; ``emit_k`` and ``emit_tau``
    are their (k, τ) after the pulse in float64, for the decisions the main pass must not take
    on float32 round-off (the band edge of a sinc voxel, the sign of τ).
    """

    p_src: dict[str, torch.Tensor]
    p_dest: torch.Tensor
    p_first: torch.Tensor
    z_src: dict[str, torch.Tensor]
    z_dest: torch.Tensor
    z_first: torch.Tensor
    emit: torch.Tensor
    emit_k: torch.Tensor
    emit_tau: torch.Tensor
    p_count: int
    z_count: int
    merged: bool


@dataclass
class PdgPlan:
    reps: list[RepPlan]
    stats: dict = field(default_factory=dict)


@dataclass
class _States:
    k: np.ndarray  # (n, 3)
    tau: np.ndarray  # (n,)
    amp: np.ndarray  # (n, K) complex: the state's value for each representative tissue
    bound: np.ndarray  # (n, K): upper bound of what the paths merged into the state can contribute (≤ 1)

    @staticmethod
    def empty(n_tissues: int) -> _States:
        return _States(np.zeros((0, 3)), np.zeros(0), np.zeros((0, n_tissues), dtype=complex), np.zeros((0, n_tissues)))

    def size(self) -> np.ndarray:
        """Largest |amplitude| over the representative tissues, ``(n,)``."""
        return np.abs(self.amp).max(1) if len(self) else np.zeros(0)

    def reach(self) -> np.ndarray:
        """Largest bound over the representative tissues, ``(n,)``."""
        return self.bound.max(1) if len(self) else np.zeros(0)

    def __len__(self) -> int:
        return self.tau.shape[0]


#: Resolution of the merge keys. Candidates whose k differ by less than a k quantum and whose
#: τ differ by less than _TAU_QUANTUM (s) become one state taking the first one's (k, τ).
#: The k quantum is _K_CYCLES_PER_FOV / FOV (1/m). The quanta must exceed the round-off of
#: files: pypulseq writes shapes with about 6 significant digits, so the rewound phase encoding
#: of a .seq leaves up to ~6e-4 1/m per repetition (at 256 lines), which accumulates along a
#: path; float32 sums of times err by ~1e-9 s. Finer keys fail to recognise equal paths and the
#: graph grows as an unmerged one. Measured on a pypulseq 128² FLASH (float64): keys of 1e-4,
#: 1e-3 and 1e-2 cycles per FOV give signals within 3e-4 NRMSE of each other, with 20.6, 3.2 and
#: 1.0 emitting states per repetition. The phase neglected by one merge is at most
#: 2π·_K_CYCLES_PER_FOV/2 ≈ 0.03 rad at the edge of the FOV, and 2π·B0·_TAU_QUANTUM from τ
#: (≤ 6e-4 rad at 1 kHz).
_K_CYCLES_PER_FOV = 1e-2
_TAU_QUANTUM = 1e-7


@dataclass
class _Candidates:
    src: dict  # kind -> parent indices
    k: np.ndarray
    tau: np.ndarray
    amp: np.ndarray  # (n, K) complex
    bound: np.ndarray  # (n, K) real


def _merge(c: _Candidates, merge: bool, k_quantum: float, tau_quantum: float):
    """Group candidates with equal (k, τ). Returns (dest, first, summed amplitudes of the groups)."""
    n = c.tau.shape[0]
    if not merge or n == 0:
        return np.arange(n), np.arange(n), c.amp, np.minimum(c.bound, 1.0)
    tau_key = np.zeros_like(c.tau) if math.isinf(tau_quantum) else np.round(c.tau / tau_quantum)
    keys = np.concatenate([np.round(c.k / k_quantum), tau_key[:, None]], axis=1)
    keys = keys.astype(np.int64)
    order = np.lexsort(keys.T[::-1])
    sorted_keys = keys[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(1)
    group_of_sorted = np.cumsum(new_group) - 1
    dest = np.empty(n, dtype=np.int64)
    dest[order] = group_of_sorted
    first = order[new_group]  # lexsort is stable: the first candidate of each group
    amp = np.zeros((first.shape[0], c.amp.shape[1]), dtype=complex)
    np.add.at(amp, dest, c.amp)
    bound = np.zeros((first.shape[0], c.amp.shape[1]))
    np.add.at(bound, dest, c.bound)
    # the sum of the merged paths' bounds, but never above 1: a state is a Fourier coefficient of magnetisation
    # of length ≤ 1 (summed bounds alone grow without limit over long trains of long-T2 tissue)
    return dest, first, amp, np.minimum(bound, 1.0)


def representative_tissues(
    t1: torch.Tensor, t2: torch.Tensor, t2dash: torch.Tensor, d: torch.Tensor, b1: torch.Tensor, pd: torch.Tensor
) -> dict[str, np.ndarray]:
    """A few voxels that bound the phantom's behaviour: longest/shortest T1, longest T2 and T2',
    smallest D, lowest and highest B1, and the median-T1 voxel. Arrays of shape ``(K,)``."""
    mask = pd.detach().flatten() > 0
    if not mask.any():
        mask = torch.ones_like(mask)
    maps = {
        n: m.detach().flatten()[mask].double().cpu() for n, m in dict(t1=t1, t2=t2, t2dash=t2dash, d=d, b1=b1).items()
    }
    picks = {
        int(maps["t1"].argmax()),
        int(maps["t1"].argmin()),
        int(maps["t2"].argmax()),
        int(maps["t2dash"].argmax()),
        int(maps["d"].argmin()),
        int(maps["b1"].argmin()),
        int(maps["b1"].argmax()),
        int(maps["t1"].argsort()[len(maps["t1"]) // 2]),
    }
    idx = torch.tensor(sorted(picks))
    return {n: m[idx].numpy() for n, m in maps.items()}


def make_plan(
    sequence: Sequence,
    tissues: dict[str, np.ndarray],
    voxel_size: np.ndarray,
    *,
    fov: float,
    voxel_shape: str,
    max_states: int,
    min_magnitude: float,
    min_emitted: float,
    min_latent: float,
    merge: bool,
    tau_quantum: float | None = None,
) -> PdgPlan:
    """Run the graph on the representative ``tissues`` and prune it (see the module docstring)."""
    t1, t2, t2d, dif, b1 = (np.asarray(tissues[n], dtype=np.float64) for n in ("t1", "t2", "t2dash", "d", "b1"))
    n_t = t1.shape[0]
    t2_env, t2d_env = t2.max(), t2d.max()
    vsize = torch.as_tensor(np.asarray(voxel_size, dtype=np.float64))
    two_pi_sq = (2 * np.pi) ** 2
    k_quantum = _K_CYCLES_PER_FOV / fov
    tau_quantum = _TAU_QUANTUM if tau_quantum is None else float(tau_quantum)

    P = _States.empty(n_t)
    Z = _States.empty(n_t)
    z0 = np.ones(n_t)
    raw = []
    max_seen = 0
    cap_dropped = 0.0  # largest state the max_states cap dropped
    for rep in sequence:
        alpha = float(rep.pulse_angle.detach())
        phi = float(rep.pulse_phase.detach())
        ab = b1 * alpha
        c2, s2 = np.cos(ab / 2) ** 2, np.sin(ab / 2) ** 2
        sn, cs = np.sin(ab), np.cos(ab)
        e1, e2 = np.exp(1j * phi), np.exp(2j * phi)
        m_i = -1j * e1
        ar_p, ar_z = np.arange(len(P)), np.arange(len(Z))
        zero = np.zeros(1, dtype=np.int64)

        cp = _Candidates(
            src={"p": ar_p, "p_conj": ar_p, "z0": zero, "z": ar_z, "z_conj": ar_z},
            k=np.concatenate([P.k, -P.k, np.zeros((1, 3)), Z.k, -Z.k]),
            tau=np.concatenate([P.tau, -P.tau, np.zeros(1), Z.tau, -Z.tau]),
            amp=np.concatenate(
                [
                    P.amp * c2,
                    P.amp.conj() * (e2 * s2),
                    (z0 * m_i * sn)[None],
                    Z.amp * (m_i * sn / 2),
                    Z.amp.conj() * (m_i * sn / 2),
                ]
            ),
            bound=np.concatenate(
                [
                    P.bound * c2,
                    P.bound * s2,
                    (np.abs(z0 * sn))[None],
                    Z.bound * np.abs(sn / 2),
                    Z.bound * np.abs(sn / 2),
                ]
            ),
        )
        cz = _Candidates(
            src={"z": ar_z, "p": ar_p},
            k=np.concatenate([Z.k, P.k]),
            tau=np.concatenate([Z.tau, P.tau]),
            amp=np.concatenate([Z.amp * cs, P.amp * (-1j * np.conj(e1) * sn)]),
            bound=np.concatenate([Z.bound * np.abs(cs), P.bound * np.abs(sn)]),
        )
        z0 = z0 * cs
        # drop negligible candidates, merge equal (k, τ), then cap the number of states
        p_src, p_dest, p_first, P = _children(cp, min_magnitude, merge, k_quantum, tau_quantum)
        z_src, z_dest, z_first, Z = _children(cz, min_magnitude, merge, k_quantum, tau_quantum)
        if len(P) + len(Z) > max_states:
            sizes = np.concatenate([P.size(), Z.size()])
            keep = np.zeros(sizes.shape[0], dtype=bool)
            keep[np.argsort(-sizes, kind="stable")[:max_states]] = True
            cap_dropped = max(cap_dropped, float(sizes[~keep].max()))
            kp, kz = keep[: len(P)], keep[len(P) :]
            p_src, p_dest, p_first = _select_edges(p_src, p_dest, kp, {})
            z_src, z_dest, z_first = _select_edges(z_src, z_dest, kz, {})
            P = _States(P.k[kp], P.tau[kp], P.amp[kp], P.bound[kp])
            Z = _States(Z.k[kz], Z.tau[kz], Z.amp[kz], Z.bound[kz])
        max_seen = max(max_seen, len(P) + len(Z))
        k_after_pulse, tau_after_pulse = P.k, P.tau  # the evolution below makes new arrays

        # ---- free evolution over the repetition's events
        dt = rep.event_time.detach().double().cpu().numpy()
        g = rep.gradm.detach().double().cpu().numpy()
        cum_t, cum_g = np.cumsum(dt), np.cumsum(g, axis=0)
        total_t = cum_t[-1] if dt.size else 0.0
        k_prev = np.concatenate([np.zeros((1, 3)), cum_g[:-1]]) if dt.size else np.zeros((0, 3))
        p_lin = (dt[:, None] * (k_prev + g / 2)).sum(0)
        q_lin = (dt * ((k_prev**2).sum(1) + (k_prev * g).sum(1) + (g**2).sum(1) / 3)).sum()

        size, z_size = P.reach(), Z.reach()  # right after the pulse
        factor = np.zeros(len(P))
        adc = rep.adc_usage.cpu().numpy()
        if adc.any() and len(P):
            factor = _emission(P, size, cum_t[adc], cum_g[adc], t2_env, t2d_env, vsize, voxel_shape, min_emitted)

        beta = two_pi_sq * ((P.k**2).sum(1) * total_t + 2 * P.k @ p_lin + q_lin)
        relax = np.exp(-total_t / t2)[None] * np.exp(-np.outer(beta, dif))
        P.amp, P.bound = P.amp * relax, P.bound * relax
        if dt.size:
            P.k = P.k + cum_g[-1]
        P.tau = P.tau + total_t
        beta_z = two_pi_sq * (Z.k**2).sum(1) * total_t
        relax = np.exp(-total_t / t1)[None] * np.exp(-np.outer(beta_z, dif))
        Z.amp, Z.bound = Z.amp * relax, Z.bound * relax
        e1_t = np.exp(-total_t / t1)
        z0 = z0 * e1_t + (1 - e1_t)
        raw.append(
            dict(
                p_src=p_src,
                p_dest=p_dest,
                z_src=z_src,
                z_dest=z_dest,
                size=size,
                z_size=z_size,
                factor=factor,
                nz=len(Z),
                k=k_after_pulse,
                tau=tau_after_pulse,
            )
        )

    plan = _prune_latent(raw, min_latent=min_latent, min_emitted=min_emitted, max_seen=max_seen, merge=merge)
    plan.stats["cap_dropped_max"] = cap_dropped
    return plan


def _children(c: _Candidates, min_magnitude: float, merge: bool, k_quantum: float, tau_quantum: float):
    """Drop candidates smaller than ``min_magnitude`` (what dropping one costs is its own size), merge equal (k, τ).

    Returns (src, dest, first, states).
    """
    keep = np.abs(c.amp).max(1) >= min_magnitude if len(c.amp) else np.zeros(0, dtype=bool)
    src, pos = {}, 0
    for kind, idx in c.src.items():
        src[kind] = idx[keep[pos : pos + len(idx)]]
        pos += len(idx)
    kept = _Candidates(src, c.k[keep], c.tau[keep], c.amp[keep], c.bound[keep])
    dest, first, amp, bound = _merge(kept, merge, k_quantum, tau_quantum)
    return src, dest, first, _States(kept.k[first], kept.tau[first], amp, bound)


def _emission(P, size, t_adc, k_adc, t2_env, t2d_env, vsize, voxel_shape, min_emitted) -> np.ndarray:
    """Emission factor (≤ 1) of each + state in this repetition: its largest sample is at most size × factor.

    Zero for states smaller than ``min_emitted``.
    """
    emitted = np.zeros(len(P))
    cand = np.flatnonzero(size >= min_emitted)
    if cand.size == 0:
        return emitted
    if voxel_shape == "sinc":
        # quick reject: the readout's k range misses the band on some axis
        lo = P.k[cand] + k_adc.min(0)
        hi = P.k[cand] + k_adc.max(0)
        nyq = 0.5 / vsize.numpy()
        overlap = ((hi >= -nyq * (1 + 2e-3)) & (lo < nyq)).all(1)  # wider than voxel_shape._EDGE_SLACK
        cand = cand[overlap]
        if cand.size == 0:
            return emitted
    kk = torch.from_numpy(P.k[cand][:, None, :] + k_adc[None])
    shape = voxel_dephasing(kk, vsize, voxel_shape).abs().numpy()
    tau = P.tau[cand][:, None] + t_adc[None]
    env = np.exp(-t_adc[None] / t2_env - np.abs(tau) / t2d_env)
    emitted[cand] = (shape * env).max(1)
    return emitted


def _edge_mask(src: dict, parents: dict) -> np.ndarray:
    """Which candidates come from a kept parent (``z0`` always does), in the concatenated order of ``src``."""
    return (
        np.concatenate(
            [parents[kind][idx] if kind in parents else np.ones(len(idx), dtype=bool) for kind, idx in src.items()]
        )
        if src
        else np.zeros(0, dtype=bool)
    )


def _with_parents(keep_slot: np.ndarray, src: dict, dest: np.ndarray, parents: dict) -> np.ndarray:
    """``keep_slot`` restricted to slots that receive at least one candidate from a kept parent."""
    fed = np.zeros(keep_slot.shape[0], dtype=bool)
    fed[dest[_edge_mask(src, parents)]] = True
    return keep_slot & fed


def _select_edges(src: dict, dest: np.ndarray, keep_slot: np.ndarray, parents: dict):
    """Keep candidates that come from a kept parent and go to a kept slot; renumber. Returns (src, dest, first)."""
    keep_cand = keep_slot[dest] & _edge_mask(src, parents)
    new_index = np.cumsum(keep_slot) - 1
    out, pos = {}, 0
    for kind, idx in src.items():
        out[kind] = idx[keep_cand[pos : pos + len(idx)]]
        pos += len(idx)
    new_dest = new_index[dest[keep_cand]]
    first = np.zeros(int(keep_slot.sum()), dtype=np.int64)
    rev = np.arange(new_dest.shape[0])[::-1]
    first[new_dest[rev]] = rev  # the last write wins: the first kept candidate of each slot
    return out, new_dest, first


def _prune_latent(raw, *, min_latent: float, min_emitted: float, max_seen: int, merge: bool) -> PdgPlan:
    n_reps = len(raw)
    # latent signal of every state, propagated from the last repetition backwards
    lat_p = [r["size"] * r["factor"] for r in raw]
    lat_z = [np.zeros(r["nz"]) for r in raw]
    for r in range(n_reps - 1, 0, -1):
        via_p = lat_p[r][raw[r]["p_dest"]]
        via_z = lat_z[r][raw[r]["z_dest"]]
        pos = 0
        for kind, idx in raw[r]["p_src"].items():
            child = via_p[pos : pos + len(idx)]
            pos += len(idx)
            if kind != "z0":
                np.maximum.at(lat_p[r - 1] if kind.startswith("p") else lat_z[r - 1], idx, child)
        pos = 0
        for kind, idx in raw[r]["z_src"].items():
            child = via_z[pos : pos + len(idx)]
            pos += len(idx)
            np.maximum.at(lat_z[r - 1] if kind == "z" else lat_p[r - 1], idx, child)

    reps: list[RepPlan] = []
    prev_p = np.zeros(0, dtype=np.int64)
    prev_z = np.zeros(0, dtype=np.int64)
    kept_p = np.zeros(0, dtype=bool)  # which states of the previous repetition were kept
    kept_z = np.zeros(0, dtype=bool)
    total_p = total_z = total_emit = 0
    for r in range(n_reps):
        # a kept state takes the contributions of its kept parents only (a dropped parent's share is what its
        # latent signal bounds); a state left without any parent is dropped as well
        parents = {"p": kept_p, "p_conj": kept_p, "z": kept_z, "z_conj": kept_z}
        keep_p = _with_parents(lat_p[r] >= min_latent, raw[r]["p_src"], raw[r]["p_dest"], parents)
        keep_z = _with_parents(lat_z[r] >= min_latent, raw[r]["z_src"], raw[r]["z_dest"], {"z": kept_z, "p": kept_p})
        p_src, p_dest, p_first = _select_edges(raw[r]["p_src"], raw[r]["p_dest"], keep_p, parents)
        z_src, z_dest, z_first = _select_edges(raw[r]["z_src"], raw[r]["z_dest"], keep_z, {"z": kept_z, "p": kept_p})
        kept_p, kept_z = keep_p, keep_z
        for kind in p_src:
            if kind != "z0":
                p_src[kind] = (prev_p if kind.startswith("p") else prev_z)[p_src[kind]]
        for kind in z_src:
            z_src[kind] = (prev_z if kind == "z" else prev_p)[z_src[kind]]
        map_p = np.cumsum(keep_p) - 1
        map_z = np.cumsum(keep_z) - 1
        emit_orig = np.flatnonzero((raw[r]["size"] * raw[r]["factor"] >= min_emitted) & keep_p)
        emit = map_p[emit_orig]
        reps.append(
            RepPlan(
                p_src={k: torch.from_numpy(v.astype(np.int64)) for k, v in p_src.items()},
                p_dest=torch.from_numpy(p_dest.astype(np.int64)),
                p_first=torch.from_numpy(p_first),
                z_src={k: torch.from_numpy(v.astype(np.int64)) for k, v in z_src.items()},
                z_dest=torch.from_numpy(z_dest.astype(np.int64)),
                z_first=torch.from_numpy(z_first),
                emit=torch.from_numpy(emit.astype(np.int64)),
                emit_k=torch.from_numpy(raw[r]["k"][emit_orig].copy()),
                emit_tau=torch.from_numpy(raw[r]["tau"][emit_orig].copy()),
                p_count=int(keep_p.sum()),
                z_count=int(keep_z.sum()),
                merged=merge,
            )
        )
        prev_p, prev_z = map_p, map_z
        total_p += int(keep_p.sum())
        total_z += int(keep_z.sum())
        total_emit += emit.size
    stats = {
        "merged": merge,
        "states_seen_max": max_seen,
        "plus_states_mean": total_p / max(n_reps, 1),
        "z_states_mean": total_z / max(n_reps, 1),
        "emitting_states_mean": total_emit / max(n_reps, 1),
    }
    return PdgPlan(reps=reps, stats=stats)

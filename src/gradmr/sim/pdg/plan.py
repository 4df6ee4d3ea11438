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

The pre-pass runs this graph for a handful of representative tissues of the phantom,
tracking only magnitudes. Every child's magnitude is at most its parent's, so a state's
*latent signal* — the largest signal it or any descendant emits — bounds what dropping it
costs. The main pass then simulates only states with latent signal ≥ ``min_latent`` and
computes the signal only of states that emit ≥ ``min_emitted`` in a repetition.
"""

from __future__ import annotations

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
    mag: np.ndarray  # (n, K)

    @staticmethod
    def empty(n_tissues: int) -> _States:
        return _States(np.zeros((0, 3)), np.zeros(0), np.zeros((0, n_tissues)))

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
    mag: np.ndarray


def _merge(c: _Candidates, merge: bool, k_quantum: float):
    """Group candidates with equal (k, τ). Returns (dest, first, slot magnitudes)."""
    n = c.tau.shape[0]
    if not merge or n == 0:
        return np.arange(n), np.arange(n), c.mag
    keys = np.concatenate([np.round(c.k / k_quantum), np.round(c.tau / _TAU_QUANTUM)[:, None]], axis=1)
    keys = keys.astype(np.int64)
    order = np.lexsort(keys.T[::-1])
    sorted_keys = keys[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(1)
    group_of_sorted = np.cumsum(new_group) - 1
    dest = np.empty(n, dtype=np.int64)
    dest[order] = group_of_sorted
    first = order[new_group]  # lexsort is stable: the first candidate of each group
    mag = np.zeros((first.shape[0], c.mag.shape[1]))
    # Summed bounds of merged paths grow with every pulse where coherences do not decay (long T2): after
    # ≈ 2000 repetitions they may pass the float range and saturate at inf. A saturated state is never pruned by
    # a threshold; only the max_states cap then chooses among saturated states, in (k, τ) order. Checked against
    # the unpruned graph on 2500 repetitions of an RF-spoiled FLASH of CSF: equal to 2e-6.
    with np.errstate(over="ignore", invalid="ignore"):
        np.add.at(mag, dest, c.mag)
    return dest, first, mag


def _select(c: _Candidates, dest: np.ndarray, keep_slot: np.ndarray):
    """Drop candidates whose slot is dropped; renumber slots. Returns (src, dest, first)."""
    new_index = np.cumsum(keep_slot) - 1
    keep_cand = keep_slot[dest]
    src, pos = {}, 0
    for kind, idx in c.src.items():
        src[kind] = idx[keep_cand[pos : pos + len(idx)]]
        pos += len(idx)
    new_dest = new_index[dest[keep_cand]]
    first = np.zeros(int(keep_slot.sum()), dtype=np.int64)
    rev = np.arange(new_dest.shape[0])[::-1]
    first[new_dest[rev]] = rev  # the last write wins: the first candidate of each slot
    return src, new_dest, first


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
) -> PdgPlan:
    """Run the graph on the representative ``tissues`` and prune it (see the module docstring)."""
    t1, t2, t2d, dif, b1 = (np.asarray(tissues[n], dtype=np.float64) for n in ("t1", "t2", "t2dash", "d", "b1"))
    n_t = t1.shape[0]
    t2_env, t2d_env = t2.max(), t2d.max()
    vsize = torch.as_tensor(np.asarray(voxel_size, dtype=np.float64))
    two_pi_sq = (2 * np.pi) ** 2
    k_quantum = _K_CYCLES_PER_FOV / fov

    P = _States.empty(n_t)
    Z = _States.empty(n_t)
    z0 = np.ones(n_t)
    raw = []
    max_seen = 0
    for rep in sequence:
        alpha = float(rep.pulse_angle.detach())
        ab = b1 * alpha
        c2, s2 = np.cos(ab / 2) ** 2, np.sin(ab / 2) ** 2
        sa, ca = np.abs(np.sin(ab)), np.abs(np.cos(ab))
        ar_p, ar_z = np.arange(len(P)), np.arange(len(Z))
        zero = np.zeros(1, dtype=np.int64)
        cp = _Candidates(
            src={"p": ar_p, "p_conj": ar_p, "z0": zero, "z": ar_z, "z_conj": ar_z},
            k=np.concatenate([P.k, -P.k, np.zeros((1, 3)), Z.k, -Z.k]),
            tau=np.concatenate([P.tau, -P.tau, np.zeros(1), Z.tau, -Z.tau]),
            mag=np.concatenate([P.mag * c2, P.mag * s2, (z0 * sa)[None], Z.mag * (sa / 2), Z.mag * (sa / 2)]),
        )
        cz = _Candidates(
            src={"z": ar_z, "p": ar_p},
            k=np.concatenate([Z.k, P.k]),
            tau=np.concatenate([Z.tau, P.tau]),
            mag=np.concatenate([Z.mag * ca, P.mag * sa]),
        )
        z0 = z0 * ca
        # drop negligible candidates, merge equal (k, τ), then cap the number of states
        p_src, p_dest, p_first, P = _children(cp, min_magnitude, merge, k_quantum)
        z_src, z_dest, z_first, Z = _children(cz, min_magnitude, merge, k_quantum)
        if len(P) + len(Z) > max_states:
            mags = np.concatenate([P.mag.max(1), Z.mag.max(1)])
            cut = np.sort(mags)[::-1][max_states - 1]
            keep = mags >= cut
            keep[np.flatnonzero(keep)[max_states:]] = False
            kp, kz = keep[: len(P)], keep[len(P) :]
            p_src, p_dest, p_first = _select(_Candidates(p_src, None, None, None), p_dest, kp)
            z_src, z_dest, z_first = _select(_Candidates(z_src, None, None, None), z_dest, kz)
            P = _States(P.k[kp], P.tau[kp], P.mag[kp])
            Z = _States(Z.k[kz], Z.tau[kz], Z.mag[kz])
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

        emitted = np.zeros(len(P))
        adc = rep.adc_usage.cpu().numpy()
        if adc.any() and len(P):
            emitted = _emission(P, cum_t[adc], cum_g[adc], t2_env, t2d_env, vsize, voxel_shape, min_emitted)

        beta = two_pi_sq * ((P.k**2).sum(1) * total_t + 2 * P.k @ p_lin + q_lin)
        P.mag = P.mag * np.exp(-total_t / t2)[None] * np.exp(-np.outer(beta, dif))
        if dt.size:
            P.k = P.k + cum_g[-1]
        P.tau = P.tau + total_t
        beta_z = two_pi_sq * (Z.k**2).sum(1) * total_t
        Z.mag = Z.mag * np.exp(-total_t / t1)[None] * np.exp(-np.outer(beta_z, dif))
        e1 = np.exp(-total_t / t1)
        z0 = z0 * e1 + (1 - e1)
        raw.append(
            dict(
                p_src=p_src,
                p_dest=p_dest,
                z_src=z_src,
                z_dest=z_dest,
                emitted=emitted,
                nz=len(Z),
                k=k_after_pulse,
                tau=tau_after_pulse,
            )
        )

    return _prune_latent(raw, min_latent=min_latent, min_emitted=min_emitted, max_seen=max_seen, merge=merge)


def _children(c: _Candidates, min_magnitude: float, merge: bool, k_quantum: float):
    """Magnitude pruning and merging of one kind of children. Returns (src, dest, first, states)."""
    keep = c.mag.max(1) >= min_magnitude
    src, pos = {}, 0
    for kind, idx in c.src.items():
        src[kind] = idx[keep[pos : pos + len(idx)]]
        pos += len(idx)
    kept = _Candidates(src, c.k[keep], c.tau[keep], c.mag[keep])
    dest, first, mag = _merge(kept, merge, k_quantum)
    return src, dest, first, _States(kept.k[first], kept.tau[first], mag)


def _emission(P, t_adc, k_adc, t2_env, t2d_env, vsize, voxel_shape, min_emitted) -> np.ndarray:
    """Upper bound of each + state's largest emitted sample in this repetition."""
    mag = P.mag.max(1)
    emitted = np.zeros(len(P))
    cand = np.flatnonzero(mag >= min_emitted)
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
    emitted[cand] = mag[cand] * (shape * env).max(1)
    return emitted


def _prune_latent(raw, *, min_latent: float, min_emitted: float, max_seen: int, merge: bool) -> PdgPlan:
    n_reps = len(raw)
    # latent signal of every state, propagated from the last repetition backwards
    lat_p = [r["emitted"].copy() for r in raw]
    lat_z = [np.zeros(r["nz"]) for r in raw]
    for r in range(n_reps - 1, 0, -1):
        cand_p = lat_p[r][raw[r]["p_dest"]]
        cand_z = lat_z[r][raw[r]["z_dest"]]
        pos = 0
        for kind, idx in raw[r]["p_src"].items():
            child = cand_p[pos : pos + len(idx)]
            pos += len(idx)
            if kind != "z0":
                np.maximum.at(lat_p[r - 1] if kind.startswith("p") else lat_z[r - 1], idx, child)
        pos = 0
        for kind, idx in raw[r]["z_src"].items():
            child = cand_z[pos : pos + len(idx)]
            pos += len(idx)
            np.maximum.at(lat_z[r - 1] if kind == "z" else lat_p[r - 1], idx, child)

    reps: list[RepPlan] = []
    prev_p = np.zeros(0, dtype=np.int64)
    prev_z = np.zeros(0, dtype=np.int64)
    total_p = total_z = total_emit = 0
    for r in range(n_reps):
        keep_p = lat_p[r] >= min_latent
        keep_z = lat_z[r] >= min_latent
        p_src, p_dest, p_first = _select(_Candidates(raw[r]["p_src"], None, None, None), raw[r]["p_dest"], keep_p)
        z_src, z_dest, z_first = _select(_Candidates(raw[r]["z_src"], None, None, None), raw[r]["z_dest"], keep_z)
        for kind in p_src:
            if kind != "z0":
                p_src[kind] = (prev_p if kind.startswith("p") else prev_z)[p_src[kind]]
        for kind in z_src:
            z_src[kind] = (prev_z if kind == "z" else prev_p)[z_src[kind]]
        map_p = np.cumsum(keep_p) - 1
        map_z = np.cumsum(keep_z) - 1
        emit_orig = np.flatnonzero((raw[r]["emitted"] >= min_emitted) & keep_p)
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

"""MR fingerprinting with an unbalanced (FISP) gradient-echo train, after Jiang et al. 2015.

Reference: Jiang Y, Ma D, Seiberlich N, Gulani V, Griswold MA. MR fingerprinting using fast imaging with steady
state precession (FISP) with spiral readout. Magn Reson Med 2015;74:1621–1631. doi:10.1002/mrm.25559.

The train: an inversion pulse, then ``n_frames`` TRs with a varying flip angle (:func:`jiang_flip_angles`) and a
varying TR (:func:`jiang_trs`), a constant TE, a constant RF phase (no RF spoiling) and, in every TR, the *same*
unbalanced dephasing moment (the "FISP" spoiler), so that each TR shifts the extended-phase-graph (EPG) states by
exactly one order (Weigel, J Magn Reson Imaging 2015;41:266). Because that moment dephases a voxel by whole cycles,
the signal at TE is the F0 state of the EPG: the fingerprint of one voxel depends on T1, T2 and B1, and at a
constant TR not at all on off-resonance or T2' (a path back to k = 0 has spent as long dephased one way as the
other), which is the point of MRF-FISP compared with the bSSFP-based original. With a *varying* TR the paths that
return to k = 0 carry different dephasing times τ = Σ ±TR, so T2' and off-resonance enter the echo pathways a little;
EPG dictionaries (Jiang's among them) neglect this, the PDG keeps it (and its states then multiply, see the tests).

What is reproduced and what is approximated
    * Flip angles: the published pattern is a series of half-sine lobes (Jiang 2015, Fig. 1a). The numbers used here
      follow two independent public reproductions of that figure (``deepmr.sinusoidal_fa``, INFN-MRI, which cites
      Jiang 2015, and an MRF-optimisation code whose ``FISP_FA`` says "variation from Jiang paper"): five lobes of
      200 TRs peaking at 35°, 43°, 70°, 45° and 27° above a 5° floor, the lobes separated by 10 TRs of 0°.
      That native pattern has 1040 TRs; :func:`jiang_flip_angles` samples it at ``n`` points spread over its length,
      so the paper's 1000 frames keep all five lobes (each ≈ 192 TRs) — an approximation of the exact published
      series, which was not found in public sources.
    * TRs: the paper varies TR "in a Perlin noise pattern" between 11.5 and 14.5 ms; the exact series is not
      public either. :func:`jiang_trs` generates seeded 1D Perlin gradient noise (three octaves, base period
      :data:`TR_NOISE_PERIOD` TRs, Perlin's quintic fade) and maps it linearly onto [11.5, 14.5] ms: the same kind of
      smooth pseudo-random pattern over the same range, not the same numbers; rounded to :data:`TR_RASTER` (10 µs)
      so that the pulses fall on the scanner's raster.
    * Inversion: the adiabatic inversion is an ideal, instantaneous π pulse, followed by ``inversion_time`` (pulse
      centre to the first excitation; ≈ 20 ms, the order of the delay in Jiang's dictionary code) with a crusher.
    * Slice profile, RF pulse duration and the spiral undersampling of the paper (24 of 48 interleaves) are not
      modelled; ``readout="none"`` gives the single-voxel fingerprint (one sample per TR at TE, no imaging
      gradients), ``readout="spiral"`` one fully rewound Archimedean spiral interleaf per TR
      (:func:`~gradmr.sequence.noncartesian.spiral_trajectory`), rotated by ``2π/n_interleaves`` each TR.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import check_count, check_fits, check_flip, check_positive
from .core import Repetition, Sequence
from .noncartesian import _check_fov, _check_size, _check_spiral_timing, _ramp, _spiral_design
from .system import DEFAULT_SYSTEM, SystemLimits, min_moment_time

#: Peak flip angles of the five lobes [deg] (Jiang et al. 2015, Fig. 1a, as reproduced publicly; see module docs).
JIANG_LOBE_PEAKS_DEG = (35.0, 43.0, 70.0, 45.0, 27.0)
#: Flip angle at the start and end of every lobe [deg].
JIANG_FLOOR_DEG = 5.0
#: TRs per lobe and per gap (0°) between lobes in the native pattern.
JIANG_LOBE_LENGTH = 200
JIANG_GAP_LENGTH = 10
#: TR range of the paper [s].
JIANG_TR_RANGE = (11.5e-3, 14.5e-3)
#: Raster the default TRs are rounded to [s] (:attr:`~gradmr.sequence.system.SystemLimits.block_duration_raster`).
TR_RASTER = 10e-6
#: Base period of the Perlin noise of :func:`jiang_trs` [TRs].
TR_NOISE_PERIOD = 100
#: Octaves of the Perlin noise (each at twice the frequency and half the amplitude of the previous one).
TR_NOISE_OCTAVES = 3

READOUTS = ("none", "spiral")

__all__ = [
    "JIANG_FLOOR_DEG",
    "JIANG_GAP_LENGTH",
    "JIANG_LOBE_LENGTH",
    "JIANG_LOBE_PEAKS_DEG",
    "JIANG_TR_RANGE",
    "PARAMETERS",
    "READOUTS",
    "TR_RASTER",
    "fisp_mrf",
    "jiang_flip_angles",
    "jiang_trs",
]


def _native_length() -> int:
    lobes = len(JIANG_LOBE_PEAKS_DEG)
    return lobes * JIANG_LOBE_LENGTH + (lobes - 1) * JIANG_GAP_LENGTH


def jiang_flip_angles(n: int = 1000, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The MRF-FISP flip-angle pattern of Jiang et al. 2015 (five half-sine lobes), ``n`` values [rad].

    The native pattern (1040 TRs) is: for each lobe ``l`` with peak ``P_l`` (:data:`JIANG_LOBE_PEAKS_DEG`) the 200
    values ``5° + (P_l − 5°)·sin(π(j + ½)/200)``, j = 0 … 199, then (between lobes) 10 values of 0°. It is sampled at
    positions ``i · 1040/n`` (i = 0 … n−1), so every ``n`` keeps the five lobes; ``n = 1040`` gives it exactly. See
    the module docs for what is reproduced and what is approximated.
    """
    n = check_count("n", n)
    period = JIANG_LOBE_LENGTH + JIANG_GAP_LENGTH
    pos = np.arange(n) * (_native_length() / n)
    lobe = np.minimum((pos // period).astype(int), len(JIANG_LOBE_PEAKS_DEG) - 1)
    offset = pos - lobe * period
    peaks = np.asarray(JIANG_LOBE_PEAKS_DEG)[lobe]
    inside = offset < JIANG_LOBE_LENGTH
    shape = np.sin(np.pi * (np.floor(offset) + 0.5) / JIANG_LOBE_LENGTH)
    deg = np.where(inside, JIANG_FLOOR_DEG + (peaks - JIANG_FLOOR_DEG) * shape, 0.0)
    return torch.from_numpy(np.radians(deg)).to(dtype)


def _perlin_1d(n: int, *, period: float, octaves: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``octaves`` of 1D Perlin gradient noise at points 0 … n−1 (Perlin, SIGGRAPH 2002 fade)."""
    x = np.arange(n, dtype=np.float64) / period
    total = np.zeros(n)
    amplitude = 1.0
    for _ in range(octaves):
        cell = np.floor(x).astype(int)
        f = x - cell
        gradients = rng.uniform(-1.0, 1.0, size=int(cell.max()) + 2)
        fade = f**3 * (f * (6 * f - 15) + 10)
        total += amplitude * ((1 - fade) * gradients[cell] * f + fade * gradients[cell + 1] * (f - 1))
        x = 2 * x
        amplitude *= 0.5
    return total


def jiang_trs(
    n: int = 1000,
    *,
    seed: int = 0,
    tr_range: tuple[float, float] = JIANG_TR_RANGE,
    raster: float = TR_RASTER,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A smooth pseudo-random TR pattern [s], ``n`` values spanning exactly ``tr_range`` (default 11.5–14.5 ms).

    Seeded 1D Perlin noise (:data:`TR_NOISE_OCTAVES` octaves, base period :data:`TR_NOISE_PERIOD` TRs) mapped
    linearly so that its minimum and maximum are the ends of ``tr_range``. Jiang et al. 2015 describe their TRs as a
    Perlin-noise pattern in that range; the exact series is not public, so this reproduces the description, not the
    numbers. The same ``seed`` always gives the same pattern. The TRs are rounded to ``raster`` [s] (default
    :data:`TR_RASTER`, the block-duration raster of a Siemens-like scanner, so that every pulse of the train falls on
    the RF raster when exported); 0 keeps them unrounded.
    """
    n = check_count("n", n)
    lo, hi = (float(v) for v in tr_range)
    if not 0 < lo < hi or not math.isfinite(hi):
        raise ValueError(f"tr_range must be (min, max) with 0 < min < max in s, got {tr_range!r}")
    if n == 1:
        return torch.tensor([(lo + hi) / 2], dtype=dtype)
    noise = _perlin_1d(n, period=TR_NOISE_PERIOD, octaves=TR_NOISE_OCTAVES, rng=np.random.default_rng(seed))
    span = noise.max() - noise.min()
    unit = (noise - noise.min()) / span if span > 0 else np.full(n, 0.5)
    trs = lo + (hi - lo) * unit
    if raster < 0 or not math.isfinite(raster):
        raise ValueError(f"raster must be ≥ 0 s, got {raster}")
    if raster > 0:
        trs = np.round(trs / raster) * raster
    return torch.from_numpy(trs).to(dtype)


def _as_train(name: str, values, n: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=dtype).flatten()
    if t.numel() != n:
        raise ValueError(f"{name} must have n_frames = {n} values, got {t.numel()}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def fisp_mrf(
    *,
    n_frames: int = 1000,
    flip_angles=None,
    trs=None,
    te: float = 2e-3,
    inversion: bool = True,
    inversion_time: float = 20e-3,
    spoiler_cycles: float = 2.0,
    slice_thickness: float = 5e-3,
    readout: str = "none",
    dwell: float = 10e-6,
    matrix: int = 64,
    fov: float = 0.2,
    n_interleaves: int = 8,
    tr_seed: int = 0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """An MRF-FISP train (Jiang et al. 2015): inversion, then ``n_frames`` TRs of varying flip angle and TR.

    Parameters
    ----------
    n_frames : int
        Number of TRs (time points of the fingerprint).
    flip_angles : sequence of float, optional
        ``n_frames`` flip angles [rad] in [0, π]; default :func:`jiang_flip_angles`.
    trs : sequence of float, optional
        ``n_frames`` repetition times [s]; default :func:`jiang_trs` with ``seed=tr_seed`` (11.5–14.5 ms, on a
        10 µs raster).
    te : float
        Echo time [s], pulse to the sample (``readout="none"``) or to the start of the spiral (k = 0).
    inversion : bool
        Start with an ideal inversion (π pulse, phase 0) and a crusher.
    inversion_time : float
        Inversion pulse to the first excitation [s].
    spoiler_cycles : float
        The FISP dephasing moment of every TR, in cycles across ``slice_thickness`` along z (moment
        ``spoiler_cycles / slice_thickness`` [1/m]); the same every TR, applied after the readout. Whole cycles
        dephase a voxel of that thickness completely, so that the signal is the EPG's F0.
    slice_thickness : float
        Slice (voxel) thickness along z [m] the spoiler is scaled to.
    readout : {"none", "spiral"}
        ``"none"``: one ADC sample per TR at TE, no imaging gradients (the fingerprint of the whole object, e.g. of a
        single voxel). ``"spiral"``: one interleaf of :func:`~gradmr.sequence.noncartesian.spiral_trajectory`
        (``matrix``, ``fov``, ``n_interleaves``, ``dwell``) per TR, interleaf ``i mod n_interleaves``, rewound before
        the spoiler so that every TR keeps the same net moment.
    dwell : float
        ADC dwell [s] (the length of the sample event for ``"none"``).
    matrix, fov, n_interleaves
        Spiral geometry (``readout="spiral"`` only): image N × N, field of view [m], interleaves for Nyquist.
    tr_seed : int
        Seed of the default TR pattern.
    system : SystemLimits
        Limits the events are sized for.

    Returns
    -------
    Sequence
        ``n_frames`` (+1 with ``inversion``) repetitions; RF phase 0 and ADC phase 0 throughout (no RF spoiling).
    """
    n = check_count("n_frames", n_frames)
    alphas = (
        jiang_flip_angles(n, dtype=torch.float64)
        if flip_angles is None
        else _as_train("flip_angles", flip_angles, n, torch.float64)
    )
    for i, a in enumerate(alphas.tolist()):
        check_flip(f"flip_angles[{i}]", a, allow_zero=True)
    times = jiang_trs(n, seed=tr_seed, dtype=torch.float64) if trs is None else _as_train("trs", trs, n, torch.float64)
    for i, t in enumerate(times.tolist()):
        check_positive(f"trs[{i}]", t)
    check_positive("te", te)
    check_positive("dwell", dwell)
    check_positive("slice_thickness", slice_thickness, "m")
    if not math.isfinite(spoiler_cycles) or spoiler_cycles < 0:
        raise ValueError(f"spoiler_cycles must be ≥ 0, got {spoiler_cycles}")
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    spoiler = spoiler_cycles / slice_thickness
    t_spoil = min_moment_time(spoiler, system)

    if readout == "none":
        check_fits("te", te, system.rf_gap + dwell, "the RF gap and one dwell")
        event_times = [te - dwell, dwell]
        moments = torch.zeros(2, 2, dtype=torch.float64)
        adc = [False, True]
        min_post = t_spoil + system.rf_gap
        kmax_axis = 0.0
    else:
        size, length = _check_size(matrix), _check_fov(fov)
        n_int = check_count("n_interleaves", n_interleaves)
        check_fits("te", te, system.rf_gap, "the RF pulse's gap")
        _check_spiral_timing(te, dwell, system)
        k_np, g_np = _spiral_design(size, length, n_int, dwell, system)
        k = torch.from_numpy(k_np)
        samples = k.shape[0] - 1
        event_times = [te] + [dwell] * samples
        moments = torch.cat([torch.zeros(1, 2, dtype=torch.float64), k[1:] - k[:-1]])
        adc = [False] + [True] * samples
        t_ramp, m_ramp = _ramp(float(np.abs(g_np[-1]).max()), system)
        kmax_axis = float(k[-1].abs().max())
        # the rewinder and the spoiler are on different axes; the longer of the two lobes sets the time
        min_post = t_ramp + max(min_moment_time(kmax_axis + m_ramp, system), t_spoil) + system.rf_gap
    before = sum(event_times)
    check_fits("min(trs)", float(times.min()), before + min_post, "te, the readout, the spoiler and the RF gap")

    reps = []
    if inversion:
        check_fits("inversion_time", inversion_time, 2 * system.rf_gap + t_spoil, "the RF gaps and the crusher")
        inv = Repetition.create(1, pulse_angle=math.pi, pulse_usage="inversion", event_time=inversion_time, dtype=dtype)
        gradm = torch.zeros(1, 3, dtype=dtype)
        gradm[0, 2] = spoiler
        reps.append(inv.replace(gradm=gradm))
    events = len(event_times) + 1
    adc_t = torch.tensor(adc + [False], dtype=torch.bool)
    n_int = n_interleaves if readout == "spiral" else 1
    for i in range(n):
        rep = Repetition.create(events, pulse_angle=float(alphas[i]), pulse_phase=0.0, dtype=dtype)
        et = torch.tensor(event_times + [float(times[i]) - before], dtype=dtype)
        gradm = torch.zeros(events, 3, dtype=dtype)
        rot = 2 * math.pi * (i % n_int) / n_int
        c, s = math.cos(rot), math.sin(rot)
        gradm[:-1, 0] = (c * moments[:, 0] - s * moments[:, 1]).to(dtype)
        gradm[:-1, 1] = (s * moments[:, 0] + c * moments[:, 1]).to(dtype)
        gradm[-1, :2] = -gradm[:-1, :2].sum(dim=0)
        gradm[-1, 2] = spoiler
        reps.append(rep.replace(event_time=et, gradm=gradm, adc_usage=adc_t.clone()))
    return Sequence(reps)


PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "fisp_mrf": {
        "n_frames": ("1", "number of TRs (fingerprint length)"),
        "flip_angles": ("rad", "flip angle per TR (comma-separated); default: Jiang et al. 2015 sine lobes"),
        "trs": ("s", "TR per TR (comma-separated); default: Perlin-noise pattern in 11.5–14.5 ms"),
        "te": ("s", "echo time (pulse to the sample / spiral start)"),
        "inversion": ("", "start with an ideal inversion pulse"),
        "inversion_time": ("s", "inversion pulse to the first excitation"),
        "spoiler_cycles": ("1", "FISP dephasing per TR, cycles across the slice thickness (z)"),
        "slice_thickness": ("m", "slice thickness the spoiler is scaled to"),
        "readout": ("", "'none' (one sample per TR: single-voxel fingerprint) or 'spiral'"),
        "dwell": ("s", "ADC dwell time"),
        "matrix": ("1", "spiral readout: N of the N × N image"),
        "fov": ("m", "spiral readout: field of view"),
        "n_interleaves": ("1", "spiral readout: interleaves for Nyquist sampling (one per TR, cycled)"),
        "tr_seed": ("1", "seed of the default TR pattern"),
    }
}

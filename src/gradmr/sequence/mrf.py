"""MR fingerprinting trains with an unbalanced (FISP) gradient-echo readout: Jiang et al. 2015 and spline trains.

References:
    Jiang Y, Ma D, Seiberlich N, Gulani V, Griswold MA. MR fingerprinting using fast imaging with steady state
    precession (FISP) with spiral readout. Magn Reson Med 2015;74:1621–1631. doi:10.1002/mrm.25559.
    Liu H, van der Heide O, van den Berg CAT, Sbrizzi A. Fast and accurate modeling of transient-state,
    gradient-spoiled sequences by recurrent neural networks. NMR Biomed 2021;34:e4527. doi:10.1002/nbm.4527.

The train: an inversion pulse, then ``n_frames`` TRs with a varying flip angle and (for Jiang's train) a varying TR,
a constant TE, a constant RF phase (no RF spoiling) and, in every TR, the *same* unbalanced dephasing moment (the
"FISP" spoiler), so that each TR shifts the extended-phase-graph (EPG) states by exactly one order (Weigel, J Magn
Reson Imaging 2015;41:266). Because that moment dephases a voxel by whole cycles, the signal at TE is the F0 state of
the EPG: the fingerprint of one voxel depends on T1, T2 and B1, and at a constant TR not at all on off-resonance or
T2' (a path back to k = 0 has spent as long dephased one way as the other), which is the point of MRF-FISP compared
with the bSSFP-based original. With a *varying* TR the paths that return to k = 0 carry different dephasing times
τ = Σ ±TR, so T2' and off-resonance enter the echo pathways a little; EPG dictionaries (Jiang's among them) neglect
this, the PDG keeps it (and its states then multiply, see the tests).

FISP-MRF (:func:`fisp_mrf`, Jiang et al. 2015, as specified in issue 6)
    * Flip angles (:func:`jiang_flip_angles`): 2 TRs of 0°, then five half-sine lobes of :data:`JIANG_LOBE_LENGTH`
      = 200 TRs each, peaking at 35°, 43°, 70°, 45°, 27° (:data:`JIANG_LOBE_PEAKS_DEG`) above a 5° floor, separated
      by 0° gaps of 10, 10, 9 and 11 TRs (:data:`JIANG_GAPS`). Lobe ``l`` with peak ``P`` is
      ``5° + (P − 5°)·sin(π j / 199)``, j = 0 … 199: exactly 5° at its first and last TR, and within
      (P − 5°)(1 − cos(π/398)) < 0.003° of ``P`` at its two middle TRs (an even number of samples has no centre).
      Laid out literally this is 2 + 5·200 + (10 + 10 + 9 + 11) = **1042 TRs**, 42 more than the paper's 1000
      frames; no reading of the numbers was found that gives exactly 1000 (counting each gap inside its 200-TR lobe
      slot gives 1002, dropping the two leading 0° TRs 1040). The layout is therefore kept as specified and *cut* at
      ``n`` TRs: with n = 1000 the lobes start at TRs 2, 212, 422, 631 and 842 and the fifth lobe keeps its first
      158 TRs (its peak, at TRs 941–942, included; it ends at 18.5° instead of descending to 5°). ``n`` beyond
      the 1042-TR layout is an error (no value beyond the published pattern is invented; pass ``flip_angles``).
    * TRs (:func:`jiang_trs`): the paper varies TR "in a Perlin noise pattern"; the series is not public, so we
      generate our own: seeded 1D Perlin gradient noise (three octaves, base period :data:`TR_NOISE_PERIOD` TRs,
      Perlin's quintic fade) mapped linearly onto [11.67, 14.33] ms (:data:`JIANG_TR_RANGE`) — the same kind of
      smooth pseudo-random pattern over the same range, not the same numbers; rounded to :data:`TR_RASTER` (10 µs)
      so that the pulses fall on the scanner's raster.
    * TE 1.908 ms (:data:`JIANG_TE`), RF pulse centre to the sample. With ``readout="spiral"`` the spiral must start
      on the 10 µs gradient raster, so the default TE is then rounded up to it (1.91 ms).
    * Inversion: the adiabatic inversion is an ideal, instantaneous π pulse followed by a crusher, and
      ``inversion_time`` = 18 ms (:data:`JIANG_TI`) from its centre to the first excitation.

Spline trains (:func:`spline_mrf`, after Liu et al. 2021, "Spline5" and "Spline11Noisy")
    1120 TRs (:data:`SPLINE_FRAMES`) at a constant TR of 8.7552 ms (:data:`SPLINE_TR`), TE 4.9226 ms
    (:data:`SPLINE_TE`), an inversion first. Liu et al. describe their flip-angle trains as smooth splines through
    5 and 11 random points (the second with added noise); the trains themselves are not public, so
    :func:`spline_flip_angles` is a **stand-in** of ours, seeded: ``knots`` values drawn uniformly from [0°, 120°]
    at TRs spread evenly over the train (``round(linspace(0, n − 1, knots))``), joined by a monotone piecewise
    cubic Hermite interpolant (PCHIP, Fritsch & Carlson 1980; ``scipy.interpolate.PchipInterpolator``). PCHIP
    rather than a cubic spline: it is C¹-smooth, never overshoots its knots (between two knots it is monotone), so
    the train stays in [0°, 120°] without clipping, and it has no more turning points than the knots have, so the
    knot count is visible as the train's number of swings. "Noisy": i.i.d. Gaussian noise of standard deviation
    ``noise_deg`` (:data:`SPLINE_NOISE_DEG` = 5° for Spline11Noisy, our choice: "a few degrees", visible but small
    against the 120° range) is added to every TR, then clipped to [0°, 120°]. The generator is seeded with
    ``(seed, knots)``, so Spline5 and Spline11Noisy of one seed have unrelated knots, and the noisy train of a seed
    is the noiseless 11-knot train of that seed plus the (clipped) noise. The inversion time of these trains is not
    given in the sources we have; we use Jiang's 18 ms (:data:`SPLINE_TI`).

Not modelled: slice profile, RF pulse duration, and the spiral undersampling of the paper (24 of 48 interleaves);
``readout="none"`` gives the single-voxel fingerprint (one sample per TR at TE, no imaging gradients),
``readout="spiral"`` one fully rewound Archimedean spiral interleaf per TR
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

#: Number of TRs (fingerprint length) of Jiang et al. 2015.
JIANG_FRAMES = 1000
#: Peak flip angles of the five lobes [deg].
JIANG_LOBE_PEAKS_DEG = (35.0, 43.0, 70.0, 45.0, 27.0)
#: Flip angle at the first and last TR of every lobe [deg].
JIANG_FLOOR_DEG = 5.0
#: TRs per lobe.
JIANG_LOBE_LENGTH = 200
#: TRs of 0° between consecutive lobes.
JIANG_GAPS = (10, 10, 9, 11)
#: Index of the first lobe's first TR (the TRs before it are 0°).
JIANG_FIRST_LOBE = 2
#: TR range of the default TR pattern [s].
JIANG_TR_RANGE = (11.67e-3, 14.33e-3)
#: Echo time [s].
JIANG_TE = 1.908e-3
#: Inversion (centre) to the first excitation [s].
JIANG_TI = 18e-3
#: Raster the default TRs are rounded to [s] (:attr:`~gradmr.sequence.system.SystemLimits.block_duration_raster`).
TR_RASTER = 10e-6
#: Base period of the Perlin noise of :func:`jiang_trs` [TRs].
TR_NOISE_PERIOD = 100
#: Octaves of the Perlin noise (each at twice the frequency and half the amplitude of the previous one).
TR_NOISE_OCTAVES = 3

#: Number of TRs of the spline trains (Liu et al. 2021).
SPLINE_FRAMES = 1120
#: Repetition time of the spline trains [s].
SPLINE_TR = 8.7552e-3
#: Echo time of the spline trains [s].
SPLINE_TE = 4.9226e-3
#: Inversion (centre) to the first excitation of the spline trains [s] (not in our sources: Jiang's value).
SPLINE_TI = 18e-3
#: Largest flip angle of the spline trains [deg].
SPLINE_MAX_DEG = 120.0
#: Standard deviation of the Gaussian flip-angle noise of "Spline11Noisy" [deg] (our choice).
SPLINE_NOISE_DEG = 5.0
#: Variant name → (knots, noise [deg]).
SPLINE_VARIANTS = {"spline5": (5, 0.0), "spline11noisy": (11, SPLINE_NOISE_DEG)}

READOUTS = ("none", "spiral")

__all__ = [
    "JIANG_FIRST_LOBE",
    "JIANG_FLOOR_DEG",
    "JIANG_FRAMES",
    "JIANG_GAPS",
    "JIANG_LOBE_LENGTH",
    "JIANG_LOBE_PEAKS_DEG",
    "JIANG_TE",
    "JIANG_TI",
    "JIANG_TR_RANGE",
    "PARAMETERS",
    "READOUTS",
    "SPLINE_FRAMES",
    "SPLINE_MAX_DEG",
    "SPLINE_NOISE_DEG",
    "SPLINE_TE",
    "SPLINE_TI",
    "SPLINE_TR",
    "SPLINE_VARIANTS",
    "TR_RASTER",
    "fisp_mrf",
    "jiang_flip_angles",
    "jiang_layout_length",
    "jiang_trs",
    "spline11noisy_flip_angles",
    "spline5_flip_angles",
    "spline_flip_angles",
    "spline_mrf",
]


def jiang_layout_length() -> int:
    """Length of the flip-angle layout of :func:`jiang_flip_angles` laid out in full: 2 + 5·200 + 40 = 1042 TRs."""
    return JIANG_FIRST_LOBE + len(JIANG_LOBE_PEAKS_DEG) * JIANG_LOBE_LENGTH + sum(JIANG_GAPS)


def _jiang_layout_deg() -> np.ndarray:
    deg = np.zeros(jiang_layout_length())
    shape = np.sin(np.pi * np.arange(JIANG_LOBE_LENGTH) / (JIANG_LOBE_LENGTH - 1))
    start = JIANG_FIRST_LOBE
    for lobe, peak in enumerate(JIANG_LOBE_PEAKS_DEG):
        deg[start : start + JIANG_LOBE_LENGTH] = JIANG_FLOOR_DEG + (peak - JIANG_FLOOR_DEG) * shape
        start += JIANG_LOBE_LENGTH + (JIANG_GAPS[lobe] if lobe < len(JIANG_GAPS) else 0)
    return deg


def jiang_flip_angles(n: int = JIANG_FRAMES, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The MRF-FISP flip-angle pattern of Jiang et al. 2015 (five half-sine lobes), its first ``n`` values [rad].

    Indices 0 and 1 are 0°; lobe ``l`` (peak ``P_l`` of :data:`JIANG_LOBE_PEAKS_DEG`) is the 200 values
    ``5° + (P_l − 5°)·sin(π j/199)``, j = 0 … 199; the lobes are separated by 10, 10, 9 and 11 TRs of 0°
    (:data:`JIANG_GAPS`). The full layout has :func:`jiang_layout_length` = 1042 TRs; the default ``n = 1000`` cuts
    the fifth lobe after 158 of its TRs (see the module docs). ``n`` above 1042 raises ``ValueError``.
    """
    n = check_count("n", n)
    full = jiang_layout_length()
    if n > full:
        raise ValueError(
            f"n = {n} exceeds the {full} TRs of the Jiang et al. flip-angle layout; pass your own flip angles for a "
            "longer train"
        )
    return torch.from_numpy(np.radians(_jiang_layout_deg()[:n])).to(dtype)


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
    n: int = JIANG_FRAMES,
    *,
    seed: int = 0,
    tr_range: tuple[float, float] = JIANG_TR_RANGE,
    raster: float = TR_RASTER,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A smooth pseudo-random TR pattern [s], ``n`` values spanning exactly ``tr_range`` (default 11.67–14.33 ms).

    Seeded 1D Perlin noise (:data:`TR_NOISE_OCTAVES` octaves, base period :data:`TR_NOISE_PERIOD` TRs) mapped
    linearly so that its minimum and maximum are the ends of ``tr_range``. Jiang et al. 2015 describe their TRs as a
    Perlin-noise pattern; the exact series is not public, so this reproduces the description, not the numbers (our
    own generator). The same ``seed`` always gives the same pattern. The TRs are rounded to ``raster`` [s] (default
    :data:`TR_RASTER`, the block-duration raster of a Siemens-like scanner, so that every pulse of the train falls on
    the RF raster when exported); 0 keeps them unrounded.
    """
    n = check_count("n", n)
    lo, hi = (float(v) for v in tr_range)
    if not 0 < lo < hi or not math.isfinite(hi):
        raise ValueError(f"tr_range must be (min, max) with 0 < min < max in s, got {tr_range!r}")
    if raster < 0 or not math.isfinite(raster):
        raise ValueError(f"raster must be ≥ 0 s, got {raster}")
    if n == 1:
        return torch.tensor([(lo + hi) / 2], dtype=dtype)
    noise = _perlin_1d(n, period=TR_NOISE_PERIOD, octaves=TR_NOISE_OCTAVES, rng=np.random.default_rng(seed))
    span = noise.max() - noise.min()
    unit = (noise - noise.min()) / span if span > 0 else np.full(n, 0.5)
    trs = lo + (hi - lo) * unit
    if raster > 0:
        trs = np.round(trs / raster) * raster
    return torch.from_numpy(trs).to(dtype)


def spline_flip_angles(
    n: int = SPLINE_FRAMES,
    *,
    knots: int,
    noise_deg: float = 0.0,
    seed: int = 0,
    max_deg: float = SPLINE_MAX_DEG,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A seeded smooth flip-angle train [rad]: PCHIP through ``knots`` random values in [0°, ``max_deg``], plus noise.

    A stand-in for the spline trains of Liu et al. 2021 (not public; see the module docs). The knot values are drawn
    uniformly from [0, ``max_deg``] degrees at the TRs ``round(linspace(0, n − 1, knots))`` — spread over the ``n``
    TRs, so a shorter ``n`` is the same kind of curve compressed, not a prefix of the 1120-TR train — and joined by a
    monotone piecewise cubic Hermite interpolant (never outside the knots' range). ``noise_deg`` > 0 adds i.i.d.
    Gaussian noise of that standard deviation [deg] to every TR and clips the result to [0, ``max_deg``]. The random
    generator is seeded with ``(seed, knots)``: the same arguments always give the same train.

    Raises ``ValueError`` for ``n`` < 1, ``knots`` < 2 or > ``n``, ``noise_deg`` < 0, ``max_deg`` outside (0°, 180°]
    or a negative ``seed``.
    """
    from scipy.interpolate import PchipInterpolator

    n = check_count("n", n)
    knots = check_count("knots", knots, minimum=2)
    seed = check_count("seed", seed, minimum=0)
    if knots > n:
        raise ValueError(f"knots = {knots} must be ≤ n = {n} (one knot per TR at most)")
    noise_deg = float(noise_deg)
    if not (noise_deg >= 0 and math.isfinite(noise_deg)):
        raise ValueError(f"noise_deg must be ≥ 0 degrees, got {noise_deg}")
    max_deg = float(max_deg)
    if not 0 < max_deg <= 180:
        raise ValueError(f"max_deg must be in (0, 180] degrees, got {max_deg}")
    rng = np.random.default_rng((seed, knots))
    at = np.round(np.linspace(0, n - 1, knots))
    values = rng.uniform(0.0, max_deg, size=knots)
    deg = PchipInterpolator(at, values)(np.arange(n, dtype=np.float64))
    if noise_deg > 0:
        deg = deg + rng.normal(0.0, noise_deg, size=n)
    deg = np.clip(deg, 0.0, max_deg)  # PCHIP stays in range; this clips the noise (and round-off)
    return torch.from_numpy(np.radians(deg)).to(dtype)


def spline5_flip_angles(n: int = SPLINE_FRAMES, seed: int = 0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Stand-in for Liu et al.'s "Spline5" train [rad]: :func:`spline_flip_angles` with 5 knots, no noise."""
    knots, noise = SPLINE_VARIANTS["spline5"]
    return spline_flip_angles(n, knots=knots, noise_deg=noise, seed=seed, dtype=dtype)


def spline11noisy_flip_angles(
    n: int = SPLINE_FRAMES, seed: int = 0, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Stand-in for Liu et al.'s "Spline11Noisy" train [rad]: 11 knots plus :data:`SPLINE_NOISE_DEG` (5°) noise."""
    knots, noise = SPLINE_VARIANTS["spline11noisy"]
    return spline_flip_angles(n, knots=knots, noise_deg=noise, seed=seed, dtype=dtype)


def _as_train(name: str, values, n: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=dtype).flatten()
    if t.numel() != n:
        raise ValueError(f"{name} must have n_frames = {n} values, got {t.numel()}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _check_readout(readout: str) -> str:
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    return readout


def _default_te(te: float | None, nominal: float, readout: str, system: SystemLimits) -> float:
    """``te``, or the ``nominal`` TE — rounded up to the gradient raster for a spiral (which must start on it)."""
    if te is not None:
        return float(te)
    if readout == "spiral":
        r = system.grad_raster_time
        return math.ceil(nominal / r - 1e-9) * r
    return nominal


def fisp_mrf(
    *,
    n_frames: int = JIANG_FRAMES,
    flip_angles=None,
    trs=None,
    te: float | None = None,
    inversion: bool = True,
    inversion_time: float = JIANG_TI,
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
        Number of TRs (time points of the fingerprint); at most 1042 with the default flip angles.
    flip_angles : sequence of float, optional
        ``n_frames`` flip angles [rad] in [0, π]; default :func:`jiang_flip_angles` (the first ``n_frames`` TRs of
        the five-lobe layout).
    trs : sequence of float, optional
        ``n_frames`` repetition times [s]; default :func:`jiang_trs` with ``seed=tr_seed`` (11.67–14.33 ms, on a
        10 µs raster).
    te : float, optional
        Echo time [s], pulse to the sample (``readout="none"``) or to the start of the spiral (k = 0); default
        :data:`JIANG_TE` = 1.908 ms (1.91 ms with a spiral, whose start must lie on the gradient raster).
    inversion : bool
        Start with an ideal inversion (π pulse, phase 0) and a crusher.
    inversion_time : float
        Inversion pulse to the first excitation [s]; default :data:`JIANG_TI` = 18 ms.
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
    readout = _check_readout(readout)
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
    te = check_positive("te", _default_te(te, JIANG_TE, readout, system))
    check_positive("dwell", dwell)
    check_positive("slice_thickness", slice_thickness, "m")
    if not math.isfinite(spoiler_cycles) or spoiler_cycles < 0:
        raise ValueError(f"spoiler_cycles must be ≥ 0, got {spoiler_cycles}")
    spoiler = spoiler_cycles / slice_thickness
    t_spoil = min_moment_time(spoiler, system)

    if readout == "none":
        check_fits("te", te, system.rf_gap + dwell, "the RF gap and one dwell")
        event_times = [te - dwell, dwell]
        moments = torch.zeros(2, 2, dtype=torch.float64)
        adc = [False, True]
        min_post = t_spoil + system.rf_gap
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


def spline_mrf(
    *,
    variant: str = "spline5",
    n_frames: int = SPLINE_FRAMES,
    seed: int = 0,
    tr: float = SPLINE_TR,
    te: float | None = None,
    inversion: bool = True,
    inversion_time: float = SPLINE_TI,
    spoiler_cycles: float = 2.0,
    slice_thickness: float = 5e-3,
    readout: str = "none",
    dwell: float = 10e-6,
    matrix: int = 64,
    fov: float = 0.2,
    n_interleaves: int = 16,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A FISP fingerprinting train with spline flip angles: stand-ins for Liu et al. 2021's Spline5/Spline11Noisy.

    The structure of :func:`fisp_mrf` (inversion, then one RF pulse of phase 0, one ADC at TE and the same FISP
    spoiler per TR) with a constant TR and the flip angles of :func:`spline5_flip_angles` (``variant="spline5"``)
    or :func:`spline11noisy_flip_angles` (``"spline11noisy"``) for ``n_frames`` TRs and ``seed``. The trains of the
    paper are not public; these are our seeded generator (module docs).

    Parameters
    ----------
    variant : {"spline5", "spline11noisy"}
        5 knots, or 11 knots plus 5° Gaussian noise.
    n_frames : int
        Number of TRs (default 1120); the knots are spread over them.
    seed : int
        Seed of the flip-angle train (≥ 0).
    tr : float
        Repetition time [s], the same every TR; default :data:`SPLINE_TR` = 8.7552 ms (not on the 1 µs RF raster
        over many TRs: export to Pulseq with ``round_times=True``).
    te : float, optional
        Echo time [s]; default :data:`SPLINE_TE` = 4.9226 ms (rounded up to the 10 µs gradient raster with a
        spiral, 4.93 ms).
    n_interleaves : int
        Spiral interleaves (``readout="spiral"`` only); default 16, so that a 64² spiral interleaf, its rewinder and
        the spoiler fit the 8.7552 ms TR (8 interleaves need 10.1 ms).
    inversion, inversion_time, spoiler_cycles, slice_thickness, readout, dwell, matrix, fov, system
        As for :func:`fisp_mrf` (inversion time default :data:`SPLINE_TI` = 18 ms).
    """
    key = str(variant).lower()
    if key not in SPLINE_VARIANTS:
        raise ValueError(f"variant must be one of {tuple(SPLINE_VARIANTS)}, got {variant!r}")
    n = check_count("n_frames", n_frames)
    tr = check_positive("tr", tr)
    knots, noise = SPLINE_VARIANTS[key]
    if n < knots:
        raise ValueError(f"n_frames = {n} must be ≥ {knots}, the knots of the {key} train")
    alphas = spline_flip_angles(n, knots=knots, noise_deg=noise, seed=seed, dtype=torch.float64)
    return fisp_mrf(
        n_frames=n,
        flip_angles=alphas,
        trs=torch.full((n,), tr, dtype=torch.float64),
        te=_default_te(te, SPLINE_TE, _check_readout(readout), system),
        inversion=inversion,
        inversion_time=inversion_time,
        spoiler_cycles=spoiler_cycles,
        slice_thickness=slice_thickness,
        readout=readout,
        dwell=dwell,
        matrix=matrix,
        fov=fov,
        n_interleaves=n_interleaves,
        system=system,
        dtype=dtype,
    )


_COMMON: dict[str, tuple[str, str]] = {
    "inversion": ("", "start with an ideal inversion pulse"),
    "spoiler_cycles": ("1", "FISP dephasing per TR, cycles across the slice thickness (z)"),
    "slice_thickness": ("m", "slice thickness the spoiler is scaled to"),
    "readout": ("", "'none' (one sample per TR: single-voxel fingerprint) or 'spiral'"),
    "dwell": ("s", "ADC dwell time"),
    "matrix": ("1", "spiral readout: N of the N × N image"),
    "fov": ("m", "spiral readout: field of view"),
    "n_interleaves": ("1", "spiral readout: interleaves for Nyquist sampling (one per TR, cycled)"),
}

PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "fisp_mrf": {
        "n_frames": ("1", "number of TRs (fingerprint length; ≤ 1042 with the default flip angles)"),
        "flip_angles": ("rad", "flip angle per TR (comma-separated); default: Jiang et al. 2015 sine lobes"),
        "trs": ("s", "TR per TR (comma-separated); default: Perlin-noise pattern in 11.67–14.33 ms"),
        "te": ("s", "echo time (pulse to the sample / spiral start); default 1.908 ms (1.91 ms with a spiral)"),
        "inversion_time": ("s", "inversion pulse to the first excitation"),
        "tr_seed": ("1", "seed of the default TR pattern"),
        **_COMMON,
    },
    "spline_mrf": {
        "variant": ("", "'spline5' (5 knots) or 'spline11noisy' (11 knots + 5° noise); stand-ins for Liu et al. 2021"),
        "n_frames": ("1", "number of TRs (fingerprint length); the spline knots are spread over them"),
        "seed": ("1", "seed of the flip-angle train"),
        "tr": ("s", "repetition time (constant)"),
        "te": ("s", "echo time (pulse to the sample / spiral start); default 4.9226 ms (4.93 ms with a spiral)"),
        "inversion_time": ("s", "inversion pulse to the first excitation"),
        **_COMMON,
    },
}

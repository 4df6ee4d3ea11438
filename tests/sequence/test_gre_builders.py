"""Gradient-echo family: 3D FLASH, multi-echo GRE, bSSFP and IR-FLASH, simulated with the PDG and checked against
closed forms, textbook contrast and the scanner limits."""

from __future__ import annotations

import math

import pytest
import torch

from gradmr.metrics import nrmse
from gradmr.phantom import VoxelPhantom, brain_phantom, random_block_phantom, tissue_fractions, tissue_table
from gradmr.recon import reconstruct_cartesian
from gradmr.sequence import Sequence
from gradmr.sequence.flash import PARAMETERS as FLASH_PARAMETERS
from gradmr.sequence.flash import flash, phase_encode_order_3d
from gradmr.sequence.gre import PARAMETERS as GRE_PARAMETERS
from gradmr.sequence.gre import bssfp, echo_index, ir_flash, multi_echo_gre
from gradmr.sequence.system import DEFAULT_SYSTEM, min_moment_time
from gradmr.sim.pdg import simulate_pdg

F64 = torch.float64
TISSUES = ("csf", "gm", "wm")

#: Slack for comparing event times with the minimum they need [s] (round-off of sums of times).
TIME_EPS = 1e-12
#: Voxels counted as one tissue in the built-in brain: fraction above this.
PURE = 0.9
#: bSSFP single voxel vs the Freeman–Hill closed form: the PDG drops states below 1e-4 of M0 and documents agreement
#: with the unpruned graph to 0.1 %; the transient left after the dummy scans is below e^-13 (see the test).
BSSFP_RTOL = 1e-3
#: Multi-echo GRE on a uniform phantom filling the FOV: only the FID pathway is at k = 0 at an echo (the spoiled
#: pathways sit at multiples of the spoiler moment, where a sinc voxel on a full grid gives nothing), so the echo
#: ratio is exp(−ΔTE/T2*) up to the diffusion weighting of the readout gradients (b < 1e3 s/m², bD < 1e-6).
T2STAR_UNIFORM_RTOL = 1e-5
#: Multi-echo GRE on the brain, pure-tissue voxels: neighbours of other T2* leak in by partial volume (≤ 10 %) and
#: Gibbs ringing; 1 % of the echo ratio covers that (measured ≤ 0.4 %).
T2STAR_BRAIN_RTOL = 1e-2
#: IR-FLASH single shot from equilibrium, one voxel: instantaneous pulses make 1 − 2e^{−TI/T1} exact; float64 and the
#: PDG's pruning (1e-4 of states that do not reach the sample) leave far less than this.
IR_RTOL = 1e-6
#: "Nulled": below 5 % of the tissue's signal without the inversion.
NULL_FRACTION = 0.05
#: "CSF dark" in IR-FLASH: CSF below a quarter of GM. The steady-state longitudinal recursion of the shots predicts
#: |Mz(CSF)| ≤ 0.02·M0 against GM ≥ 0.12·M0 at both fields with the defaults (TI 1 s, shot TR 2.5 s).
CSF_DARK = 0.25
#: 3D FLASH vs PD·Ernst·e^{−TE/T2*}: quadratic RF spoiling leaves a few per cent of residual coherence at 15°
#: (Preibisch & Deichmann, MRM 2009), and the approach to steady state after 100 dummies a little more.
FLASH3D_NRMSE = 0.05
FLASH3D_CORR = 0.99


# ---------------------------------------------------------------------------------------------------------------
# helpers


def voxel(t1: float, t2: float, *, t2dash: float = 1e3, pd: float = 1.0, size: float = 0.05) -> VoxelPhantom:
    """One voxel of side ``size`` [m] (use ``fov = size``), no diffusion, on resonance."""
    one = torch.ones(1, 1, dtype=F64)
    return VoxelPhantom.create(
        pd=one * pd, t1=one * t1, t2=one * t2, t2dash=one * t2dash, d=one * 0, voxel_size=(size,) * 3, dtype=F64
    )


def echo_times(rep) -> list[float]:
    """Times from the pulse of the samples of ``rep`` that sit at k_x = 0 (one per echo) [s]."""
    t = torch.cumsum(rep.event_time, 0)
    kx = torch.cumsum(rep.gradm[:, 0], 0)
    return t[rep.adc_usage & (kx.abs() < 1e-9)].tolist()


def encodes(seq: Sequence) -> list[tuple[float, float]]:
    """(k_y, k_z) of each repetition that samples, in order [1/m]."""
    out = []
    for rep in seq:
        if rep.adc_count:
            k = rep.gradm[0]
            out.append((float(k[1]), float(k[2])))
    return out


def ernst(alpha: float, tr: float, t1):
    e1 = torch.exp(-tr / t1) if isinstance(t1, torch.Tensor) else math.exp(-tr / t1)
    return math.sin(alpha) * (1 - e1) / (1 - math.cos(alpha) * e1)


def bssfp_closed_form(alpha: float, tr: float, t1: float, t2: float) -> float:
    """On-resonance bSSFP at TE = TR/2 (Freeman & Hill 1971; Scheffler & Lehnhardt, Eur Radiol 2003)."""
    e1, e2 = math.exp(-tr / t1), math.exp(-tr / t2)
    return math.sin(alpha) * (1 - e1) * math.sqrt(e2) / (1 - (e1 - e2) * math.cos(alpha) - e1 * e2)


def brain_images(seq: Sequence, n: int, field_strength: float, fov: float = 0.2) -> list[torch.Tensor]:
    """|image| per echo of the built-in brain (``n × n``), reconstructed by FFT."""
    phantom = brain_phantom((n, n), fov=(fov, fov), field_strength=field_strength, dtype=F64)
    signal = simulate_pdg(seq, phantom)
    k = seq.kspace()
    index = echo_index(seq)
    return [
        reconstruct_cartesian(signal[index == e], k[index == e], fov=(fov, fov, 1.0), matrix=(1, n, n))[0, 0].abs()
        for e in range(int(index.max()) + 1)
    ]


def tissue_means(image: torch.Tensor, n: int, fov: float = 0.2) -> dict[str, float]:
    fractions = tissue_fractions((n, n), (fov, fov), dtype=F64)
    return {name: float(image[fractions[i] > PURE].mean()) for i, name in enumerate(TISSUES)}


def assert_within_limits(seq: Sequence, system=DEFAULT_SYSTEM) -> None:
    """Every event's moment fits its duration per axis, the events around each pulse leave the RF gap, and ADC
    events are a flat readout within max_grad."""
    reps = list(seq)
    for i, rep in enumerate(reps):
        times = rep.event_time.tolist()
        moments = rep.gradm.tolist()
        adc = rep.adc_usage.tolist()
        for j, (t, m) in enumerate(zip(times, moments, strict=True)):
            if adc[j]:
                assert max(abs(v) for v in m) / t <= system.max_grad_hz * (1 + 1e-9), f"rep {i} event {j}"
                continue
            need = [min_moment_time(v, system) for v in m]
            for axis in range(3):
                assert need[axis] <= t + TIME_EPS, f"rep {i} event {j} axis {axis}: {need[axis]} > {t}"
            gap = 0.0
            if j == 0:
                gap += system.rf_gap  # after this repetition's pulse
            if j == len(times) - 1 and i + 1 < len(reps):
                gap += system.rf_gap  # before the next pulse
            assert gap + max(need) <= t + TIME_EPS, f"rep {i} event {j}: no room for the RF gap"


# ---------------------------------------------------------------------------------------------------------------
# FLASH: 2D behaviour kept, 3D added


def test_flash_3d_reconstructs_a_block_phantom():
    fov, matrix = (0.16, 0.16, 0.08), (16, 16, 8)
    phantom = random_block_phantom(
        (8, 16, 16), seed=3, fov=fov, b0_range=(0.0, 0.0), t1_range=(0.3, 2.0), t2_range=(0.03, 0.2), dtype=F64
    )
    alpha, tr = math.radians(15), 10e-3
    seq = flash(matrix=matrix, fov=fov, flip_angle=alpha, tr=tr, dummy_scans=100, order="centric")
    assert seq.sample_count == 16 * 16 * 8
    image = reconstruct_cartesian(simulate_pdg(seq, phantom), seq.kspace(), fov=fov, matrix=(8, 16, 16))[0].abs()
    (te,) = echo_times(seq[-1])
    expected = phantom.pd[0] * ernst(alpha, tr, phantom.t1[0]) * torch.exp(-te / phantom.t2[0] - te / phantom.t2dash[0])
    corr = torch.corrcoef(torch.stack([image.flatten(), expected.flatten()]))[0, 1]
    assert corr > FLASH3D_CORR
    assert nrmse(image, expected) < FLASH3D_NRMSE


def test_flash_3d_grid_and_orders():
    fov = (0.2, 0.15, 0.1)
    linear = flash(matrix=(8, 6, 4), fov=fov)
    k = linear.kspace()
    for axis, n in enumerate((8, 6, 4)):
        torch.testing.assert_close(torch.unique(k[:, axis]) * fov[axis], torch.arange(-(n // 2), n - n // 2, dtype=F64))
    # linear: partitions outer, lines inner
    steps = [(round(ky * fov[1]), round(kz * fov[2])) for ky, kz in encodes(linear)]
    assert steps == [(m, p) for p in range(-2, 2) for m in range(-3, 3)]
    centric = flash(matrix=(8, 6, 4), fov=fov, order="centric", dummy_scans=2)
    pe = encodes(centric)
    assert pe[0] == (0.0, 0.0)
    distance = [math.hypot(ky, kz) for ky, kz in pe]
    assert distance == sorted(distance)
    assert sorted(pe) == sorted(encodes(linear))
    # 2D centric is the 3D order with one partition
    assert phase_encode_order_3d(5, 1, "centric") == [(0, 0), (-1, 0), (1, 0), (-2, 0), (2, 0)]


def test_flash_default_te_is_the_shortest_the_system_allows():
    seq = flash(matrix=(64, 64), fov=(0.2, 0.2))
    (te,) = echo_times(seq[0])
    # the prewinder event holds the RF gap and a lobe for its moment (per axis) at least
    pre = seq[0]
    need = max(min_moment_time(float(m), DEFAULT_SYSTEM) for m in pre.gradm[0])
    assert float(pre.event_time[0]) >= DEFAULT_SYSTEM.rf_gap + need
    with pytest.raises(ValueError, match=r"te = .* shorter than the readout .*minimum"):
        flash(matrix=(64, 64), fov=(0.2, 0.2), te=te - 10e-6)
    assert echo_times(flash(matrix=(64, 64), fov=(0.2, 0.2), te=te + 1e-3)[0]) == pytest.approx([te + 1e-3])


# ---------------------------------------------------------------------------------------------------------------
# centric order, timing, durations, SAR


def test_centric_order_puts_k0_first():
    for seq in (
        flash(matrix=(8, 8), order="centric", dummy_scans=3),
        flash(matrix=(8, 8, 4), fov=(0.2, 0.2, 0.1), order="centric"),
        multi_echo_gre(matrix=(8, 8), order="centric", n_echoes=2),
        bssfp(matrix=(8, 8), order="centric"),
        ir_flash(matrix=(8, 8), dummy_shots=1),
    ):
        assert encodes(seq)[0] == (0.0, 0.0)
    # segmented IR-FLASH: every shot starts with one of the `segments` most central lines
    seq = ir_flash(matrix=(8, 8), segments=4, dummy_shots=0)
    firsts = [
        encodes(Sequence([rep]))[0][0] * 0.2 for i, rep in enumerate(seq) if seq[i - 1].pulse_usage == "inversion"
    ]
    assert sorted(round(v) for v in firsts) == [-2, -1, 0, 1]


BUILDERS = {
    "flash-2d": lambda: flash(dummy_scans=2),
    "flash-3d": lambda: flash(matrix=(32, 16, 8), fov=(0.2, 0.2, 0.1), order="centric", dummy_scans=2),
    "multi-echo": lambda: multi_echo_gre(dummy_scans=2),
    "multi-echo-bipolar": lambda: multi_echo_gre(readout="bipolar", tes=(3e-3, 6e-3, 12e-3)),
    "multi-echo-3d": lambda: multi_echo_gre(matrix=(32, 16, 8), fov=(0.2, 0.2, 0.1), n_echoes=3),
    "bssfp": lambda: bssfp(),
    "bssfp-3d": lambda: bssfp(matrix=(32, 16, 8), fov=(0.2, 0.2, 0.1), catalyst=None),
    "ir-flash": lambda: ir_flash(),
    "ir-flash-3d-segmented": lambda: ir_flash(matrix=(32, 16, 8), fov=(0.2, 0.2, 0.1), segments=8, dummy_shots=1),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_events_fit_the_system_limits(name):
    seq = BUILDERS[name]()
    assert_within_limits(seq)
    assert float(seq.duration()) > 0 and float(seq.sar_proxy()) > 0


def test_duration_and_sar_proxy():
    alpha, tr = math.radians(20), 12e-3
    seq = flash(matrix=(16, 8), flip_angle=alpha, tr=tr, dummy_scans=3)
    assert float(seq.duration()) == pytest.approx(11 * tr, rel=1e-12)
    assert float(seq.sar_proxy()) == pytest.approx(alpha**2 / tr, rel=1e-12)

    seq = multi_echo_gre(matrix=(16, 8), flip_angle=alpha, tr=40e-3, n_echoes=4)
    assert float(seq.duration()) == pytest.approx(8 * 40e-3, rel=1e-12)
    assert float(seq.sar_proxy()) == pytest.approx(alpha**2 / 40e-3, rel=1e-12)

    alpha = math.radians(50)
    seq = bssfp(matrix=(16, 8), flip_angle=alpha, tr=5e-3, dummy_scans=4, catalyst=None)
    assert float(seq.duration()) == pytest.approx(12 * 5e-3, rel=1e-12)
    assert float(seq.sar_proxy()) == pytest.approx(12 * alpha**2 / (12 * 5e-3), rel=1e-12)
    seq = bssfp(matrix=(16, 8), flip_angle=alpha, tr=5e-3, dummy_scans=4)
    assert float(seq.duration()) == pytest.approx(12.5 * 5e-3, rel=1e-12)
    assert float(seq.sar_proxy()) == pytest.approx(((alpha / 2) ** 2 + 12 * alpha**2) / (12.5 * 5e-3), rel=1e-12)

    alpha = math.radians(8)
    seq = ir_flash(matrix=(16, 8), flip_angle=alpha, tr=10e-3, ti=0.8, shot_tr=2.0, segments=2, dummy_shots=1)
    assert float(seq.duration()) == pytest.approx(3 * 2.0, rel=1e-12)
    assert float(seq.sar_proxy()) == pytest.approx(3 * (math.pi**2 + 4 * alpha**2) / 6.0, rel=1e-12)


def test_parameters_tables_cover_the_signatures():
    import inspect

    for table, funcs in ((FLASH_PARAMETERS, (flash,)), (GRE_PARAMETERS, (multi_echo_gre, bssfp, ir_flash))):
        for func in funcs:
            names = {p for p in inspect.signature(func).parameters if p not in ("system", "dtype")}
            assert set(table[func.__name__]) == names
            for unit, text in table[func.__name__].values():
                assert unit in ("s", "m", "rad", "s/m^2", "1", "") and text


# ---------------------------------------------------------------------------------------------------------------
# multi-echo GRE


@pytest.mark.parametrize("readout", ["monopolar", "bipolar"])
def test_multi_echo_decays_with_t2star_on_a_uniform_phantom(readout):
    n, fov = 8, 0.2
    gm = tissue_table(3.0)["gm"]
    one = torch.ones(n, n, dtype=F64)
    phantom = VoxelPhantom.create(
        pd=one * gm.pd, t1=one * gm.t1, t2=one * gm.t2, t2dash=one * gm.t2dash, d=one * gm.d,
        voxel_size=(fov / n, fov / n, 5e-3), dtype=F64,
    )  # fmt: skip
    seq = multi_echo_gre(matrix=(n, n), fov=(fov, fov), tr=30e-3, n_echoes=4, echo_spacing=6e-3, readout=readout)
    tes = echo_times(seq[0])
    assert tes == pytest.approx([tes[0] + 6e-3 * e for e in range(4)], abs=1e-12)
    signal, k, index = simulate_pdg(seq, phantom), seq.kspace(), echo_index(seq)
    means = [
        reconstruct_cartesian(signal[index == e], k[index == e], fov=(fov, fov, 1.0), matrix=(1, n, n)).abs().mean()
        for e in range(4)
    ]
    t2star = 1 / (1 / gm.t2 + 1 / gm.t2dash)
    for e in range(1, 4):
        assert float(means[e] / means[0]) == pytest.approx(
            math.exp(-(tes[e] - tes[0]) / t2star), rel=T2STAR_UNIFORM_RTOL
        )


def test_multi_echo_brain_echoes_reconstruct_alone():
    n, field = 32, 3.0
    spacing = 8e-3
    seq = multi_echo_gre(matrix=(n, n), fov=(0.2, 0.2), tr=50e-3, n_echoes=3, echo_spacing=spacing)
    # each echo is a full Cartesian grid: one sample per grid point
    k, index = seq.kspace(), echo_index(seq)
    for e in range(3):
        steps = torch.round(k[index == e] * 0.2)
        assert torch.unique(steps, dim=0).shape[0] == n * n
    images = brain_images(seq, n, field)
    table = tissue_table(field)
    first = tissue_means(images[0], n)
    for e in (1, 2):
        means = tissue_means(images[e], n)
        for name in TISSUES:
            t2star = 1 / (1 / table[name].t2 + 1 / table[name].t2dash)
            assert means[name] / first[name] == pytest.approx(math.exp(-e * spacing / t2star), rel=T2STAR_BRAIN_RTOL)


def test_multi_echo_layout_and_explicit_echo_times():
    tes = (2.5e-3, 5e-3, 9e-3)
    seq = multi_echo_gre(matrix=(16, 4), tes=tes, tr=20e-3)
    assert echo_times(seq[1]) == pytest.approx(list(tes), abs=1e-12)
    index = echo_index(seq)
    assert index.tolist() == ([0] * 16 + [1] * 16 + [2] * 16) * 4
    # bipolar: the odd echo reads backwards but covers the same grid
    seq = multi_echo_gre(matrix=(16, 4), n_echoes=2, readout="bipolar")
    kx = seq.kspace()[:32, 0] * 0.2
    torch.testing.assert_close(kx[:16], torch.arange(-8, 8, dtype=F64))
    torch.testing.assert_close(kx[16:], torch.arange(7, -9, -1, dtype=F64))


# ---------------------------------------------------------------------------------------------------------------
# bSSFP


def test_bssfp_is_balanced_with_alternating_phase_and_te_half_tr():
    tr, alpha = 6e-3, math.radians(40)
    seq = bssfp(matrix=(16, 8, 4), fov=(0.2, 0.2, 0.1), flip_angle=alpha, tr=tr, dummy_scans=3)
    catalyst, reps = seq[0], list(seq)[1:]
    assert float(catalyst.pulse_angle) == pytest.approx(alpha / 2)
    assert float(catalyst.pulse_phase) == pytest.approx(math.pi)
    assert float(catalyst.duration()) == pytest.approx(tr / 2)
    for n, rep in enumerate(reps):
        torch.testing.assert_close(rep.gradm.sum(0), torch.zeros(3, dtype=F64), atol=1e-9, rtol=0)
        assert float(rep.duration()) == pytest.approx(tr, rel=1e-12)
        assert float(rep.pulse_phase) == pytest.approx(math.pi * (n % 2))
        if rep.adc_count:
            assert echo_times(rep) == pytest.approx([tr / 2], abs=1e-12)
            torch.testing.assert_close(rep.adc_phase[rep.adc_usage], rep.pulse_phase.expand(rep.adc_count))


def test_bssfp_single_voxel_matches_closed_form_and_orders_by_t2_over_t1():
    """T2/T1 of GM, WM and CSF at 3 T with T1 scaled to 0.3 s, so that the approach to steady state (time constant
    1/(cos²(α/2)/T1 + sin²(α/2)/T2) ≤ 0.22 s; Scheffler 2003) is over after 300 TRs of 10 ms (> 13 time constants).
    """
    alpha, tr, t1 = math.radians(60), 10e-3, 0.3
    table = tissue_table(3.0)
    ratio = {name: table[name].t2 / table[name].t1 for name in TISSUES}
    seq = bssfp(matrix=(1, 1), fov=(0.05, 0.05), flip_angle=alpha, tr=tr, dummy_scans=300)
    signal = {}
    for name in TISSUES:
        t2 = t1 * ratio[name]
        signal[name] = abs(complex(simulate_pdg(seq, voxel(t1, t2))[-1, 0]))
        assert signal[name] == pytest.approx(bssfp_closed_form(alpha, tr, t1, t2), rel=BSSFP_RTOL)
    by_ratio = sorted(TISSUES, key=lambda name: ratio[name])
    by_signal = sorted(TISSUES, key=lambda name: signal[name])
    assert by_signal == by_ratio == ["gm", "wm", "csf"]


def test_bssfp_brain_csf_brightest():
    n = 32
    (image,) = brain_images(bssfp(matrix=(n, n), fov=(0.2, 0.2)), n, 3.0)
    means = tissue_means(image, n)
    assert means["csf"] > means["gm"] and means["csf"] > means["wm"]


# ---------------------------------------------------------------------------------------------------------------
# IR-FLASH


def test_ir_flash_single_shot_follows_inversion_recovery_and_nulls_at_t1_ln2():
    wm = tissue_table(3.0)["wm"]
    alpha = math.radians(8)
    phantom = voxel(wm.t1, wm.t2, t2dash=wm.t2dash, pd=wm.pd)

    def signal(ti):
        seq = ir_flash(matrix=(1, 1), fov=(0.05, 0.05), ti=ti, flip_angle=alpha, dummy_shots=0)
        (te,) = echo_times(seq[1])
        uninverted = wm.pd * math.sin(alpha) * math.exp(-te / wm.t2 - te / wm.t2dash)
        return abs(complex(simulate_pdg(seq, phantom)[0, 0])), uninverted

    for ti in (0.3, 1.5):
        got, uninverted = signal(ti)
        assert got == pytest.approx(uninverted * abs(1 - 2 * math.exp(-ti / wm.t1)), rel=IR_RTOL)
    got, uninverted = signal(wm.t1 * math.log(2))
    assert got < NULL_FRACTION * uninverted


@pytest.mark.parametrize(("order", "segments"), [("centric", 1), ("centric", 4), ("linear", 2)])
def test_ir_flash_effective_ti_is_inversion_to_k0_excitation(order, segments):
    ti, tr = 0.7, 8e-3
    seq = ir_flash(matrix=(16, 16), ti=ti, tr=tr, order=order, segments=segments, dummy_shots=1)
    start, last_inversion, found = 0.0, None, []
    for rep in seq:
        if rep.pulse_usage == "inversion":
            last_inversion = start
        elif rep.adc_count and rep.gradm[0, 1].abs() < 1e-9:
            found.append(start - last_inversion)
        start += float(rep.duration())
    assert found == pytest.approx([ti], abs=1e-9)


@pytest.mark.parametrize("field", [1.5, 3.0])
def test_ir_flash_brain_is_t1_weighted_with_dark_csf(field):
    n = 32
    (image,) = brain_images(ir_flash(matrix=(n, n), fov=(0.2, 0.2), dummy_shots=5), n, field)
    means = tissue_means(image, n)
    assert means["wm"] > means["gm"]
    assert means["csf"] < CSF_DARK * means["gm"]


# ---------------------------------------------------------------------------------------------------------------
# errors


ERRORS = {
    "te-too-short": (lambda: flash(te=1e-4), r"te = .* shorter than the readout .*minimum"),
    "tr-too-short": (lambda: flash(tr=2e-3), r"tr = .* shorter than .*minimum"),
    "flash-3d-fov": (lambda: flash(matrix=(8, 8, 4), fov=(0.2, 0.2)), r"fov must be 3 values"),
    "matrix-zero": (lambda: flash(matrix=(0, 32)), r"matrix must be"),
    "matrix-1d": (lambda: multi_echo_gre(matrix=(32,)), r"matrix must be 2 or 3"),
    "matrix-float": (lambda: bssfp(matrix=(32, 32.5)), r"matrix must be"),
    "matrix-4d": (lambda: ir_flash(matrix=(4, 4, 4, 4), fov=(0.2,) * 4), r"matrix must be 2 or 3"),
    "flip-degrees-me": (lambda: multi_echo_gre(flip_angle=15.0), r"flip_angle must be in \(0, π\] rad.*deg_to_rad"),
    "flip-degrees-bssfp": (lambda: bssfp(flip_angle=60), r"flip_angle must be in \(0, π\] rad.*deg_to_rad"),
    "flip-zero-ir": (lambda: ir_flash(flip_angle=0.0), r"flip_angle must be in \(0, π\]"),
    "flip-negative-flash": (lambda: flash(flip_angle=-0.1), r"flip_angle must be in \(0, π\]"),
    "n-echoes-zero": (lambda: multi_echo_gre(n_echoes=0), r"n_echoes must be an integer ≥ 1"),
    "n-echoes-vs-tes": (lambda: multi_echo_gre(tes=(3e-3, 6e-3), n_echoes=3), r"n_echoes = 3 does not match"),
    "tes-and-te": (lambda: multi_echo_gre(tes=(3e-3, 6e-3), te=3e-3), r"either tes or te"),
    "tes-not-increasing": (lambda: multi_echo_gre(tes=(6e-3, 3e-3)), r"tes\[1\] − tes\[0\] = .* shorter"),
    "echo-spacing-too-short": (lambda: multi_echo_gre(echo_spacing=1e-3), r"echo_spacing = .* shorter .*flyback"),
    "tr-shorter-than-echo-train": (lambda: multi_echo_gre(n_echoes=8, tr=15e-3), r"tr = .* shorter than the echo"),
    "readout-choice": (lambda: multi_echo_gre(readout="trapezoid"), r"readout must be one of"),
    "dwell-above-max-grad": (lambda: multi_echo_gre(fov=(0.05, 0.05), dwell=5e-6), r"above max_grad.*minimum dwell"),
    "bssfp-tr-too-short": (lambda: bssfp(tr=2e-3), r"tr = .* shorter than the readout .*TE = TR/2"),
    "catalyst-choice": (lambda: bssfp(catalyst="alpha"), r"catalyst must be one of"),
    "order-choice": (lambda: bssfp(order="spiral"), r"order must be 'linear' or 'centric'"),
    "ti-too-short": (lambda: ir_flash(ti=1e-3), r"ti = .* shorter than the inversion spoiler"),
    "ti-too-short-linear": (lambda: ir_flash(ti=0.2, order="linear"), r"ti = .* shorter than the inversion spoiler"),
    "shot-tr-too-short": (lambda: ir_flash(shot_tr=1.0), r"shot_tr = .* shorter than"),
    "segments-not-dividing": (lambda: ir_flash(matrix=(16, 16), segments=3), r"segments = 3 must divide"),
    "dummy-shots-negative": (lambda: ir_flash(dummy_shots=-1), r"dummy_shots must be an integer ≥ 0"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_parameters_raise_clear_errors(case):
    build, message = ERRORS[case]
    with pytest.raises(ValueError, match=message):
        build()

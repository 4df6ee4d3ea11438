"""Pulseq import: pypulseq-written files → gradmr Sequence (and cross-check against MR-zero's import)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

pp = pytest.importorskip("pypulseq")

from gradmr.io.pulseq import PulseqImportError, load_pulseq, read_definitions  # noqa: E402
from pulseq_files import system, write_gre  # noqa: E402

#: Relative tolerance of flip angles (sinc shapes are integrated from their samples).
FLIP_RTOL = 1e-3
#: k-space agreement with pypulseq, relative to k_max.
KSPACE_RTOL = 1e-6
#: Exact arithmetic in float64 (moments, phases, times).
EXACT_ATOL = 1e-9
#: pypulseq writes phases and shape values with ~6 significant digits.
FILE_RTOL = 1e-5
#: Time agreement [s].
TIME_ATOL = 1e-9
#: MR-zero works in float32.
MR0_RTOL = 1e-5

FOV = 0.2
SLICE = 3e-3


def _system():
    return system()


def _write(seq, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypulseq's own timing/deprecation notes
        seq.write(str(path))


def _kspace_of_file(path) -> np.ndarray:
    """pypulseq's k-space at the ADC samples of the file as written (amplitudes are rounded on writing)."""
    seq = pp.Sequence()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq.read(str(path))
        return seq.calculate_kspace()[0].T  # (samples, 3), 1/m


def _spoil_phase(n: int) -> float:
    """Quadratic RF-spoiling phase of the n-th pulse (117° increment) [rad]."""
    return math.radians((117.0 * n * (n + 1) / 2) % 360.0)


def make_gre(path, nx: int = 32, ny: int = 16, fa_deg: float = 10.0):
    """2D spoiled GRE as in pypulseq's examples (prephaser −area/2): samples at k_x = (n + ½)/FOV."""
    return write_gre(path, nx, ny, slice_thickness=SLICE, flip_deg=fa_deg, rf_duration=3e-3, centred=False, name="gre")


@pytest.fixture(scope="module")
def gre(tmp_path_factory):
    path = tmp_path_factory.mktemp("pulseq") / "gre.seq"
    seq = make_gre(path)
    return path, seq


# ---------------------------------------------------------------------------------------------
# (a) GRE
# ---------------------------------------------------------------------------------------------


def test_gre_pulses_timing_and_samples(gre):
    path, pseq = gre
    seq = load_pulseq(path)
    ny, nx = 16, 32
    # time before the first pulse centre → a 0 rad repetition, then one repetition per pulse
    assert len(seq) == ny + 1
    assert float(seq[0].pulse_angle) == 0.0 and seq[0].adc_count == 0
    angles = torch.stack([rep.pulse_angle for rep in seq[1:]])
    torch.testing.assert_close(
        angles, torch.full((ny,), math.radians(10.0), dtype=torch.float64), rtol=FLIP_RTOL, atol=0
    )
    assert all(rep.pulse_usage == "excitation" for rep in seq[1:])
    assert abs(float(seq.duration()) - pseq.duration()[0]) < TIME_ATOL
    assert seq.sample_count == nx * ny
    seq.validate()
    # sample times agree with pypulseq's ADC times
    t_adc, _ = pseq.adc_times()
    np.testing.assert_allclose(seq.sample_times().numpy(), t_adc, rtol=0, atol=TIME_ATOL)
    # the first pulse sits at its centre: dead time + half the 3 ms sinc
    assert abs(float(seq[0].duration()) - (100e-6 + 1.5e-3)) < TIME_ATOL


def test_gre_kspace_matches_pypulseq(gre):
    path, pseq = gre
    seq = load_pulseq(path)
    k_adc = _kspace_of_file(path)
    k = seq.kspace().numpy()
    kmax = np.abs(k_adc).max()
    np.testing.assert_allclose(k, k_adc, rtol=0, atol=KSPACE_RTOL * kmax)
    # this pypulseq-style GRE (prephaser −area/2, samples mid-dwell) samples k_x = (n + ½) / FOV
    np.testing.assert_allclose(k[:32, 0] * FOV, np.arange(-16, 16) + 0.5, rtol=0, atol=16 * FILE_RTOL)


def test_gre_rf_and_adc_phases(gre):
    path, _ = gre
    seq = load_pulseq(path)
    for n, rep in enumerate(seq[1:]):
        want = _spoil_phase(n)
        assert abs(math.remainder(float(rep.pulse_phase) - want, 2 * math.pi)) < FILE_RTOL
        # the ADC phase is the RF phase as written: equal to it to the last digit
        torch.testing.assert_close(rep.adc_phase[rep.adc_usage], rep.pulse_phase.expand(32), rtol=0, atol=EXACT_ATOL)
        assert (rep.adc_phase[~rep.adc_usage] == 0).all()


def test_dtype_and_definitions(gre):
    path, _ = gre
    seq = load_pulseq(path, dtype=torch.float32)
    assert seq[1].gradm.dtype == torch.float32 and seq[1].adc_usage.dtype == torch.bool
    defs = read_definitions(path)
    assert defs["FOV"] == pytest.approx((FOV, FOV, SLICE))
    assert defs["Name"] == "gre"
    assert defs["GradientRasterTime"] == pytest.approx(1e-5)


def test_large_gre_imports_quickly(tmp_path):
    import time

    path = tmp_path / "big.seq"
    make_gre(path, nx=256, ny=256)
    start = time.perf_counter()
    seq = load_pulseq(path)
    elapsed = time.perf_counter() - start
    assert seq.sample_count == 256 * 256
    assert elapsed < 5.0, f"importing a 256×256 GRE took {elapsed:.1f} s"


# ---------------------------------------------------------------------------------------------
# (b) spin echo / TSE
# ---------------------------------------------------------------------------------------------


def make_tse(path, n_echoes: int = 4, esp: float = 10e-3, nx: int = 16):
    system = _system()
    seq = pp.Sequence(system)
    rf90 = pp.make_block_pulse(
        math.radians(90),
        duration=500e-6,
        phase_offset=math.pi / 2,
        delay=system.rf_dead_time,
        use="excitation",
        system=system,
    )
    rf180 = pp.make_sinc_pulse(
        math.radians(180),
        duration=2e-3,
        time_bw_product=4,
        apodization=0.5,
        delay=system.rf_dead_time,
        use="refocusing",
        system=system,
    )
    gx = pp.make_trapezoid("x", flat_area=nx / FOV, flat_time=2e-3, system=system)
    adc = pp.make_adc(nx, duration=gx.flat_time, delay=gx.rise_time, system=system)
    gx_pre = pp.make_trapezoid("x", area=gx.area / 2, duration=1e-3, system=system)
    t90 = rf90.delay + rf90.center
    d_rf90 = pp.calc_duration(rf90)
    d180 = pp.calc_duration(rf180)
    c180 = rf180.delay + rf180.center
    seq.add_block(rf90)
    # centre of the first 180 at esp/2 after the 90's centre
    seq.add_block(gx_pre)
    seq.add_block(pp.make_delay(esp / 2 - (d_rf90 - t90) - pp.calc_duration(gx_pre) - c180))
    gap = (esp - d180 - pp.calc_duration(gx)) / 2
    for _ in range(n_echoes):
        seq.add_block(rf180)
        seq.add_block(pp.make_delay(gap))
        seq.add_block(gx, adc)
        seq.add_block(pp.make_delay(gap))
    _write(seq, path)
    return seq


def test_tse_pulse_usage_and_angles(tmp_path):
    path = tmp_path / "tse.seq"
    pseq = make_tse(path)
    seq = load_pulseq(path)
    assert len(seq) == 1 + 1 + 4
    assert [rep.pulse_usage for rep in seq] == ["undefined", "excitation"] + ["refocusing"] * 4
    assert abs(float(seq[1].pulse_angle) - math.pi / 2) < FLIP_RTOL * math.pi / 2
    for rep in seq[2:]:
        assert abs(float(rep.pulse_angle) - math.pi) < FLIP_RTOL * math.pi
        assert rep.adc_count == 16
    # the block pulse's phase offset is carried over (its shape has zero phase)
    assert abs(float(seq[1].pulse_phase) - math.pi / 2) < FILE_RTOL
    assert abs(float(seq.duration()) - pseq.duration()[0]) < TIME_ATOL
    k_adc = _kspace_of_file(path)
    k = seq.kspace().numpy()
    np.testing.assert_allclose(k, k_adc, rtol=0, atol=KSPACE_RTOL * np.abs(k_adc).max())


# ---------------------------------------------------------------------------------------------
# (c) extended trapezoid and arbitrary gradients: exact moment integrals
# ---------------------------------------------------------------------------------------------


def test_extended_trapezoid_and_arbitrary_moments(tmp_path):
    system = _system()
    seq = pp.Sequence(system)
    rf = pp.make_block_pulse(
        math.radians(30), duration=200e-6, delay=system.rf_dead_time, use="excitation", system=system
    )
    amp = 2e5  # Hz/m
    times = np.array([0, 100, 300, 400, 600]) * 1e-6
    amps = np.array([0, amp, amp, -amp / 2, 0])
    gx_ext = pp.make_extended_trapezoid("x", amplitudes=amps, times=times, system=system)
    n = 50
    wave = amp * np.sin(np.pi * (np.arange(n) + 0.5) / n)
    gy_arb = pp.make_arbitrary_grad("y", waveform=wave, first=0, last=0, system=system)
    adc = pp.make_adc(10, dwell=20e-6, delay=50e-6, system=system)
    seq.add_block(rf)
    seq.add_block(gx_ext, gy_arb, adc)
    path = tmp_path / "ext.seq"
    _write(seq, path)
    out = load_pulseq(path)
    assert len(out) == 2
    gm = torch.cat([rep.gradm for rep in out]).numpy()
    # whole-lobe areas: the extended trapezoid is exact; the arbitrary shape is stored to ~6 digits
    area_x = np.trapezoid(amps, times)
    t_arb = np.concatenate(([0], (np.arange(n) + 0.5) * system.grad_raster_time, [n * system.grad_raster_time]))
    area_y = np.trapezoid(np.concatenate(([0], wave, [0])), t_arb)
    assert abs(gm[:, 0].sum() - area_x) < EXACT_ATOL * abs(area_x)
    assert abs(gm[:, 1].sum() - area_y) < FILE_RTOL * abs(area_y)
    # partial moments at the ADC samples: exact piecewise-linear integrals of the extended trapezoid
    rep = out[1]
    cum = torch.cumsum(rep.gradm, 0)[rep.adc_usage].numpy()
    t_s = 50e-6 + (np.arange(10) + 0.5) * 20e-6  # from the start of the gradient block
    fine = np.linspace(0, 600e-6, 600_001)
    g_fine = np.interp(fine, times, amps)
    cum_fine = np.concatenate(([0], np.cumsum(0.5 * (g_fine[1:] + g_fine[:-1]) * np.diff(fine))))
    want = np.interp(t_s, fine, cum_fine)
    np.testing.assert_allclose(cum[:, 0], want, rtol=0, atol=1e-6 * abs(area_x))
    k_adc = _kspace_of_file(path)
    np.testing.assert_allclose(out.kspace().numpy(), k_adc, rtol=0, atol=KSPACE_RTOL * np.abs(k_adc).max())


def test_gradient_during_rf_is_split_at_its_centre(tmp_path):
    system = _system()
    seq = pp.Sequence(system)
    seq.add_block(pp.make_delay(1e-3))
    rf = pp.make_block_pulse(
        math.radians(20), duration=1e-3, delay=system.rf_dead_time, use="excitation", system=system
    )
    gz = pp.make_trapezoid("z", amplitude=1e5, flat_time=1.2e-3, rise_time=100e-6, system=system)
    seq.add_block(rf, gz)
    path = tmp_path / "split.seq"
    _write(seq, path)
    out = load_pulseq(path)
    assert len(out) == 2
    tc = 1e-3 + 100e-6 + 500e-6
    assert abs(float(out[0].duration()) - tc) < TIME_ATOL
    # gz: ramp 0…100 µs, flat to 1.3 ms; the pulse centre is at 600 µs into the block
    before = 1e5 * (50e-6 + 500e-6)
    after = gz.area - before
    assert abs(float(out[0].gradm[:, 2].sum()) - before) < EXACT_ATOL * gz.area
    assert abs(float(out[1].gradm[:, 2].sum()) - after) < EXACT_ATOL * gz.area


# ---------------------------------------------------------------------------------------------
# (d) RF and ADC phase offsets; RF usage mapping
# ---------------------------------------------------------------------------------------------


def test_phase_offsets_and_usages(tmp_path):
    system = _system()
    seq = pp.Sequence(system)
    phases = [0.3, -1.2, 2.5]
    uses = ["inversion", "saturation", "undefined"]
    for ph, use in zip(phases, uses, strict=True):
        rf = pp.make_block_pulse(
            math.radians(45), duration=400e-6, phase_offset=ph, delay=system.rf_dead_time, use=use, system=system
        )
        seq.add_block(rf)
        seq.add_block(pp.make_adc(8, dwell=10e-6, phase_offset=-ph / 2, delay=system.adc_dead_time, system=system))
    path = tmp_path / "phase.seq"
    _write(seq, path)
    out = load_pulseq(path)[1:]
    assert [rep.pulse_usage for rep in out] == ["inversion", "storage", "undefined"]
    for rep, ph in zip(out, phases, strict=True):
        assert abs(float(rep.pulse_phase) - ph) < FILE_RTOL
        assert abs(float(rep.pulse_angle) - math.pi / 4) < EXACT_ATOL
        assert rep.adc_count == 8
        torch.testing.assert_close(
            rep.adc_phase[rep.adc_usage], torch.full((8,), -ph / 2, dtype=torch.float64), rtol=0, atol=FILE_RTOL
        )


def test_rf_shape_phase_and_frequency_offset(tmp_path):
    """Phase = phase_offset + 2π·freq_offset·centre + arg ∫ signal."""
    system = _system()
    seq = pp.Sequence(system)
    n = 100
    signal = np.exp(1j * 0.4) * np.hanning(n)
    rf = pp.make_arbitrary_rf(
        signal,
        math.radians(60),
        phase_offset=0.1,
        freq_offset=200.0,
        delay=system.rf_dead_time,
        use="excitation",
        system=system,
    )
    seq.add_block(rf)
    seq.add_block(pp.make_delay(1e-3))
    path = tmp_path / "arb_rf.seq"
    _write(seq, path)
    rep = load_pulseq(path)[1]
    assert abs(float(rep.pulse_angle) - math.radians(60)) < FLIP_RTOL * math.radians(60)
    want = 0.1 + 2 * math.pi * 200.0 * rf.center + 0.4
    assert abs(math.remainder(float(rep.pulse_phase) - want, 2 * math.pi)) < 1e-6


# ---------------------------------------------------------------------------------------------
# (e) malformed and missing files
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.seq"
    with pytest.raises(FileNotFoundError, match="nope.seq"):
        load_pulseq(path)
    with pytest.raises(FileNotFoundError, match="nope.seq"):
        read_definitions(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.seq"
    path.write_text("this is not a pulseq file\n1 2 3\n")
    with pytest.raises(PulseqImportError, match="malformed"):
        load_pulseq(path)
    with pytest.raises(PulseqImportError, match="malformed"):
        read_definitions(path)


def test_truncated_file(gre, tmp_path):
    path, _ = gre
    text = path.read_text()
    cut = tmp_path / "cut.seq"
    cut.write_text(text[: text.index("[RF]") + 30])
    with pytest.raises(PulseqImportError, match="malformed"):
        load_pulseq(cut)


def test_rf_centre_outside_pulse_names_block(gre, tmp_path):
    path, _ = gre
    lines = path.read_text().splitlines()
    start = lines.index("[RF]")
    # first RF line after the comments: "id amp mag phase time center delay ..." → centre far outside
    for i in range(start + 1, len(lines)):
        if lines[i].strip() and not lines[i].startswith("#"):
            tok = lines[i].split()
            tok[5] = "1e6"  # centre in µs
            lines[i] = " ".join(tok)
            break
    bad = tmp_path / "bad_centre.seq"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(PulseqImportError, match=r"block 1: .*centre"):
        load_pulseq(bad)


# ---------------------------------------------------------------------------------------------
# (f) MR-zero as a peer
# ---------------------------------------------------------------------------------------------


def _mr0():
    try:
        import MRzeroCore as mr0
    except Exception as e:  # pragma: no cover - optional dependency
        pytest.skip(f"MRzeroCore not importable: {e}")
    return mr0


def test_matches_mrzero_import(gre):
    mr0 = _mr0()
    path, _ = gre
    ours = load_pulseq(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = mr0.Sequence.import_file(str(path))
    # MR-zero drops the time before the first pulse
    ours = ours[1:]
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        last = i == len(ours) - 1
        assert abs(float(a.pulse_angle) - float(b.pulse.angle)) < MR0_RTOL * float(a.pulse_angle)
        assert abs(math.remainder(float(a.pulse_phase) - float(b.pulse.phase), 2 * math.pi)) < 1e-5
        ta = torch.cumsum(a.event_time, 0).numpy()
        tb = torch.cumsum(b.event_time.double(), 0).numpy()
        ka = torch.cumsum(a.gradm, 0).numpy()
        kb = torch.cumsum(b.gradm.double(), 0).numpy()
        kscale = np.abs(ka).max()
        # ADC: same number of samples at the same times, with the same k; MR-zero stores π/2 − φ
        ua, ub = a.adc_usage.numpy(), b.adc_usage.numpy().astype(bool)
        assert ua.sum() == ub.sum()
        np.testing.assert_allclose(ta[ua], tb[ub], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ka[ua], kb[ub], rtol=0, atol=MR0_RTOL * kscale)
        dphi = (np.pi / 2 - a.adc_phase[a.adc_usage].numpy()) - b.adc_phase[ub].double().numpy()
        assert np.abs(np.remainder(dphi + np.pi, 2 * np.pi) - np.pi).max() < 1e-5
        # cumulative moments agree at every event boundary both imports share
        j = np.abs(ta[:, None] - tb[None, :]).argmin(axis=0)
        common = np.abs(ta[j] - tb) < 1e-8
        assert common.sum() >= ub.sum()
        np.testing.assert_allclose(ka[j[common]], kb[common], rtol=0, atol=MR0_RTOL * kscale)
        # repetition lengths agree except the last, which MR-zero ends at its last sample
        if not last:
            assert abs(ta[-1] - tb[-1]) < 1e-8
            np.testing.assert_allclose(ka[-1], kb[-1], rtol=0, atol=MR0_RTOL * kscale)

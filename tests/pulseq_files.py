"""`.seq` files written by pypulseq's own make_* functions, shared by the tests and the benchmarks.

One 2D spoiled GRE/FLASH: slice-selective sinc excitation (``use="excitation"``), quadratic RF spoiling with the
ADC phase equal to the RF phase, a rewound phase encoding, and spoilers in x (2 cycles per voxel) and z (4 cycles
per slice). (The package's own Pulseq export is the sequence library's issue; then this moves there.)
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

FOV = 0.2  # m
SLICE = 5e-3  # m


def system():
    """The scanner limits every test file is written with (28 mT/m, 150 T/m/s, usual dead times)."""
    import pypulseq as pp

    return pp.Opts(
        max_grad=28,
        grad_unit="mT/m",
        max_slew=150,
        slew_unit="T/m/s",
        rf_ringdown_time=20e-6,
        rf_dead_time=100e-6,
        adc_dead_time=10e-6,
    )


def write_gre(
    path: str | Path,
    nx: int,
    ny: int | None = None,
    *,
    fov: float = FOV,
    slice_thickness: float = SLICE,
    flip_deg: float = 10.0,
    dwell: float = 20e-6,
    rf_duration: float = 2e-3,
    centred: bool = True,
    tr: float | None = None,
    rf_spoil_deg: float = 117.0,
    name: str = "gre",
):
    """Write an ``nx × ny`` GRE to ``path``; returns the pypulseq ``Sequence``.

    pypulseq samples at ``delay + (i + ½)·dwell``. With ``centred`` the prephaser is ``−area/2 − Δk/2`` so that the
    samples sit at ``k_x = (i − nx/2)/FOV`` (a centred FFT grid, as :func:`gradmr.sequence.flash`); without it the
    prephaser is ``−area/2`` as in pypulseq's examples, and the samples sit at ``(i − nx/2 + ½)/FOV``.
    ``tr=None`` gives the shortest TR.
    """
    import pypulseq as pp

    ny = nx if ny is None else ny
    opts = system()
    seq = pp.Sequence(opts)
    rf, gz, _ = pp.make_sinc_pulse(
        flip_angle=math.radians(flip_deg),
        duration=rf_duration,
        slice_thickness=slice_thickness,
        apodization=0.42,
        time_bw_product=4,
        system=opts,
        return_gz=True,
        use="excitation",
        delay=opts.rf_dead_time,
    )
    dk = 1.0 / fov
    gx = pp.make_trapezoid("x", flat_area=nx * dk, flat_time=nx * dwell, system=opts)
    adc = pp.make_adc(nx, dwell=dwell, delay=gx.rise_time, system=opts)
    gx_pre = pp.make_trapezoid("x", area=-gx.area / 2 - (dk / 2 if centred else 0.0), duration=1e-3, system=opts)
    gz_reph = pp.make_trapezoid("z", area=-gz.area / 2, duration=1e-3, system=opts)
    gx_spoil = pp.make_trapezoid("x", area=2 * nx * dk, system=opts)
    gz_spoil = pp.make_trapezoid("z", area=4 / slice_thickness, system=opts)
    pe_dur = pp.calc_duration(gx_pre, gz_reph)
    spoil_dur = pp.calc_duration(gx_spoil, gz_spoil)
    min_tr = pp.calc_duration(rf, gz) + pe_dur + pp.calc_duration(gx, adc) + spoil_dur
    fill = 0.0
    if tr is not None:
        fill = round((tr - min_tr) / opts.block_duration_raster) * opts.block_duration_raster
        if fill < 0:
            raise ValueError(f"TR {tr * 1e3:.3g} ms is shorter than the minimum {min_tr * 1e3:.3g} ms")
    rf_phase, rf_inc = 0.0, 0.0
    for i in range(ny):
        rf.phase_offset = math.radians(rf_phase)
        adc.phase_offset = math.radians(rf_phase)
        rf_inc = (rf_inc + rf_spoil_deg) % 360.0
        rf_phase = (rf_phase + rf_inc) % 360.0
        seq.add_block(rf, gz)
        area = (i - ny // 2) * dk
        seq.add_block(gx_pre, gz_reph, pp.make_trapezoid("y", area=area, duration=pe_dur, system=opts))
        seq.add_block(gx, adc)
        seq.add_block(gx_spoil, gz_spoil, pp.make_trapezoid("y", area=-area, duration=spoil_dur, system=opts))
        if fill > 1e-9:
            seq.add_block(pp.make_delay(fill))
    seq.set_definition("FOV", [fov, fov, slice_thickness])
    seq.set_definition("Name", name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypulseq's own deprecation/timing notes
        ok, report = seq.check_timing()
        if not ok:
            raise RuntimeError(f"pypulseq timing check failed: {report[:3]}")
        seq.write(str(path))
    return seq


def _check_and_write(seq, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypulseq's own deprecation/timing notes
        ok, report = seq.check_timing()
        if not ok:
            raise RuntimeError(f"pypulseq timing check failed: {report[:3]}")
        seq.write(str(path))


def tse_line_order(n: int, echo_train_length: int) -> list[list[int]]:
    """Phase-encode line indices (0 … n−1, line ``n//2`` is k_y = 0) of each shot, in echo order.

    Echo ``e`` of shot ``s`` acquires line ``e·shots + s``: each echo covers one contiguous band of k_y (a linear
    T2 weighting across k-space), and the k_y = 0 line is echo ``n//2 // shots`` of shot 0.
    """
    shots = n // echo_train_length
    if shots * echo_train_length != n:
        raise ValueError(f"echo_train_length {echo_train_length} must divide n = {n}")
    return [[e * shots + s for e in range(echo_train_length)] for s in range(shots)]


def write_tse(
    path: str | Path,
    n: int = 32,
    *,
    fov: float = FOV,
    slice_thickness: float = SLICE,
    echo_train_length: int = 16,
    echo_spacing: float = 10e-3,
    tr: float = 3.0,
    dwell: float = 20e-6,
    crusher_cycles: float = 4.0,
    dummy_shots: int = 1,
    name: str = "tse",
):
    """Write a 2D CPMG turbo spin echo (``n × n``) to ``path``; returns ``(seq, info)``.

    90° (phase 90°, slice-selective sinc) – readout prephaser – [z crusher – 180° (phase 0, slice-selective sinc) –
    z crusher + phase encode – readout – z crusher + rewinder] × ``echo_train_length``, then x/z spoilers and a wait to
    ``tr``; ``dummy_shots`` shots without ADC first (steady state), then ``n / echo_train_length`` shots.

    The crushers (``crusher_cycles`` per slice thickness) sit symmetrically around every 180°; the 180° centres are
    ``echo_spacing/2 + j·echo_spacing`` after the 90° centre and each readout's k = 0 sample (sample ``n/2``, with the
    ADC started half a dwell before the flat top so that sample ``i`` is at ``k_x = (i − n/2)/fov``) lies half-way
    between two 180°s. ``info`` holds ``te_eff`` (the echo time of the k_y = 0 line) [s] and ``echo_spacing``.
    """
    import pypulseq as pp

    opts = system()
    raster = opts.grad_raster_time
    seq = pp.Sequence(opts)
    dk = 1.0 / fov
    rf90, gz90, gz90_reph = pp.make_sinc_pulse(
        flip_angle=math.pi / 2,
        duration=1.5e-3,
        slice_thickness=slice_thickness,
        apodization=0.5,
        time_bw_product=4,
        phase_offset=math.pi / 2,
        system=opts,
        return_gz=True,
        use="excitation",
        delay=opts.rf_dead_time,
    )
    rf180, gz180, _ = pp.make_sinc_pulse(
        flip_angle=math.pi,
        duration=2e-3,
        slice_thickness=slice_thickness,
        apodization=0.5,
        time_bw_product=4,
        phase_offset=0.0,
        system=opts,
        return_gz=True,
        use="refocusing",
        delay=opts.rf_dead_time,
    )
    gx = pp.make_trapezoid("x", flat_area=n * dk, flat_time=n * dwell, system=opts)
    # sample i at rise + i·dwell: the k = 0 sample (i = n/2) is the middle of the readout block
    adc = pp.make_adc(n, dwell=dwell, delay=gx.rise_time - dwell / 2, system=opts)
    gx_pre = pp.make_trapezoid("x", area=gx.area / 2, system=opts)
    crusher = pp.make_trapezoid("z", area=crusher_cycles / slice_thickness, system=opts)
    pe_max = pp.make_trapezoid("y", area=(n // 2) * dk, system=opts)
    d_cr = max(pp.calc_duration(crusher), pp.calc_duration(pe_max))

    d90, c90 = pp.calc_duration(rf90, gz90), rf90.delay + rf90.center
    d180, c180 = pp.calc_duration(rf180, gz180), rf180.delay + rf180.center
    d_pre = pp.calc_duration(gx_pre, gz90_reph)
    d_read = pp.calc_duration(gx, adc)
    # block after the 180 (crusher + phase encode) and before the next (crusher + rewinder): the echo lies half-way
    # between the 180 centres when d_after − d_before = 2·c180 − d180
    skew = round((2 * c180 - d180) / raster) * raster
    d_before = max(d_cr, d_cr - skew)
    d_after = d_before + skew
    esp_min = d180 + d_after + d_read + d_before
    pad = round((echo_spacing - esp_min) / (2 * raster)) * raster
    if pad < 0:
        raise ValueError(f"echo_spacing {echo_spacing * 1e3:.3g} ms is below the minimum {esp_min * 1e3:.3g} ms")
    d_before += pad
    d_after += pad
    esp = d180 + d_after + d_read + d_before
    first_wait = round((esp / 2 - (d90 - c90) - d_pre - d_cr - c180) / raster) * raster
    if first_wait < 0:
        raise ValueError("echo_spacing too short for the excitation and the prephaser")
    gx_spoil = pp.make_trapezoid("x", area=2 * n * dk, system=opts)
    gz_spoil = pp.make_trapezoid("z", area=4 / slice_thickness, system=opts)
    d_spoil = pp.calc_duration(gx_spoil, gz_spoil)
    train = d90 - c90 + d_pre + first_wait + echo_train_length * esp + d_spoil
    wait = round((tr - train - c90) / raster) * raster
    if wait < 0:
        raise ValueError(f"tr {tr} s is shorter than the echo train")

    orders = tse_line_order(n, echo_train_length)
    shots = [(None, order) for order in orders[:1] * dummy_shots] + [(True, order) for order in orders]
    for acquire, order in shots:
        seq.add_block(rf90, gz90)
        seq.add_block(gx_pre, gz90_reph, pp.make_delay(d_pre))
        if first_wait > 0:
            seq.add_block(pp.make_delay(first_wait))
        seq.add_block(crusher, pp.make_delay(d_cr))
        for line in order:
            area = (line - n // 2) * dk
            seq.add_block(rf180, gz180)
            seq.add_block(
                crusher, pp.make_trapezoid("y", area=area, duration=d_cr, system=opts), pp.make_delay(d_after)
            )
            if acquire:
                seq.add_block(gx, adc)
            else:
                seq.add_block(gx)
            seq.add_block(
                crusher, pp.make_trapezoid("y", area=-area, duration=d_cr, system=opts), pp.make_delay(d_before)
            )
        seq.add_block(gx_spoil, gz_spoil)
        seq.add_block(pp.make_delay(wait))
    seq.set_definition("FOV", [fov, fov, slice_thickness])
    seq.set_definition("Name", name)
    _check_and_write(seq, path)
    centre_echo = orders[0].index(n // 2) + 1
    return seq, {"te_eff": centre_echo * esp, "echo_spacing": esp}


def write_epi(
    path: str | Path,
    n: int = 32,
    *,
    fov: float = FOV,
    slice_thickness: float = SLICE,
    dwell: float = 20e-6,
    name: str = "epi",
):
    """Write a single-shot 2D gradient-echo EPI (``n × n``, blipped, no ramp sampling) to ``path``; returns
    ``(seq, info)``.

    Slice-selective 90° sinc, prephasers to ``(−k_max, −k_max)``, then ``n`` readouts of alternating polarity with a
    k_y blip (its own block) between them. Every line samples ``k_x = (i − n/2)/fov``: the ADC of a positive line
    starts half a dwell before its flat top, that of a negative line half a dwell after it, so the reversed lines
    land on the same grid (in reverse order). ``info["te"]`` is the time from the pulse centre to the k = 0 sample.
    """
    import pypulseq as pp

    opts = system()
    seq = pp.Sequence(opts)
    dk = 1.0 / fov
    rf, gz, gz_reph = pp.make_sinc_pulse(
        flip_angle=math.pi / 2,
        duration=2e-3,
        slice_thickness=slice_thickness,
        apodization=0.5,
        time_bw_product=4,
        system=opts,
        return_gz=True,
        use="excitation",
        delay=opts.rf_dead_time,
    )
    gx = pp.make_trapezoid("x", flat_area=n * dk, flat_time=n * dwell, system=opts)
    gx_neg = pp.scale_grad(gx, -1)
    adc_pos = pp.make_adc(n, dwell=dwell, delay=gx.rise_time - dwell / 2, system=opts)
    adc_neg = pp.make_adc(n, dwell=dwell, delay=gx.rise_time + dwell / 2, system=opts)
    blip = pp.make_trapezoid("y", area=dk, system=opts)
    gx_pre = pp.make_trapezoid("x", area=-gx.area / 2, system=opts)
    gy_pre = pp.make_trapezoid("y", area=-(n // 2) * dk, system=opts)
    d_pre = pp.calc_duration(gx_pre, gy_pre, gz_reph)
    seq.add_block(rf, gz)
    seq.add_block(gx_pre, gy_pre, gz_reph, pp.make_delay(d_pre))
    d_line = pp.calc_duration(gx)
    d_blip = pp.calc_duration(blip)
    for line in range(n):
        if line % 2 == 0:
            seq.add_block(gx, adc_pos)
        else:
            seq.add_block(gx_neg, adc_neg)
        if line < n - 1:
            seq.add_block(blip)
    seq.add_block(pp.make_delay(1e-3))
    seq.set_definition("FOV", [fov, fov, slice_thickness])
    seq.set_definition("Name", name)
    _check_and_write(seq, path)
    centre = n // 2  # the k_y = 0 line (even for even n: a positive line), its sample n/2 at rise + n/2·dwell
    te = (
        pp.calc_duration(rf, gz)
        - (rf.delay + rf.center)
        + d_pre
        + centre * (d_line + d_blip)
        + gx.rise_time
        + (n // 2) * dwell
    )
    return seq, {"te": te}

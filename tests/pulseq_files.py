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

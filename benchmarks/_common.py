"""Helpers shared by the benchmarks: a pypulseq-written 2D FLASH and the phantom conversion for MR-zero.

MR-zero (``mrzerocore``, AGPL) is only *called* here as a peer; none of its code is used.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from gradmr.phantom.core import VoxelPhantom

FOV = 0.2  # m
SLICE = 5e-3  # m


def write_flash_seq(
    path: str | Path,
    n: int,
    *,
    fov: float = FOV,
    flip_deg: float = 10.0,
    tr: float | None = 10e-3,
    dwell: float = 10e-6,
    slice_thickness: float = SLICE,
    rf_spoil_deg: float = 117.0,
) -> Path:
    """Write an ``n × n`` 2D spoiled FLASH with pypulseq and return the path.

    Slice-selective sinc excitation (use="excitation"), quadratic RF spoiling (``rf_spoil_deg``) with the ADC phase
    equal to the RF phase, a rewound phase encoding, and a spoiler of 2 cycles per voxel in x and 4 cycles per slice in
    z. The prephaser is ``−area/2 − Δk/2`` so that pypulseq's samples (at ``delay + (i + ½)·dwell``) sit at
    ``k_x = (i − n/2)/FOV`` exactly: a centred FFT grid, as gradmr's own :func:`gradmr.sequence.flash`.
    ``tr=None`` gives the shortest TR.
    """
    import pypulseq as pp

    system = pp.Opts(
        max_grad=28,
        grad_unit="mT/m",
        max_slew=150,
        slew_unit="T/m/s",
        rf_ringdown_time=20e-6,
        rf_dead_time=100e-6,
        adc_dead_time=10e-6,
    )
    seq = pp.Sequence(system)
    rf, gz, _ = pp.make_sinc_pulse(
        flip_angle=math.radians(flip_deg),
        duration=2e-3,
        slice_thickness=slice_thickness,
        apodization=0.42,
        time_bw_product=4,
        system=system,
        return_gz=True,
        use="excitation",
        delay=system.rf_dead_time,
    )
    dk = 1.0 / fov
    gx = pp.make_trapezoid("x", flat_area=n * dk, flat_time=n * dwell, system=system)
    adc = pp.make_adc(n, dwell=dwell, delay=gx.rise_time, system=system)
    gx_pre = pp.make_trapezoid("x", area=-gx.area / 2 - dk / 2, duration=1e-3, system=system)
    gz_reph = pp.make_trapezoid("z", area=-gz.area / 2, duration=1e-3, system=system)
    gx_spoil = pp.make_trapezoid("x", area=2 * n * dk, system=system)
    gz_spoil = pp.make_trapezoid("z", area=4 / slice_thickness, system=system)
    pe_dur = pp.calc_duration(gx_pre, gz_reph)
    spoil_dur = pp.calc_duration(gx_spoil, gz_spoil)
    min_tr = pp.calc_duration(rf, gz) + pe_dur + pp.calc_duration(gx, adc) + spoil_dur
    fill = 0.0
    if tr is not None:
        fill = round((tr - min_tr) / system.block_duration_raster) * system.block_duration_raster
        if fill < 0:
            raise ValueError(f"TR {tr * 1e3:.3g} ms is shorter than the minimum {min_tr * 1e3:.3g} ms")
    rf_phase, rf_inc = 0.0, 0.0
    for i in range(n):
        rf.phase_offset = math.radians(rf_phase)
        adc.phase_offset = math.radians(rf_phase)
        rf_inc = (rf_inc + rf_spoil_deg) % 360.0
        rf_phase = (rf_phase + rf_inc) % 360.0
        seq.add_block(rf, gz)
        area = (i - n // 2) * dk
        seq.add_block(gx_pre, gz_reph, pp.make_trapezoid("y", area=area, duration=pe_dur, system=system))
        seq.add_block(gx, adc)
        seq.add_block(gx_spoil, gz_spoil, pp.make_trapezoid("y", area=-area, duration=spoil_dur, system=system))
        if fill > 1e-9:
            seq.add_block(pp.make_delay(fill))
    seq.set_definition("FOV", [fov, fov, slice_thickness])
    seq.set_definition("Name", f"flash{n}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypulseq's own deprecation/timing notes
        ok, report = seq.check_timing()
        if not ok:
            raise RuntimeError(f"pypulseq timing check failed: {report[:3]}")
        seq.write(str(path))
    return Path(path)


def to_mrzero(phantom: VoxelPhantom, pool: int = 0):
    """One pool of a gradmr phantom as an MR-zero ``VoxelGridPhantom`` with the same voxel positions.

    gradmr maps are ``(pools, z, y, x)`` in SI; MR-zero's are ``(x, y, z)`` with D in 10⁻³ mm²/s, B1 and coil_sens with
    a leading coil axis and an affine in mm. MR-zero places voxel ``i`` at ``affine[:3, :3] @ (i − n//2)`` (the
    translation column is ignored), so a diagonal affine of the voxel size gives gradmr's ``(i − N//2)·voxel_size``.
    Tensors keep their autograd graph (float32 tensors are passed through as they are).
    """
    import MRzeroCore as mr0

    def xyz(m: torch.Tensor) -> torch.Tensor:
        return m[pool].permute(2, 1, 0).to(torch.float32)

    affine = torch.zeros(3, 4)
    affine[:3, :3] = torch.diag(phantom.voxel_size.detach().double() * 1000).float()
    return mr0.VoxelGridPhantom(
        xyz(phantom.pd),
        xyz(phantom.t1),
        xyz(phantom.t2),
        xyz(phantom.t2dash),
        xyz(phantom.d) * 1e9,
        xyz(phantom.b0),
        xyz(phantom.b1)[None].to(torch.complex64),
        phantom.coil_sens.permute(0, 3, 2, 1).to(torch.complex64),
        affine,
    )


def run_mrzero(seq_or_path, data):
    """MR-zero with the accurate settings of the notes; returns its signal ``(samples, coils)`` *in its convention*."""
    import contextlib
    import io

    import MRzeroCore as mr0

    seq = mr0.Sequence.import_file(str(seq_or_path)) if isinstance(seq_or_path, str | Path) else seq_or_path
    with contextlib.redirect_stdout(io.StringIO()):
        graph = mr0.compute_graph(seq, data, 2000, 1e-5)
    return mr0.execute_graph(graph, seq, data, 1e-3, 1e-3, print_progress=False)


def nrmse(ref: torch.Tensor, test: torch.Tensor) -> float:
    """‖test − ref‖ / ‖ref‖ (complex, over every sample and coil)."""
    ref = ref.detach().to(torch.complex128)
    test = test.detach().to(torch.complex128)
    return float((test - ref).norm() / ref.norm())

"""Raw data to ISMRMRD (MRD) files, through the ``ismrmrd`` package.

One :class:`ismrmrd.Acquisition` per readout line. The trajectory is stored per sample in units of
``1/FOV`` (``k·FOV``, dimensionless: Cartesian samples lie on the integers −N/2 … N/2 − 1), with 2
dimensions (kx, ky) for 2D data and 3 when any kz is non-zero; multiply by ``1/FOV`` from the header
(``encodedSpace.fieldOfView_mm``, in mm) to get 1/m back.
"""

from __future__ import annotations

import numpy as np
import torch

from ..constants import GAMMA_BAR_HZ_PER_T
from ..recon.fft import kspace_indices

#: Two samples belong to the same readout line when their ky and kz differ by less than this
#: fraction of a grid step ``1/FOV`` (used only when ``line_lengths`` is not given).
LINE_TOLERANCE = 1e-6


def _numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def infer_line_lengths(kspace, *, fov) -> list[int]:
    """Split samples into readout lines where ky or kz changes (Cartesian readouts along x).

    For trajectories whose ky or kz change within a readout (radial, spiral) pass ``line_lengths``
    to :func:`write_ismrmrd` instead.
    """
    k = _numpy(kspace, np.float64) * np.asarray(fov, dtype=np.float64)[None, :]
    if k.shape[0] == 0:
        return []
    change = np.abs(np.diff(k[:, 1:], axis=0)).max(axis=1) > LINE_TOLERANCE
    starts = np.concatenate([[0], np.nonzero(change)[0] + 1, [k.shape[0]]])
    return [int(n) for n in np.diff(starts)]


def write_ismrmrd(
    path,
    signal,
    kspace,
    *,
    fov,
    matrix,
    sample_times=None,
    line_lengths=None,
    field_strength: float = 3.0,
) -> None:
    """Write a signal to an ISMRMRD/HDF5 file, one acquisition per readout line.

    Parameters
    ----------
    path : str or Path
        The file (created, or appended to as dataset ``"dataset"``).
    signal : Tensor or array, shape ``(samples, coils)``, complex
    kspace : Tensor or array, shape ``(samples, 3)``, [1/m]
    fov : sequence of 3 floats
        Field of view x, y, z [m]; written to the header in mm.
    matrix : sequence of 3 ints
        ``(nz, ny, nx)``; written to the header as the encoded and recon matrix (x, y, z).
    sample_times : Tensor or array, shape ``(samples,)``, optional
        Times of the samples [s]; each acquisition's ``sample_time_us`` is its median sample spacing.
    line_lengths : sequence of int, optional
        Samples per readout line, summing to ``samples``; inferred from changes of ky/kz otherwise
        (:func:`infer_line_lengths`).
    field_strength : float
        [T], for the header's H1 resonance frequency.

    The trajectory type is ``cartesian`` when every sample lies on the grid and ky, kz are constant along
    each line (then ``kspace_encode_step_1``/``_2`` hold the ky/kz grid indices and ``center_sample`` the
    sample nearest kx = 0); otherwise ``other`` with ``kspace_encode_step_1`` the line number.
    """
    import ismrmrd
    from ismrmrd import xsd

    sig = _numpy(signal, np.complex64)
    k = _numpy(kspace, np.float64)
    fov3 = np.asarray(fov, dtype=np.float64).ravel()
    nz, ny, nx = (int(n) for n in matrix)
    if sig.ndim != 2:
        raise ValueError(f"signal must have shape (samples, coils), got {sig.shape}")
    if k.shape != (sig.shape[0], 3):
        raise ValueError(f"kspace must have shape ({sig.shape[0]}, 3) to match signal, got {k.shape}")
    if fov3.size != 3 or not (fov3 > 0).all():
        raise ValueError(f"fov must be three positive lengths (x, y, z) in m, got {fov3.tolist()}")
    samples, coils = sig.shape
    if line_lengths is None:
        lengths = infer_line_lengths(k, fov=fov3)
    else:
        lengths = [int(n) for n in line_lengths]
        if any(n < 1 for n in lengths) or sum(lengths) != samples:
            raise ValueError(f"line_lengths must be positive and sum to {samples} samples, got sum {sum(lengths)}")
    times = None if sample_times is None else _numpy(sample_times, np.float64).ravel()
    if times is not None and times.size != samples:
        raise ValueError(f"sample_times must have {samples} values, got {times.size}")

    steps = k * fov3[None, :]  # grid units
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    try:
        index = kspace_indices(torch.from_numpy(k), fov=fov3.tolist(), matrix=(nz, ny, nx)).numpy()  # (z, y, x)
        cartesian = all((index[a:b, :2] == index[a, :2]).all() for a, b in zip(starts[:-1], starts[1:], strict=True))
    except ValueError:
        index, cartesian = None, False
    dims = 3 if np.any(np.abs(steps[:, 2]) > LINE_TOLERANCE) else 2

    fov_mm = fov3 * 1e3
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=nz),
        fieldOfView_mm=xsd.fieldOfViewMm(x=float(fov_mm[0]), y=float(fov_mm[1]), z=float(fov_mm[2])),
    )
    lines = len(lengths)
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_0=xsd.limitType(minimum=0, maximum=max(max(lengths, default=1) - 1, 0), center=nx // 2),
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=(ny if cartesian else lines) - 1, center=ny // 2)
        if (ny if cartesian else lines) > 0
        else xsd.limitType(),
        kspace_encoding_step_2=xsd.limitType(minimum=0, maximum=nz - 1, center=nz // 2),
    )
    encoding = xsd.encodingType(
        encodedSpace=space,
        reconSpace=space,
        encodingLimits=limits,
        trajectory=xsd.trajectoryType.CARTESIAN if cartesian else xsd.trajectoryType.OTHER,
    )
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=int(round(GAMMA_BAR_HZ_PER_T * float(field_strength)))
        ),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            systemFieldStrength_T=float(field_strength), receiverChannels=coils
        ),
        encoding=[encoding],
    )

    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    try:
        dset.write_xml_header(xsd.ToXML(header))
        for line, (a, b) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
            traj = np.ascontiguousarray(steps[a:b, :dims], dtype=np.float32)
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(sig[a:b].T), traj)
            acq.scan_counter = line
            if cartesian:
                acq.idx.kspace_encode_step_1 = int(index[a, 1])
                acq.idx.kspace_encode_step_2 = int(index[a, 0])
                acq.center_sample = int(np.argmin(np.abs(steps[a:b, 0])))
            else:
                acq.idx.kspace_encode_step_1 = line
            if times is not None and b - a > 1:
                acq.sample_time_us = float(np.median(np.diff(times[a:b])) * 1e6)
            if line == 0:
                acq.set_flag(ismrmrd.ACQ_FIRST_IN_SLICE)
            if line == lines - 1:
                acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
                acq.set_flag(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
            dset.append_acquisition(acq)
    finally:
        dset.close()

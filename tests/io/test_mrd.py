"""ISMRMRD export: write, read back with the ismrmrd package, compare."""

import numpy as np
import pytest

ismrmrd = pytest.importorskip("ismrmrd")

from gradmr.io.mrd import write_ismrmrd  # noqa: E402


def cartesian(ny=4, nx=6, fov=(0.06, 0.04, 0.005)):
    ky, kx = np.meshgrid((np.arange(ny) - ny // 2) / fov[1], (np.arange(nx) - nx // 2) / fov[0], indexing="ij")
    return np.stack([kx.ravel(), ky.ravel(), np.zeros(ny * nx)], axis=1)


def read_all(path):
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        header = ismrmrd.xsd.CreateFromDocument(dset.read_xml_header())
        acqs = [dset.read_acquisition(i) for i in range(dset.number_of_acquisitions())]
    finally:
        dset.close()
    return header, acqs


def test_cartesian_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    fov, ny, nx = (0.06, 0.04, 0.005), 4, 6
    k = cartesian(ny, nx, fov)
    signal = (rng.standard_normal((ny * nx, 2)) + 1j * rng.standard_normal((ny * nx, 2))).astype(np.complex64)
    times = np.arange(ny * nx) * 10e-6
    write_ismrmrd(tmp_path / "raw.h5", signal, k, fov=fov, matrix=(1, ny, nx), sample_times=times)
    header, acqs = read_all(tmp_path / "raw.h5")
    enc = header.encoding[0]
    assert (enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z) == (nx, ny, 1)
    assert np.allclose(
        [enc.encodedSpace.fieldOfView_mm.x, enc.encodedSpace.fieldOfView_mm.y, enc.encodedSpace.fieldOfView_mm.z],
        [60.0, 40.0, 5.0],
    )
    assert enc.trajectory == ismrmrd.xsd.trajectoryType.CARTESIAN
    assert len(acqs) == ny
    data = np.concatenate([a.data.T for a in acqs])
    assert np.array_equal(data, signal)
    traj = np.concatenate([a.traj for a in acqs])
    assert traj.shape == (ny * nx, 2)
    assert np.allclose(traj / np.array(fov[:2]), k[:, :2])  # stored in units of 1/FOV
    assert [a.idx.kspace_encode_step_1 for a in acqs] == list(range(ny))
    assert all(a.center_sample == nx // 2 for a in acqs)
    assert acqs[0].sample_time_us == pytest.approx(10.0)
    assert acqs[0].is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE) and acqs[-1].is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT)


def test_non_cartesian_lines(tmp_path):
    rng = np.random.default_rng(1)
    spokes, samples = 3, 5
    angles = np.arange(spokes) * np.pi / spokes
    r = np.linspace(-100, 100, samples)
    k = np.stack([np.outer(np.cos(angles), r).ravel(), np.outer(np.sin(angles), r).ravel(), np.full(15, 20.0)], 1)
    signal = rng.standard_normal((15, 1)) + 1j * rng.standard_normal((15, 1))
    fov = (0.1, 0.1, 0.1)
    write_ismrmrd(tmp_path / "r.h5", signal, k, fov=fov, matrix=(4, 32, 32), line_lengths=[samples] * spokes)
    header, acqs = read_all(tmp_path / "r.h5")
    assert header.encoding[0].trajectory == ismrmrd.xsd.trajectoryType.OTHER
    assert len(acqs) == spokes
    assert np.allclose(np.concatenate([a.data.T for a in acqs]), signal.astype(np.complex64))
    traj = np.concatenate([a.traj for a in acqs])
    assert traj.shape == (15, 3)  # kz ≠ 0: three dimensions
    assert np.allclose(traj / np.array(fov), k, rtol=1e-6)
    with pytest.raises(ValueError, match="line_lengths"):
        write_ismrmrd(tmp_path / "bad.h5", signal, k, fov=fov, matrix=(4, 32, 32), line_lengths=[4, 4])

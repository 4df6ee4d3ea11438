"""The ``gradmr`` command line: help texts, outputs of ``simulate`` (builder, .seq, npz, MRD) and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from gradmr.cli.main import SEQUENCES, app
from gradmr.phantom import brain_phantom
from pulseq_files import write_gre

runner = CliRunner()

#: Structural agreement of |image| with the phantom's total PD (builder FLASH; .seq GRE with T2* and a sinc pulse).
CORR_FLASH = 0.9
CORR_SEQ = 0.8
N = 32
FOV = 0.2
SLICE = 5e-3


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _check_outputs(out, n_samples: int, shape: tuple[int, int, int]) -> dict:
    for name in ("signal.npy", "image.npy", "image.nii.gz", "image.png", "run.json"):
        assert (out / name).is_file(), name
    signal = np.load(out / "signal.npy")
    assert signal.dtype == np.complex64 and signal.shape == (n_samples, 1)
    image = np.load(out / "image.npy")
    assert image.dtype == np.complex64 and image.shape == shape
    assert np.isfinite(image).all() and np.abs(image).max() > 0
    import nibabel as nib

    nii = nib.load(str(out / "image.nii.gz"))
    assert nii.shape[:2] == (shape[2], shape[1])  # NIfTI is (x, y, z)
    np.testing.assert_allclose(np.asarray(nii.get_fdata()).transpose(2, 1, 0), np.abs(image), rtol=1e-5, atol=1e-7)
    assert (out / "image.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "run.json").read_text())
    assert run["sequence"]["samples"] == n_samples
    assert set(run["timings_s"]) >= {"simulation", "reconstruction"}
    return run


def _write_gre(path, n: int = N) -> None:
    """A 2D spoiled GRE made with pypulseq's make_* functions (ADC samples at k = (n + ½)/FOV along x)."""
    pytest.importorskip("pypulseq")
    write_gre(path, n, fov=FOV, slice_thickness=SLICE, flip_deg=15.0, centred=False)


# ------------------------------------------------------------------------------------------------ help


def test_help_is_plain_and_lists_commands():
    result = _run("--help")
    assert result.exit_code == 0, result.output
    assert "simulate" in result.output and "info" in result.output


@pytest.mark.parametrize("command", ["simulate", "info"])
def test_subcommand_help(command):
    result = _run(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_in_a_fresh_process_does_not_import_torch():
    code = "import sys; from gradmr.cli.main import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_info_lists_methods_and_sequences():
    result = _run("info")
    assert result.exit_code == 0, result.output
    for word in ("pdg", "bloch", "brain", *SEQUENCES):
        assert word in result.output


# ------------------------------------------------------------------------------------------------ simulate


@pytest.fixture(scope="module")
def flash_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "flash"
    mrd = out.parent / "raw.h5"
    result = _run("simulate", "--sequence", "flash", "--matrix", str(N), "--threads", "1", "--out", str(out),
                  "--mrd", str(mrd))  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, mrd


def test_flash_outputs_and_structure(flash_run):
    out, _ = flash_run
    run = _check_outputs(out, N * N, (1, N, N))
    assert run["method"] == "pdg" and run["pdg_plan"] is not None
    assert run["reconstruction"]["method"] == "fft"
    assert run["phantom"]["shape"] == [3, 1, N, N]
    assert run["parameters"]["threads"] == 1
    pd = brain_phantom((N, N), fov=(FOV, FOV)).total_pd()[0].numpy()
    image = np.abs(np.load(out / "image.npy"))[0]
    c = _corr(image, pd)
    assert c > CORR_FLASH
    assert _corr(image, pd[:, ::-1]) < c  # not mirrored left–right
    assert _corr(image, pd[::-1, :]) < c  # nor up–down


def test_mrd_file_is_readable(flash_run):
    ismrmrd = pytest.importorskip("ismrmrd")
    _, mrd = flash_run
    dset = ismrmrd.Dataset(str(mrd), "dataset", create_if_needed=False)
    try:
        header = ismrmrd.xsd.CreateFromDocument(dset.read_xml_header())
        assert header.encoding[0].encodedSpace.matrixSize.x == N
        assert dset.number_of_acquisitions() == N
        acq = dset.read_acquisition(0)
        assert acq.data.shape == (1, N)
    finally:
        dset.close()
    signal = np.load(mrd.parent / "flash" / "signal.npy")
    np.testing.assert_allclose(acq.data[0], signal[:N, 0])


def test_seq_file_gre(tmp_path):
    path = tmp_path / "gre.seq"
    _write_gre(path)
    out = tmp_path / "out"
    result = _run("simulate", "--seq", str(path), "--threads", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    run = _check_outputs(out, N * N, (1, N, N))
    # the brain is drawn at the file's FOV with the matrix inferred from the k-space extent
    assert run["phantom"]["fov_m"][:2] == pytest.approx([FOV, FOV])
    assert run["reconstruction"]["method"] == "fft-shift"  # pypulseq samples at (n + ½)/FOV along x
    assert run["reconstruction"]["kspace_shift_steps"][0] == pytest.approx(0.5, abs=1e-3)
    pd = brain_phantom((N, N), fov=(FOV, FOV)).total_pd()[0].numpy()
    image = np.abs(np.load(out / "image.npy"))[0]
    c = _corr(image, pd)
    assert c > CORR_SEQ
    assert _corr(image, pd[:, ::-1]) < c


def test_npz_phantom(tmp_path):
    n = 16
    pd = np.zeros((n, n))
    pd[4:12, 3:9] = 1.0
    pd[6:10, 9:13] = 0.5
    path = tmp_path / "box.npz"
    np.savez(path, PD=pd, T1=np.full((n, n), 1.0), T2=np.full((n, n), 0.08), voxel_size=np.array([2e-3, 2e-3, 5e-3]))
    out = tmp_path / "out"
    result = _run("simulate", "--sequence", "flash", "--phantom", str(path), "--threads", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    run = _check_outputs(out, n * n, (1, n, n))
    assert run["phantom"]["voxel_size_m"] == pytest.approx([2e-3, 2e-3, 5e-3])
    assert run["sequence"]["builder_params_si"]["fov"] == pytest.approx([n * 2e-3, n * 2e-3])
    assert _corr(np.abs(np.load(out / "image.npy"))[0], pd) > CORR_FLASH


# ------------------------------------------------------------------------------------------------ errors


def test_missing_seq_file(tmp_path):
    path = tmp_path / "nope.seq"
    result = _run("simulate", "--seq", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code != 0
    assert str(path) in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--sequence", "flash", "--method", "euler"], "--method"),
        (["--sequence", "nosuch"], "nosuch"),
        (["--sequence", "flash", "--phantom", "nosuch_phantom"], "nosuch_phantom"),
        ([], "--sequence"),
    ],
)
def test_bad_parameters_exit_2(tmp_path, args, word):
    result = _run("simulate", *args, "--out", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    assert word in result.output

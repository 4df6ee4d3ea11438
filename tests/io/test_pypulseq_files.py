"""``.seq`` files written by pypulseq's own make/write functions: a CPMG TSE and a blipped EPI, imported and imaged.

The files come from :mod:`pulseq_files` (``write_tse``, ``write_epi``); the GRE is covered by test_pulseq_import.py.
Each is read with :func:`gradmr.io.load_pulseq`, simulated with the PDG on the built-in brain (32 × 32) and
reconstructed from the imported k-space positions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pp = pytest.importorskip("pypulseq")

from gradmr.io.pulseq import load_pulseq  # noqa: E402
from gradmr.phantom import brain_phantom  # noqa: E402
from gradmr.recon import reconstruct_cartesian  # noqa: E402
from gradmr.sim import simulate  # noqa: E402
from pulseq_files import FOV, SLICE, tse_line_order, write_epi, write_tse  # noqa: E402

N = 32
#: The issue's bound: correlation of the image with the expected contrast map.
CORRELATION_MIN = 0.9
#: Sample positions on the FFT grid: pypulseq's 6-digit amplitudes put them ~1e-5 steps off.
GRID_ATOL = 1e-3
#: Flip angles from the sinc shapes (integrated from their samples, 6-digit amplitudes).
ANGLE_RTOL = 1e-3
#: Phases written with 6 significant digits [rad].
PHASE_ATOL = 1e-5
#: CSF over GM in the TSE image: the expected map says ≈ 1.5; partial volume at 32 × 32 pulls the means together.
CSF_OVER_GM_MIN = 1.3
TR = 3.0
ETL = 16
CSF, GM, WM = 0, 1, 2  # the brain phantom's pools


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.flatten() - a.mean()
    b = b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def phantom():
    return brain_phantom((N, N), fov=(FOV, FOV), slice_thickness=SLICE, dtype=torch.float64)


@pytest.fixture(scope="module")
def tse(tmp_path_factory):
    path = tmp_path_factory.mktemp("tse") / "tse.seq"
    _, info = write_tse(path, N, echo_train_length=ETL, tr=TR)
    return load_pulseq(path), info


@pytest.fixture(scope="module")
def epi(tmp_path_factory):
    path = tmp_path_factory.mktemp("epi") / "epi.seq"
    _, info = write_epi(path, N)
    return load_pulseq(path), info


def _image(seq, signal) -> torch.Tensor:
    return reconstruct_cartesian(signal, seq.kspace(), fov=(FOV, FOV, SLICE), matrix=(1, N, N))[0, 0]


# ---------------------------------------------------------------------------------------------------------------------
# TSE
# ---------------------------------------------------------------------------------------------------------------------


def test_tse_is_a_cpmg_echo_train(tse):
    seq, info = tse
    shots = 1 + N // ETL  # one dummy shot
    assert len(seq) == 1 + shots * (1 + ETL)  # leading delay, then per shot 90° + ETL × 180°
    assert seq.sample_count == N * N
    usages = [rep.pulse_usage for rep in seq[1 : 2 + ETL]]
    assert usages == ["excitation"] + ["refocusing"] * ETL
    excitation, refocusing = seq[1], seq[2]
    assert abs(float(excitation.pulse_angle) - math.pi / 2) < ANGLE_RTOL * math.pi / 2
    assert abs(float(refocusing.pulse_angle) - math.pi) < ANGLE_RTOL * math.pi
    # CPMG: refocusing axis ⟂ excitation axis (90° phase difference)
    assert abs(math.remainder(float(excitation.pulse_phase) - float(refocusing.pulse_phase), 2 * math.pi)) == (
        pytest.approx(math.pi / 2, abs=PHASE_ATOL)
    )
    # every echo's k = 0 sample half-way between two refocusing pulses (sample n/2 of each readout)
    starts = torch.cumsum(torch.stack([rep.duration() for rep in seq]), 0) - torch.stack([r.duration() for r in seq])
    esp = float(starts[3] - starts[2])
    assert esp == pytest.approx(info["echo_spacing"], abs=1e-9)
    t_echo = seq.sample_times()[N // 2]
    first_train = ETL + 2  # the first acquired shot's 90° (after the dummy shot)
    t90 = float(starts[first_train])
    assert float(t_echo) - t90 == pytest.approx(esp, abs=1e-9)
    # samples on the FFT grid, lines in the planned order
    k = seq.kspace().reshape(N, N, 3) * FOV
    torch.testing.assert_close(
        k[..., 0], torch.arange(-N // 2, N // 2, dtype=k.dtype).expand(N, N), atol=GRID_ATOL, rtol=0
    )
    lines = [line - N // 2 for order in tse_line_order(N, ETL) for line in order]
    torch.testing.assert_close(k[:, 0, 1], torch.tensor(lines, dtype=k.dtype), atol=GRID_ATOL, rtol=0)
    assert float(k[..., 2].abs().max()) < GRID_ATOL  # the crushers around every 180° cancel on the echo


def test_tse_image_is_t2_weighted(tse, phantom):
    seq, info = tse
    image = _image(seq, simulate(seq, phantom)).abs()
    te = info["te_eff"]
    # long TR, long TE: PD·(1 − e^{−TR/T1})·e^{−TE_eff/T2}, summed over the pools
    expected = (phantom.pd * (1 - torch.exp(-TR / phantom.t1)) * torch.exp(-te / phantom.t2)).sum(0)[0]
    corr = _correlation(image, expected)
    assert corr > CORRELATION_MIN, f"correlation with the T2-weighted map {corr:.3f}"
    # CSF brightest: mean over voxels each tissue dominates
    pd = phantom.pd[:, 0]
    dominant = pd.argmax(0)
    inside = pd.sum(0) > 0.5
    means = [float(image[(dominant == p) & inside].mean()) for p in (CSF, GM, WM)]
    assert means[0] > CSF_OVER_GM_MIN * max(means[1:]), f"CSF {means[0]:.3f}, GM {means[1]:.3f}, WM {means[2]:.3f}"
    assert means[1] > means[2]  # GM (longer T2, more PD) above WM


# ---------------------------------------------------------------------------------------------------------------------
# EPI
# ---------------------------------------------------------------------------------------------------------------------


def test_epi_reverses_alternate_lines_on_the_grid(epi):
    seq, _ = epi
    assert seq.sample_count == N * N
    k = seq.kspace().reshape(N, N, 3) * FOV  # (lines, samples, xyz) in acquisition order
    grid = torch.arange(-N // 2, N // 2, dtype=k.dtype)
    torch.testing.assert_close(k[0::2, :, 0], grid.expand(N // 2, N), atol=GRID_ATOL, rtol=0)
    torch.testing.assert_close(k[1::2, :, 0], grid.flip(0).expand(N // 2, N), atol=GRID_ATOL, rtol=0)
    torch.testing.assert_close(k[:, 0, 1], grid, atol=GRID_ATOL, rtol=0)


def test_epi_reconstructs_the_phantom(epi, phantom):
    seq, info = epi
    image = _image(seq, simulate(seq, phantom)).abs()
    te = info["te"]
    # one excitation from equilibrium, k = 0 at TE: PD·e^{−TE/T2}·e^{−TE/T2'} (T2* decay over the readout blurs y)
    expected = (phantom.pd * torch.exp(-te / phantom.t2 - te / phantom.t2dash)).sum(0)[0]
    corr = _correlation(image, expected)
    assert corr > CORRELATION_MIN, f"correlation with the PD·T2* map {corr:.3f}"
    # …and the k = 0 sample lies at TE
    k = seq.kspace()
    centre = int(np.argmin(k.norm(dim=1).numpy()))
    lead = float(seq[0].duration())
    assert float(seq.sample_times()[centre]) - lead == pytest.approx(te, abs=1e-9)

"""Sequence helpers: duration, k-space trajectory, plots."""

from __future__ import annotations

import math

import pytest
import torch

from gradmr.sequence import flash, phase_encode_order
from gradmr.sequence.plot import plot_kspace, plot_sequence, save_figure
from sim_seqs import se_imaging


def test_flash_duration_and_grid_trajectory():
    seq = flash(matrix=(8, 6), fov=(0.2, 0.3), tr=10e-3, dummy_scans=2)
    assert float(seq.duration()) == pytest.approx(8 * 10e-3, rel=1e-12)
    assert seq.sample_count == 48
    k = seq.kspace()
    assert k.shape == (48, 3)
    # samples on the grid n/FOV, n = −N/2 … N/2 − 1, k = 0 at the echo
    torch.testing.assert_close(torch.unique(k[:, 0]) * 0.2, torch.arange(-4, 4, dtype=k.dtype))
    torch.testing.assert_close(torch.unique(k[:, 1]) * 0.3, torch.arange(-3, 3, dtype=k.dtype))


def test_trajectory_negated_at_refocusing():
    seq = se_imaging(4, 0.2, te=20e-3, tr=0.1)
    k = seq.kspace()
    torch.testing.assert_close(torch.unique(k[:, 0]) * 0.2, torch.arange(-2, 2, dtype=k.dtype))


def test_centric_order():
    assert phase_encode_order(5, "centric") == [0, -1, 1, -2, 2]
    with pytest.raises(ValueError, match="order must be"):
        phase_encode_order(4, "spiral")


def test_duration_is_differentiable_and_sar_proxy():
    seq = flash(matrix=(4, 4), flip_angle=math.radians(30), tr=5e-3)
    t = seq[0].event_time.clone().requires_grad_(True)
    seq2 = type(seq)([seq[0].replace(event_time=t), *seq[1:]])
    seq2.duration().backward()
    torch.testing.assert_close(t.grad, torch.ones_like(t))
    expected = 4 * math.radians(30) ** 2 / float(seq.duration())
    assert float(seq.sar_proxy()) == pytest.approx(expected, rel=1e-12)


def test_plots_write_png(tmp_path):
    seq = flash(matrix=(8, 8))
    save_figure(plot_sequence(seq, time_range=(0, 0.03)), tmp_path / "diagram.png")
    save_figure(plot_kspace(seq), tmp_path / "kspace.png")
    for name in ("diagram.png", "kspace.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

"""Scanner limits: the shortest lobe for a moment can be built by pypulseq on the raster within the limits, and no
lobe of one raster step less reaches the moment."""

import numpy as np
import pypulseq as pp
import pytest

from gradmr.sequence.system import DEFAULT_SYSTEM, SystemLimits, min_moment_time


def _opts(system: SystemLimits):
    return pp.Opts(
        max_grad=system.max_grad * 1e3,
        grad_unit="mT/m",
        max_slew=system.max_slew,
        slew_unit="T/m/s",
        grad_raster_time=system.grad_raster_time,
    )


def _lobe(moment: float, steps: int, system: SystemLimits):
    """The best symmetric trapezoid of ``steps`` raster steps by brute force: (ramp steps, amplitude [Hz/m], area)."""
    dt, g, s = system.grad_raster_time, system.max_grad_hz, system.max_slew_hz
    best = (0, 0.0, 0.0)
    for r in range(1, steps // 2 + 1):
        a = min(g, s * r * dt)
        if a * (steps - r) * dt > best[2]:
            best = (r, a, a * (steps - r) * dt)
    return best


@pytest.mark.parametrize("moment", np.geomspace(5.0, 3e4, 25).tolist())
def test_min_moment_time_is_the_shortest_rastered_lobe(moment):
    dt = DEFAULT_SYSTEM.grad_raster_time
    t = min_moment_time(moment)
    steps = round(t / dt)
    assert t == pytest.approx(steps * dt)
    r, a, area = _lobe(moment, steps, DEFAULT_SYSTEM)
    assert area >= moment * (1 - 1e-12)
    assert _lobe(moment, steps - 1, DEFAULT_SYSTEM)[2] < moment
    # pypulseq accepts that lobe (scaled to the exact moment) within the scanner's limits
    scale = moment / area
    corners = [0, r, steps - r, steps] if steps - r > r else [0, r, steps]  # a trapezoid, or a triangle
    amplitudes = [0.0] + [a * scale] * (len(corners) - 2) + [0.0]
    grad = pp.make_extended_trapezoid(
        "x", amplitudes=amplitudes, times=np.array(corners) * dt, system=_opts(DEFAULT_SYSTEM)
    )
    assert grad.area == pytest.approx(moment, rel=1e-6)


def test_min_moment_time_edges_and_limits():
    assert min_moment_time(0.0) == 0.0
    stronger = SystemLimits(max_grad=80e-3, max_slew=200.0)
    assert min_moment_time(5000.0, stronger) < min_moment_time(5000.0)
    with pytest.raises(ValueError, match="max_grad is in T/m"):
        SystemLimits(max_grad=28.0)
    with pytest.raises(ValueError, match="max_slew"):
        SystemLimits(max_slew=0.0)
    assert DEFAULT_SYSTEM.rf_gap >= DEFAULT_SYSTEM.rf_duration / 2 + DEFAULT_SYSTEM.rf_dead_time

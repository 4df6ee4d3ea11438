"""Scanner limits that the sequence builders plan with and the Pulseq export obeys.

The events view only stores gradient *moments*; whether a moment fits in an event depends on the scanner's
maximum gradient and slew rate. Builders size their events with :func:`min_moment_time` so that every event can
be exported as real gradient waveforms (:mod:`gradmr.io.pulseq_export`), and leave :attr:`SystemLimits.rf_gap`
around each RF pulse for the pulse itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..constants import GAMMA_BAR_HZ_PER_T


@dataclass(frozen=True)
class SystemLimits:
    """Gradient and RF limits of a scanner, SI units.

    Attributes
    ----------
    max_grad : float
        Maximum gradient amplitude per axis [T/m] (default 28 mT/m).
    max_slew : float
        Maximum slew rate per axis [T/m/s] (default 150 T/m/s).
    rf_duration : float
        Duration of the (block or sinc) RF pulses the export writes [s].
    rf_dead_time, rf_ringdown_time, adc_dead_time : float
        Dead times before an RF pulse, after it, and around an ADC [s].
    grad_raster_time, rf_raster_time, adc_raster_time, block_duration_raster : float
        Rasters [s] (Siemens-like defaults).
    """

    max_grad: float = 28e-3
    max_slew: float = 150.0
    rf_duration: float = 0.5e-3
    rf_dead_time: float = 100e-6
    rf_ringdown_time: float = 20e-6
    adc_dead_time: float = 10e-6
    grad_raster_time: float = 10e-6
    rf_raster_time: float = 1e-6
    adc_raster_time: float = 100e-9
    block_duration_raster: float = 10e-6

    def __post_init__(self) -> None:
        for name in ("max_grad", "max_slew", "rf_duration", "grad_raster_time", "block_duration_raster"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.max_grad > 1.0:
            raise ValueError(f"max_grad is in T/m (e.g. 0.028 for 28 mT/m), got {self.max_grad}")

    @property
    def max_grad_hz(self) -> float:
        """Maximum gradient [Hz/m] (γ̄·G, the unit of moments per second)."""
        return self.max_grad * GAMMA_BAR_HZ_PER_T

    @property
    def max_slew_hz(self) -> float:
        """Maximum slew rate [Hz/m/s]."""
        return self.max_slew * GAMMA_BAR_HZ_PER_T

    @property
    def rf_gap(self) -> float:
        """Time an RF pulse takes from each of its neighbouring events [s]: half the pulse plus the longer dead time,
        rounded up to the gradient raster; the event before a pulse and the one after it must be at least this long
        (plus what their own gradients need)."""
        half = self.rf_duration / 2 + max(self.rf_dead_time, self.rf_ringdown_time)
        return math.ceil(half / self.grad_raster_time - 1e-9) * self.grad_raster_time


#: The limits the builders use unless told otherwise (a 1.5 T/3 T clinical scanner, deliberately not the maximum).
DEFAULT_SYSTEM = SystemLimits()


def min_moment_time(moment: float, system: SystemLimits = DEFAULT_SYSTEM) -> float:
    """Shortest time [s] in which a gradient lobe starting and ending at zero reaches ``moment`` [1/m].

    A triangle while the peak stays under the maximum gradient, a trapezoid above; rounded up to the gradient
    raster. Zero for a zero moment.
    """
    m = abs(float(moment))
    if m == 0:
        return 0.0
    g, s, dt = system.max_grad_hz, system.max_slew_hz, system.grad_raster_time
    triangle_peak = math.sqrt(m * s)
    t = 2 * math.sqrt(m / s) if triangle_peak <= g else m / g + g / s
    # on the raster the ramps are whole raster steps too: lengthen until a rastered lobe reaches the moment
    n = max(2, math.ceil(t / dt - 1e-9))
    while _max_area(n, dt, g, s) < m * (1 - 1e-12):
        n += 1
    return n * dt


def _max_area(n: int, dt: float, g: float, s: float) -> float:
    """Largest area [1/m] of a lobe of ``n`` raster steps with both ramps of whole steps (symmetric trapezoid)."""
    best = 0.0
    for r in range(1, n // 2 + 1):
        amplitude = min(g, s * r * dt)
        best = max(best, amplitude * (n - r) * dt)
    return best

"""Pictures of a sequence: the event diagram and the k-space trajectory (matplotlib, no display needed)."""

from __future__ import annotations

import numpy as np

from .core import Sequence


def _event_arrays(sequence: Sequence):
    """Per-event start times, durations, moments, ADC flags, and pulse times/angles/phases (numpy)."""
    starts, durs, moms, adcs, pulses = [], [], [], [], []
    t0 = 0.0
    for rep in sequence:
        dt = rep.event_time.detach().double().cpu().numpy()
        pulses.append((t0, float(rep.pulse_angle.detach()), float(rep.pulse_phase.detach())))
        starts.append(t0 + np.concatenate([[0.0], np.cumsum(dt)[:-1]]))
        durs.append(dt)
        moms.append(rep.gradm.detach().double().cpu().numpy())
        adcs.append(rep.adc_usage.cpu().numpy())
        t0 += float(dt.sum())
    cat = np.concatenate
    return cat(starts), cat(durs), cat(moms), cat(adcs), np.array(pulses).reshape(-1, 3)


def plot_sequence(sequence: Sequence, *, time_range: tuple[float, float] | None = None, figure=None):
    """Sequence diagram: RF pulses (flip angle and phase), gradient amplitude per axis, ADC samples.

    The gradient of an event is drawn as its mean amplitude (moment / duration, in kHz/m =
    1/(m·ms)), since the events view stores moments, not waveforms. ``time_range`` (s) zooms in.
    Returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    start, dur, mom, adc, pulses = _event_arrays(sequence)
    fig = figure or plt.figure(figsize=(10, 6))
    axes = fig.subplots(5, 1, sharex=True)
    ms = 1e3
    axes[0].vlines(pulses[:, 0] * ms, 0, np.degrees(pulses[:, 1]), color="C3")
    axes[0].set_ylabel("flip [°]")
    axes[1].plot(pulses[:, 0] * ms, np.degrees(pulses[:, 2]) % 360, ".", color="C4")
    axes[1].set_ylabel("RF phase [°]")
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = np.where(dur[:, None] > 0, mom / dur[:, None], 0.0) / 1e3  # kHz/m
    for i, name in enumerate("xyz"):
        axes[2].stairs(amp[:, i], np.append(start, start[-1] + dur[-1]) * ms, label=f"G{name}", baseline=None)
    axes[2].set_ylabel("γ̄G [kHz/m]")
    axes[2].legend(loc="upper right", fontsize="small")
    t_adc = (start + dur)[adc] * ms
    axes[3].vlines(t_adc, 0, 1, color="C2", linewidth=0.5)
    axes[3].set_ylabel("ADC")
    axes[3].set_yticks([])
    k = sequence.full_kspace().detach().double().cpu().numpy()
    for i, name in enumerate("xyz"):
        axes[4].plot((start + dur) * ms, k[:, i], label=f"k{name}")
    axes[4].set_ylabel("k [1/m]")
    axes[4].set_xlabel("time [ms]")
    if time_range is not None:
        axes[-1].set_xlim(time_range[0] * ms, time_range[1] * ms)
    fig.suptitle(f"{len(sequence)} repetitions, {sequence.sample_count} samples, {float(sequence.duration()):.4g} s")
    fig.tight_layout()
    return fig


def plot_kspace(sequence: Sequence, *, figure=None):
    """k-space trajectory in the x–y plane: the whole path (thin) and the ADC samples (dots) [1/m]."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = figure or plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(1, 1, 1)
    path = sequence.full_kspace().detach().double().cpu().numpy()
    samples = sequence.kspace().detach().double().cpu().numpy()
    ax.plot(path[:, 0], path[:, 1], color="0.7", linewidth=0.5)
    ax.plot(samples[:, 0], samples[:, 1], ".", markersize=2, color="C0")
    ax.set_xlabel("kx [1/m]")
    ax.set_ylabel("ky [1/m]")
    ax.set_aspect("equal")
    ax.set_title("k-space trajectory")
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> None:
    """Write a figure to ``path`` (PNG, 120 dpi) and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["plot_kspace", "plot_sequence", "save_figure"]

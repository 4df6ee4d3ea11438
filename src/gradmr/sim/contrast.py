"""The contrast explorer: a tissue's image intensity as one sequence parameter varies (TE, TR, TI, flip angle…).

For every value the named builder is run and simulated (PDG) on a phantom of one voxel of pure tissue; the
intensity is the magnitude of the sample at the k-space centre (mean over the samples there, e.g. every spoke of
a radial sequence), i.e. what the image of a large uniform region of that tissue shows — including any approach
to steady state before the centre line is acquired, so the curve belongs to the sequence as built (its matrix,
order and dummy scans), not to a steady-state formula.
"""

from __future__ import annotations

from collections.abc import Sequence as _Seq

import torch

from ..phantom.core import VoxelPhantom
from ..phantom.tissues import BRAIN_TISSUES, tissue_table
from ..sequence.library import build, parameters

#: Samples within this distance of k = 0 [1/m] count as the k-space centre (well under 1/FOV for any FOV ≤ 1 m).
_K_CENTRE = 1e-3


def centre_intensity(signal: torch.Tensor, kspace: torch.Tensor) -> torch.Tensor:
    """Mean magnitude of the samples at the k-space centre, over coils; raises if no sample is there."""
    at_centre = kspace.norm(dim=-1) < _K_CENTRE
    if not bool(at_centre.any()):
        raise ValueError("the sequence never samples k = 0; the contrast explorer needs the k-space centre")
    return signal[at_centre].abs().mean()


def contrast_curve(
    name: str,
    parameter: str,
    values: _Seq[float],
    *,
    tissues: _Seq[str] = BRAIN_TISSUES,
    field_strength: float = 3.0,
    settings: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Image intensity of each tissue against ``parameter`` of builder ``name``.

    Parameters
    ----------
    name : str
        A builder of :mod:`gradmr.sequence.library` (``"spin-echo"``, ``"flair"``, …).
    parameter : str
        The builder parameter to vary (SI units: ``te`` in s, ``flip_angle`` in rad, …).
    values : sequence of float
        Its values.
    tissues : names in the tissue library
    field_strength : float
        Tissue table [T].
    settings : dict, optional
        Other builder parameters (SI) kept fixed (the builder's defaults otherwise).

    Returns
    -------
    dict tissue → Tensor ``(len(values),)``: intensity relative to a voxel of PD 1 fully relaxed and excited by 90°.
    """
    params = parameters(name)
    if parameter not in params:
        raise ValueError(f"{name} has no parameter {parameter!r}; its parameters: {', '.join(params)}")
    fixed = dict(settings or {})
    table = tissue_table(field_strength)
    missing = [t for t in tissues if t not in table]
    if missing:
        raise ValueError(f"tissues {missing} are not in the tissue library ({', '.join(table)})")
    from . import simulate

    curves = {t: [] for t in tissues}
    for value in values:
        seq = build(name, **{**fixed, parameter: value})
        kspace = seq.kspace()
        voxel = (1e-3, 1e-3, 1e-3)  # the k = 0 sample of one voxel does not depend on its size
        for t in tissues:
            tt = table[t]
            ph = VoxelPhantom.create(
                pd=torch.tensor([[1.0]]), t1=tt.t1, t2=tt.t2, t2dash=tt.t2dash, d=tt.d, voxel_size=voxel
            )
            signal = simulate(seq, ph)
            curves[t].append(float(tt.pd) * float(centre_intensity(signal, kspace)))
    return {t: torch.tensor(v) for t, v in curves.items()}


def plot_contrast(curves: dict[str, torch.Tensor], parameter: str, values, *, unit: str = "", title=None):
    """A figure of the curves of :func:`contrast_curve`, values shown in ms for times and degrees for angles."""
    import math

    import matplotlib.pyplot as plt

    scale, shown = 1.0, unit
    if unit == "s":
        scale, shown = 1e3, "ms"
    elif unit == "rad":
        scale, shown = 180 / math.pi, "deg"
    elif unit == "s/m^2":
        scale, shown = 1e-6, "s/mm²"
    x = [float(v) * scale for v in values]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for tissue, curve in curves.items():
        ax.plot(x, curve.numpy(), marker="o", ms=3, label=tissue.upper())
    ax.set_xlabel(f"{parameter} [{shown}]" if shown else parameter)
    ax.set_ylabel("image intensity (PD-weighted, relative)")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

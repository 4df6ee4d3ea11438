"""``gradmr sequence list | show | export | contrast``: the sequence library from the command line.

Builder parameters are given as ``KEY=VALUE`` after the name, in SI units or with a unit suffix
(``te=90ms tr=3s flip_angle=15deg fov=220mm b_value=1000s/mm2 matrix=64``); ``gradmr sequence list`` shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

sequence_app = typer.Typer(
    help="The sequence library: list the builders, draw one, export it as Pulseq, plot tissue contrast.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Name = Annotated[str, typer.Argument(help="Builder name (see 'gradmr sequence list').")]
Settings = Annotated[
    list[str] | None, typer.Argument(help="Builder parameters KEY=VALUE (SI, or with unit suffixes: 90ms, 15deg).")
]


def build_from_cli(name: str, settings: list[str] | None, *, hint: str = "NAME"):
    """Build the named sequence from ``KEY=VALUE`` strings; errors become ``typer.BadParameter``."""
    from ..sequence.library import build, parse_settings, sequence_names

    if name not in sequence_names():
        raise typer.BadParameter(
            f"unknown sequence {name!r}; available: {', '.join(sequence_names())}", param_hint=hint
        )
    try:
        kwargs = parse_settings(name, settings or [])
        return build(name, **kwargs), kwargs
    except (ValueError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="KEY=VALUE") from e


def _show_default(value, unit: str) -> str:
    import math

    if value is None:
        return "auto"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_show_default(v, unit) for v in value) + ")"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if unit == "s":
        return f"{value * 1e3:g}ms"
    if unit == "rad":
        return f"{math.degrees(value):g}deg"
    if unit == "m":
        return f"{value * 1e3:g}mm"
    if unit == "s/m^2":
        return f"{value * 1e-6:g}s/mm2"
    return f"{value:g}" if isinstance(value, float) else str(value)


@sequence_app.command("list")
def list_sequences() -> None:
    """One builder name per line, then its parameters (unit, default, meaning)."""
    from ..sequence.library import describe, parameters, sequence_names

    for name in sequence_names():
        typer.echo(name)
        typer.echo(f"    {describe(name)}")
        for p in parameters(name).values():
            typer.echo(f"    {p.name:22s} [{p.unit or '-':5s}] {_show_default(p.default, p.unit):>14s}  {p.help}")


def _summary(seq) -> str:
    return (
        f"{len(seq)} repetitions, {seq.sample_count} samples, duration {float(seq.duration()):.4g} s, "
        f"SAR proxy {float(seq.sar_proxy()):.4g} rad²/s"
    )


@sequence_app.command()
def show(
    name: Name,
    settings: Settings = None,
    out: Annotated[Path | None, typer.Option("--out", help="Diagram PNG [default: NAME.png].")] = None,
    kspace_out: Annotated[Path | None, typer.Option("--kspace", help="Also draw the k-space trajectory here.")] = None,
    time_range_ms: Annotated[
        str | None, typer.Option("--time-range-ms", help="Part of the diagram to draw, START,STOP in ms.")
    ] = None,
) -> None:
    """Draw a builder's sequence diagram (RF, gradients, ADC over time) and print its duration and SAR proxy."""
    from ..sequence.plot import plot_kspace, plot_sequence, save_figure

    seq, _ = build_from_cli(name, settings)
    time_range = None
    if time_range_ms:
        try:
            a, b = (float(v) * 1e-3 for v in time_range_ms.split(","))
        except ValueError as e:
            raise typer.BadParameter("give START,STOP in ms", param_hint="--time-range-ms") from e
        time_range = (a, b)
    out = out or Path(f"{name}.png")
    save_figure(plot_sequence(seq, time_range=time_range), out)
    typer.echo(f"{name}: {_summary(seq)}")
    typer.echo(f"wrote {out}")
    if kspace_out is not None:
        save_figure(plot_kspace(seq), kspace_out)
        typer.echo(f"wrote {kspace_out}")


@sequence_app.command()
def export(
    name: Name,
    settings: Settings = None,
    out: Annotated[Path, typer.Option("--out", help="Pulseq file to write (.seq).", dir_okay=False)] = Path("out.seq"),
    rf: Annotated[str, typer.Option(help="RF pulse shape: block or sinc.")] = "block",
    slice_thickness_mm: Annotated[
        float | None, typer.Option("--slice-thickness-mm", min=0, help="Slice-selective sinc pulses of this slice.")
    ] = None,
) -> None:
    """Write a builder's sequence as a Pulseq file (pypulseq; gradients within the default scanner limits)."""
    from ..io.pulseq_export import write_pulseq

    if rf not in ("block", "sinc"):
        raise typer.BadParameter("must be block or sinc", param_hint="--rf")
    seq, kwargs = build_from_cli(name, settings)
    extra = {}
    if slice_thickness_mm is not None:
        extra["slice_thickness"] = slice_thickness_mm * 1e-3
    fov = kwargs.get("fov")
    if fov is None:
        from ..sequence.library import parameters

        fov = parameters(name).get("fov").default if "fov" in parameters(name) else None
    if fov is not None:
        extra["fov"] = tuple(fov) if isinstance(fov, tuple | list) else (fov, fov)
    try:
        # round_times: pulses computed to the nanosecond (TI, TR) move by ≤ 0.5 µs onto the RF raster
        path = write_pulseq(seq, out, rf=rf, name=name, round_times=True, **extra)
    except ValueError as e:
        typer.echo(f"cannot export {name}: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"{name}: {_summary(seq)}")
    typer.echo(f"wrote {path}")


@sequence_app.command()
def contrast(
    name: Name,
    settings: Settings = None,
    parameter: Annotated[str, typer.Option(help="The parameter to vary (te, tr, ti, flip_angle, …).")] = "te",
    values: Annotated[
        str, typer.Option(help="Values, comma-separated, with unit suffixes (e.g. 20ms,50ms,100ms) or START:STOP:N.")
    ] = "",
    field_strength: Annotated[float, typer.Option("--field-strength", help="Tissue table [T]: 1.5 or 3.")] = 3.0,
    out: Annotated[Path | None, typer.Option("--out", help="PNG [default: NAME_contrast_PARAM.png].")] = None,
) -> None:
    """Plot CSF, GM and WM image intensity against one parameter of a builder (the contrast explorer)."""
    import numpy as np

    from ..sequence.library import parameters, parse_settings
    from ..sequence.plot import save_figure
    from ..sim.contrast import contrast_curve, plot_contrast
    from ..units import parse_quantity

    build_from_cli(name, settings)  # checks the name and the fixed settings
    params = parameters(name)
    if parameter not in params:
        raise typer.BadParameter(
            f"{name} has no parameter {parameter!r}: {', '.join(params)}", param_hint="--parameter"
        )
    unit = params[parameter].unit
    if not values:
        raise typer.BadParameter("give the values to try", param_hint="--values")
    try:
        if ":" in values:
            start, stop, n = values.split(":")
            grid = np.linspace(parse_quantity(start, unit), parse_quantity(stop, unit), int(n)).tolist()
        else:
            grid = [parse_quantity(v, unit) for v in values.split(",")]
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--values") from e
    fixed = parse_settings(name, settings or [])
    try:
        curves = contrast_curve(name, parameter, grid, settings=fixed, field_strength=field_strength)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--values") from e
    out = out or Path(f"{name}_contrast_{parameter}.png")
    save_figure(plot_contrast(curves, parameter, grid, unit=unit, title=f"{name}, {field_strength:g} T"), out)
    for tissue, curve in curves.items():
        typer.echo(f"{tissue:4s} " + " ".join(f"{v:.4g}" for v in curve.tolist()))
    typer.echo(f"wrote {out}")

"""``gradmr diffusion``: Bloch–Torrey diffusion-MRI signals of simple cell geometries, and radius fitting.

* ``gradmr diffusion simulate --geometry sphere --radius 5e-6 --sequence pgse --delta 5e-3 --Delta 10e-3
  --b 0,500e6,1000e6 --out DIR`` — normalised signals S(b)/S(0) per direction (and per sequence):
  ``DIR/signals.csv`` (``b,gx,gy,gz,signal``; a ``sequence`` column is added when there are several sequences),
  ``DIR/signals.png`` (S(b) with the free-diffusion curve exp(−bD)) and ``DIR/run.json`` (every parameter, SI).
* ``gradmr diffusion fit --csv DIR/signals.csv --geometry sphere --sequence pgse --delta 5e-3 --Delta 10e-3
  --out DIR2`` — the radius of an impermeable sphere or (infinite) cylinder from such a CSV:
  ``DIR2/fit.json`` (radius in m, loss history) and ``DIR2/fit.png`` (data vs fitted model, loss vs iteration).

Units: SI at the command line — lengths in m, times in s, b in s/m² (1000 s/mm² = 1e9 s/m²), diffusivity in m²/s,
permeability in m/s. Lengths, times and b-values also take explicit unit suffixes (``5um``, ``5ms``,
``1000s/mm2``). Only the b axis of the figures is in s/mm² (and says so).

Geometries (mesh generators of :mod:`gradmr.diffusion.geometry`):

* ``sphere`` — a ball of ``--radius`` (3-D);
* ``cylinder`` — a finite cylinder with reflecting caps, axis z, ``--length`` (default
  :data:`CYLINDER_LENGTH_RADII` × radius), 3-D. The ``--nodes`` are spread over the whole length with about
  equal spacing, so a long cylinder is coarse across; for a gradient ⊥ the axis the caps do not matter (the problem
  separates) and ``disk`` gives the same signal on a much finer cross-section;
* ``disk`` — the 2-D cross-section of an infinitely long cylinder (directions must have gz = 0);
* ``slab`` — the 1-D interval of ``--width`` between two infinite plates ⊥ x (directions must be ±x);
* ``sphere-in-box`` — a ball in the cube [−h, h]³, h = ``--half-width`` (default :data:`BOX_HALF_WIDTH_RADII` ×
  radius), membrane ``--permeability`` between the two compartments;
* ``cylinder-in-box`` — a disk in the square [−h, h]² (the cross-section of an infinite cylinder in extracellular
  space, 2-D), or with ``--length`` the 3-D prism.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

diffusion_app = typer.Typer(
    help="Diffusion MRI: Bloch–Torrey signals of cell geometries (simulate) and radius estimation (fit).",
    no_args_is_help=True,
)

#: Geometries of ``simulate``.
GEOMETRIES = ("sphere", "cylinder", "disk", "slab", "sphere-in-box", "cylinder-in-box")
#: Geometries with two compartments (inside, outside) and a membrane permeability.
BOX_GEOMETRIES = ("sphere-in-box", "cylinder-in-box")
#: Geometries of ``fit`` (``cylinder`` = infinite cylinder, gradient in its cross-section; ``disk`` is an alias).
FIT_GEOMETRIES = ("sphere", "cylinder", "disk")
#: Diffusion-encoding sequences.
DIFFUSION_SEQUENCES = ("pgse", "double-pgse", "cos-ogse")
#: Solvers (the same as :data:`gradmr.diffusion.simulate.METHODS`, kept here so that --help needs no torch).
METHODS = ("mf", "btpde", "dense")

#: Target mesh size (nodes) when --nodes is not given.
DEFAULT_NODES = 1500
#: Default cylinder length in radii (a cylinder 5 diameters long).
CYLINDER_LENGTH_RADII = 10.0
#: Default box half-width in radii (sphere-in-box: intracellular volume fraction (4π/3)/(8·1.5³) = 15.5 %).
BOX_HALF_WIDTH_RADII = 1.5
#: Largest cell size accepted [m]: larger values are taken for a unit mistake (µm given as m).
MAX_LENGTH_M = 1e-3
#: b-values whose maximum is below this [s/m²] (1 s/mm²) are taken for s/mm²: no diffusion experiment stops at
#: b < 1 s/mm², while 1000 s/mm² typed without the factor 1e6 is the usual slip.
MIN_MAX_B = 1e6

_LENGTH_SUFFIXES = {"nm": 1e-9, "um": 1e-6, "µm": 1e-6, "μm": 1e-6}
_CSV_COLUMNS = ("b", "gx", "gy", "gz", "signal")


# ------------------------------------------------------------------------------------------------ parsing
def _say(message: str) -> None:
    typer.echo(message, err=True)


def _quantity(text: str, unit: str, option: str) -> float:
    """A number with an optional unit suffix, in SI ``unit`` ("m", "s", "s/m^2"); BadParameter naming ``option``."""
    from ..units import QUANTITY_SUFFIXES, parse_quantity

    s = str(text).strip().replace(" ", "")
    if unit == "m":
        for suffix, factor in _LENGTH_SUFFIXES.items():
            if s.endswith(suffix) and s[: -len(suffix)]:
                try:
                    return float(s[: -len(suffix)]) * factor
                except ValueError:
                    break
    try:
        return parse_quantity(s, unit)
    except ValueError:
        suffixes = list(QUANTITY_SUFFIXES.get(unit, {})) + (list(_LENGTH_SUFFIXES) if unit == "m" else [])
        raise typer.BadParameter(
            f"{text!r} is not a number in {unit} (or with a unit suffix: {', '.join(suffixes)})", param_hint=option
        ) from None


def _quantities(text: str, unit: str, option: str) -> list[float]:
    items = [t for t in str(text).split(",") if t.strip()]
    if not items:
        raise typer.BadParameter(f"give at least one value in {unit}", param_hint=option)
    return [_quantity(t, unit, option) for t in items]


def _length(text: str | None, option: str, *, default: float | None = None) -> float | None:
    """A positive length in m (< :data:`MAX_LENGTH_M`), or ``default`` when not given."""
    if text is None:
        return default
    value = _quantity(text, "m", option)
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a length > 0 in m, got {value:g}", param_hint=option)
    if value > MAX_LENGTH_M:
        raise typer.BadParameter(
            f"{value:g} m is larger than a cell ({MAX_LENGTH_M:g} m); lengths are in metres (5 µm = 5e-6, or write "
            "5um)",
            param_hint=option,
        )
    return value


def _bvalues(text: str) -> list[float]:
    """b-values in s/m² from ``"0,500e6,1000e6"`` (or with suffixes, ``1000s/mm2``)."""
    b = _quantities(text, "s/m^2", "--b")
    if any(not math.isfinite(v) or v < 0 for v in b):
        raise typer.BadParameter(f"b-values must be finite and ≥ 0 (s/m²), got {b}", param_hint="--b")
    if 0 < max(b) < MIN_MAX_B:
        raise typer.BadParameter(
            f"b-values up to {max(b):g} look like s/mm² (the largest is below {MIN_MAX_B:g} s/m² = 1 s/mm²); give "
            "them in s/m² (1000 s/mm² = 1e9 s/m²), e.g. "
            f"--b {','.join(f'{v * 1e6:g}' for v in b)}, or with the suffix: 1000s/mm2",
            param_hint="--b",
        )
    return b


def _positive(value: float, option: str, unit: str, *, allow_zero: bool = False, allow_inf: bool = False) -> float:
    ok = (value >= 0 if allow_zero else value > 0) and (math.isfinite(value) or (allow_inf and value == math.inf))
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise typer.BadParameter(f"must be {bound} in {unit}, got {value:g}", param_hint=option)
    return value


def _broadcast(lists: dict[str, list], option_hint: str) -> int:
    """The common length of option lists (each of length 1 or N)."""
    n = max(len(v) for v in lists.values())
    for name, values in lists.items():
        if len(values) not in (1, n):
            raise typer.BadParameter(
                f"{name} has {len(values)} values; give 1 or {n} (one per sequence)", param_hint=option_hint
            )
    return n


def _sequences(kind: str, delta: str, big_delta: str, n_periods: str | None, t_mix: str | None):
    """The diffusion sequences of the options: (list of DiffusionSequence, list of their JSON descriptions)."""
    if kind not in DIFFUSION_SEQUENCES:
        raise typer.BadParameter(
            f"unknown sequence {kind!r}; choose one of {', '.join(DIFFUSION_SEQUENCES)}", param_hint="--sequence"
        )
    if n_periods is not None and kind != "cos-ogse":
        raise typer.BadParameter("only --sequence cos-ogse has periods", param_hint="--n-periods")
    if t_mix is not None and kind != "double-pgse":
        raise typer.BadParameter("only --sequence double-pgse has a mixing time", param_hint="--t-mix")
    from ..diffusion.sequences import PGSE, CosOGSE, DoublePGSE

    lists: dict[str, list] = {
        "--delta": _quantities(delta, "s", "--delta"),
        "--Delta": _quantities(big_delta, "s", "--Delta"),
    }
    if kind == "cos-ogse":
        try:
            lists["--n-periods"] = [int(v) for v in (n_periods or "1").split(",") if v.strip()]
        except ValueError:
            raise typer.BadParameter(f"give integers ≥ 1, got {n_periods!r}", param_hint="--n-periods") from None
        if not lists["--n-periods"] or min(lists["--n-periods"]) < 1:
            raise typer.BadParameter(f"give integers ≥ 1, got {n_periods!r}", param_hint="--n-periods")
    if kind == "double-pgse":
        lists["--t-mix"] = _quantities(t_mix or "0", "s", "--t-mix")
    n = _broadcast(lists, "/".join(lists))
    sequences, infos = [], []
    for i in range(n):
        d, big = (lists[k][i if len(lists[k]) > 1 else 0] for k in ("--delta", "--Delta"))
        if not (math.isfinite(d) and d > 0):
            raise typer.BadParameter(f"the gradient pulse duration δ must be > 0 s, got {d:g}", param_hint="--delta")
        if not math.isfinite(big) or big < d:
            raise typer.BadParameter(
                f"δ = {d:g} s > Δ = {big:g} s: the pulse separation Δ (start to start) must be ≥ the pulse duration δ",
                param_hint="--delta/--Delta",
            )
        info: dict[str, Any] = {"type": kind, "delta_s": d, "Delta_s": big}
        try:
            if kind == "pgse":
                seq = PGSE(d, big)
            elif kind == "double-pgse":
                tm = lists["--t-mix"][i if len(lists["--t-mix"]) > 1 else 0]
                seq = DoublePGSE(d, big, tm)
                info["t_mix_s"] = tm
            else:
                periods = lists["--n-periods"][i if len(lists["--n-periods"]) > 1 else 0]
                seq = CosOGSE(d, big, periods)
                info["n_periods"] = periods
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="/".join(lists)) from err
        info.update(echo_time_s=seq.echo_time, diffusion_time_s=seq.diffusion_time, int_F2_s3=seq.int_F2())
        sequences.append(seq)
        infos.append(info)
    return sequences, infos


def _sequence_label(info: dict[str, Any]) -> str:
    name = {"pgse": "PGSE", "double-pgse": "double PGSE", "cos-ogse": "cos-OGSE"}[info["type"]]
    text = f"{name} δ={info['delta_s'] * 1e3:g} ms, Δ={info['Delta_s'] * 1e3:g} ms"
    if "n_periods" in info:
        text += f", n={info['n_periods']}"
    if info.get("t_mix_s"):
        text += f", t_mix={info['t_mix_s'] * 1e3:g} ms"
    return text


def _directions(specs: list[str] | None, dim: int, geometry: str):
    """(n, 3) unit gradient directions from ``x``, ``y``, ``z``, ``hardi:N`` or ``gx,gy,gz`` (``;`` separates several).

    ``hardi:N`` on a 2-D geometry gives N axes evenly spread in the xy plane (angles πk/N).
    """
    import numpy as np

    axes = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
    rows: list[np.ndarray] = []
    for spec in specs or ["x"]:
        for item in (s.strip() for s in str(spec).split(";")):
            if not item:
                continue
            key = item.lower()
            if key in axes:
                rows.append(np.array(axes[key]))
            elif key.startswith("hardi:"):
                try:
                    count = int(key.split(":", 1)[1])
                except ValueError:
                    count = 0
                if count < 1:
                    raise typer.BadParameter(f"hardi:N needs an integer N ≥ 1, got {item!r}", param_hint="--directions")
                if dim == 1:
                    raise typer.BadParameter(
                        "a slab (1-D) is encoded along x only: use --directions x", param_hint="--directions"
                    )
                if dim == 2:
                    angle = np.pi * np.arange(count) / count
                    rows.extend(np.stack([np.cos(angle), np.sin(angle), np.zeros(count)], 1))
                else:
                    from ..diffusion.directions import hardi_directions

                    rows.extend(hardi_directions(count))
            else:
                try:
                    v = np.array([float(t) for t in item.split(",")])
                except ValueError:
                    v = np.zeros(0)
                if v.shape != (3,) or not np.isfinite(v).all() or not np.linalg.norm(v) > 0:
                    raise typer.BadParameter(
                        f"{item!r} is not a direction: use x, y, z, hardi:N or three numbers gx,gy,gz (not all 0)",
                        param_hint="--directions",
                    )
                rows.append(v / np.linalg.norm(v))
    d = np.stack(rows)
    if dim < 3 and np.abs(d[:, dim:]).max() > 1e-12:
        what = (
            "a slab (1-D, plates ⊥ x) is encoded along x only"
            if dim == 1
            else f"--geometry {geometry} is 2-D (the cross-section of a cylinder along z): directions need gz = 0"
        )
        raise typer.BadParameter(
            f"{what}; got {d[np.abs(d[:, dim:]).max(1) > 1e-12][0].round(6).tolist()}", param_hint="--directions"
        )
    d[np.abs(d) < 1e-15] = 0.0
    return d


# ------------------------------------------------------------------------------------------------ geometry
def _geometry(
    name: str,
    *,
    radius: float,
    length: float | None,
    width: float,
    half_width: float | None,
    nodes: int,
):
    """The mesh of ``name`` and a JSON description of it (SI)."""
    from ..diffusion import geometry as geo

    info: dict[str, Any] = {"geometry": name}
    if name == "sphere":
        mesh = geo.ball(radius, nodes=nodes)
        info.update(radius_m=radius, generator="ball")
    elif name == "cylinder":
        length = CYLINDER_LENGTH_RADII * radius if length is None else length
        mesh = geo.cylinder(radius, length, nodes=nodes)
        info.update(radius_m=radius, length_m=length, generator="cylinder")
    elif name == "disk":
        mesh = geo.disk(radius, nodes=nodes)
        info.update(radius_m=radius, generator="disk", note="2-D cross-section of an infinite cylinder along z")
    elif name == "slab":
        mesh = geo.interval((width,), max(nodes - 1, 1))
        info.update(width_m=width, generator="interval", note="1-D: two infinite plates ⊥ x")
    else:
        h = BOX_HALF_WIDTH_RADII * radius if half_width is None else half_width
        if not h > radius:
            raise typer.BadParameter(f"must be > --radius = {radius:g} m, got {h:g} m", param_hint="--half-width")
        if name == "sphere-in-box":
            mesh = geo.sphere_in_box(radius, h, nodes=nodes)
        else:
            mesh = geo.cylinder_in_box(radius, h, length, nodes=nodes)
            info["length_m"] = length
            if length is None:
                info["note"] = "2-D cross-section of an infinite cylinder in an infinite square prism"
        info.update(radius_m=radius, half_width_m=h, generator=name.replace("-", "_"))
    info.update(
        nodes=mesh.n_nodes, cells=mesh.n_cells, dim=mesh.dim, compartments=mesh.n_compartments, nodes_target=nodes
    )
    return mesh, info


def _steps(sequence, dt: float) -> int:
    """Time steps of one BTPDE encoding of ``sequence`` (each interval cut into ⌈τ/dt⌉ equal steps)."""
    import numpy as np

    durations, _ = sequence.intervals()
    ratio = np.asarray(durations)[np.asarray(durations) > 0] / dt
    near = np.abs(ratio - np.round(ratio)) <= 1e-9 * np.maximum(1.0, ratio)
    return int(np.where(near, np.round(ratio), np.ceil(ratio)).sum())


# ------------------------------------------------------------------------------------------------ files
def _write_csv(path: Path, b, directions, signal, sequence_index, several: bool) -> None:
    """``b,gx,gy,gz,signal[,sequence]``: b in s/m², unit directions (3 components), S/S(b=0)."""
    lines = [",".join(_CSV_COLUMNS + (("sequence",) if several else ()))]
    for i in range(len(b)):
        g = list(directions[i]) + [0.0] * (3 - len(directions[i]))
        row = [f"{b[i]:.12g}", *(f"{float(v) + 0.0:.12g}" for v in g), f"{signal[i]:.12g}"]
        if several:
            row.append(str(int(sequence_index[i])))
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")


def _read_csv(path: Path):
    """Columns of a signals CSV: (b, directions (S, 3), signal, sequence index or None); BadParameter on --csv."""
    import csv

    import numpy as np

    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing:
            raise typer.BadParameter(
                f"{path} lacks the column(s) {', '.join(missing)}; expected the header {','.join(_CSV_COLUMNS)} "
                "(as `gradmr diffusion simulate` writes it)",
                param_hint="--csv",
            )
        rows = [{(k or "").strip(): v for k, v in r.items()} for r in reader]
    if not rows:
        raise typer.BadParameter(f"{path} has no data rows", param_hint="--csv")
    columns = list(_CSV_COLUMNS) + (["sequence"] if "sequence" in header else [])
    try:
        data = {c: np.array([float(r[c]) for r in rows]) for c in columns}
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(f"{path}: a value is not a number ({err})", param_hint="--csv") from err
    if not all(np.isfinite(v).all() for v in data.values()):
        raise typer.BadParameter(f"{path}: values must be finite", param_hint="--csv")
    b = data["b"]
    if (b < 0).any():
        raise typer.BadParameter(f"{path}: b-values must be ≥ 0 (s/m²)", param_hint="--csv")
    if 0 < b.max() < MIN_MAX_B:
        raise typer.BadParameter(
            f"{path}: b-values up to {b.max():g} look like s/mm²; the CSV holds b in s/m² (1000 s/mm² = 1e9 s/m²)",
            param_hint="--csv",
        )
    g = np.stack([data["gx"], data["gy"], data["gz"]], 1)
    norm = np.linalg.norm(g, axis=1)
    if not (norm > 0).all():
        raise typer.BadParameter(f"{path}: every row needs a nonzero direction gx,gy,gz", param_hint="--csv")
    index = None
    if "sequence" in data:
        index = data["sequence"].astype(np.int64)
        if (index != data["sequence"]).any() or (index < 0).any():
            raise typer.BadParameter(f"{path}: the sequence column must hold integers ≥ 0", param_hint="--csv")
    return b, g / norm[:, None], data["signal"], index


def _curves(b, directions, sequence_index):
    """Groups of rows with one (sequence, direction): list of (sequence, direction (3,), row indices sorted by b)."""
    import numpy as np

    keys = np.concatenate([np.asarray(sequence_index, dtype=np.float64)[:, None], np.round(directions, 9)], 1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    groups = []
    for k in range(len(unique)):
        rows = np.flatnonzero(inverse.reshape(-1) == k)
        groups.append((int(unique[k, 0]), unique[k, 1:], rows[np.argsort(b[rows], kind="stable")]))
    return groups


def _direction_label(d) -> str:
    names = {(1.0, 0.0, 0.0): "x", (0.0, 1.0, 0.0): "y", (0.0, 0.0, 1.0): "z"}
    key = tuple(float(abs(v)) for v in d) if sum(1 for v in d if v != 0) == 1 else None
    return names.get(key, "") or "(" + ", ".join(f"{v:.2f}" for v in d) + ")"


def _plot_signals(ax, b, signal, directions, sequence_index, labels: list[str], *, marker: str = "o", line=True) -> int:
    """S(b) per (sequence, direction) against b in s/mm² (colour: direction; line style and marker: sequence);
    returns the number of curves."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups = _curves(b, directions, sequence_index)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ("-", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
    markers = ("o", "s", "^", "D", "v")
    _, direction_id = np.unique(np.stack([d for _, d, _ in groups]), axis=0, return_inverse=True)
    for k, (s, d, rows) in enumerate(groups):
        label = f"g ∥ {_direction_label(d)}" + (f", {labels[s]}" if len(labels) > 1 else "")
        ax.plot(
            b[rows] * 1e-6,
            signal[rows],
            marker=(markers[s % len(markers)] if marker == "o" else marker) or None,
            ms=4,
            lw=1.2 if line else 0,
            ls=styles[s % len(styles)] if line else "none",
            color=colors[int(direction_id.reshape(-1)[k]) % len(colors)],
            label=label,
        )
    return len(groups)


def _free_curve(ax, b_max: float, diffusivity: float) -> None:
    import numpy as np

    grid = np.linspace(0.0, b_max, 200)
    ax.plot(
        grid * 1e-6, np.exp(-grid * diffusivity), "k--", lw=1, label=f"free diffusion exp(−bD), D={diffusivity:g} m²/s"
    )


def _finish_axes(ax, signals, n_curves: int) -> None:
    import numpy as np

    ax.set_xlabel("b [s/mm²]  (1 s/mm² = 1e6 s/m², the unit of --b and the CSV)")
    ax.set_ylabel("S(b) / S(0)")
    if np.all(np.asarray(signals) > 0):
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    if n_curves <= 12:
        ax.legend(fontsize=7)


def _save_signals_png(path: Path, b, signal, directions, sequence_index, labels, diffusivity, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    n = _plot_signals(ax, b, signal, directions, sequence_index, labels)
    _free_curve(ax, float(b.max()), diffusivity)
    _finish_axes(ax, signal, n)
    ax.set_title(title + ("" if n <= 12 else f" ({n} curves)"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no inf (t2 = inf: no relaxation)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    try:
        return _jsonable(float(value))
    except (TypeError, ValueError):
        return str(value)


def _command_line() -> str | None:
    return " ".join(["gradmr", *sys.argv[1:]]) if sys.argv and "gradmr" in Path(sys.argv[0]).name else None


# ------------------------------------------------------------------------------------------------ options
SequenceOpt = Annotated[
    str, typer.Option("--sequence", help="Diffusion encoding: " + ", ".join(DIFFUSION_SEQUENCES) + ".")
]
DeltaOpt = Annotated[
    str,
    typer.Option(
        "--delta",
        help="Gradient pulse (lobe) duration δ [s] (or with a suffix: 5ms); comma-separated for several sequences.",
    ),
]
BigDeltaOpt = Annotated[
    str,
    typer.Option(
        "--Delta", help="Pulse separation Δ [s], start to start, Δ ≥ δ (or 10ms); comma-separated for several."
    ),
]
PeriodsOpt = Annotated[
    str | None, typer.Option("--n-periods", help="Periods per lobe of cos-ogse (integer ≥ 1) [default 1].")
]
TMixOpt = Annotated[
    str | None, typer.Option("--t-mix", help="Mixing time between the two blocks of double-pgse [s] [default 0].")
]
DiffusivityOpt = Annotated[
    float, typer.Option("--diffusivity", help="Intrinsic diffusivity D [m²/s] (free water at 37 °C ≈ 3e-9).")
]
NodesOpt = Annotated[
    int,
    typer.Option("--nodes", min=3, help="Target mesh size (nodes); the generators pick the closest they can make."),
]
LengthScaleOpt = Annotated[
    str,
    typer.Option(
        "--length-scale", help="Matrix-formalism truncation length ℓ [m]: modes down to wavelength 2ℓ are kept."
    ),
]


# ------------------------------------------------------------------------------------------------ commands
@diffusion_app.command("simulate")
def simulate_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    delta: DeltaOpt,
    big_delta: BigDeltaOpt,
    b_values: Annotated[
        str,
        typer.Option(
            "--b", help="b-values [s/m²], comma-separated, e.g. 0,500e6,1000e6 (1000 s/mm² = 1e9 s/m²; or 1000s/mm2)."
        ),
    ],
    geometry: Annotated[str, typer.Option(help="Cell geometry: " + ", ".join(GEOMETRIES) + ".")] = "sphere",
    radius: Annotated[
        str | None, typer.Option(help="Radius [m] of sphere/cylinder/disk/box geometries (or 5um) [default 5e-6].")
    ] = None,
    length: Annotated[
        str | None,
        typer.Option(
            help=f"Cylinder length [m] [default {CYLINDER_LENGTH_RADII:g}×radius]; for cylinder-in-box: a 3-D prism "
            "of this length (default: the 2-D cross-section)."
        ),
    ] = None,
    width: Annotated[str | None, typer.Option(help="Slab width [m] (plate distance) [default 10e-6].")] = None,
    half_width: Annotated[
        str | None,
        typer.Option("--half-width", help=f"Box half-width h [m] > radius [default {BOX_HALF_WIDTH_RADII:g}×radius]."),
    ] = None,
    sequence: SequenceOpt = "pgse",
    n_periods: PeriodsOpt = None,
    t_mix: TMixOpt = None,
    directions: Annotated[
        list[str] | None,
        typer.Option(
            "--directions",
            help="Gradient directions: x, y, z, hardi:N (N near-uniform axes; in-plane on 2-D geometries) or gx,gy,gz; "
            "repeat the option or separate with ';' for several [default x].",
        ),
    ] = None,
    method: Annotated[
        str, typer.Option(help="Solver: mf (matrix formalism), btpde (time stepping) or dense (exact, ≤ 4000 nodes).")
    ] = "mf",
    nodes: NodesOpt = DEFAULT_NODES,
    diffusivity: DiffusivityOpt = 2e-9,
    t2: Annotated[
        float, typer.Option("--t2", help="T2 [s] of every compartment (inf: none; one uniform T2 cancels in S/S(0)).")
    ] = math.inf,
    permeability: Annotated[
        float, typer.Option(help="Membrane permeability [m/s] between cell and box (box geometries only).")
    ] = 0.0,
    length_scale: LengthScaleOpt = "1e-6",
    dt: Annotated[str, typer.Option("--dt", help="Largest BTPDE time step [s] (or 50us).")] = "5e-5",
) -> None:
    """Simulate normalised diffusion signals S(b)/S(0) of a cell geometry; write signals.csv, signals.png and
    run.json to OUT.

    One CSV row per direction × b (× sequence), columns b [s/m²], gx, gy, gz (unit direction; gz = 0 on 2-D
    geometries) and signal; with several sequences (comma-separated --delta/--Delta/…) a 'sequence' column (index
    into run.json's sequences) is added.
    """
    t_start = time.perf_counter()
    if geometry not in GEOMETRIES:
        raise typer.BadParameter(
            f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}", param_hint="--geometry"
        )
    if method not in METHODS:
        raise typer.BadParameter(
            f"{method!r} is not a method; choose one of {', '.join(METHODS)}", param_hint="--method"
        )
    b_list = _bvalues(b_values)
    seqs, seq_infos = _sequences(sequence, delta, big_delta, n_periods, t_mix)
    r = _length(radius, "--radius", default=5e-6)
    if geometry == "slab" and radius is not None:
        raise typer.BadParameter("a slab has no radius; give its --width", param_hint="--radius")
    if width is not None and geometry != "slab":
        raise typer.BadParameter("--width is the slab's; give --radius for this geometry", param_hint="--width")
    if length is not None and geometry not in ("cylinder", "cylinder-in-box"):
        raise typer.BadParameter("only cylinder and cylinder-in-box have a length", param_hint="--length")
    if half_width is not None and geometry not in BOX_GEOMETRIES:
        raise typer.BadParameter("only the box geometries have a half-width", param_hint="--half-width")
    w = _length(width, "--width", default=10e-6)
    length_m = _length(length, "--length")
    h = _length(half_width, "--half-width")
    _positive(diffusivity, "--diffusivity", "m²/s")
    if diffusivity > 1e-6:
        raise typer.BadParameter(
            f"{diffusivity:g} is not in m²/s (free water ≈ 3e-9 m²/s; 1e-3 mm²/s = 1e-9 m²/s)",
            param_hint="--diffusivity",
        )
    _positive(t2, "--t2", "s", allow_inf=True)
    _positive(permeability, "--permeability", "m/s", allow_zero=True)
    if permeability > 0 and geometry not in BOX_GEOMETRIES:
        raise typer.BadParameter(
            f"--geometry {geometry} has one compartment; a permeability needs {' or '.join(BOX_GEOMETRIES)}",
            param_hint="--permeability",
        )
    ell = _length(length_scale, "--length-scale")
    dt_s = _quantity(dt, "s", "--dt")
    _positive(dt_s, "--dt", "s")

    import numpy as np
    import torch

    from .. import __version__
    from ..diffusion.assembly import assemble
    from ..diffusion.compartments import compartments
    from ..diffusion.simulate import simulate
    from ..diffusion.solvers.dense import DENSE_MAX_NODES
    from ..diffusion.solvers.mf import eigenbasis

    # ---- geometry, tissue
    t0 = time.perf_counter()
    try:
        mesh, geo_info = _geometry(geometry, radius=r, length=length_m, width=w, half_width=h, nodes=nodes)
    except ValueError as err:
        raise typer.BadParameter(f"{geometry}: {err}", param_hint="--geometry") from err
    if method == "dense" and mesh.n_nodes > DENSE_MAX_NODES:
        raise typer.BadParameter(
            f"--method dense is for meshes up to {DENSE_MAX_NODES} nodes, this one has {mesh.n_nodes}; lower --nodes "
            "or use mf/btpde",
            param_hint="--nodes",
        )
    dirs = _directions(directions, mesh.dim, geometry)
    tissue = compartments(mesh.n_compartments, diffusivity=diffusivity, t2=t2, permeability=permeability)
    t_mesh = time.perf_counter() - t0
    _say(
        f"{geometry}: {mesh.n_nodes} nodes, {mesh.n_cells} cells ({mesh.dim}-D, {mesh.n_compartments} compartment"
        f"{'s' if mesh.n_compartments > 1 else ''}); {len(b_list)} b × {len(dirs)} direction(s) × {len(seqs)} "
        f"sequence(s) with {method}"
    )

    # ---- solve
    solver_info: dict[str, Any] = {"method": method}
    t0 = time.perf_counter()
    try:
        basis = None
        if method == "mf":
            basis = eigenbasis(assemble(mesh, tissue), diffusivity=tissue.max_diffusivity, length_scale=ell)
            solver_info.update(modes=basis.n_modes, eigenvalue_max_per_s=basis.eigenvalue_max, length_scale_m=ell)
        elif method == "btpde":
            solver_info.update(dt_s=dt_s, steps_per_encoding=[_steps(s, dt_s) for s in seqs])
        with torch.no_grad():
            result = simulate(
                mesh, tissue, seqs, b_list, dirs, method=method, length_scale=ell, basis=basis, dt=dt_s, progress=True
            )
    except ValueError as err:
        _say(f"error: simulation failed: {err}")
        raise typer.Exit(1) from err
    t_solve = time.perf_counter() - t0

    # ---- write
    b = result.b.numpy()
    signal = result.signal.numpy()
    seq_index = result.sequence_index.numpy()
    row_dirs = np.repeat(np.tile(dirs, (len(seqs), 1)), len(b_list), axis=0)  # rows: sequence → direction → b
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "signals.csv", b, row_dirs, signal, seq_index, len(seqs) > 1)
    labels = [_sequence_label(i) for i in seq_infos]
    size = f"R = {r * 1e6:g} µm" if geometry != "slab" else f"L = {w * 1e6:g} µm"
    title = f"{geometry} {size}, {labels[0] if len(labels) == 1 else f'{len(labels)} sequences'} ({method}, " + (
        f"{mesh.n_nodes} nodes)"
    )
    _save_signals_png(out / "signals.png", b, signal, row_dirs, seq_index, labels, diffusivity, title)
    if method == "mf":
        work = f"{solver_info['modes']} modes (ℓ = {ell * 1e6:g} µm)"
    elif method == "btpde":
        work = f"{sum(solver_info['steps_per_encoding'])} time steps per encoding (dt = {dt_s * 1e6:g} µs)"
    else:
        work = "exact matrix exponentials"
    total = time.perf_counter() - t_start
    run = {
        "gradmr_version": __version__,
        "torch_version": torch.__version__,
        "command": _command_line(),
        "parameters": {
            "geometry": geometry,
            "radius_m": None if geometry == "slab" else r,
            "length_m": geo_info.get("length_m"),
            "width_m": w if geometry == "slab" else None,
            "half_width_m": geo_info.get("half_width_m"),
            "nodes_target": nodes,
            "diffusivity_m2_per_s": diffusivity,
            "t2_s": t2,
            "permeability_m_per_s": permeability,
            "sequence": sequence,
            "b_s_per_m2": b_list,
            "directions": dirs.tolist(),
            "method": method,
            "length_scale_m": ell,
            "dt_s": dt_s,
            "out": str(out),
        },
        "notes": ["t2_s null means no T2 decay (inf)"] if t2 == math.inf else [],
        "mesh": geo_info,
        "sequences": seq_infos,
        "solver": solver_info,
        "rows": int(len(b)),
        "csv_columns": list(_CSV_COLUMNS) + (["sequence"] if len(seqs) > 1 else []),
        "timings_s": {"mesh": t_mesh, "solve": t_solve, "total": total},
        "outputs": ["signals.csv", "signals.png", "run.json"],
    }
    (out / "run.json").write_text(json.dumps(_jsonable(run), indent=2) + "\n")
    typer.echo(
        f"{geometry}: {mesh.n_nodes} nodes, {work}, {len(b)} signals in {t_solve:.2f} s (total {total:.2f} s) "
        f"→ {out / 'signals.csv'}"
    )


@diffusion_app.command("fit")
def fit_cmd(
    csv_path: Annotated[
        Path,
        typer.Option(
            "--csv", help="signals.csv of `gradmr diffusion simulate` (b [s/m²], gx, gy, gz, signal).", dir_okay=False
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    delta: DeltaOpt,
    big_delta: BigDeltaOpt,
    geometry: Annotated[
        str,
        typer.Option(help="Model: sphere, or cylinder (infinitely long, gradient ⊥ its axis: gz = 0; alias disk)."),
    ] = "sphere",
    sequence: SequenceOpt = "pgse",
    n_periods: PeriodsOpt = None,
    t_mix: TMixOpt = None,
    initial_radius: Annotated[str, typer.Option("--initial-radius", help="Starting radius [m] (or 3um).")] = "3e-6",
    diffusivity: DiffusivityOpt = 2e-9,
    nodes: NodesOpt = DEFAULT_NODES,
    length_scale: LengthScaleOpt = "1e-6",
    max_iterations: Annotated[int, typer.Option("--max-iterations", min=1, help="Outer L-BFGS iterations.")] = 50,
) -> None:
    """Fit the radius of an impermeable sphere or cylinder to the signals of a CSV; write fit.json and fit.png to
    OUT.

    The model is the matrix formalism on a --nodes mesh of the geometry (its eigenbasis recomputed at the current
    radius every iteration), fitted by L-BFGS on the mean squared signal error.
    """
    t_start = time.perf_counter()
    if geometry not in FIT_GEOMETRIES:
        raise typer.BadParameter(
            f"unknown geometry {geometry!r}; the radius fit knows {', '.join(FIT_GEOMETRIES)}", param_hint="--geometry"
        )
    model = "cylinder" if geometry == "disk" else geometry
    if not csv_path.is_file():
        raise typer.BadParameter(f"{csv_path} is not a file", param_hint="--csv")
    seqs, seq_infos = _sequences(sequence, delta, big_delta, n_periods, t_mix)
    r0 = _length(initial_radius, "--initial-radius")
    _positive(diffusivity, "--diffusivity", "m²/s")
    if diffusivity > 1e-6:
        raise typer.BadParameter(f"{diffusivity:g} is not in m²/s (free water ≈ 3e-9)", param_hint="--diffusivity")
    ell = _length(length_scale, "--length-scale")
    b, dirs, signal, seq_index = _read_csv(csv_path)
    if seq_index is not None and seq_index.max() >= len(seqs):
        raise typer.BadParameter(
            f"the CSV refers to sequence {seq_index.max()}, but the options define {len(seqs)} sequence(s): give one "
            "value per sequence (comma-separated)",
            param_hint="--delta/--Delta",
        )
    if seq_index is None and len(seqs) > 1:
        raise typer.BadParameter(
            f"the options define {len(seqs)} sequences but the CSV has no 'sequence' column", param_hint="--delta"
        )
    if model == "cylinder" and abs(dirs[:, 2]).max() > 1e-9:
        raise typer.BadParameter(
            "the cylinder model is an infinite cylinder along z seen in its cross-section: every direction needs "
            "gz = 0",
            param_hint="--csv",
        )

    import numpy as np
    import torch

    from .. import __version__
    from ..diffusion.compartments import compartments
    from ..diffusion.fit import fit_radius, radius_mesh
    from ..diffusion.simulate import simulate, simulate_rows

    index = np.zeros(len(b), dtype=np.int64) if seq_index is None else seq_index
    _say(f"fitting a {model} radius to {len(b)} signals from {csv_path}, starting at {r0 * 1e6:g} µm")
    t0 = time.perf_counter()
    try:
        result = fit_radius(
            b,
            dirs,
            signal,
            seqs,
            torch.as_tensor(index),
            geometry=model,
            initial_radius=r0,
            diffusivity=diffusivity,
            mesh_nodes=nodes,
            length_scale=ell,
            max_iterations=max_iterations,
            progress=True,
        )
    except ValueError as err:
        _say(f"error: fit failed: {err}")
        raise typer.Exit(1) from err
    t_fit = time.perf_counter() - t0
    radius = float(result.value["radius"])

    # ---- the fitted model: at the measured rows (residual) and on a fine b grid (figure)
    template, at = radius_mesh(model, nodes)
    mesh = at(torch.tensor(radius, dtype=torch.float64))
    tissue = compartments(1, diffusivity=diffusivity)
    dim = template.dim
    with torch.no_grad():
        at_rows = simulate_rows(mesh, tissue, seqs, torch.as_tensor(index), b, dirs[:, :dim], length_scale=ell)
        residual = at_rows.signal.numpy() - signal
        unique_dirs = np.unique(np.round(dirs, 12), axis=0)
        grid = np.linspace(0.0, float(b.max()), 41)
        curve = simulate(mesh, tissue, seqs, grid, unique_dirs[:, :dim], length_scale=ell)
    rms = float(np.sqrt(np.mean(residual**2)))

    out.mkdir(parents=True, exist_ok=True)
    fit = {
        "gradmr_version": __version__,
        "command": _command_line(),
        "geometry": model,
        "radius_m": radius,
        "radius_um": radius * 1e6,
        "value": dict(result.value),
        "iterations": result.iterations,
        "converged": result.converged,
        "loss": list(result.loss),
        "loss_note": "mean squared error of S/S(0) per outer iteration",
        "rms_residual": rms,
        "max_abs_residual": float(np.abs(residual).max()),
        "parameters": {
            "csv": str(csv_path),
            "rows": int(len(b)),
            "initial_radius_m": r0,
            "diffusivity_m2_per_s": diffusivity,
            "mesh_nodes_target": nodes,
            "mesh_nodes": template.n_nodes,
            "length_scale_m": ell,
            "max_iterations": max_iterations,
            "sequence": sequence,
        },
        "sequences": seq_infos,
        "timings_s": {"fit": t_fit, "total": time.perf_counter() - t_start},
        "outputs": ["fit.json", "fit.png"],
    }
    (out / "fit.json").write_text(json.dumps(_jsonable(fit), indent=2) + "\n")
    _save_fit_png(
        out / "fit.png",
        (b, signal, dirs, index),
        (curve.b.numpy(), curve.signal.numpy(), curve.direction.numpy(), curve.sequence_index.numpy()),
        result.loss,
        labels=[_sequence_label(i) for i in seq_infos],
        diffusivity=diffusivity,
        title=f"{model}: R = {radius * 1e6:.5g} µm (from {r0 * 1e6:g} µm, {result.iterations} iterations)",
    )
    state = "converged" if result.converged else f"not converged after {result.iterations}"
    typer.echo(
        f"radius {radius * 1e6:.4f} µm ({state}, {result.iterations} iterations, rms residual {rms:.2g}, "
        f"{t_fit:.1f} s) → {out / 'fit.json'}"
    )


def _save_fit_png(path: Path, measured, model, loss, *, labels, diffusivity, title: str) -> None:
    """Left: measured points and the fitted model's S(b) (lines); right: loss against iteration."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    b, signal, dirs, index = measured
    mb, msig, mdirs, mindex = model
    mdirs3 = np.concatenate([mdirs, np.zeros((len(mdirs), 3 - mdirs.shape[1]))], 1)
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    n = _plot_signals(ax, b, signal, dirs, index, labels, line=False)
    _plot_signals(ax, mb, msig, mdirs3, mindex, labels, marker="")
    for line in ax.get_lines()[n:]:
        line.set_label("_model")
    ax.plot([], [], "k-", label="fitted model")
    _free_curve(ax, float(b.max()), diffusivity)
    _finish_axes(ax, np.concatenate([signal, msig]), n)
    ax.set_title(title, fontsize=9)
    its = np.arange(1, len(loss) + 1)
    positive = np.asarray(loss, dtype=float) > 0
    ax_loss.plot(its, loss, "o-", ms=3)
    if positive.all() and len(loss):
        ax_loss.set_yscale("log")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss: mean squared error of S/S(0)")
    ax_loss.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

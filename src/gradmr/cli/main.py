"""``gradmr`` command line: simulate a sequence on a phantom, reconstruct, write the results.

Options take the units their names say (``--fov-mm``, ``--tr-ms``, ``--flip-deg``); everything is converted to
SI with :mod:`gradmr.units` before it reaches the library. Heavy modules (torch, the simulators) are imported
inside the commands so that ``gradmr --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import __version__
from .bmapest_cmd import bmapest
from .diffusion_cmd import diffusion_app
from .mrf_cmd import mrf_app
from .phantom_cmd import phantom_app
from .sequence_cmd import sequence_app

app = typer.Typer(
    name="gradmr",
    help="gradmr: a differentiable MRI physics toolkit (sequences, phantoms, PDG and Bloch simulators, recon).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

#: Simulation methods the CLI offers (the same as :data:`gradmr.sim.METHODS`, kept here so --help needs no torch).
METHODS = ("pdg", "epg", "bloch")

#: Built-in phantoms (``--phantom NAME`` or ``NAME:FIELD_T``); the same names as
#: :data:`gradmr.phantom.builtin.BUILTIN_PHANTOMS` (a test keeps them equal), listed here so --help needs no torch.
PHANTOMS = ("brain", "mni152", "shepp-logan", "random-blocks")

#: Default matrix and FOV of builders and of the built-in phantom.
DEFAULT_MATRIX = 128
DEFAULT_FOV_MM = 200.0


#: Names of the sequence builders (:mod:`gradmr.sequence.library`), listed here so that --help needs no torch; a
#: test keeps them equal to the library's.
SEQUENCES = (
    "flash",
    "multi-echo-gre",
    "bssfp",
    "ir-flash",
    "spin-echo",
    "tse",
    "ir-se",
    "flair",
    "dir",
    "dwi",
    "radial",
    "epi",
    "spiral",
    "mrf-fisp",
    "mrf-spline",
)

#: Builders whose TR varies: the PDG merges their states by k alone (``tau_resolution=inf``), as an EPG does;
#: keeping dephasing times apart makes the graph grow combinatorially (see ``simulate_pdg``).
MERGE_BY_K = ("mrf-fisp",)

#: Matrix of ``--sequence flash`` when --matrix is not given (other builders use their own default).
CLI_MATRIX_DEFAULTS = {"flash": DEFAULT_MATRIX}

#: Convenience options of ``simulate`` → builder parameter (SI converter).
_CONVENIENCE = {
    "--flip-deg": ("flip_angle", "deg_to_rad"),
    "--tr-ms": ("tr", "ms_to_s"),
    "--te-ms": ("te", "ms_to_s"),
}


def _builder_settings(name: str, settings: list[str] | None, *, matrix, fov_m, options: dict) -> dict[str, Any]:
    """SI keyword arguments for builder ``name`` from KEY=VALUE settings and the convenience options."""
    from .. import units
    from ..sequence.library import parameters, parse_settings

    params = parameters(name)
    try:
        kwargs = parse_settings(name, settings or [])
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="KEY=VALUE") from e
    for opt, value in options.items():
        if value is None:
            continue
        pname, conv = _CONVENIENCE[opt]
        if pname not in params:
            raise typer.BadParameter(
                f"{name} has no parameter {pname}; its parameters: {', '.join(params)}", param_hint=opt
            )
        kwargs.setdefault(pname, getattr(units, conv)(value))
    n = matrix if matrix is not None else CLI_MATRIX_DEFAULTS.get(name)
    if n is not None and "matrix" in params and "matrix" not in kwargs:
        default = params["matrix"].default
        kwargs["matrix"] = n if isinstance(default, int) else (n,) * (len(default) if default else 2)
    elif matrix is not None and "matrix" not in params:
        raise typer.BadParameter(f"{name} has no matrix", param_hint="--matrix")
    if fov_m is not None and "fov" in params and "fov" not in kwargs:
        default = params["fov"].default
        kwargs["fov"] = fov_m if isinstance(default, float) else (fov_m,) * (len(default) if default else 2)
    return kwargs


def parse_settings_keys(settings: list[str] | None) -> list[str]:
    """The parameter names of KEY=VALUE settings (as the library normalises them)."""
    return [str(item).partition("=")[0].strip().replace("-", "_") for item in settings or []]


def _grid_of(name: str, kwargs: dict) -> tuple[tuple[int, int], tuple[float, float]]:
    """Phantom matrix (ny, nx) and FOV (x, y) [m] that match builder ``name`` called with ``kwargs``."""
    from ..sequence.library import parameters

    params = parameters(name)

    def value(key, fallback):
        v = kwargs.get(key, params[key].default if key in params else None)
        return fallback if v is None else v

    m = value("matrix", DEFAULT_MATRIX)
    m = (m, m) if isinstance(m, int) else tuple(m)
    f = value("fov", DEFAULT_FOV_MM * 1e-3)
    f = (f, f) if isinstance(f, float | int) else tuple(f)
    return (int(m[1]), int(m[0])), (float(f[0]), float(f[1]))


# ------------------------------------------------------------------------------------------------ helpers
def _say(message: str) -> None:
    typer.echo(message, err=True)


def _jsonable(value: Any) -> Any:
    """Definitions and stats as JSON values (floats, lists, strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _rounded(values) -> list[float]:
    """float32 values as the decimals they were meant to be (7 significant digits)."""
    return [float(f"{float(v):.7g}") for v in values]


def _definition(defs: dict[str, Any], *names: str) -> Any:
    lower = {k.lower(): v for k, v in defs.items()}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def _as_tuple(value: Any) -> tuple[float, ...] | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


def _kspace_steps(k) -> list[float | None]:
    """Per axis (x, y, z): the smallest non-zero step between distinct k-space values [1/m], None if not encoded."""
    import numpy as np

    steps: list[float | None] = []
    for a in range(3):
        values = np.unique(np.round(k[:, a], 6)) if k.shape[0] else np.zeros(1)
        diffs = np.diff(values)
        diffs = diffs[diffs > 1e-6 * max(float(np.abs(values).max()), 1.0)]
        steps.append(float(diffs.min()) if diffs.size else None)
    return steps


def _sequence_geometry(
    sequence, defs: dict[str, Any]
) -> tuple[tuple[float, float, float] | None, tuple[int, int, int] | None, list[str]]:
    """FOV (x, y, z) [m] and matrix (nx, ny, nz) of a ``.seq``, and notes on where they came from.

    FOV: ``[DEFINITIONS] FOV`` (m; values > 1 are read as mm), else 1/(smallest k-space step) per axis, else None.
    Matrix: ``matrix``/``MatrixSize`` or ``Nx``/``Ny``/``Nz`` definitions (case-insensitive), else
    ``(k_max − k_min)·FOV + 1`` per axis (so that both k = n/FOV and k = (n + ½)/FOV grids give N).
    """
    notes = []
    k = sequence.kspace().detach().double().cpu().numpy()
    fov = _as_tuple(_definition(defs, "FOV"))
    if fov is not None:
        if any(v > 1.0 for v in fov):  # some scripts write mm
            fov = tuple(v * 1e-3 for v in fov)
            notes.append("[DEFINITIONS] FOV read as mm (values > 1)")
        fov = (fov + (fov[-1],) * 3)[:3]
    else:
        guess = _kspace_steps(k)
        if guess[0] is None and guess[1] is None:
            return None, None, notes
        fx = 1.0 / (guess[0] or guess[1])
        fy = 1.0 / (guess[1] or guess[0])
        fov = (fx, fy, 1.0 / guess[2] if guess[2] else 5e-3)
        notes.append("no FOV in [DEFINITIONS]: FOV taken as 1/(smallest k-space step)")
    matrix = _as_tuple(_definition(defs, "matrix", "matrixsize", "matrix_size"))
    if matrix is not None and len(matrix) >= 2:
        m = [int(round(v)) for v in matrix[:3]] + [1] * (3 - min(len(matrix), 3))
    else:
        m = []
        for a, key in enumerate(("nx", "ny", "nz")):
            v = _definition(defs, key)
            if isinstance(v, (int, float)):
                m.append(int(round(v)))
            elif k.shape[0]:
                m.append(int(round((k[:, a].max() - k[:, a].min()) * fov[a])) + 1)
            else:
                m.append(1)
        if _definition(defs, "nx") is None:
            notes.append("matrix inferred from the k-space extent, (k_max − k_min)·FOV + 1")
    return tuple(float(v) for v in fov), tuple(max(int(v), 1) for v in m), notes


def _phantom_from_spec(
    spec: str,
    *,
    matrix: tuple[int, int],
    fov: tuple[float, float],
    slice_thickness: float | None,
    field_strength: float,
    file_fov: tuple[float, float, float] | None,
):
    """A built-in (drawn at ``matrix`` (ny, nx) and ``fov`` (x, y)), ``brainweb:NN`` or a file phantom.

    A file without a voxel size takes it from the sequence FOV when there is one (else 1 mm).
    """
    from .phantom_cmd import resolve_phantom

    ph, _, info = resolve_phantom(
        spec, matrix=matrix, fov=fov, field_strength=field_strength, slice_thickness=slice_thickness
    )
    if info.pop("has_voxel_size", True):
        return ph, info
    import torch

    nz, ny, nx = ph.grid_shape
    if file_fov is not None:
        vs = (file_fov[0] / nx, file_fov[1] / ny, file_fov[2] / nz)
        info["voxel_size_from"] = "sequence FOV / phantom matrix"
    else:
        vs = (1e-3, 1e-3, 1e-3)
        info["voxel_size_from"] = "default 1 mm"
    return ph.replace(voxel_size=torch.tensor(vs, dtype=ph.voxel_size.dtype)), info


def _echo_groups(name: str | None, sequence):
    """Echo number of every sample for builders with several echoes per line (multi-echo GRE), else ``None``."""
    if name is None:
        return None
    import importlib

    from ..sequence.library import builder

    module = importlib.import_module(builder(name).__module__)
    if not hasattr(module, "echo_index"):
        return None
    index = module.echo_index(sequence)
    return index if int(index.max()) > 0 else None


def _save_trace(signal, path: Path, *, title: str) -> None:
    """|signal| against sample number (a fingerprint), one line per coil."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(signal.abs().numpy())
    ax.set_xlabel("sample")
    ax.set_ylabel("|signal|")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reconstruct(signal, kspace, phantom):
    """Image on the phantom grid: FFT when the samples lie on its k-grid (up to one uniform sub-step shift,
    undone by a linear phase), else CG on the encoding operator. Returns ``(image (z, y, x), info)``."""
    import itertools
    import math

    import torch

    from ..recon import GRID_TOLERANCE, combine_coils, reconstruct_cartesian

    nz, ny, nx = phantom.grid_shape
    fov = phantom.fov.detach().double()
    k = kspace.detach().to(torch.float64)
    sens = phantom.coil_sens.detach()
    positions = phantom.positions().detach().double()
    if nz > 1 and bool((k[:, 2].abs() < 1e-12).all()):
        # 2D encoding of a 3D phantom: the image is the projection along z (centre slice positions)
        nz = 1
        sens = sens.mean(dim=1, keepdim=True)
        positions = positions.reshape(phantom.grid_shape + (3,))[0].reshape(-1, 3).clone()
        positions[:, 2] = 0.0
        fov = fov.clone()
    matrix = (nz, ny, nx)
    signal = signal.detach()
    steps = k * fov[None, :]
    candidates = []
    for a in range(3):
        d0 = float(steps[0, a] - torch.floor(steps[0, a])) if steps.shape[0] else 0.0
        if min(d0, 1.0 - d0) < GRID_TOLERANCE:
            candidates.append((0.0,))
        else:
            candidates.append((d0, d0 - 1.0))
    for shift in itertools.product(*candidates):
        delta = torch.tensor(shift, dtype=torch.float64)
        try:
            coil_images = reconstruct_cartesian(signal, k - delta / fov, fov=fov.tolist(), matrix=matrix)
        except ValueError:
            continue
        if any(shift):
            r = positions.reshape(nz, ny, nx, 3)
            phase = (2 * math.pi) * (r * (delta / fov)).sum(-1)
            ramp = torch.polar(torch.ones_like(phase), phase)
            coil_images = coil_images * ramp.to(coil_images.dtype)
        image = combine_coils(coil_images, sens.to(coil_images.dtype))
        if any(shift):
            how = "Cartesian FFT after undoing a uniform sub-step k-space shift with a linear phase"
        else:
            how = "Cartesian FFT"
        return image, {"method": "fft-shift" if any(shift) else "fft", "kspace_shift_steps": list(shift), "note": how}
    from ..recon.noncartesian import reconstruct_noncartesian

    _say("k-space is not on the phantom's Cartesian grid: reconstructing with CG on the exact encoding operator")
    iterations = 30
    image = reconstruct_noncartesian(
        signal.to(torch.complex128),
        k,
        fov=fov.tolist(),
        matrix=matrix,
        coil_sens=sens.to(torch.complex128),
        iterations=iterations,
    )
    note = "off-grid trajectory: density-weighted CG on the exact encoding operator (gradmr.recon.noncartesian)"
    return image.to(torch.complex64), {"method": "cg", "iterations": iterations, "note": note}


# ------------------------------------------------------------------------------------------------ commands
def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"gradmr {__version__}")
        raise typer.Exit()


app.add_typer(phantom_app, name="phantom")
app.add_typer(sequence_app, name="sequence")
app.add_typer(mrf_app, name="mrf")
app.add_typer(diffusion_app, name="diffusion")
app.command("bmapest")(bmapest)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """gradmr: a differentiable MRI physics toolkit (sequences, phantoms, PDG and Bloch simulators, recon)."""


@app.command()
def info() -> None:
    """Print the version and the available methods, sequences and phantoms."""
    import torch

    typer.echo(f"gradmr {__version__} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    typer.echo(
        "methods:   " + ", ".join(METHODS) + "  (pdg: Phase Distribution Graph; epg: extended phase graph, spoiled/FISP"
        " sequences without imaging gradients; bloch: isochromat reference)"
    )
    typer.echo("sequences:")
    from ..sequence.library import describe, sequence_names

    for name in sequence_names():
        typer.echo(f"  {name:14s} {describe(name)}")
    typer.echo("  FILE.seq       any Pulseq file (--seq); parameters of the builders: gradmr sequence list")
    typer.echo("phantoms (gradmr phantom list / show / export):")
    from .phantom_cmd import list_phantoms

    list_phantoms()


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    settings: Annotated[
        list[str] | None,
        typer.Argument(help="Builder parameters KEY=VALUE for --sequence (SI, or with unit suffixes: 90ms, 15deg)."),
    ] = None,
    seq: Annotated[
        Path | None, typer.Option("--seq", help="Pulseq .seq file to simulate.", exists=True, dir_okay=False)
    ] = None,
    sequence: Annotated[
        str | None,
        typer.Option(
            "--sequence",
            help="Built-in sequence builder: " + ", ".join(SEQUENCES) + "; its parameters follow as KEY=VALUE "
            "arguments (gradmr sequence list).",
        ),
    ] = None,
    phantom: Annotated[
        str,
        typer.Option(
            help=f"Built-in ({', '.join(PHANTOMS)}; NAME:1.5 for the 1.5 T tissue table), brainweb:NN, a .npz of "
            "maps or tissue fractions, or a directory of NIfTI maps or fractions. See 'gradmr phantom list'."
        ),
    ] = "brain",
    method: Annotated[str, typer.Option(help="Simulator: " + " or ".join(METHODS) + ".")] = "pdg",
    mrd: Annotated[Path | None, typer.Option("--mrd", help="Also write the raw data to this ISMRMRD file.")] = None,
    matrix: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Matrix N (N×N) of the builder and built-in phantom [default {DEFAULT_MATRIX}; with --seq: "
            "from the file].",
        ),
    ] = None,
    fov_mm: Annotated[
        float | None,
        typer.Option(
            "--fov-mm", min=0, help=f"Field of view [mm] [default {DEFAULT_FOV_MM:g}; with --seq: from the file]."
        ),
    ] = None,
    flip_deg: Annotated[
        float | None, typer.Option("--flip-deg", help="Flip angle [deg] [default: the builder's].")
    ] = None,
    tr_ms: Annotated[
        float | None, typer.Option("--tr-ms", help="Repetition time [ms] [default: the builder's].")
    ] = None,
    te_ms: Annotated[float | None, typer.Option("--te-ms", help="Echo time [ms] [default: shortest].")] = None,
    field_strength: Annotated[
        float, typer.Option("--field-strength", help="Field strength [T] of the tissue table and MRD header: 1.5 or 3.")
    ] = 3.0,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch CPU threads [default: torch's].")] = None,
    bloch_spins: Annotated[
        int,
        typer.Option(
            "--bloch-spins",
            min=1,
            help="Isochromats per voxel for --method bloch. A sub-grid of n spins per axis refocuses every n "
            "cycles of dephasing per voxel, so gradient-spoiled sequences need several hundred.",
        ),
    ] = 343,
) -> None:
    """Simulate a sequence on a phantom, reconstruct, and write signal.npy, image.npy, image.nii.gz, image.png and
    run.json to OUT.

    The sequence is a Pulseq file (--seq) or a built-in builder (--sequence). With --seq and the built-in brain,
    the brain is drawn at the file's FOV and matrix ([DEFINITIONS], else inferred from the k-space extent).
    """
    t_start = time.perf_counter()
    if (seq is None) == (sequence is None):
        raise typer.BadParameter("give exactly one of --seq FILE.seq or --sequence NAME", param_hint="--seq/--sequence")
    if method not in METHODS:
        raise typer.BadParameter(
            f"{method!r} is not a method; choose one of {', '.join(METHODS)}", param_hint="--method"
        )
    if sequence is not None:
        from ..sequence.library import sequence_names

        if sequence not in sequence_names():
            raise typer.BadParameter(
                f"unknown sequence {sequence!r}; available: {', '.join(sequence_names())} (or --seq FILE.seq)",
                param_hint="--sequence",
            )
    if seq is not None and settings:
        raise typer.BadParameter("KEY=VALUE settings are for --sequence builders", param_hint="KEY=VALUE")
    if seq is not None:
        for name, value in (("--flip-deg", flip_deg), ("--tr-ms", tr_ms), ("--te-ms", te_ms)):
            if value is not None:
                raise typer.BadParameter(
                    f"{name} sets a builder parameter; it cannot change a .seq file", param_hint=name
                )
    if field_strength not in (1.5, 3.0):
        raise typer.BadParameter(f"must be 1.5 or 3 T, got {field_strength:g}", param_hint="--field-strength")
    if fov_mm is not None and not fov_mm > 0:
        raise typer.BadParameter("must be > 0 mm", param_hint="--fov-mm")

    import numpy as np
    import torch

    from .. import units
    from ..io import PulseqImportError, load_pulseq, read_definitions, save_nifti, save_png, write_ismrmrd

    if threads is not None:
        torch.set_num_threads(threads)

    # ---- sequence
    t0 = time.perf_counter()
    notes: list[str] = []
    builder_params: dict[str, Any] | None = None
    file_fov = None
    seq_info: dict[str, Any] = {}
    fov_m = None if fov_mm is None else units.mm_to_m(fov_mm)
    if seq is not None:
        try:
            defs = read_definitions(seq)
            sequence_obj = load_pulseq(seq)
        except (FileNotFoundError, PulseqImportError) as e:
            raise typer.BadParameter(str(e), param_hint="--seq") from e
        file_fov, file_matrix, geo_notes = _sequence_geometry(sequence_obj, defs)
        notes += geo_notes
        seq_info = {"source": str(seq), "definitions": _jsonable(defs), "fov_m": file_fov, "matrix_xyz": file_matrix}
        if fov_m is not None:
            file_fov = (fov_m, fov_m, file_fov[2] if file_fov else 5e-3)
        if file_fov is None:
            file_fov = (units.mm_to_m(DEFAULT_FOV_MM),) * 2 + (5e-3,)
            notes.append(f"no FOV in the file or its trajectory: using {DEFAULT_FOV_MM:g} mm")
        if matrix is not None:
            file_matrix = (matrix, matrix, 1)
        if file_matrix is None:
            file_matrix = (DEFAULT_MATRIX, DEFAULT_MATRIX, 1)
        ph_matrix = (file_matrix[1], file_matrix[0])
        ph_fov = (file_fov[0], file_fov[1])
        slice_thickness = file_fov[2] if file_fov[2] > 0 else None
    else:
        assert sequence is not None
        builder_params = _builder_settings(
            sequence,
            settings,
            matrix=matrix,
            fov_m=fov_m,
            options={"--flip-deg": flip_deg, "--tr-ms": tr_ms, "--te-ms": te_ms},
        )
        ph_matrix, ph_fov = _grid_of(sequence, builder_params)
        slice_thickness = None
        file_fov = None

    # ---- phantom
    ph, ph_info = _phantom_from_spec(
        phantom,
        matrix=ph_matrix,
        fov=ph_fov,
        slice_thickness=slice_thickness,
        field_strength=field_strength,
        file_fov=file_fov,
    )
    if ph_info.get("field_strength_T") is not None:
        field_strength = ph_info["field_strength_T"]

    if sequence is not None:
        from ..sequence.library import build, parameters

        assert builder_params is not None
        if ph_info["source"] not in PHANTOMS and not str(ph_info["source"]).startswith("brainweb"):
            # a file phantom sets the grid: the builder encodes its matrix and FOV unless told otherwise
            params = parameters(sequence)
            nz, ny, nx = ph.grid_shape
            pfov = _rounded(ph.fov.tolist())
            user = set(parse_settings_keys(settings))
            if "matrix" in params and matrix is None and "matrix" not in user:
                builder_params["matrix"] = nx if isinstance(params["matrix"].default, int) else (nx, ny)
            if "fov" in params and fov_m is None and "fov" not in user:
                builder_params["fov"] = pfov[0] if isinstance(params["fov"].default, float) else (pfov[0], pfov[1])
        try:
            sequence_obj = build(sequence, **builder_params)
        except (ValueError, TypeError) as e:
            raise typer.BadParameter(f"{sequence}: {e}", param_hint="KEY=VALUE") from e
        seq_info = {"source": sequence, "builder_params_si": _jsonable(builder_params)}
    seq_info.update(
        reps=len(sequence_obj), samples=sequence_obj.sample_count, duration_s=float(sequence_obj.duration())
    )
    if sequence_obj.sample_count == 0:
        raise typer.BadParameter("the sequence has no ADC samples", param_hint="--seq")
    t_setup = time.perf_counter() - t0
    for note in notes:
        _say(note)
    _say(
        f"simulating {seq_info['source']} ({seq_info['reps']} reps, {seq_info['samples']} samples, "
        f"{seq_info['duration_s']:.3g} s) on {ph_info['source']} {tuple(ph.pd.shape)} with {method}"
    )

    # ---- simulate
    plan_stats = None
    t0 = time.perf_counter()
    try:
        if method == "pdg":
            from ..sim.pdg import simulate_pdg

            tau = None
            if sequence in MERGE_BY_K:
                tau = math.inf
                notes.append(
                    f"{sequence}: PDG states merged by dephasing k alone, as an extended phase graph (its TR varies; "
                    "B0 and T2' are not modelled between pulses)"
                )
                _say(notes[-1])
            signal, plan = simulate_pdg(sequence_obj, ph, progress=True, return_plan=True, tau_resolution=tau)
            plan_stats = _jsonable(plan.stats)
        else:
            from ..sim.bloch import simulate_bloch

            signal = simulate_bloch(sequence_obj, ph, spins_per_voxel=bloch_spins, diffusion="ignore", progress=True)
    except ValueError as e:
        _say(f"error: simulation failed: {e}")
        raise typer.Exit(1) from e
    t_sim = time.perf_counter() - t0
    signal = signal.detach().to(torch.complex64)

    # ---- reconstruct
    t0 = time.perf_counter()
    kspace = sequence_obj.kspace().detach()
    echoes = _echo_groups(sequence, sequence_obj)
    if bool((kspace.abs() < 1e-9).all()):
        # no spatial encoding (e.g. an MR fingerprint of the whole slice): the signal is the result
        image = signal.detach().to(torch.complex64).T[:, None, None, :]  # (coils, 1, 1, samples) for the files
        recon_info = {"method": "none", "note": "no spatial encoding: every sample is at k = 0; see signal.npy"}
    elif echoes is not None:
        images, recon_info = [], {}
        for e in range(int(echoes.max()) + 1):
            img, recon_info = _reconstruct(signal[echoes == e], kspace[echoes == e], ph)
            images.append(img.detach())
        image = torch.stack(images).to(torch.complex64)  # (echoes, z, y, x)
        recon_info = {**recon_info, "echoes": len(images), "note": "one image per echo, image.npy (echoes, z, y, x)"}
    else:
        image, recon_info = _reconstruct(signal, kspace, ph)
        image = image.detach().to(torch.complex64)
    t_recon = time.perf_counter() - t0

    # ---- write
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "signal.npy", signal.numpy())
    title = f"{Path(str(seq_info['source'])).name} · {method}"
    if recon_info["method"] == "none":
        _save_trace(signal, out / "signal.png", title=title)
        outputs = ["signal.npy", "signal.png", "run.json"]
    else:
        np.save(out / "image.npy", image.numpy())
        first = image[0] if echoes is not None else image  # (z, y, x): the first echo
        vs = ph.voxel_size.detach().double().tolist()
        if first.shape[0] != ph.grid_shape[0]:
            vs[2] = vs[2] * ph.grid_shape[0]
        save_nifti(first.abs(), vs, out / "image.nii.gz")
        save_png(first[first.shape[0] // 2].abs(), out / "image.png", title=title)
        outputs = ["signal.npy", "image.npy", "image.nii.gz", "image.png", "run.json"]
    if mrd is not None:
        mrd.parent.mkdir(parents=True, exist_ok=True)
        recon_fov = ph.fov.detach().double().tolist()
        write_ismrmrd(
            mrd,
            signal,
            kspace,
            fov=recon_fov,
            matrix=tuple(image.shape[-3:]),
            sample_times=sequence_obj.sample_times(),
            field_strength=field_strength,
        )
        outputs.append(str(mrd))

    run = {
        "gradmr_version": __version__,
        "torch_version": torch.__version__,
        "command": " ".join(["gradmr", *sys.argv[1:]]) if sys.argv and "gradmr" in Path(sys.argv[0]).name else None,
        "parameters": {
            "seq": None if seq is None else str(seq),
            "sequence": sequence,
            "phantom": phantom,
            "out": str(out),
            "method": method,
            "mrd": None if mrd is None else str(mrd),
            "matrix": matrix,
            "fov_mm": fov_mm,
            "flip_deg": flip_deg,
            "tr_ms": tr_ms,
            "te_ms": te_ms,
            "field_strength": field_strength,
            "threads": torch.get_num_threads(),
            "bloch_spins": bloch_spins if method == "bloch" else None,
        },
        "method": method,
        "sequence": seq_info,
        "phantom": {
            **ph_info,
            "shape": list(ph.pd.shape),
            "pools": ph.pool_count,
            "coils": ph.coil_count,
            "voxel_size_m": _rounded(ph.voxel_size.tolist()),
            "fov_m": _rounded(ph.fov.tolist()),
        },
        "signal": {"shape": list(signal.shape), "dtype": "complex64"},
        "reconstruction": {
            **recon_info,
            "image_shape": list(image.shape),
            "image_axes": "(echoes, z, y, x)" if echoes is not None else "(z, y, x)",
        },
        "timings_s": {
            "setup": t_setup,
            "simulation": t_sim,
            "reconstruction": t_recon,
            "total": time.perf_counter() - t_start,
        },
        "pdg_plan": plan_stats,
        "notes": notes,
        "outputs": outputs,
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    _say(f"simulation {t_sim:.2f} s, reconstruction {t_recon:.2f} s ({recon_info['method']})")
    typer.echo(f"wrote {', '.join(outputs)} to {out}")


if __name__ == "__main__":  # pragma: no cover
    app()

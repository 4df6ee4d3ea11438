"""``gradmr phantom list | show | export | fetch``, and the phantom specification that ``--phantom`` accepts.

A phantom specification is one of

* a built-in name (:data:`gradmr.phantom.builtin.BUILTIN_PHANTOMS`), optionally ``NAME:FIELD_T`` for the tissue
  table (``brain:1.5``);
* ``brainweb:NN`` — BrainWeb subject NN from the local cache (``$BRAINWEB_DIR`` or ``~/.cache/brainweb``), see
  ``gradmr phantom fetch``;
* a ``.npz`` file of maps (PD, T1, T2, …) or of tissue fractions (GM, WM, CSF, …);
* a directory of NIfTI maps (``pd``, ``t1``, ``t2``, …) or of NIfTI tissue fractions (``gm``, ``wm``, …).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

phantom_app = typer.Typer(
    help="Phantoms: list the built-ins, show one as a PNG, export it to files, fetch BrainWeb subjects.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ORIENTATIONS = ("axial", "coronal", "sagittal")


def _field_from(spec: str, suffix: str, default: float) -> float:
    if not suffix:
        return default
    try:
        return float(suffix)
    except ValueError as e:
        raise typer.BadParameter(f"field strength in {spec!r} must be a number (T)", param_hint="--phantom") from e


def resolve_phantom(
    spec: str,
    *,
    matrix: tuple[int, int] | None,
    fov: tuple[float, float] | None,
    field_strength: float = 3.0,
    model: str = "multi",
    orientation: str = "axial",
    index: int | None = None,
    slice_thickness: float | None = None,
    seed: int = 0,
):
    """Turn a phantom specification into ``(VoxelPhantom, TissueFractions or None, info dict)``.

    ``matrix`` (ny, nx) and ``fov`` (x, y) [m] shape built-in and BrainWeb slices (``None``: their own); files are
    taken as they are. Errors become ``typer.BadParameter`` naming ``--phantom``.
    """
    from ..phantom.builtin import BUILTIN_PHANTOMS, FRACTION_PHANTOMS, builtin_fractions, builtin_phantom
    from ..phantom.fractions import phantom_from_fractions

    name, _, suffix = spec.partition(":")
    key = name.lower()
    try:
        if key in BUILTIN_PHANTOMS:
            field = _field_from(spec, suffix, field_strength)
            common = {"matrix": matrix or (64, 64), "fov": fov}
            extra = {} if slice_thickness is None else {"slice_thickness": slice_thickness}
            info: dict[str, Any] = {"source": key, "field_strength_T": field}
            if key in FRACTION_PHANTOMS:
                fr = builtin_fractions(key, orientation=orientation, index=index, **common, **extra, dtype=_f64())
                info["model"] = model
                return phantom_from_fractions(fr, field_strength=field, model=model), fr, info
            ph = builtin_phantom(key, field_strength=field, seed=seed, **common, **extra)
            return ph, None, info
        if key == "brainweb":
            from ..io.brainweb import load_brainweb

            if not suffix:
                raise ValueError("give the subject: brainweb:NN (e.g. brainweb:04)")
            volume = load_brainweb(int(suffix))
            fr = volume.plane(orientation, index)
            if matrix is not None or fov is not None:
                fr = fr.resample(matrix or fr.grid_shape[1:], fov=fov)
            info = {"source": f"brainweb subject {int(suffix):02d}", "field_strength_T": field_strength, "model": model}
            return phantom_from_fractions(fr, field_strength=field_strength, model=model), fr, info
        return _from_path(Path(spec), field_strength=field_strength, model=model)
    except (ValueError, KeyError, OSError) as e:
        raise typer.BadParameter(f"cannot load phantom {spec!r}: {e}", param_hint="--phantom") from e


def _f64():
    import torch

    return torch.float64


def _from_path(path: Path, *, field_strength: float, model: str):
    from ..io import load_fractions_nifti, load_fractions_npz, load_phantom_nifti, load_phantom_npz
    from ..phantom.builtin import BUILTIN_PHANTOMS
    from ..phantom.fractions import phantom_from_fractions

    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} is neither a built-in phantom ({', '.join(BUILTIN_PHANTOMS)}), brainweb:NN, nor an "
            "existing .npz file or NIfTI directory"
        )
    info: dict[str, Any] = {"source": str(path)}
    if path.is_dir():
        has_maps = any(p.name.lower().startswith("pd.nii") for p in path.iterdir())
        if has_maps:
            return load_phantom_nifti(path), None, {**info, "format": "nifti maps"}
        fr = load_fractions_nifti(path, dtype=_f64())
        ph = phantom_from_fractions(fr, field_strength=field_strength, model=model)
        return ph, fr, {**info, "format": "nifti fractions", "field_strength_T": field_strength, "model": model}
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
    if "PD" in keys:
        return load_phantom_npz(path), None, {**info, "format": "npz maps", "has_voxel_size": "voxel_size" in keys}
    fr = load_fractions_npz(path, dtype=_f64())
    ph = phantom_from_fractions(fr, field_strength=field_strength, model=model)
    info.update(format="npz fractions", field_strength_T=field_strength, model=model)
    return ph, fr, {**info, "has_voxel_size": "voxel_size" in keys}


# ----------------------------------------------------------------------------------------------- commands
Spec = Annotated[str, typer.Argument(help="Built-in name, brainweb:NN, a .npz file or a NIfTI directory.")]
Matrix = Annotated[int | None, typer.Option(min=1, help="Resample to N×N [default: the phantom's own].")]
FovMm = Annotated[float | None, typer.Option("--fov-mm", min=0, help="Field of view [mm] [default: its own].")]
Field = Annotated[float, typer.Option("--field-strength", help="Tissue table [T]: 1.5 or 3.")]
Model = Annotated[str, typer.Option(help="Partial-volume model of fraction phantoms: multi or mixed.")]
Orientation = Annotated[str, typer.Option(help="Slice of 3D phantoms: axial, coronal or sagittal.")]
SliceIndex = Annotated[int | None, typer.Option("--slice", help="Slice index along the through-plane axis.")]


def _resolve_cli(spec, matrix, fov_mm, field_strength, model, orientation, index):
    if field_strength not in (1.5, 3.0):
        raise typer.BadParameter(f"must be 1.5 or 3 T, got {field_strength:g}", param_hint="--field-strength")
    if orientation not in ORIENTATIONS:
        raise typer.BadParameter(f"must be one of {', '.join(ORIENTATIONS)}", param_hint="--orientation")
    if model not in ("multi", "mixed"):
        raise typer.BadParameter("must be multi or mixed", param_hint="--model")
    fov = None if fov_mm is None else (fov_mm * 1e-3, fov_mm * 1e-3)
    mat = None if matrix is None else (matrix, matrix)
    return resolve_phantom(
        spec, matrix=mat, fov=fov, field_strength=field_strength, model=model, orientation=orientation, index=index
    )


@phantom_app.command("list")
def list_phantoms() -> None:
    """List the built-in phantoms and the other phantom specifications."""
    from ..phantom.builtin import BUILTIN_PHANTOMS

    for name, desc in BUILTIN_PHANTOMS.items():
        typer.echo(f"  {name:14s} {desc}")
    typer.echo("  brainweb:NN    BrainWeb subject NN (fuzzy models) from the local cache; see 'gradmr phantom fetch'")
    typer.echo("  FILE.npz       maps PD, T1, T2 [, T2dash, D, B0, B1, voxel_size, coil_sens] in SI units,")
    typer.echo("                 or tissue fractions GM, WM, CSF [, FAT, MUSCLE, …] in [0, 1] [, voxel_size]")
    typer.echo("  DIRECTORY      NIfTI maps pd, t1, t2 [, …] or NIfTI fractions gm, wm, csf [, …]")


@phantom_app.command()
def show(
    spec: Spec,
    out: Annotated[Path, typer.Option("--out", help="PNG file to write [default: NAME.png].")] = None,  # type: ignore[assignment]
    matrix: Matrix = None,
    fov_mm: FovMm = None,
    field_strength: Field = 3.0,
    model: Model = "multi",
    orientation: Orientation = "axial",
    slice_index: SliceIndex = None,
) -> None:
    """Draw a phantom's tissue fractions and PD/T1/T2/T2'/B0 maps, with colour bars, to a PNG."""
    from ..phantom.plot import plot_phantom
    from ..sequence.plot import save_figure

    ph, fr, info = _resolve_cli(spec, matrix, fov_mm, field_strength, model, orientation, slice_index)
    out = out or Path(f"{spec.replace(':', '_').replace('/', '_')}.png")
    nz, ny, nx = ph.grid_shape
    title = f"{spec}: {ny}×{nx}, {orientation}" + (
        f", {info['field_strength_T']:g} T" if "field_strength_T" in info else ""
    )
    save_figure(plot_phantom(ph, fractions=fr, title=title), out)
    typer.echo(f"wrote {out}")


@phantom_app.command()
def export(
    spec: Spec,
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    matrix: Matrix = None,
    fov_mm: FovMm = None,
    field_strength: Field = 3.0,
    model: Model = "multi",
    orientation: Orientation = "axial",
    slice_index: SliceIndex = None,
) -> None:
    """Write a phantom as phantom.npz, NIfTI maps (maps/), its fractions (fractions.npz, fractions/), a PNG and
    phantom.json; derived data of the MNI template carries its copyright notice."""
    from ..io import save_fractions_nifti, save_fractions_npz, save_phantom_nifti, save_phantom_npz
    from ..phantom.plot import plot_phantom
    from ..sequence.plot import save_figure

    ph, fr, info = _resolve_cli(spec, matrix, fov_mm, field_strength, model, orientation, slice_index)
    out.mkdir(parents=True, exist_ok=True)
    save_phantom_npz(ph, out / "phantom.npz")
    save_phantom_nifti(ph, out / "maps")
    written = ["phantom.npz", "maps/"]
    if fr is not None:
        save_fractions_npz(fr, out / "fractions.npz")
        save_fractions_nifti(fr, out / "fractions")
        written += ["fractions.npz", "fractions/"]
    save_figure(plot_phantom(ph, fractions=fr, title=spec), out / "phantom.png")
    written.append("phantom.png")
    if spec.split(":")[0].lower() == "mni152":
        from ..phantom.mni152 import MNI152_NOTICE

        (out / "ICBM152-2009a-NOTICE.txt").write_text(MNI152_NOTICE, encoding="utf-8")
        written.append("ICBM152-2009a-NOTICE.txt")
    meta = {
        **info,
        "spec": spec,
        "grid_zyx": list(ph.grid_shape),
        "voxel_size_m": ph.voxel_size.tolist(),
        "pools": ph.pool_count,
        "tissues": None if fr is None else list(fr.names),
        "orientation": orientation,
    }
    (out / "phantom.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"wrote {', '.join(written)} and phantom.json to {out}")


@phantom_app.command()
def fetch(
    subject: Annotated[int, typer.Argument(help="BrainWeb subject id (4, 5, 6, 18, 20, 38, 41–54).")],
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Cache directory [default: $BRAINWEB_DIR or ~/.cache/brainweb].")
    ] = None,
) -> None:
    """Download a BrainWeb subject's fuzzy tissue models with brainweb-dl (needs the network and the 'brainweb'
    extra); afterwards '--phantom brainweb:NN' works offline."""
    from ..io.brainweb import BrainWebUnavailableError, fetch_brainweb

    try:
        path = fetch_brainweb(subject, cache_dir=cache_dir)
    except (BrainWebUnavailableError, ValueError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    typer.echo(f"BrainWeb subject {subject:02d}: {path}")

"""BrainWeb anatomical models: fuzzy tissue fractions from files or a download, and crisp label fixtures.

**The 20 normal brains** (Aubert-Broche et al., NeuroImage 2006; https://brainweb.bic.mni.mcgill.ca/brainweb/
anatomic_normal_20.html) come as *fuzzy* models: one volume per tissue class, 362 × 434 × 362 voxels (z, y, x) at
0.5 mm, stored with x fastest, then y, then z, so the flat data reshaped to ``(362, 434, 362)`` is indexed
``[z, y, x]``. BrainWeb's axes: x from the subject's left to right, y from posterior to anterior, z from inferior
to superior. :func:`load_brainweb_fuzzy` reads them in three layouts:

* ``"raw"`` — a directory of the files BrainWeb's download form gives, one per tissue, named
  ``subjectNN_{alias}.{ext}`` (aliases :data:`BRAINWEB_ALIASES`), directly in the directory or in a ``subjectNN/``
  subfolder, each optionally gzip-compressed (``.gz``). Encodings: ``.rawb`` (unsigned bytes, fraction = v/255),
  ``.raws`` (little-endian uint16 holding 12-bit values, fraction = v/4095) and ``.i8`` (the ``raw_byte``
  download as cached by MR-zero and BMapEst, ``subjectNN_{alias}.i8.gz``: the bytes are really signed, so
  fraction = ((byte + 128) mod 256)/255). In the ``.i8`` vessels file nearly all background reads 1/255 instead of
  0; it is left as read here (:func:`gradmr.phantom.brainweb.bmapest_preprocess` removes it as BMapEst does).
* ``"brainweb-dl"`` — the cache of the `brainweb-dl <https://github.com/paquiteau/brainweb-dl>`_ package:
  ``brainweb_sNN_fuzzy.nii.gz`` (or ``.nii``), a 4D NIfTI of shape (362, 434, 362, 12), uint16 0…4095 (fraction =
  v/4095), channels :data:`BRAINWEB_DL_CHANNELS`. brainweb-dl reshapes the raw data in C order without
  transposing, so its array axes are really (z, y, x) although its affine claims NIfTI's (x, y, z): the file is
  read in that raw order, the affine ignored.
* ``"nifti"`` — a generic 4D fuzzy NIfTI following the NIfTI convention, axes (x, y, z, tissue): reoriented to the
  closest canonical RAS+ order with its affine (axes permuted and flipped, no interpolation, as
  :func:`gradmr.io.load_fractions_nifti` does) and transposed to (tissue, z, y, x); voxel size from the header
  zooms (mm → m). Channels in :data:`BRAINWEB_DL_CHANNELS` order by default (``channels=`` names them otherwise).
  Float data are taken as fractions; integer data are divided by 4095 when their maximum exceeds 255 (12-bit
  BrainWeb data) and by 255 otherwise (8-bit data).

Several BrainWeb classes map to one library tissue (:data:`BRAINWEB_ALIASES`): ``fat2`` ("around fat") is added to
``fat`` and ``m-s`` (muscle/skin) is ``skin``. Fractions are clipped to [0, 1]. BrainWeb's fuzzy fractions,
background included, sum to 1 up to their quantisation (up to ½ step of 1/255 or 1/4095 per channel, and the
vessels background of the ``.i8`` files), so the tissue sum can exceed 1 by a little: where it does, all fractions
of the voxel are divided by their sum (a change of at most the quantisation error; voxels whose sum is ≤ 1 are left
as read, the rest being background).

:func:`fetch_brainweb` downloads a subject with brainweb-dl (optional dependency: ``pip install
'gradmr[brainweb]'``) and :func:`load_brainweb` finds it in the cache first. Offline, or without the package,
they raise :class:`BrainWebUnavailableError`, whose message says which files to put where.

**Crisp label fixtures** (not shipped: pass their path). ``BrainModel.mat`` (MRiLab; BrainWeb's discrete model of
one brain, MATLAB ``Anatomy``, uint8, 216 × 180 × 180 at 1 mm, codes :data:`BRAINMODEL_CODES`) and ``brain2D.mat``
(KomaMRI; one 0.5 mm slice per orientation of a 20-normal-brain subject, codes :data:`BRAIN2D_CODES`).
:func:`labels_to_fractions` turns labels into partial-volume fractions by area-averaging the one-hot tissue masks.
The orientation of the arrays in these files, found by inspecting the anatomy (eyes, ventricles, cerebellum and
brainstem, skull base):

* ``BrainModel.mat`` ``Anatomy[a0, a1, a2]``: ``a0`` runs from anterior (0) to posterior, ``a1`` left–right,
  ``a2`` from the vertex (0) to inferior.
* ``brain2D.mat``: ``axial[y, x]`` with y posterior → anterior; ``coronal[x, z]`` and ``sagittal[y, z]`` with z
  inferior → superior and y posterior → anterior (BrainWeb's own directions). The three are the slices z = 180,
  y = 216 and x = 180 (0-based) of one volume: their labels agree exactly where they cross.

Left and right cannot be told apart from the anatomy; the left–right axis is kept in stored order. The returned
fractions are oriented the same way for both files (y = the first in-plane array axis of ``(z, y, x)``):

* axial: +y anterior, x = left–right;
* coronal: +y superior, x = left–right;
* sagittal: +y superior, +x anterior.

:func:`brainmodel_volume_fractions` returns the 3D model with +z superior, +y anterior.
"""

from __future__ import annotations

import gzip
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..phantom.brainweb import BRAINWEB_VOXEL_SIZE
from ..phantom.fractions import TissueFractions
from ..phantom.tissues import TISSUE_NAMES

#: Subject ids of the 20 normal brains.
BRAINWEB_SUBJECTS = (4, 5, 6, 18, 20, 38, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54)

#: Grid of the fuzzy models, (z, y, x) voxels.
BRAINWEB_SHAPE = (362, 434, 362)


#: BrainWeb's download aliases of the fuzzy tissue classes → library tissue names.
BRAINWEB_ALIASES = {
    "csf": "csf",
    "gry": "gm",
    "wht": "wm",
    "fat": "fat",
    "mus": "muscle",
    "m-s": "skin",  # "muscle/skin"
    "skl": "skull",
    "ves": "vessels",
    "fat2": "fat",  # "around fat": added to fat
    "dura": "dura",
    "mrw": "marrow",
}

#: Channel order of brainweb-dl's 4D fuzzy NIfTI (``bck`` is the background).
BRAINWEB_DL_CHANNELS = ("bck", "csf", "gry", "wht", "fat", "mus", "m-s", "skl", "ves", "fat2", "dura", "mrw")

#: Where BrainWeb's 20 normal brains are described and can be downloaded by hand.
BRAINWEB_URL = "https://brainweb.bic.mni.mcgill.ca/brainweb/anatomic_normal_20.html"

#: Raw encodings: name → (NumPy dtype, full-scale value).
RAW_ENCODINGS = {"rawb": ("u1", 255), "raws": ("<u2", 4095), "i8": ("u1", 255)}

#: Labels of ``BrainModel.mat`` (BrainWeb's discrete model) → library tissues.
BRAINMODEL_CODES: dict[int, str] = {
    1: "csf",
    2: "gm",
    3: "wm",
    4: "fat",
    5: "skin",  # muscle/skin, as BrainWeb-20's "m-s"
    6: "skin",
    7: "skull",
    # glial matter: brain parenchyma (a few thousand voxels inside the brain), counted as GM
    8: "gm",
    # "connective": a thin shell wrapping the scalp fat (its surface borders fat and muscle/skin, nothing else
    # to speak of) — the counterpart of BrainWeb-20's "around fat" (fat2), which is fat as well
    9: "fat",
}

#: Codes of ``brain2D.mat`` (KomaMRI) → library tissues.
BRAIN2D_CODES: dict[int, str] = {
    23: "csf",
    46: "gm",
    70: "wm",
    93: "fat",  # FAT1
    116: "muscle",
    139: "skin",  # SKIN/MUSCLE
    162: "skull",
    185: "vessels",
    209: "fat",  # FAT2
    232: "dura",
    255: "marrow",
}

#: ``BrainModel.mat`` voxel edge [m] and ``brain2D.mat`` pixel edge [m].
BRAINMODEL_VOXEL_SIZE = 1e-3
BRAIN2D_VOXEL_SIZE = 0.5e-3

ORIENTATIONS = ("axial", "coronal", "sagittal")
LAYOUTS = ("auto", "raw", "brainweb-dl", "nifti")

_RAW_NAME = re.compile(r"^subject(\d{2})_([a-z0-9-]+)\.(rawb|raws|i8)(\.gz)?$")
_DL_NAME = re.compile(r"^brainweb_s(\d{2})_fuzzy\.nii(\.gz)?$")
_GZIP_MAGIC = b"\x1f\x8b"


class BrainWebUnavailableError(FileNotFoundError):
    """A BrainWeb subject is neither on disk nor downloadable here (no network, or brainweb-dl missing)."""


# ---------------------------------------------------------------------------------------------------- helpers
def _check_subject(subject) -> int:
    try:
        s = int(subject)
    except (TypeError, ValueError):
        raise ValueError(f"subject must be one of the BrainWeb ids {BRAINWEB_SUBJECTS}, got {subject!r}") from None
    if s not in BRAINWEB_SUBJECTS or isinstance(subject, bool):
        raise ValueError(f"subject must be one of the BrainWeb ids {BRAINWEB_SUBJECTS}, got {subject!r}")
    return s


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape}")
    return shape  # type: ignore[return-value]


def default_cache_dir() -> Path:
    """brainweb-dl's cache: ``$BRAINWEB_DIR`` if set, else ``~/.cache/brainweb`` (not created here)."""
    env = os.environ.get("BRAINWEB_DIR")
    return Path(env) if env else Path.home() / ".cache" / "brainweb"


def _raw_file_names(subject: int) -> list[str]:
    return [f"subject{subject:02d}_{alias}.rawb" for alias in BRAINWEB_ALIASES]


def _where_to_put(subject: int, directory: Path) -> str:
    s = f"{subject:02d}"
    raw = ", ".join(_raw_file_names(subject))
    return (
        f"Put the fuzzy model of subject {s} (download it by hand from {BRAINWEB_URL}) in {directory} in one of "
        "these layouts:\n"
        f"  * brainweb-dl layout: {directory / f'brainweb_s{s}_fuzzy.nii.gz'} (or .nii), a 4D NIfTI "
        f"(362, 434, 362, 12) of uint16 0…4095 with channels {', '.join(BRAINWEB_DL_CHANNELS)} "
        "(what brainweb-dl writes);\n"
        f"  * raw layout: one file per tissue class in {directory} or {directory / f'subject{s}'}: {raw} "
        "(raw byte, 'rawb'; '.raws' for raw short, 12 bit; '.i8' for the MR-zero/BMapEst cache; any of them may be "
        "gzip-compressed with '.gz' added).\n"
        "Then load it with gradmr.io.brainweb.load_brainweb_fuzzy(path) or load_brainweb(subject, cache_dir=...)."
    )


def _open_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == _GZIP_MAGIC:
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def _raw_files_in(directory: Path) -> dict[int, dict[str, Path]]:
    """Raw fuzzy files in ``directory`` and its ``subjectNN/`` subfolders: ``{subject: {alias: path}}``.

    Where one alias of one subject exists in several encodings, the first in the order ``directory`` before the
    subfolder, then ``.rawb``, ``.raws``, ``.i8`` is taken.
    """
    found: dict[int, dict[str, Path]] = {}
    folders = [directory] + sorted(p for p in directory.glob("subject[0-9][0-9]") if p.is_dir())
    rank = {"rawb": 0, "raws": 1, "i8": 2}
    for folder in folders:
        entries = []
        for p in folder.iterdir():
            m = _RAW_NAME.match(p.name)
            if m and m.group(2) in BRAINWEB_ALIASES and p.is_file():
                entries.append((rank[m.group(3)], m.group(4) is not None, p, int(m.group(1)), m.group(2)))
        for _, _, p, s, alias in sorted(entries, key=lambda e: (e[0], e[1], e[2].name)):
            found.setdefault(s, {}).setdefault(alias, p)
    return found


def _dl_files_in(directory: Path) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for p in sorted(directory.iterdir()):
        m = _DL_NAME.match(p.name)
        if m and p.is_file():
            found.setdefault(int(m.group(1)), p)
    return found


def _pick_subject(subjects, subject, where: Path, what: str) -> int:
    if subject is not None:
        s = _check_subject(subject)
        if s not in subjects:
            raise FileNotFoundError(
                f"no {what} of subject {s:02d} in {where} (found subjects {sorted(subjects) or 'none'})"
            )
        return s
    if len(subjects) != 1:
        raise ValueError(f"{where} holds {what} of subjects {sorted(subjects)}; choose one with subject=")
    return next(iter(subjects))


# ---------------------------------------------------------------------------------------------------- raw files
def load_brainweb_raw_tissue(path, *, shape=BRAINWEB_SHAPE, encoding: str = "auto", dtype=np.float32) -> np.ndarray:
    """Fractions of one tissue from one raw BrainWeb file.

    Parameters
    ----------
    path : str or Path
        A ``.rawb``, ``.raws`` or ``.i8`` file, optionally gzip-compressed (detected from its content, with or
        without a ``.gz`` suffix).
    shape : (z, y, x)
        Grid of the data (BrainWeb: 362 × 434 × 362); the file holds x fastest.
    encoding : {"auto", "rawb", "raws", "i8"}
        ``"rawb"``: unsigned bytes, fraction = v/255. ``"raws"``: little-endian uint16 with 12-bit values,
        fraction = v/4095. ``"i8"``: the signed bytes of the MR-zero/BMapEst cache, fraction =
        ((byte + 128) mod 256)/255. ``"auto"`` takes it from the file name's extension.
    dtype : NumPy float dtype

    Returns
    -------
    ndarray, shape ``shape``
        Fractions in [0, 1], indexed ``[z, y, x]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BrainWeb raw file {path} not found")
    shape = _check_shape(shape)
    if encoding == "auto":
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        encoding = name.rsplit(".", 1)[-1] if "." in name else ""
        if encoding not in RAW_ENCODINGS:
            raise ValueError(
                f"cannot tell the encoding of {path} from its name; pass encoding= one of {tuple(RAW_ENCODINGS)}"
            )
    if encoding not in RAW_ENCODINGS:
        raise ValueError(f"encoding must be 'auto' or one of {tuple(RAW_ENCODINGS)}, got {encoding!r}")
    np_dtype, full = RAW_ENCODINGS[encoding]
    raw = _open_bytes(path)
    itemsize = np.dtype(np_dtype).itemsize
    expected = int(np.prod(shape)) * itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} holds {len(raw)} bytes after decompression; a {encoding!r} volume of shape (z, y, x) = {shape} "
            f"needs {expected}"
        )
    data = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    if encoding == "i8":
        data = data ^ np.uint8(0x80)  # + 128 modulo 256
    out = data.astype(dtype)
    out /= full
    return np.clip(out, 0.0, 1.0, out=out)


# ---------------------------------------------------------------------------------------------------- assembling
def _assemble(arrays: Mapping[str, np.ndarray], voxel_size, dtype: torch.dtype) -> TissueFractions:
    """Per-alias fractions → library tissues (summed), clipped, renormalised where the sum exceeds 1."""
    by_name: dict[str, torch.Tensor] = {}
    for alias, arr in arrays.items():
        name = BRAINWEB_ALIASES[alias]
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
        by_name[name] = by_name[name] + t if name in by_name else t
    names = [n for n in TISSUE_NAMES if n in by_name]
    stacked = torch.stack([by_name.pop(n) for n in names])
    stacked.clamp_(0.0, 1.0)
    total = stacked.sum(0)
    over = total > 1
    if bool(over.any()):
        stacked.div_(torch.where(over, total, torch.ones_like(total)))
    return TissueFractions.create(stacked, names, voxel_size=voxel_size, dtype=dtype)


def _load_raw_directory(directory: Path, subject, shape, tissues, dtype) -> TissueFractions:
    found = _raw_files_in(directory)
    if not found:
        raise FileNotFoundError(
            f"no raw BrainWeb files (subjectNN_{{alias}}.rawb/.raws/.i8[.gz]) in {directory} or its subjectNN/ "
            f"folders; expected e.g. {', '.join(_raw_file_names(subject if subject is not None else 4)[:3])}, …"
        )
    s = _pick_subject(found, subject, directory, "raw BrainWeb files")
    files = found[s]
    if tissues is not None:
        wanted = [a for a, n in BRAINWEB_ALIASES.items() if n in {t.lower() for t in tissues}]
        unknown = sorted({t.lower() for t in tissues} - set(BRAINWEB_ALIASES.values()))
        if unknown:
            raise ValueError(f"tissues must be among {sorted(set(BRAINWEB_ALIASES.values()))}, got {unknown}")
        missing = [a for a in wanted if a not in files and a != "fat2"]  # "around fat" is optional
        if missing:
            names = ", ".join(f"subject{s:02d}_{a}.rawb" for a in missing)
            raise FileNotFoundError(
                f"missing BrainWeb file(s) {names} (or .raws/.i8, optionally .gz) in {directory} or "
                f"{directory / f'subject{s:02d}'}"
            )
        files = {a: files[a] for a in wanted if a in files}
    arrays = {a: load_brainweb_raw_tissue(p, shape=shape) for a, p in files.items()}
    vs = BRAINWEB_VOXEL_SIZE
    return _assemble(arrays, (vs, vs, vs), dtype)


def _read_channels(path: Path):
    import nibabel as nib

    img = nib.load(str(path), keep_file_open=True)
    if len(img.shape) != 4:
        raise ValueError(f"{path} must be a 4D NIfTI (…, tissue), got shape {img.shape}")
    return img


def _is_unscaled_integer(img) -> bool:
    slope, inter = img.dataobj.slope, img.dataobj.inter
    unit = slope is None or np.isnan(slope) or slope == 1.0
    zero = inter is None or np.isnan(inter) or inter == 0.0
    return bool(unit and zero and np.issubdtype(img.get_data_dtype(), np.integer))


def _to_fractions(arrays: dict[str, np.ndarray], full: float | None) -> dict[str, np.ndarray]:
    out = {}
    for alias in list(arrays):
        a = arrays.pop(alias).astype(np.float32)
        if full:
            a /= np.float32(full)
        out[alias] = a
    return out


def _load_dl_file(path: Path, tissues, dtype) -> TissueFractions:
    img = _read_channels(path)
    if img.shape[3] != len(BRAINWEB_DL_CHANNELS):
        raise ValueError(
            f"{path} has {img.shape[3]} channels; a brainweb-dl fuzzy file has {len(BRAINWEB_DL_CHANNELS)} "
            f"({', '.join(BRAINWEB_DL_CHANNELS)})"
        )
    # ascending channel order: one forward pass through a .gz file; already (z, y, x), brainweb-dl's raw order
    arrays = {alias: np.asanyarray(img.dataobj[..., c]) for c, alias in _wanted_channels(BRAINWEB_DL_CHANNELS, tissues)}
    vs = BRAINWEB_VOXEL_SIZE
    return _assemble(_to_fractions(arrays, 4095.0 if _is_unscaled_integer(img) else None), (vs, vs, vs), dtype)


def _wanted_channels(channels: Sequence[str], tissues) -> list[tuple[int, str]]:
    """``(index, alias)`` of the channels to read: background dropped, ``tissues`` (library names) selected."""
    out = []
    for i, ch in enumerate(channels):
        if ch in ("bck", "background"):
            continue
        out.append((i, ch))
    if tissues is not None:
        want = {t.lower() for t in tissues}
        have = {BRAINWEB_ALIASES[a] for _, a in out}
        missing = sorted(want - have)
        if missing:
            raise ValueError(f"tissues {missing} are not among the file's channels ({', '.join(channels)})")
        out = [(i, a) for i, a in out if BRAINWEB_ALIASES[a] in want]
    return out


def _load_generic_nifti(path: Path, channels, tissues, dtype) -> TissueFractions:
    import nibabel as nib

    img = _read_channels(path)
    n = img.shape[3]
    if channels is None:
        if n == len(BRAINWEB_DL_CHANNELS):
            channels = BRAINWEB_DL_CHANNELS
        elif n == len(BRAINWEB_DL_CHANNELS) - 1:
            channels = BRAINWEB_DL_CHANNELS[1:]
        else:
            raise ValueError(
                f"{path} has {n} tissue channels; name them with channels= (BrainWeb aliases "
                f"{tuple(BRAINWEB_ALIASES)}, library names {TISSUE_NAMES}, or 'bck'/'background' to skip one)"
            )
    channels = list(channels)
    if len(channels) != n:
        raise ValueError(f"channels names {len(channels)} channels but {path} has {n}")
    library_to_alias = {v: k for k, v in BRAINWEB_ALIASES.items() if k != "fat2"}
    aliases = []
    for ch in channels:
        key = str(ch).lower()
        if key in ("bck", "background") or key in BRAINWEB_ALIASES:
            aliases.append(key)
        elif key in library_to_alias:
            aliases.append(library_to_alias[key])
        else:
            raise ValueError(
                f"channel name {ch!r} is not a BrainWeb alias {tuple(BRAINWEB_ALIASES)}, a library tissue "
                f"{TISSUE_NAMES} or 'bck'/'background'"
            )
    if len(set(aliases) - {"bck", "background"}) != len([a for a in aliases if a not in ("bck", "background")]):
        raise ValueError(f"channels must not name a tissue twice, got {channels}")
    wanted = _wanted_channels(aliases, tissues)
    io_ornt = nib.orientations.io_orientation(img.affine)
    ornt = nib.orientations.ornt_transform(io_ornt, nib.orientations.axcodes2ornt("RAS"))
    zooms_in = [float(z) for z in img.header.get_zooms()[:3]]
    zooms = [0.0, 0.0, 0.0]
    for i, (axis, _) in enumerate(ornt):
        zooms[int(axis)] = zooms_in[i]
    arrays = {}
    for c, alias in wanted:
        a = np.asanyarray(img.dataobj[..., c])
        arrays[alias] = nib.orientations.apply_orientation(a, ornt).transpose(2, 1, 0)  # RAS (x, y, z) → (z, y, x)
    full = None
    if _is_unscaled_integer(img):
        top = max(int(a.max()) for a in arrays.values()) if arrays else 0
        full = 4095.0 if top > 255 else 255.0
    arrays = _to_fractions(arrays, full)
    if any(not z > 0 for z in zooms):
        raise ValueError(f"{path} has non-positive voxel sizes {zooms_in} mm in its header")
    return _assemble(arrays, tuple(z * 1e-3 for z in zooms), dtype)


def _detect_layout(path: Path, subject) -> str:
    if path.is_dir():
        if subject is not None:
            s = _check_subject(subject)
            if s in _dl_files_in(path):
                return "brainweb-dl"
            if s in _raw_files_in(path):
                return "raw"
        else:
            if _dl_files_in(path):
                return "brainweb-dl"
            if _raw_files_in(path):
                return "raw"
        who = f"subject {_check_subject(subject):02d}" if subject is not None else "any subject"
        s = _check_subject(subject) if subject is not None else 4
        raise FileNotFoundError(f"no BrainWeb fuzzy model of {who} in {path}.\n" + _where_to_put(s, path))
    if _DL_NAME.match(path.name):
        return "brainweb-dl"
    if path.name.endswith((".nii", ".nii.gz")):
        return "nifti"
    raise ValueError(
        f"cannot tell the layout of {path}: give a directory (raw files or brainweb-dl cache), a "
        "brainweb_sNN_fuzzy.nii[.gz] file or a 4D .nii/.nii.gz file, or pass layout= one of "
        f"{LAYOUTS[1:]}"
    )


def load_brainweb_fuzzy(
    source,
    *,
    subject: int | None = None,
    layout: str = "auto",
    shape=BRAINWEB_SHAPE,
    tissues: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """BrainWeb fuzzy tissue fractions from files (layouts in the module docstring).

    Parameters
    ----------
    source : str or Path
        A directory of raw files or a brainweb-dl cache, a ``brainweb_sNN_fuzzy.nii[.gz]`` file, or a generic 4D
        fuzzy NIfTI file.
    subject : int, optional
        Which subject (one of :data:`BRAINWEB_SUBJECTS`) when a directory holds several; required then.
    layout : {"auto", "raw", "brainweb-dl", "nifti"}
        ``"auto"``: a directory holding ``brainweb_sNN_fuzzy.nii*`` is a brainweb-dl cache, else a directory of raw
        files; a file named ``brainweb_sNN_fuzzy.nii*`` is brainweb-dl's; other ``.nii``/``.nii.gz`` files are
        generic NIfTI.
    shape : (z, y, x)
        Grid of raw files (BrainWeb: 362 × 434 × 362; smaller for tests). NIfTI files carry their own.
    tissues : sequence of str, optional
        Library tissue names to read (default: all that the files hold); e.g. ``("csf", "gm", "wm", "vessels")``
        reads only those files of a raw directory, and each of them must exist (``fat2``, added to ``fat``, is
        read when present).
    channels : sequence of str, optional
        Generic NIfTI only: the tissue of each channel (BrainWeb aliases, library names, or ``"bck"`` to skip).
    dtype : torch.dtype

    Returns
    -------
    TissueFractions
        The library tissues present (in :data:`~gradmr.phantom.tissues.TISSUE_NAMES` order; ``fat`` = fat + fat2),
        ``(tissues, z, y, x)``, voxel size 0.5 mm (raw, brainweb-dl) or the header's (NIfTI). Clipped to [0, 1]
        and divided by their sum where it exceeds 1 (see the module docstring).
    """
    path = Path(source)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not path.exists():
        raise FileNotFoundError(f"BrainWeb source {path} does not exist")
    shape = _check_shape(shape)
    if subject is not None:
        _check_subject(subject)
    if layout == "auto":
        layout = _detect_layout(path, subject)
    if layout == "raw":
        if not path.is_dir():
            raise ValueError(f"layout 'raw' needs a directory of per-tissue files, got the file {path}")
        return _load_raw_directory(path, subject, shape, tissues, dtype)
    if layout == "brainweb-dl":
        if path.is_dir():
            found = _dl_files_in(path)
            if not found:
                s = _check_subject(subject) if subject is not None else 4
                raise FileNotFoundError(
                    f"no brainweb-dl file brainweb_s{s:02d}_fuzzy.nii.gz (or .nii) in {path}"
                    + ("" if subject is not None else " (nor of any other subject)")
                )
            path = found[_pick_subject(found, subject, path, "brainweb-dl files")]
        return _load_dl_file(path, tissues, dtype)
    if path.is_dir():
        raise ValueError(f"layout 'nifti' needs a 4D NIfTI file, got the directory {path}")
    return _load_generic_nifti(path, channels, tissues, dtype)


# ---------------------------------------------------------------------------------------------------- download
def _cached_file(subject: int, directory: Path) -> Path | None:
    for ext in ("nii.gz", "nii"):
        p = directory / f"brainweb_s{subject:02d}_fuzzy.{ext}"
        if p.is_file():
            return p
    return None


def fetch_brainweb(subject: int, *, cache_dir=None) -> Path:
    """The brainweb-dl fuzzy file of ``subject``, downloaded (12 files, ≈ 150 MB) unless already cached.

    Parameters
    ----------
    subject : int
        One of :data:`BRAINWEB_SUBJECTS`.
    cache_dir : str or Path, optional
        Default: brainweb-dl's (``$BRAINWEB_DIR`` or ``~/.cache/brainweb``).

    Returns
    -------
    Path of ``brainweb_sNN_fuzzy.nii.gz`` (or an existing ``.nii``). A cached file is returned without touching
    the network or importing brainweb-dl.

    Raises
    ------
    BrainWebUnavailableError
        brainweb-dl is not installed, or the download failed (no network, server error); the message says where to
        put which files by hand.
    """
    s = _check_subject(subject)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = _cached_file(s, directory)
    if cached is not None:
        return cached
    try:
        import brainweb_dl
    except ImportError:
        raise BrainWebUnavailableError(
            f"BrainWeb subject {s:02d} is not in {directory} and cannot be downloaded: the optional package "
            "brainweb-dl is not installed (pip install 'gradmr[brainweb]').\n" + _where_to_put(s, directory)
        ) from None
    try:
        path = brainweb_dl.get_brainweb20(s, brainweb_dir=directory, segmentation="fuzzy")
    except (OSError, ValueError) as err:  # requests' and socket errors are OSErrors; a broken download ValueError
        raise BrainWebUnavailableError(
            f"BrainWeb subject {s:02d} is not in {directory} and its download failed (no network?): "
            f"{type(err).__name__}: {err}\n" + _where_to_put(s, directory)
        ) from err
    return Path(path)


def load_brainweb(
    subject_or_path,
    *,
    cache_dir=None,
    download: bool = False,
    tissues: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """Fuzzy fractions of a BrainWeb subject, found on disk or (with ``download=True``) downloaded.

    Parameters
    ----------
    subject_or_path : int, str or Path
        A subject id (:data:`BRAINWEB_SUBJECTS`), or a path passed to :func:`load_brainweb_fuzzy`.
    cache_dir : str or Path, optional
        Searched first, then brainweb-dl's cache (``$BRAINWEB_DIR`` or ``~/.cache/brainweb``); in each, a
        brainweb-dl file, else raw files (also in a ``subjectNN/`` subfolder). Downloads go here (default:
        brainweb-dl's cache).
    download : bool
        Download with brainweb-dl when the subject is not found (:func:`fetch_brainweb`).
    tissues, dtype
        As in :func:`load_brainweb_fuzzy`.

    Raises
    ------
    BrainWebUnavailableError
        Not found, and ``download`` is False or the download is impossible; the message names the files and places.
    """
    if not isinstance(subject_or_path, numbers.Integral) or isinstance(subject_or_path, bool):
        return load_brainweb_fuzzy(subject_or_path, tissues=tissues, dtype=dtype)
    s = _check_subject(subject_or_path)
    places = [Path(cache_dir)] if cache_dir is not None else []
    places.append(default_cache_dir())
    for place in places:
        if not place.is_dir():
            continue
        if _cached_file(s, place) is not None or s in _raw_files_in(place):
            return load_brainweb_fuzzy(place, subject=s, tissues=tissues, dtype=dtype)
    target = places[0]
    if not download:
        raise BrainWebUnavailableError(
            f"BrainWeb subject {s:02d} was not found in {' or '.join(str(p) for p in places)}; pass download=True "
            "to download it with brainweb-dl.\n" + _where_to_put(s, target)
        )
    return load_brainweb_fuzzy(fetch_brainweb(s, cache_dir=target), tissues=tissues, dtype=dtype)


# ---------------------------------------------------------------------------------------------------- label fixtures
def load_label_volume_mat(path, *, variable: str | None = None) -> np.ndarray:
    """An integer label array from a MATLAB ``.mat`` file (``scipy.io.loadmat``), as stored.

    ``variable`` names the array; it may be omitted when the file holds one.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} not found")
    contents = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    if variable is None:
        if len(contents) != 1:
            raise ValueError(f"{path} holds the variables {sorted(contents)}; choose one with variable=")
        variable = next(iter(contents))
    if variable not in contents:
        raise ValueError(f"variable must be one of {sorted(contents)} in {path}, got {variable!r}")
    labels = np.asarray(contents[variable])
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{variable} in {path} must hold integer labels, got dtype {labels.dtype}")
    return labels


def labels_to_fractions(
    labels,
    codes: Mapping[int, str | None],
    *,
    voxel_size,
    shape=None,
    fov=None,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """Partial-volume fractions from crisp labels: one-hot per tissue, then area averaging.

    Parameters
    ----------
    labels : integer array, shape ``(y, x)`` or ``(z, y, x)``
    codes : mapping label → tissue name
        Several labels may map to one tissue; ``None`` marks a background label. Label 0 is background unless
        mapped; any other label in ``labels`` must be listed.
    voxel_size : (x, y, z) [m]
    shape : ``(ny, nx)`` or ``(nz, ny, nx)``, optional
        Output grid (:meth:`TissueFractions.resample`: exact area averaging, so tissue volumes are kept when the
        output covers the input); default: the labels' own grid.
    fov : (x, y[, z]) [m], optional
        Output extent (default: the input's); larger pads with background, smaller crops, both centred.
    dtype : torch.dtype
        Of the result (the averaging is done in float64).

    Returns
    -------
    TissueFractions
        One channel per tissue named in ``codes`` (in order of first appearance, even when absent from this
        ``labels``), ``(tissues, z, y, x)``.
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"labels must be 2D (y, x) or 3D (z, y, x), got shape {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    if lab.ndim == 2:
        lab = lab[None]
    table = {int(k): (None if v is None else str(v).lower()) for k, v in codes.items()}
    present = {int(v) for v in np.unique(lab)}
    unknown = sorted(present - set(table) - {0})
    if unknown:
        raise ValueError(
            f"labels {unknown} are not in codes; map every non-zero label to a tissue (or None for background), "
            f"codes has {sorted(table)}"
        )
    names: list[str] = []
    for v in table.values():
        if v is not None and v not in names:
            names.append(v)
    if not names:
        raise ValueError("codes must map at least one label to a tissue")
    if shape is None and fov is not None:
        raise ValueError("give shape together with fov")
    masks = [np.isin(lab, [k for k, v in table.items() if v == name]) for name in names]
    if shape is None:  # one-hot fractions are exact in any dtype
        stacked = torch.from_numpy(np.stack(masks)).to(dtype)
        return TissueFractions.create(stacked, names, voxel_size=voxel_size, dtype=dtype)
    per_tissue = []
    for name, mask in zip(names, masks, strict=True):  # one tissue at a time: float64 only for one volume
        onehot = torch.from_numpy(mask.astype(np.float64))[None]
        tf = TissueFractions.create(onehot, (name,), voxel_size=voxel_size, dtype=torch.float64, validate=False)
        per_tissue.append(tf.resample(shape, fov=fov))
    stacked = torch.cat([t.fractions for t in per_tissue]).to(dtype)
    return TissueFractions.create(stacked, names, voxel_size=per_tissue[0].voxel_size, dtype=dtype)


def _check_orientation(orientation: str) -> str:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return orientation


def _brainmodel_zyx(path) -> np.ndarray:
    """``Anatomy`` as ``(z, y, x)`` with +z superior, +y anterior, x in stored order."""
    a = load_label_volume_mat(path, variable="Anatomy")
    if a.ndim != 3:
        raise ValueError(f"Anatomy in {path} must be 3D, got shape {a.shape}")
    # stored [a0: anterior → posterior, a1: left–right, a2: vertex → inferior]
    return np.ascontiguousarray(a.transpose(2, 0, 1)[::-1, ::-1, :])


def brainmodel_volume_fractions(path, *, shape=None, fov=None, dtype: torch.dtype = torch.float32) -> TissueFractions:
    """The 3D BrainWeb discrete model of ``BrainModel.mat`` as fractions, ``(z, y, x)`` = 180 × 216 × 180 at 1 mm.

    +z superior, +y anterior, x left–right in stored order; codes :data:`BRAINMODEL_CODES`. ``shape``
    (``(nz, ny, nx)`` or ``(ny, nx)``) and ``fov`` resample as in :func:`labels_to_fractions`.
    """
    vs = BRAINMODEL_VOXEL_SIZE
    return labels_to_fractions(
        _brainmodel_zyx(path), BRAINMODEL_CODES, voxel_size=(vs, vs, vs), shape=shape, fov=fov, dtype=dtype
    )


def _slice_of(volume_zyx: np.ndarray, orientation: str, index: int | None) -> tuple[np.ndarray, int]:
    """A slice ``(y', x')`` of a ``(z, y, x)`` RAS-like volume, oriented as in the module docstring."""
    axis = {"axial": 0, "coronal": 1, "sagittal": 2}[orientation]
    n = volume_zyx.shape[axis]
    index = n // 2 if index is None else int(index)
    if not 0 <= index < n:
        raise ValueError(f"index must be in [0, {n - 1}] for a {orientation} slice, got {index}")
    s = np.take(volume_zyx, index, axis=axis)
    # axial (y, x): +y anterior. coronal (z, x): +y superior. sagittal (z, y): +y superior, +x anterior.
    return np.ascontiguousarray(s), index


def brainmodel_fractions(
    path,
    *,
    orientation: str = "axial",
    index: int | None = None,
    matrix=None,
    fov=None,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """A 2D slice of ``BrainModel.mat`` as fractions ``(tissues, 1, ny, nx)``.

    Parameters
    ----------
    path : str or Path
        ``BrainModel.mat``.
    orientation : {"axial", "coronal", "sagittal"}
        Axial: +y anterior, x left–right, (y, x) = 216 × 180. Coronal: +y superior, x left–right, 180 × 180.
        Sagittal: +y superior, +x anterior, 180 × 216.
    index : int, optional
        Slice index along the through-plane axis of :func:`brainmodel_volume_fractions` (z from inferior for
        axial, y from posterior for coronal, x for sagittal); default the middle (``n//2``).
    matrix : (ny, nx), optional
        Output matrix (area averaging); default the full 1 mm grid.
    fov : (x, y) [m], optional
        Output extent; default the slice's.
    dtype : torch.dtype

    The slice is 1 mm thick (the model's voxel size).
    """
    _check_orientation(orientation)
    s, _ = _slice_of(_brainmodel_zyx(path), orientation, index)
    vs = BRAINMODEL_VOXEL_SIZE
    return labels_to_fractions(s, BRAINMODEL_CODES, voxel_size=(vs, vs, vs), shape=matrix, fov=fov, dtype=dtype)


def brain2d_labels(path, *, orientation: str = "axial") -> np.ndarray:
    """A ``brain2D.mat`` slice's labels oriented as in the module docstring, ``(y, x)``."""
    _check_orientation(orientation)
    s = load_label_volume_mat(path, variable=orientation)
    if s.ndim != 2:
        raise ValueError(f"{orientation} in {path} must be 2D, got shape {s.shape}")
    if orientation == "axial":
        return np.ascontiguousarray(s)  # stored [y: posterior → anterior, x]
    return np.ascontiguousarray(s.T)  # coronal [x, z] and sagittal [y, z] → (z, x) and (z, y)


def brain2d_fractions(
    path,
    *,
    orientation: str = "axial",
    matrix=None,
    fov=None,
    slice_thickness: float = BRAIN2D_VOXEL_SIZE,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """The slice of ``brain2D.mat`` in ``orientation`` as fractions ``(tissues, 1, ny, nx)``.

    Axial 434 × 362 (+y anterior), coronal 362 × 362 (+y superior), sagittal 362 × 434 (+y superior, +x anterior),
    0.5 mm pixels, codes :data:`BRAIN2D_CODES`. ``matrix`` ``(ny, nx)`` and ``fov`` ``(x, y)`` [m] resample by area
    averaging; ``slice_thickness`` [m] is the voxel size along z (default 0.5 mm).
    """
    labels = brain2d_labels(path, orientation=orientation)
    if not slice_thickness > 0:
        raise ValueError(f"slice_thickness must be > 0 m, got {slice_thickness}")
    vs = BRAIN2D_VOXEL_SIZE
    return labels_to_fractions(
        labels, BRAIN2D_CODES, voxel_size=(vs, vs, float(slice_thickness)), shape=matrix, fov=fov, dtype=dtype
    )


__all__ = [
    "BRAIN2D_CODES",
    "BRAIN2D_VOXEL_SIZE",
    "BRAINMODEL_CODES",
    "BRAINMODEL_VOXEL_SIZE",
    "BRAINWEB_ALIASES",
    "BRAINWEB_DL_CHANNELS",
    "BRAINWEB_SHAPE",
    "BRAINWEB_SUBJECTS",
    "BRAINWEB_URL",
    "BRAINWEB_VOXEL_SIZE",
    "BrainWebUnavailableError",
    "brain2d_fractions",
    "brain2d_labels",
    "brainmodel_fractions",
    "brainmodel_volume_fractions",
    "default_cache_dir",
    "fetch_brainweb",
    "labels_to_fractions",
    "load_brainweb",
    "load_brainweb_fuzzy",
    "load_brainweb_raw_tissue",
    "load_label_volume_mat",
]

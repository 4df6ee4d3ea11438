"""The MRF test set: continuous T1, T2 and PD maps from our brain phantoms.

The BlochNet paper tests on T1/T2 maps of 10 BrainWeb subjects (85,645 voxels). Ours come from the tissue
fractions of the shipped MNI152 atlas (:func:`~gradmr.phantom.mni152_fractions`; by default 19 axial slices at 2 mm,
z indices 22, 24, …, 58 = MNI z −27.5 … +44.5 mm, 87,588 brain voxels) or of the procedural brain
(:func:`~gradmr.phantom.tissue_fractions`).

Mixing rule
    In every voxel the relaxation times are the fraction-weighted mean over the tissues present,
    ``q = Σ_t f_t q_t / Σ_t f_t`` for q = T1, T2 (the linear mixing of BMapEst, normalised so that voxels at the
    edge of the brain, where the fractions sum to less than 1, keep tissue-like values), and
    ``PD = Σ_t f_t PD_t`` (partial volume with background lowers PD). Because every tissue has T2 < T1, every
    mixture does too. This is a map model for testing estimators — partial-volume voxels do not relax with mean
    relaxation times physically (see :mod:`gradmr.phantom.fractions`).

Mask
    Voxels whose brain-tissue fraction ``f_CSF + f_GM + f_WM`` is at least :data:`MASK_THRESHOLD` (0.5). Maps are 0
    outside the mask.

Every masked value is checked to lie in the training range of the MRF experiments (T1 ≤ 5 s, T2 ≤ 2.5 s, T2 < T1);
a tissue table outside it raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..phantom import BRAIN_TISSUES, TissueFractions, mni152_fractions, tissue_fractions, tissue_table
from .dictionary import DEFAULT_T1_RANGE, DEFAULT_T2_RANGE

__all__ = [
    "DEFAULT_MNI_SLICES",
    "MASK_THRESHOLD",
    "PHANTOMS",
    "TestMaps",
    "mrf_test_maps",
]

#: Phantoms of :func:`mrf_test_maps`.
PHANTOMS = ("mni152", "brain")

#: Axial MNI152 slices (z indices of the 2 mm grid) of the default test set: 19 slices, 87,588 brain voxels.
DEFAULT_MNI_SLICES = tuple(range(22, 59, 2))

#: The axial slice and in-plane matrix of ``small=True`` (MNI152: the middle of the head at 4 mm, 1,286 voxels).
SMALL_MNI_SLICE = 39
SMALL_MNI_MATRIX = (47, 38)

#: Matrix and FOV [m] of the procedural brain (``small=True``: 48 × 48).
BRAIN_MATRIX = (128, 128)
SMALL_BRAIN_MATRIX = (48, 48)
BRAIN_FOV = (0.2, 0.2)
BRAIN_SLICE_THICKNESS = 5e-3

#: A voxel is in the mask when its brain-tissue fraction (CSF + GM + WM) is at least this.
MASK_THRESHOLD = 0.5

#: Largest T1 and T2 [s] of the training range (the issue: T1 in 0–5000 ms, T2 in 0–2500 ms).
T1_MAX = DEFAULT_T1_RANGE[1]
T2_MAX = DEFAULT_T2_RANGE[1]


@dataclass(frozen=True, eq=False)
class TestMaps:
    """Ground-truth maps of the MRF test set.

    Attributes
    ----------
    t1, t2 : Tensor, shape ``(z, y, x)`` [s]
        Mixed relaxation times in the mask, 0 outside.
    pd : Tensor, shape ``(z, y, x)``
        Proton density relative to water, 0 outside the mask.
    mask : Tensor (bool), shape ``(z, y, x)``
    voxel_size : Tensor, shape ``(3,)``
        (x, y, z) [m].
    names : tuple of str
        Tissues of ``fractions`` (``("csf", "gm", "wm")``).
    fractions : Tensor, shape ``(tissues, z, y, x)``
        The tissue fractions the maps were made from (for error maps per tissue).
    description : str
        Phantom, slices, field and mask rule, in words.
    """

    __test__ = False  # not a pytest class

    t1: torch.Tensor
    t2: torch.Tensor
    pd: torch.Tensor
    mask: torch.Tensor
    voxel_size: torch.Tensor
    names: tuple[str, ...]
    fractions: torch.Tensor
    description: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)``."""
        return tuple(self.mask.shape)  # type: ignore[return-value]

    @property
    def n_voxels(self) -> int:
        """Voxels in the mask."""
        return int(self.mask.sum())

    def voxels(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(t1, t2, pd)`` of the masked voxels, each ``(V,)`` in C order of ``(z, y, x)``."""
        return self.t1[self.mask], self.t2[self.mask], self.pd[self.mask]


def _mni_fractions(slices, matrix) -> tuple[TissueFractions, str]:
    volume = mni152_fractions(dtype=torch.float64)
    nz = volume.grid_shape[0]
    indices = []
    for s in slices:
        if isinstance(s, bool) or not float(s).is_integer() or not 0 <= int(s) < nz:
            raise ValueError(f"slices must be axial z indices in [0, {nz - 1}], got {s!r}")
        indices.append(int(s))
    if not indices:
        raise ValueError("slices must name at least one axial slice")
    fr = volume.replace(fractions=volume.fractions[:, indices])
    if matrix is not None:
        fr = fr.resample(tuple(matrix))
    listed = ", ".join(str(i) for i in indices) if len(indices) <= 6 else f"{indices[0]} … {indices[-1]}"
    return fr, f"MNI152 2009a, {len(indices)} axial slice(s) z = {listed}"


def _brain_fractions(matrix) -> tuple[TissueFractions, str]:
    ny, nx = (int(v) for v in matrix)
    f = tissue_fractions((ny, nx), BRAIN_FOV, dtype=torch.float64)
    fx, fy = BRAIN_FOV
    fr = TissueFractions.create(
        f, BRAIN_TISSUES, voxel_size=(fx / nx, fy / ny, BRAIN_SLICE_THICKNESS), dtype=torch.float64
    )
    return fr, f"procedural brain, {ny} × {nx}"


def mrf_test_maps(
    phantom: str = "mni152",
    *,
    slices=None,
    field: float = 3.0,
    preset: str | None = None,
    matrix=None,
    small: bool = False,
    threshold: float = MASK_THRESHOLD,
    dtype: torch.dtype = torch.float32,
) -> TestMaps:
    """T1, T2 and PD maps of a brain phantom by the mixing rule of the module docs.

    Parameters
    ----------
    phantom : ``"mni152"`` or ``"brain"``
    slices : sequence of int, optional
        MNI152 only: axial z indices (0 … 79) of the 2 mm grid. Default :data:`DEFAULT_MNI_SLICES`.
    field : float
        1.5 or 3.0 [T]: the tissue table (:func:`~gradmr.phantom.tissue_table`).
    preset : str, optional
        A named tissue table instead (``"bmapest"``).
    matrix : (ny, nx), optional
        In-plane matrix (area-resampled for MNI152; the procedural brain's matrix, default 128 × 128 over 20 cm).
    small : bool
        A small set for tests: MNI152 slice 39 at 47 × 38 (4 mm), or the procedural brain at 48 × 48, unless
        ``slices``/``matrix`` say otherwise.
    threshold : float
        Mask threshold on the CSF + GM + WM fraction, in (0, 1].
    dtype : torch.float32 or torch.float64
    """
    if phantom not in PHANTOMS:
        raise ValueError(f"phantom must be one of {PHANTOMS}, got {phantom!r}")
    if not 0 < float(threshold) <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if phantom == "mni152":
        if slices is None:
            slices = (SMALL_MNI_SLICE,) if small else DEFAULT_MNI_SLICES
        if matrix is None and small:
            matrix = SMALL_MNI_MATRIX
        fr, text = _mni_fractions(slices, matrix)
    else:
        if slices is not None:
            raise ValueError("slices apply to phantom='mni152' only; the procedural brain has one slice")
        fr, text = _brain_fractions(matrix or (SMALL_BRAIN_MATRIX if small else BRAIN_MATRIX))
    table = tissue_table(field, preset=preset)
    fr = fr.select(BRAIN_TISSUES)
    f = fr.fractions.clamp(0, 1)  # (T, z, y, x), float64
    column = {
        q: torch.tensor([getattr(table[n], q) for n in fr.names], dtype=f.dtype)[:, None, None, None]
        for q in (
            "t1",
            "t2",
            "pd",
        )
    }
    total = f.sum(0)
    mask = total >= float(threshold)
    weights = f / total.clamp_min(1e-12)
    zero = torch.zeros_like(total)
    t1 = torch.where(mask, (weights * column["t1"]).sum(0), zero)
    t2 = torch.where(mask, (weights * column["t2"]).sum(0), zero)
    pd = torch.where(mask, (f * column["pd"]).sum(0), zero)
    if bool(mask.any()):
        v1, v2 = t1[mask], t2[mask]
        if float(v1.max()) > T1_MAX or float(v2.max()) > T2_MAX or bool((v2 >= v1).any()):
            raise ValueError(
                f"test maps leave the training range (T1 ≤ {T1_MAX} s, T2 ≤ {T2_MAX} s, T2 < T1): T1 up to "
                f"{float(v1.max()):.4g} s, T2 up to {float(v2.max()):.4g} s"
            )
    source = f"preset {preset}" if preset is not None else f"{float(field):g} T"
    description = f"{text}; tissues {source}; mask: CSF+GM+WM ≥ {float(threshold):g}; {int(mask.sum())} voxels"
    return TestMaps(
        t1=t1.to(dtype),
        t2=t2.to(dtype),
        pd=pd.to(dtype),
        mask=mask,
        voxel_size=fr.voxel_size.to(dtype),
        names=fr.names,
        fractions=f.to(dtype),
        description=description,
    )

"""Dictionary matching for MR fingerprinting (Ma et al., Nature 2013; compression after McGivney et al., IEEE TMI
2014): grids of (T1, T2), unit-norm atoms from the EPG, SVD compression, chunked matching, PD from the scale.

Grid
    :func:`t1_t2_grid` spaces T1 and T2 logarithmically (each value at most ``1 + step`` times the previous one) and
    keeps the pairs with T2 < T1. The default covers the issue's training range, T1 ≤ 5 s and T2 ≤ 2.5 s, with 2 %
    steps: 315 × 315 axis values, 60,165 pairs with T2 < T1.

Atoms
    The real amplitude ``a(T1, T2)`` of :func:`~gradmr.sim.epg.fisp_signal` (``signal = i·e^{iφ}·a``, M0 = 1),
    stored normalised, ``â = a / ‖a‖``, with the norms kept: a voxel's fingerprint is ``x ≈ PD · a``.

Matching
    The atom of largest ``|⟨x, â⟩|`` (the maximum normalised inner product). By default the *absolute value* is
    used — for real fingerprints as well as for complex ones — so that neither the sign convention of the amplitude
    nor a global phase of complex data changes the match: the EPG amplitude of an inversion-prepared FISP train
    changes sign along the train (with the rotation convention of ``docs/conventions.md`` it is mostly negative),
    and a caller who takes ``signal.imag`` instead of the amplitude gets ``−a``. For complex fingerprints
    ``⟨x, â⟩ = Σ x_n â_n`` is complex and its modulus is taken (real atoms, any constant phase of ``x``).
    The price: ``x`` and ``−x`` match the same atom. On the default grid with the 1000-TR FISP train every pair of
    atoms has a positive cosine (≥ 0.18, measured), so no atom is anywhere near the negative of another and the
    modulus never prefers an anti-correlated atom. Shorter trains are different: on the first 200 TRs atoms of
    short and long T1 are anti-correlated (cosines down to −0.94; the sign of the signal follows the sign of Mz
    after the inversion), still without any atom near the negative of another.
    ``signed=True`` uses ``⟨x, â⟩`` itself (PD ≥ 0 as the model says) for real fingerprints in the dictionary's own
    sign convention (:func:`~gradmr.mrf.simulate_fingerprints`). It is fragile: on those 200 TRs, ``−x`` of a
    short-T1 fingerprint finds a long-T1 atom with a *positive* cosine up to ≈ 0.93, so the wrong sign convention
    gives silently wrong matches (measured on a coarse grid: none right, 94 % with a positive score) — the reason
    the modulus is the default.

Identifiability
    Where T2 is much shorter than TR (≈ 12 ms in MRF-FISP) the transverse magnetisation is gone before the next
    pulse and T2 hardly changes the fingerprint's shape, only its scale (``e^{−TE/T2}``): on the 1000-TR FISP train
    atoms 2 % apart in T2 have ``1 − cos`` ≈ 1e-7 … 1e-6 for T2 ≤ 10 ms (float32 rounding level) and ≈ 1e-5 at
    T2 = 20–30 ms (measured at T1 = 0.3, 1 and 3 s). Matching there picks among near-equal atoms, PD absorbing the
    scale; with noise T2 below ≈ 20 ms is barely determined. The brain test maps (T2 ≥ 70 ms) stay clear of it.

PD
    With ``x = PD · a = PD · ‖a‖ · â`` the inner product is ``⟨x, â⟩ = PD · ‖a‖``, so
    ``PD = |⟨x, â⟩| / ‖a‖`` (relative to M0 = 1 of the simulation). In a compressed dictionary the same holds with
    the projected quantities (see :func:`match`).

Zero fingerprints
    An all-zero fingerprint has every inner product 0: it gets the first atom (index 0, the first of equal maxima as
    in :func:`torch.argmax`), ``score`` 0 and ``pd`` 0. Its T1/T2 are therefore the first grid point and mean
    nothing; mask such voxels out.

Metric
    :func:`log_mse` is the paper's "MSE in log scale" as used in the MRF experiments: the mean over voxels *and* over
    the two parameters of the squared difference of natural logarithms (``per_parameter=True`` gives T1 and T2
    separately, so other conventions — a sum over the two, log10 — follow by a constant factor).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..sim.epg import DEFAULT_STATES, FispTrain, fisp_signal
from .trains import mrf_train

__all__ = [
    "BLOCK_ATOMS",
    "BLOCK_VOXELS",
    "DEFAULT_BUILD_CHUNK",
    "DEFAULT_ENERGY",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_STEP",
    "DEFAULT_T1_RANGE",
    "DEFAULT_T2_RANGE",
    "Dictionary",
    "MatchResult",
    "build_dictionary",
    "compress",
    "load_dictionary",
    "log_mse",
    "match",
    "save_dictionary",
    "save_maps_nifti",
    "t1_t2_grid",
]

#: T1 range of the default grid [s] (the issue: T1 up to 5000 ms).
DEFAULT_T1_RANGE = (0.01, 5.0)
#: T2 range of the default grid [s] (the issue: T2 up to 2500 ms).
DEFAULT_T2_RANGE = (0.005, 2.5)
#: Largest relative step between neighbouring grid values (2 %: each value ≤ 1.02 × the previous one).
DEFAULT_STEP = 0.02
#: Atoms simulated per call of the EPG in :func:`build_dictionary` (a temporary of chunk × N values).
DEFAULT_BUILD_CHUNK = 4096
#: Retained energy (sum of squared singular values) that sets the rank of :func:`compress`.
DEFAULT_ENERGY = 0.9999
#: Upper bound [bytes] on one block of scores in :func:`match` (the default blocks are far smaller).
DEFAULT_MAX_BYTES = 256e6

#: Relaxation times above this [s] were almost surely given in ms.
_MAX_TIME_S = 100.0
#: Voxels and atoms of one block of scores in :func:`match` (512 × 2048 × 4 bytes = 4 MB: cache-sized, the fastest
#: of the sizes measured on the 2-core CPU).
BLOCK_VOXELS = 512
BLOCK_ATOMS = 2048
_FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------------------------- grid


def _log_axis(lo: float, hi: float, step: float, dtype: torch.dtype) -> torch.Tensor:
    """Geometric values from ``lo`` to ``hi`` (both included), ratio of neighbours ≤ 1 + step."""
    if hi == lo:
        return torch.tensor([lo], dtype=dtype)
    n = max(1, math.ceil(math.log(hi / lo) / math.log1p(step) - 1e-9))
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), n + 1, dtype=torch.float64)).to(dtype)


def _check_range(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be two numbers (low, high) in s, got {value!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0:
        raise ValueError(f"{name} must be finite and > 0 s, got ({lo:g}, {hi:g})")
    if hi < lo:
        raise ValueError(f"{name} must be increasing (low ≤ high), got ({lo:g}, {hi:g})")
    if hi > _MAX_TIME_S:
        raise ValueError(f"{name} must be in s, got up to {hi:g}: milliseconds?")
    return lo, hi


def _check_step(name: str, step) -> float:
    step = float(step)
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"{name} must be a relative step > 0 (0.02 = 2 %), got {step:g}")
    return step


def t1_t2_grid(
    t1_range=DEFAULT_T1_RANGE,
    t2_range=DEFAULT_T2_RANGE,
    *,
    t1_step: float = DEFAULT_STEP,
    t2_step: float = DEFAULT_STEP,
    t2_below_t1: bool = True,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (T1, T2) pairs of two log-spaced axes.

    Parameters
    ----------
    t1_range, t2_range : (low, high) [s]
        Both ends are grid values; ``low == high`` gives one value.
    t1_step, t2_step : float
        Largest relative step between neighbours (0.02: each value at most 1.02 × the previous one; the steps are
        equal in log scale and fit the range exactly, so they may be slightly smaller).
    t2_below_t1 : bool
        Keep only pairs with T2 < T1 (default); ``False`` keeps the full product.
    dtype : torch dtype of the output

    Returns
    -------
    t1, t2 : Tensor, shape ``(A,)`` [s]
        T1-major order (T1 ascending, then T2 ascending for each T1).
    """
    t1_lo, t1_hi = _check_range("t1_range", t1_range)
    t2_lo, t2_hi = _check_range("t2_range", t2_range)
    t1_axis = _log_axis(t1_lo, t1_hi, _check_step("t1_step", t1_step), torch.float64)
    t2_axis = _log_axis(t2_lo, t2_hi, _check_step("t2_step", t2_step), torch.float64)
    t1, t2 = torch.meshgrid(t1_axis, t2_axis, indexing="ij")
    t1, t2 = t1.reshape(-1), t2.reshape(-1)
    if t2_below_t1:
        keep = t2 < t1
        if not bool(keep.any()):
            raise ValueError(
                f"empty grid: no pair has T2 < T1 (t2_range ({t2_lo:g}, {t2_hi:g}) s lies entirely at or above "
                f"t1_range ({t1_lo:g}, {t1_hi:g}) s)"
            )
        t1, t2 = t1[keep], t2[keep]
    return t1.to(dtype), t2.to(dtype)


# ------------------------------------------------------------------------------------------------------ dictionary


@dataclass(frozen=True, eq=False)
class Dictionary:
    """A fingerprint dictionary.

    Attributes
    ----------
    t1, t2 : Tensor, shape ``(A,)`` [s]
        Tissue of every atom.
    atoms : Tensor, shape ``(A, N)``
        Unit-norm real amplitudes ``â = a / ‖a‖`` (float32 by default).
    norms : Tensor, shape ``(A,)``
        ``‖a‖`` of the un-normalised amplitude (M0 = 1): PD = ⟨x, â⟩ / norm.
    b1 : Tensor, shape ``(A,)``, or None
        Relative B1 of every atom when the dictionary has a B1 dimension (None: B1 = 1 everywhere).
    basis : Tensor, shape ``(N, R)``, or None
        Orthonormal temporal basis of the compression (:func:`compress`): the first R right-singular vectors.
    compressed : Tensor, shape ``(A, R)``, or None
        ``atoms @ basis`` (not re-normalised; :func:`match` normalises).
    retained_energy : float or None
        Fraction of the dictionary's energy (Σ σ²) that the basis keeps.
    train : FispTrain or None
        The train the atoms were simulated with.
    name : str or None
        The train's name (``"fisp"``, …) when it was built from one.
    n_states : int
        EPG states of the simulation.
    """

    t1: torch.Tensor
    t2: torch.Tensor
    atoms: torch.Tensor
    norms: torch.Tensor
    b1: torch.Tensor | None = None
    basis: torch.Tensor | None = None
    compressed: torch.Tensor | None = None
    retained_energy: float | None = None
    train: FispTrain | None = None
    name: str | None = None
    n_states: int = DEFAULT_STATES

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for inconsistent shapes or an empty dictionary."""
        if self.atoms.ndim != 2:
            raise ValueError(f"atoms must have shape (A, N), got {tuple(self.atoms.shape)}")
        a, n = self.atoms.shape
        if a == 0 or n == 0:
            raise ValueError(f"the dictionary is empty (atoms of shape {tuple(self.atoms.shape)})")
        for field in ("t1", "t2", "norms", "b1"):
            value = getattr(self, field)
            if value is not None and tuple(value.shape) != (a,):
                raise ValueError(f"{field} must have shape (A,) = ({a},), got {tuple(value.shape)}")
        if (self.basis is None) != (self.compressed is None):
            raise ValueError("basis and compressed come together (both or neither)")
        if self.basis is not None:
            r = self.basis.shape[-1]
            if self.basis.ndim != 2 or self.basis.shape[0] != n:
                raise ValueError(f"basis must have shape (N, R) = ({n}, R), got {tuple(self.basis.shape)}")
            if tuple(self.compressed.shape) != (a, r):
                raise ValueError(f"compressed must have shape (A, R) = ({a}, {r}), got {tuple(self.compressed.shape)}")

    @property
    def size(self) -> int:
        """Number of atoms A."""
        return int(self.atoms.shape[0])

    @property
    def frames(self) -> int:
        """Samples per fingerprint N."""
        return int(self.atoms.shape[1])

    @property
    def rank(self) -> int | None:
        """R of the compression, or None."""
        return None if self.basis is None else int(self.basis.shape[1])

    def replace(self, **changes) -> Dictionary:
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str) -> Dictionary:
        """A copy with every tensor on ``device`` (the train stays where it is); :func:`match` runs there."""
        fields = ("t1", "t2", "atoms", "norms", "b1", "basis", "compressed")
        return self.replace(**{f: getattr(self, f).to(device) for f in fields if getattr(self, f) is not None})


def _as_1d(name: str, value) -> torch.Tensor:
    t = torch.as_tensor(value).detach()
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t.reshape(-1)


def build_dictionary(
    train: FispTrain | str,
    t1,
    t2,
    *,
    b1=None,
    n_states: int = DEFAULT_STATES,
    chunk: int = DEFAULT_BUILD_CHUNK,
    dtype: torch.dtype = torch.float32,
    t2_below_t1: bool = True,
    progress: bool = True,
) -> Dictionary:
    """Simulate, normalise and store the atoms of a (T1, T2[, B1]) list.

    Parameters
    ----------
    train : FispTrain or str
        One train (no sequence batch), or a name of :func:`~gradmr.mrf.trains.mrf_train` (its default length).
    t1, t2 : Tensor, shape ``(A,)`` (or any one shape, flattened) [s]
        E.g. from :func:`t1_t2_grid`; kept in their own dtype in the dictionary.
    b1 : float or Tensor ``(A,)``, optional
        Relative transmit field per atom (default 1).
    n_states : int
        EPG states (:data:`~gradmr.sim.epg.DEFAULT_STATES`).
    chunk : int
        Atoms per EPG call. Memory: the atoms themselves, ``A × N × 4`` bytes in float32 (60k atoms × 1000 TRs =
        240 MB), plus one chunk of the simulation (``chunk × N`` values, 16 MB by default at N = 1000).
    dtype : torch.float32 or torch.float64
        Precision of the simulation and of the stored atoms.
    t2_below_t1 : bool
        Reject entries with T2 > T1 (default).
    progress : bool
        Show a tqdm progress bar over the atoms.
    """
    name = None
    if isinstance(train, str):
        name = train
        train = mrf_train(train, dtype=dtype)
    if not isinstance(train, FispTrain):
        raise TypeError(f"train must be a FispTrain or a train name, got {type(train).__name__}")
    train.validate()
    if train.batch_shape != ():
        raise ValueError(f"a dictionary holds one train; got a batch of shape {tuple(train.batch_shape)}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an integer ≥ 1, got {chunk!r}")
    t1_in, t2_in = torch.as_tensor(t1).detach(), torch.as_tensor(t2).detach()
    if t1_in.shape != t2_in.shape:
        raise ValueError(f"t1 {tuple(t1_in.shape)} and t2 {tuple(t2_in.shape)} must have the same shape")
    t1, t2 = _as_1d("t1", t1_in), _as_1d("t2", t2_in)
    count = t1.numel()
    if count == 0:
        raise ValueError("the dictionary is empty: t1 and t2 hold no values")
    for label, v in (("t1", t1), ("t2", t2)):
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{label} contains NaN or infinite values")
        if float(v.min()) <= 0:
            raise ValueError(f"{label} must be > 0 s, got {float(v.min()):.4g}")
        if float(v.max()) > _MAX_TIME_S:
            raise ValueError(f"{label} must be in s, got up to {float(v.max()):.4g}: milliseconds?")
    if t2_below_t1:
        bad = t2 > t1
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"{int(bad.sum())} entries have T2 > T1 (e.g. T1 = {float(t1[i]):.4g} s, T2 = {float(t2[i]):.4g} s); "
                "pass t2_below_t1=False to allow them"
            )
    b1_flat = None
    if b1 is not None:
        b1_t = torch.as_tensor(b1).detach().to(dtype)
        b1_flat = b1_t.expand(count).clone() if b1_t.numel() == 1 else b1_t.reshape(-1)
        if b1_flat.numel() != count:
            raise ValueError(f"b1 must be a scalar or have one value per atom ({count}), got {tuple(b1_t.shape)}")
        if not bool(torch.isfinite(b1_flat).all()) or float(b1_flat.min()) <= 0:
            raise ValueError("b1 must be finite and > 0")
    sim_train = train.to(dtype=dtype)
    t1_sim, t2_sim = t1.to(dtype), t2.to(dtype)
    atoms = torch.empty(count, train.frames, dtype=dtype)

    from tqdm import tqdm

    with torch.no_grad(), tqdm(total=count, desc="dictionary", unit="atom", disable=not progress) as bar:
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            atoms[start:stop] = fisp_signal(
                sim_train,
                t1_sim[start:stop],
                t2_sim[start:stop],
                b1=None if b1_flat is None else b1_flat[start:stop],
                n_states=n_states,
                real=True,
            )
            bar.update(stop - start)
    if not bool(torch.isfinite(atoms).all()):
        raise ValueError("the simulation gave NaN or infinite atoms")
    norms = torch.linalg.vector_norm(atoms, dim=1)
    if float(norms.min()) == 0:
        i = int(torch.argmin(norms))
        raise ValueError(
            f"atom {i} (T1 = {float(t1[i]):.4g} s, T2 = {float(t2[i]):.4g} s) is all zero: the train gives no signal"
        )
    atoms /= norms[:, None]
    return Dictionary(
        t1=t1, t2=t2, atoms=atoms, norms=norms, b1=b1_flat, train=train, name=name, n_states=int(n_states)
    )


# ----------------------------------------------------------------------------------------------------- compression


def compress(
    dictionary: Dictionary,
    rank: int | None = None,
    energy: float = DEFAULT_ENERGY,
    *,
    chunk: int = 16384,
) -> Dictionary:
    """Project the atoms on their first R right-singular vectors (McGivney et al., IEEE TMI 2014;33:2311).

    The singular vectors come from the eigendecomposition of the Gram matrix ``Σ âᵀâ`` (N × N, accumulated in
    float64 over chunks of ``chunk`` atoms), which equals the SVD of the (A × N) atom matrix without holding a second
    copy of it. ``rank`` fixes R; otherwise R is the smallest rank keeping ``energy`` of ``Σ σ²``. The signs of the
    basis vectors are fixed (largest |component| positive) so that the basis is reproducible.

    Returns a copy with ``basis``, ``compressed`` and ``retained_energy`` set.
    """
    if not isinstance(dictionary, Dictionary):
        raise TypeError(f"dictionary must be a Dictionary, got {type(dictionary).__name__}")
    atoms = dictionary.atoms
    a, n = atoms.shape
    limit = min(a, n)
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit):
        raise ValueError(f"rank must be an integer in [1, min(A, N)] = [1, {limit}], got {rank!r}")
    if rank is None and not (0 < float(energy) <= 1):
        raise ValueError(f"energy must lie in (0, 1], got {energy}")
    gram = torch.zeros(n, n, dtype=torch.float64)
    for start in range(0, a, chunk):
        block = atoms[start : start + chunk].to(torch.float64)
        gram += block.T @ block
    values, vectors = torch.linalg.eigh(gram)
    values = values.flip(0).clamp_min(0)
    vectors = vectors.flip(1)
    cumulative = torch.cumsum(values, 0) / values.sum()
    if rank is None:
        rank = min(int(torch.searchsorted(cumulative, torch.tensor([float(energy)], dtype=torch.float64))) + 1, limit)
    basis = vectors[:, :rank]
    pivot = basis.abs().argmax(0)
    basis = basis * torch.sign(basis[pivot, torch.arange(rank)])
    basis = basis.to(atoms.dtype).contiguous()
    return dictionary.replace(
        basis=basis, compressed=atoms @ basis, retained_energy=float(cumulative[rank - 1].clamp(max=1.0))
    )


# -------------------------------------------------------------------------------------------------------- matching


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Result of :func:`match`; every field has the leading shape of the fingerprints.

    Attributes
    ----------
    t1, t2 : Tensor [s]
        Tissue of the matched atom.
    pd : Tensor
        Proton density relative to the simulation's M0 = 1: ``|⟨x, â⟩| / ‖a‖``.
    index : Tensor (int64)
        Index of the matched atom (−1 outside the mask after :meth:`unmask`).
    score : Tensor
        ``|⟨x, â⟩| / ‖x‖`` ∈ [0, 1], the normalised inner product (in the compressed space when matched there);
        0 for a zero fingerprint.
    b1 : Tensor or None
        B1 of the matched atom when the dictionary has a B1 dimension.
    """

    t1: torch.Tensor
    t2: torch.Tensor
    pd: torch.Tensor
    index: torch.Tensor
    score: torch.Tensor
    b1: torch.Tensor | None = None

    @property
    def shape(self) -> torch.Size:
        return self.index.shape

    def unmask(self, mask) -> MatchResult:
        """Scatter a result of shape ``(V,)`` into maps of ``mask.shape`` (``mask.sum() == V``, True where the
        voxels lie, in C order); outside: t1, t2, pd, score 0, b1 0 and index −1."""
        mask = torch.as_tensor(mask, dtype=torch.bool)
        count = int(mask.sum())
        if self.index.ndim != 1 or self.index.numel() != count:
            raise ValueError(
                f"the result must be 1-D with one value per mask voxel ({count}), got shape {tuple(self.shape)}"
            )

        def fill(value: torch.Tensor | None, background) -> torch.Tensor | None:
            if value is None:
                return None
            out = torch.full(mask.shape, background, dtype=value.dtype)
            out[mask] = value
            return out

        return MatchResult(
            t1=fill(self.t1, 0),
            t2=fill(self.t2, 0),
            pd=fill(self.pd, 0),
            index=fill(self.index, -1),
            score=fill(self.score, 0),
            b1=fill(self.b1, 0),
        )


def _block_sizes(voxels: int, atoms: int, per_element: int, max_bytes: float, chunk, atom_chunk) -> tuple[int, int]:
    """Voxels and atoms per score block: the defaults (cache-sized), overridden by the arguments, within
    ``max_bytes``."""
    for label, value in (("chunk", chunk), ("atom_chunk", atom_chunk)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{label} must be an integer ≥ 1 or None, got {value!r}")
    if not float(max_bytes) > 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    budget = max(1, int(float(max_bytes) // per_element))  # score elements per block
    ac = min(atoms, atom_chunk or BLOCK_ATOMS)
    vc = min(voxels, chunk or BLOCK_VOXELS)
    if vc * ac > budget:
        if chunk is None:
            vc = max(1, budget // ac)
        if vc * ac > budget and atom_chunk is None:
            ac = max(1, budget // vc)
    return max(1, vc), max(1, ac)


def _scores(rows: list[torch.Tensor], block: torch.Tensor, mode: str) -> torch.Tensor:
    """The matching score of every row against every atom of ``block`` (atoms, K): |⟨x, â⟩| (squared for complex
    data, where ``rows`` holds the real and imaginary parts), or the signed ⟨x, â⟩."""
    out = rows[0] @ block.T
    if mode == "complex":
        return out.square_().add_((rows[1] @ block.T).square_())
    return out if mode == "signed" else out.abs_()


def match(
    dictionary: Dictionary,
    fingerprints,
    *,
    use_compressed: bool = True,
    signed: bool = False,
    max_bytes: float = DEFAULT_MAX_BYTES,
    chunk: int | None = None,
    atom_chunk: int | None = None,
) -> MatchResult:
    """Match fingerprints to the dictionary by the maximum normalised inner product ``|⟨x, â⟩|``.

    Parameters
    ----------
    dictionary : Dictionary
    fingerprints : Tensor, shape ``(..., N)``, real or complex
        Real amplitudes (or complex signals; see the module docs for the absolute value and the sign convention).
        Not necessarily normalised: the scale gives PD.
    use_compressed : bool
        Match in the compressed space when the dictionary has a basis (:func:`compress`): fingerprints are
        projected, ``y = x V``, and compared with the re-normalised compressed atoms ``ĉ = âV / ‖âV‖``; then
        ``PD = |⟨y, ĉ⟩| / (‖a‖ · ‖âV‖)`` (exact when ``x`` lies in the span of V) and the score is
        ``|⟨y, ĉ⟩| / ‖y‖``. Re-normalising makes every noise-free atom match itself exactly (Cauchy–Schwarz).
        Without a basis (or with ``False``) the full atoms are used.
    signed : bool
        Maximise the signed inner product ``⟨x, â⟩`` instead of its modulus (real fingerprints only; see the module
        docs). PD and score then carry the sign.
    max_bytes : float
        Upper bound on the memory of one block of scores (voxels × atoms × 4 bytes in float32, twice that for
        complex data). The blocks are :data:`BLOCK_VOXELS` × :data:`BLOCK_ATOMS` (4 MB, cache-sized: the
        fastest measured) unless this, ``chunk`` or ``atom_chunk`` says otherwise. On top come the fingerprints
        cast to the dictionary's dtype (``V × N``; ``V × R`` once projected) and the outputs.
    chunk, atom_chunk : int, optional
        Voxels and atoms per block. Blocks change nothing in the result (ties go to the lowest atom index).

    Returns
    -------
    MatchResult with the leading shape of ``fingerprints``.

    Raises ``ValueError`` for NaN/inf fingerprints or a wrong length.

    Notes
    -----
    Two passes per chunk of voxels: the maximum score of every (voxel, atom block) pair (``amax``, cheap), then the
    arg-max inside each voxel's winning block only, recomputed — ``torch.max`` with indices over all scores costs
    ≈ 6× more than the ``amax`` reduction on the CPU.
    """
    if not isinstance(dictionary, Dictionary):
        raise TypeError(f"dictionary must be a Dictionary, got {type(dictionary).__name__}")
    x = torch.as_tensor(fingerprints).detach()
    n = dictionary.frames
    if x.ndim == 0 or x.shape[-1] != n:
        raise ValueError(f"fingerprints must have shape (..., N) with N = {n} samples, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("fingerprints contain NaN or infinite values")
    lead = x.shape[:-1]
    dtype = dictionary.atoms.dtype
    is_complex = x.is_complex()
    if signed and is_complex:
        raise ValueError("signed=True needs real fingerprints (complex data have no sign: use the modulus)")
    mode = "complex" if is_complex else ("signed" if signed else "abs")
    device = dictionary.atoms.device
    x = x.reshape(-1, n)
    parts = [x.real.to(device, dtype), x.imag.to(device, dtype)] if is_complex else [x.to(device, dtype)]
    compressed = use_compressed and dictionary.basis is not None
    if compressed:
        parts = [p @ dictionary.basis for p in parts]
        atom_norm = torch.linalg.vector_norm(dictionary.compressed, dim=1)
        atoms = dictionary.compressed / atom_norm[:, None]
    else:
        atom_norm = None
        atoms = dictionary.atoms
    voxels, count = x.shape[0], atoms.shape[0]
    per_element = dtype.itemsize * (2 if is_complex else 1)
    vc, ac = _block_sizes(max(voxels, 1), count, per_element, max_bytes, chunk, atom_chunk)
    starts = list(range(0, count, ac))

    best = torch.zeros(voxels, dtype=dtype, device=device)  # the winning score (squared for complex data)
    index = torch.zeros(voxels, dtype=torch.int64, device=device)
    for v0 in range(0, voxels, vc):
        v1 = min(v0 + vc, voxels)
        rows = [p[v0:v1] for p in parts]
        maxima = torch.empty(v1 - v0, len(starts), dtype=dtype, device=device)
        for b, a0 in enumerate(starts):
            torch.amax(_scores(rows, atoms[a0 : a0 + ac], mode), dim=1, out=maxima[:, b])
        top, winner = maxima.max(dim=1)  # the first block of equal maxima wins
        arg = torch.empty(v1 - v0, dtype=torch.int64, device=device)
        for b in torch.unique(winner).tolist():
            sel = torch.nonzero(winner == b)[:, 0]
            a0 = starts[b]
            arg[sel] = _scores([r[sel] for r in rows], atoms[a0 : a0 + ac], mode).argmax(dim=1) + a0
        best[v0:v1] = top
        index[v0:v1] = arg
    if is_complex:
        best = best.sqrt()

    x_norm = sum(torch.linalg.vector_norm(p, dim=1) ** 2 for p in parts).sqrt()
    scale = dictionary.norms.to(device, dtype)[index]
    if compressed:
        scale = scale * atom_norm[index]
    pd = best / scale
    score = torch.where(x_norm > 0, best / x_norm.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(best))
    score = score.clamp(-1.0, 1.0)
    return MatchResult(
        t1=dictionary.t1[index].reshape(lead),
        t2=dictionary.t2[index].reshape(lead),
        pd=pd.reshape(lead),
        index=index.reshape(lead),
        score=score.reshape(lead),
        b1=None if dictionary.b1 is None else dictionary.b1[index].reshape(lead),
    )


# ---------------------------------------------------------------------------------------------------------- metric


def _pair(name: str, value) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(value, MatchResult):
        return value.t1, value.t2
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be (t1, t2) or a tensor (..., 2), got {len(value)} items")
        t1, t2 = (torch.as_tensor(v) for v in value)
    else:
        t = torch.as_tensor(value)
        if t.ndim == 0 or t.shape[-1] != 2:
            raise ValueError(f"{name} must be (t1, t2) or a tensor (..., 2) of (T1, T2), got {tuple(t.shape)}")
        t1, t2 = t[..., 0], t[..., 1]
    if t1.shape != t2.shape:
        raise ValueError(f"{name}: t1 {tuple(t1.shape)} and t2 {tuple(t2.shape)} differ in shape")
    return t1.to(torch.float64), t2.to(torch.float64)


def log_mse(pred, true, *, per_parameter: bool = False) -> torch.Tensor:
    """MSE in log scale: ``mean over voxels of ((ln T̂1 − ln T1)² + (ln T̂2 − ln T2)²) / 2``.

    ``pred`` and ``true`` are ``(t1, t2)`` pairs of tensors, tensors ``(..., 2)`` of (T1, T2), or
    :class:`MatchResult`; any one time unit (the ratio is unit-free). ``per_parameter=True`` returns the two means
    ``[T1, T2]`` instead. Computed in float64 (the result too). Non-positive or non-finite values raise.
    """
    p1, p2 = _pair("pred", pred)
    q1, q2 = _pair("true", true)
    if p1.shape != q1.shape:
        raise ValueError(f"pred {tuple(p1.shape)} and true {tuple(q1.shape)} must have the same shape")
    if p1.numel() == 0:
        raise ValueError("log_mse of no values")
    for label, v in (("pred", p1), ("pred", p2), ("true", q1), ("true", q2)):
        if not bool(torch.isfinite(v).all()) or float(v.min()) <= 0:
            raise ValueError(f"{label} relaxation times must be finite and > 0 for a log-scale error")
    per = torch.stack([((p1.log() - q1.log()) ** 2).mean(), ((p2.log() - q2.log()) ** 2).mean()])
    return per if per_parameter else per.mean()


# ------------------------------------------------------------------------------------------------------------ files


def save_maps_nifti(result: MatchResult, directory, voxel_size, *, mask=None) -> dict[str, Path]:
    """Write ``t1.nii.gz``, ``t2.nii.gz`` [s] and ``pd.nii.gz`` into ``directory`` (created if needed).

    Parameters
    ----------
    result : MatchResult
        Maps ``(z, y, x)`` or ``(y, x)``, or a 1-D result with ``mask``.
    voxel_size : three floats (x, y, z) [m]
    mask : bool array, optional
        Where the voxels of a 1-D result lie (:meth:`MatchResult.unmask`; 0 elsewhere).

    The files are written by :func:`gradmr.io.save_nifti` (float32, NIfTI ``(x, y, z)``, zooms in mm).
    Returns ``{"t1": path, "t2": path, "pd": path}``.
    """
    from ..io.images import save_nifti

    if mask is not None:
        result = result.unmask(mask)
    if result.index.ndim not in (2, 3):
        raise ValueError(f"maps must be (z, y, x) or (y, x); got shape {tuple(result.shape)} (pass mask=…)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: save_nifti(getattr(result, name), voxel_size, directory / f"{name}.nii.gz") for name in ("t1", "t2", "pd")
    }


def save_dictionary(dictionary: Dictionary, path) -> Path:
    """Write ``dictionary`` (atoms, grid, compression, train) to an uncompressed ``.npz`` archive."""
    d = dictionary
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(_FORMAT_VERSION),
        "t1": d.t1.cpu().numpy(),
        "t2": d.t2.cpu().numpy(),
        "atoms": d.atoms.cpu().numpy(),
        "norms": d.norms.cpu().numpy(),
        "n_states": np.array(d.n_states),
        "name": np.array("" if d.name is None else d.name),
    }
    if d.b1 is not None:
        arrays["b1"] = d.b1.cpu().numpy()
    if d.basis is not None:
        arrays["basis"] = d.basis.cpu().numpy()
        arrays["compressed"] = d.compressed.cpu().numpy()
        arrays["retained_energy"] = np.array(np.nan if d.retained_energy is None else d.retained_energy)
    if d.train is not None:
        tr = d.train
        arrays.update(
            train_flip=tr.flip.detach().cpu().numpy(),
            train_tr=tr.tr.detach().cpu().numpy(),
            train_te=tr.te.detach().cpu().numpy(),
            train_phase=tr.phase.detach().cpu().numpy(),
            train_inversion_time=np.array(np.nan if tr.inversion_time is None else tr.inversion_time),
            train_inversion_efficiency=np.array(tr.inversion_efficiency),
        )
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # what np.savez would do; return the real name
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def load_dictionary(path) -> Dictionary:
    """Read a dictionary written by :func:`save_dictionary`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dictionary file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    missing = [k for k in ("t1", "t2", "atoms", "norms") if k not in data]
    if missing:
        raise ValueError(f"{path} is not a dictionary archive (missing {missing})")
    version = int(data.get("format_version", 0))
    if version != _FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}; this gradmr reads version {_FORMAT_VERSION}")

    def tensor(key: str) -> torch.Tensor | None:
        return torch.from_numpy(np.array(data[key])) if key in data else None

    train = None
    if "train_flip" in data:
        ti = float(data["train_inversion_time"])
        train = FispTrain.create(
            tensor("train_flip"),
            tensor("train_tr"),
            tensor("train_te"),
            phase=tensor("train_phase"),
            inversion_time=None if math.isnan(ti) else ti,
            inversion_efficiency=float(data["train_inversion_efficiency"]),
            dtype=None,
        )
    energy = float(data["retained_energy"]) if "retained_energy" in data else math.nan
    name = str(data["name"]) if "name" in data else ""
    return Dictionary(
        t1=tensor("t1"),
        t2=tensor("t2"),
        atoms=tensor("atoms"),
        norms=tensor("norms"),
        b1=tensor("b1"),
        basis=tensor("basis"),
        compressed=tensor("compressed"),
        retained_energy=None if math.isnan(energy) else energy,
        train=train,
        name=name or None,
        n_states=int(data["n_states"]) if "n_states" in data else DEFAULT_STATES,
    )

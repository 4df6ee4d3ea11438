"""The estimator: tissue probability maps that make the simulated images match the observed ones.

Minimises ``Σ_c ‖G_c − I_c(f)‖² / Σ_c ‖G_c‖²`` (image space, the default) or the same on the gridded k-space, over
the maps ``f = (CSF, GM, WM)`` of a :mod:`~gradmr.bmapest.forward` model. Options:

* ``parameterisation``: ``"pixel"`` (the maps' pixels are the parameters; default), ``"linear"`` (each map a
  non-negative combination of basis maps, e.g. the other subjects' maps, with one weight per basis map), or
  ``"scalar"`` (each map one scalar times the mean basis map) — the paper's three variants.
* ``estimate``: which maps are free; the others stay at the values given in ``fixed``.
* ``constraint``: ``"softmax"`` (default: pixel maps are the softmax of four logits per pixel, the fourth being
  background, so each map is in [0, 1] and their sum ≤ 1 by construction) or ``"clamp"`` (the paper's style: raw
  values, projected after every step: clamped to [0, 1] and divided by their sum where it exceeds 1).
* ``optimizer``: ``"direct"`` (the default for the multi-compartment model with complex data and pixel maps: the
  model is linear and diagonal in k-space — ``S_c(κ) = Σ_t h_ct(κ)·F[f_t](κ)`` — so the unconstrained least-squares
  maps follow from one 3-unknown solve per k-space point; they are then projected onto the constraints and refined
  by projected gradient descent for ``epochs`` steps), ``"adam"`` (the paper: 501 epochs, learning rate 0.01) or
  ``"lbfgs"``.
* ``mask``: pixels outside are background (all maps 0) and are not estimated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..phantom.tissues import Tissue
from .forward import MODELS, TISSUES, Acquisition, images_mixed, images_multi, kspace_multi, tissue_kernels

PARAMETERISATIONS = ("pixel", "linear", "scalar")
CONSTRAINTS = ("softmax", "clamp")
OPTIMIZERS = ("direct", "adam", "lbfgs")
LOSSES = ("image", "kspace")

#: Logit given to the background channel where the mask is off (softmax weight ≈ e^-30 for the tissues).
_OFF_MASK_LOGIT = 30.0


@dataclass
class EstimateResult:
    """Result of :func:`estimate_maps`.

    Attributes
    ----------
    maps : Tensor ``(3, ny, nx)``
        Estimated CSF, GM, WM probability maps (float64, detached).
    loss_history : list of float
        Loss after every epoch.
    seconds : float
        Wall time of the optimisation (the kernels included).
    config : dict
        The options used.
    """

    maps: torch.Tensor
    loss_history: list = field(default_factory=list)
    seconds: float = 0.0
    config: dict = field(default_factory=dict)


def _check(observed: torch.Tensor, acq: Acquisition, options: dict) -> None:
    if observed.ndim != 3:
        raise ValueError(f"observed must be (contrasts, ny, nx), got shape {tuple(observed.shape)}")
    if observed.shape[0] != len(acq.sequences):
        raise ValueError(
            f"observed has {observed.shape[0]} images but the acquisition has {len(acq.sequences)} sequences; "
            "give one image per sequence"
        )
    if tuple(observed.shape[1:]) != tuple(acq.matrix):
        raise ValueError(f"observed images are {tuple(observed.shape[1:])}, the acquisition's matrix is {acq.matrix}")
    for key, allowed in (
        ("model", MODELS),
        ("parameterisation", PARAMETERISATIONS),
        ("constraint", CONSTRAINTS),
        ("optimizer", OPTIMIZERS),
        ("loss", LOSSES),
    ):
        if options[key] not in allowed:
            raise ValueError(f"{key} must be one of {allowed}, got {options[key]!r}")
    if options["loss"] == "kspace" and options["model"] != "multi":
        raise ValueError("loss='kspace' is available with model='multi'")
    if options["loss"] == "kspace" and not torch.is_complex(observed):
        raise ValueError("loss='kspace' needs complex observations (the k-space of magnitude images is not the data's)")


class _Maps(torch.nn.Module):
    """The free parameters and how they become maps ``(3, ny, nx)``."""

    def __init__(self, shape, *, parameterisation, constraint, estimate, fixed, mask, basis, init):
        super().__init__()
        self.parameterisation, self.constraint = parameterisation, constraint
        self.free = [TISSUES.index(n) for n in estimate]
        self.register_buffer("fixed", fixed)
        self.register_buffer("mask", mask)
        ny, nx = shape
        if parameterisation == "pixel":
            if constraint == "softmax":
                start = torch.log(init.clamp_min(1e-4))  # logits whose softmax is init (with background)
                background = torch.log((1 - init.sum(0)).clamp_min(1e-4))[None]
                self.logits = torch.nn.Parameter(torch.cat([start, background]))
            else:
                self.values = torch.nn.Parameter(init.clone())
        else:
            if basis is None:
                raise ValueError(f"parameterisation={parameterisation!r} needs basis maps (subjects, 3, ny, nx)")
            if basis.ndim != 4 or basis.shape[1] != 3 or tuple(basis.shape[2:]) != (ny, nx):
                raise ValueError(f"basis must have shape (subjects, 3, {ny}, {nx}), got {tuple(basis.shape)}")
            self.register_buffer("basis", basis)
            s = basis.shape[0]
            n = s if parameterisation == "linear" else 1
            self.raw = torch.nn.Parameter(torch.full((3, n), math.log(math.e - 1), dtype=torch.float64))  # softplus 1

    def forward(self) -> torch.Tensor:
        if self.parameterisation == "pixel":
            if self.constraint == "softmax":
                logits = self.logits.clone()
                logits[3] = torch.where(self.mask, logits[3], torch.full_like(logits[3], _OFF_MASK_LOGIT))
                maps = torch.softmax(logits, 0)[:3]
            else:
                maps = self.values
        else:
            w = torch.nn.functional.softplus(self.raw)  # (3, n) ≥ 0
            if self.parameterisation == "linear":
                maps = torch.einsum("ts,styx->tyx", w / self.basis.shape[0], self.basis)
            else:
                maps = w[:, :1, None] * self.basis.mean(0)
            total = maps.sum(0, keepdim=True)
            maps = maps / torch.clamp(total, min=1.0)  # sum ≤ 1
        maps = maps * self.mask
        out = self.fixed.clone()
        out[self.free] = maps[self.free]
        return out

    @torch.no_grad()
    def project(self) -> None:
        """The ``"clamp"`` constraint: back into [0, 1] with sum ≤ 1."""
        if self.parameterisation == "pixel" and self.constraint == "clamp":
            self.values.copy_(_project(self.values, self.mask))


def _project(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of every pixel's ``(3,)`` vector onto {x ∈ [0, 1]³, Σx ≤ 1}; zero outside the mask.

    Where clamping to [0, 1] leaves the sum ≤ 1 that is the projection; elsewhere the sum constraint is active and
    the projection is onto the simplex {x ≥ 0, Σx = 1} (sort-based, Duchi et al., ICML 2008), vectorised.
    """
    clamped = maps.clamp(0.0, 1.0)
    x = maps.permute(1, 2, 0)  # (ny, nx, 3)
    u = torch.sort(x, dim=-1, descending=True).values
    css = u.cumsum(-1) - 1.0
    k = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    rho = ((u - css / k) > 0).sum(-1, keepdim=True).clamp_min(1)
    theta = css.gather(-1, rho - 1) / rho
    simplex = (x - theta).clamp_min(0.0).permute(2, 0, 1)
    over = clamped.sum(0, keepdim=True) > 1.0
    return torch.where(over, simplex, clamped) * mask


def _tv_gradient(maps: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Gradient of Σ √(|∇f|² + ε²) over pixels (forward differences, replicated edges) for maps ``(T, ny, nx)``."""
    dx = torch.diff(maps, dim=2, append=maps[:, :, -1:])
    dy = torch.diff(maps, dim=1, append=maps[:, -1:, :])
    norm = torch.sqrt(dx * dx + dy * dy + epsilon * epsilon)
    px, py = dx / norm, dy / norm
    # −div(p) with the adjoint of the forward difference
    div_x = px - torch.nn.functional.pad(px[:, :, :-1], (1, 0))
    div_y = py - torch.nn.functional.pad(py[:, :-1, :], (0, 0, 1, 0))
    return -(div_x + div_y)


def solve_direct(
    target_k: torch.Tensor,
    kernels: torch.Tensor,
    *,
    free: Sequence[int],
    fixed: torch.Tensor,
    mask: torch.Tensor,
    iterations: int,
    ridge: float = 1e-9,
    tv: float = 0.0,
    tv_epsilon: float = 0.02,
) -> tuple[torch.Tensor, list[float]]:
    """Least-squares maps of the multi-compartment model, then projected onto the constraints and refined.

    ``target_k`` ``(contrasts, ny, nx)`` is the observed gridded k-space, ``kernels`` ``(contrasts, tissues, ny, nx)``.
    Per k-space point the free tissues' spectra solve ``min Σ_c |Y_c − Σ_t h_ct X_t|² + ridge·λ̄·|X|²`` (λ̄ the mean
    diagonal of HᴴH: a relative ridge for points where the kernels nearly vanish). The real part of their inverse
    FFT, projected (``[0, 1]``, sum ≤ 1, mask), starts ``iterations`` steps of FISTA — projected gradient with
    momentum at step 1/L, L the Lipschitz constant of the gradient — on the same objective.

    ``tv`` adds to the refinement an edge-preserving total-variation penalty ``β·Σ_t Σ_pixels √(|∇f_t|² + ε²)``
    (ε = ``tv_epsilon``, in fraction units; β = ``tv`` × the data's energy per pixel, so ``tv`` is dimensionless):
    the maps are piecewise smooth, the noise is not. 0 (default) is plain least squares, the paper's objective.
    Returns the maps and the data loss (relative to ``Σ|Y|²``) after each step.
    """
    from ..recon.fft import centred_fft, centred_ifft

    free = list(free)
    rest = [t for t in range(kernels.shape[1]) if t not in free]
    y = target_k.to(torch.complex128)
    if rest:
        y = y - (kernels[:, rest] * centred_fft(fixed[rest].to(torch.complex128)[:, None])[:, 0][None]).sum(1)
    h = kernels[:, free].permute(2, 3, 0, 1)  # (ny, nx, C, T)
    hh = h.conj().transpose(-1, -2) @ h  # (ny, nx, T, T)
    lam = ridge * hh.diagonal(dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-300)
    eye = torch.eye(len(free), dtype=hh.dtype)
    rhs = h.conj().transpose(-1, -2) @ y.permute(1, 2, 0)[..., None]  # (ny, nx, T, 1)
    x = torch.linalg.solve(hh + lam[..., None, None] * eye, rhs)[..., 0].permute(2, 0, 1)  # (T, ny, nx)
    maps = fixed.clone()
    maps[free] = centred_ifft(x[:, None])[:, 0].real
    maps = _project(maps, mask)
    maps[rest] = fixed[rest]
    scale = float((target_k.abs() ** 2).sum())
    n = target_k.shape[-1] * target_k.shape[-2]
    beta = float(tv) * scale / n
    # Lipschitz constant of the gradient: data term 2·N·λmax(HᴴH), smoothed TV at most 8β/ε
    lipschitz = 2 * n * float(torch.linalg.eigvalsh(hh).max()) + 8 * beta / tv_epsilon
    history: list[float] = []

    def residual(m: torch.Tensor) -> torch.Tensor:
        return (kernels * centred_fft(m.to(torch.complex128)[:, None])[:, 0][None]).sum(1) - target_k

    z, t_k = maps.clone(), 1.0
    for _ in range(int(iterations)):
        r = residual(z)
        # gradient of Σ|r|² with respect to the real maps: 2·Re(N·IFFT(Σ_c conj(h_ct)·r_c))
        grad = 2 * n * centred_ifft((kernels.conj() * r[:, None]).sum(0)[:, None])[:, 0].real
        if beta:
            grad = grad + beta * _tv_gradient(z, tv_epsilon)
        new = z.clone()
        new[free] = z[free] - grad[free] / lipschitz
        new = _project(new, mask)
        new[rest] = fixed[rest]
        t_next = (1 + math.sqrt(1 + 4 * t_k * t_k)) / 2
        z = new + ((t_k - 1) / t_next) * (new - maps)
        maps, t_k = new, t_next
        history.append(float((residual(maps).abs() ** 2).sum()) / scale)
    return maps, history


def estimate_maps(
    observed: torch.Tensor,
    acq: Acquisition,
    *,
    model: str = "multi",
    parameterisation: str = "pixel",
    estimate: Sequence[str] = TISSUES,
    fixed: torch.Tensor | None = None,
    loss: str = "image",
    constraint: str = "softmax",
    optimizer: str = "direct",
    epochs: int = 200,
    lr: float = 0.01,
    mask: torch.Tensor | None = None,
    basis: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
    tissues: Mapping[str, Tissue] | None = None,
    kernels: torch.Tensor | None = None,
    tv: float = 0.0,
    progress: bool = False,
) -> EstimateResult:
    """Estimate CSF, GM and WM probability maps from observed images.

    Parameters
    ----------
    observed : Tensor ``(contrasts, ny, nx)``, complex (or real magnitude images)
        One image per sequence of ``acq``, reconstructed on its grid.
    acq : Acquisition
        The sequences, matrix and FOV that made them.
    model : ``"multi"`` or ``"mixed"``
        Forward model (:mod:`gradmr.bmapest.forward`).
    parameterisation, constraint, optimizer, loss
        See the module docstring.
    estimate : tissue names
        Maps to estimate; the others are taken from ``fixed`` ``(3, ny, nx)``.
    epochs, lr
        Iterations and learning rate: for ``"direct"`` the projected-gradient refinement steps (lr unused); for
        Adam the paper's settings are ``epochs=501, lr=0.01``; L-BFGS: lr 1 is usual.
    mask : bool Tensor ``(ny, nx)``, optional
        Where tissue may be (e.g. the head); everything when omitted.
    basis : Tensor ``(subjects, 3, ny, nx)``, optional
        Basis maps of the ``"linear"`` and ``"scalar"`` parameterisations.
    init : Tensor ``(3, ny, nx)``, optional
        Starting maps of the pixel parameterisation (default: ⅓ each inside the mask, as a uniform prior).
    tissues : mapping name → Tissue
        Properties (default: the BMapEst preset, ``tissue_table(preset="bmapest")``).
    kernels : Tensor, optional
        Precomputed :func:`~gradmr.bmapest.forward.tissue_kernels` for ``model="multi"``.
    tv : float
        ``optimizer="direct"`` only: relative weight of an edge-preserving total-variation penalty (see
        :func:`solve_direct`); 0 (default) is the paper's plain least squares; ≈ 1e-3 helps at SNR ≈ 30 dB.
    progress : bool
        A progress bar over epochs.

    With magnitude (real) observations the model's images are compared in magnitude.
    """
    options = dict(
        model=model, parameterisation=parameterisation, constraint=constraint, optimizer=optimizer, loss=loss
    )
    _check(observed, acq, options)
    unknown = [n for n in estimate if n not in TISSUES]
    if unknown or not estimate:
        raise ValueError(f"estimate must name some of {TISSUES}, got {tuple(estimate)}")
    if int(epochs) < (0 if optimizer == "direct" else 1):
        raise ValueError(f"epochs must be ≥ 1 (≥ 0 for optimizer='direct'), got {epochs}")
    t_start = time.perf_counter()
    ny, nx = acq.matrix
    mask = torch.ones(ny, nx, dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    if tuple(mask.shape) != (ny, nx):
        raise ValueError(f"mask must have shape {(ny, nx)}, got {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError("mask is empty: no pixel to estimate")
    if len(estimate) < 3:
        if fixed is None:
            raise ValueError("fixed maps (3, ny, nx) are required when not all three maps are estimated")
    fixed = torch.zeros(3, ny, nx, dtype=torch.float64) if fixed is None else fixed.detach().double()
    if init is None:
        init = torch.where(mask, torch.full((3, ny, nx), 1 / 3, dtype=torch.float64), torch.zeros(3, ny, nx))
        init = torch.where(torch.tensor([n in estimate for n in TISSUES])[:, None, None], init, fixed)
    maps_module = _Maps(
        (ny, nx),
        parameterisation=parameterisation,
        constraint=constraint,
        estimate=tuple(estimate),
        fixed=fixed,
        mask=mask,
        basis=None if basis is None else basis.detach().double(),
        init=init.detach().double(),
    )
    if model == "multi" and kernels is None:
        kernels = tissue_kernels(acq, tissues=tissues)
    magnitude = not torch.is_complex(observed)
    target = observed.detach().to(torch.complex128 if not magnitude else torch.float64)
    if loss == "kspace":
        from ..recon.fft import centred_fft

        target = centred_fft(target.to(torch.complex128)[:, None])[:, 0]
    scale = float((target.abs() ** 2).sum())

    def predict(maps: torch.Tensor) -> torch.Tensor:
        if model == "multi":
            out = kspace_multi(maps, kernels) if loss == "kspace" else images_multi(maps, kernels)
        else:
            out = images_mixed(maps, acq, tissues=tissues)
        return out.abs() if magnitude else out

    def objective() -> torch.Tensor:
        return ((predict(maps_module()) - target).abs() ** 2).sum() / scale

    config = {
        **options,
        "estimate": list(estimate),
        "epochs": int(epochs),
        "lr": lr,
        "tv": tv,
        "magnitude_data": magnitude,
    }
    if tv and optimizer != "direct":
        raise ValueError("tv is available with optimizer='direct'")
    if optimizer == "direct":
        if model != "multi" or parameterisation != "pixel" or magnitude:
            raise ValueError(
                "optimizer='direct' needs model='multi', parameterisation='pixel' and complex observations; "
                "use optimizer='adam' otherwise"
            )
        from ..recon.fft import centred_fft

        target_k = target if loss == "kspace" else centred_fft(target[:, None])[:, 0]
        free = [TISSUES.index(n) for n in estimate]
        maps, history = solve_direct(
            target_k, kernels, free=free, fixed=fixed, mask=mask, iterations=int(epochs), tv=tv
        )
        return EstimateResult(maps=maps, loss_history=history, seconds=time.perf_counter() - t_start, config=config)
    params = [p for p in maps_module.parameters() if p.requires_grad]
    history: list[float] = []
    iterator = range(int(epochs))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="BMapEst", unit="epoch")
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
        for _ in iterator:
            opt.zero_grad()
            value = objective()
            value.backward()
            opt.step()
            maps_module.project()
            history.append(float(value.detach()))
    else:
        opt = torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            value = objective()
            value.backward()
            return value

        for _ in iterator:
            value = opt.step(closure)
            maps_module.project()
            history.append(float(value.detach()))
    with torch.no_grad():
        maps = maps_module().detach()
    return EstimateResult(maps=maps, loss_history=history, seconds=time.perf_counter() - t_start, config=config)

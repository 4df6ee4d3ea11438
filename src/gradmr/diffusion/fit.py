"""Inverse problems: recover geometry and tissue parameters from diffusion signals by gradient descent.

:func:`fit_parameters` is the general loop: positive parameters are optimised in log space by L-BFGS (strong-Wolfe
line search) on the mean squared signal error, with an optional ``refresh`` hook called before every outer iteration
— the matrix formalism uses it to recompute its eigenbasis at the current geometry, so that frozen-basis gradients
stay accurate. :func:`fit_radius` (sphere or cylinder radius) and :func:`fit_permeability` (membrane permeability
of a two-compartment geometry) are built on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .assembly import assemble
from .compartments import Compartments, compartments
from .mesh import Mesh
from .simulate import simulate_rows
from .solvers.mf import eigenbasis, length_to_eigenvalue, scaled_basis

__all__ = ["FitResult", "fit_parameters", "fit_radius", "fit_permeability", "radius_mesh"]


@dataclass
class FitResult:
    """Outcome of a fit: fitted values (SI), loss per outer iteration, iterations used, convergence flag."""

    value: dict[str, float]
    loss: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False


def fit_parameters(
    predict: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    target: torch.Tensor,
    initial: dict[str, float],
    *,
    refresh: Callable[[dict[str, float]], None] | None = None,
    max_iterations: int = 50,
    inner_iterations: int = 10,
    rtol: float = 1e-7,
    progress: bool = False,
) -> FitResult:
    """Minimise mean((predict(θ) − target)²) over positive parameters θ (optimised as log θ).

    Args:
        predict: maps {name: 0-d tensor} to predicted signals shaped like ``target`` (differentiable).
        target: measured signals.
        initial: starting values (> 0, SI units).
        refresh: called with the current values before each outer iteration (e.g. recompute an eigenbasis).
        max_iterations: outer iterations (each one L-BFGS step of up to ``inner_iterations`` evaluations).
        rtol: stop when every parameter changes by less than this relative amount in one outer iteration.
    """
    for name, v in initial.items():
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"initial {name} must be positive and finite, got {v}")
    target = torch.as_tensor(target, dtype=torch.float64).detach()
    logs = {k: torch.tensor(math.log(v), dtype=torch.float64, requires_grad=True) for k, v in initial.items()}
    scale = float(target.abs().mean()) ** 2 or 1.0
    result = FitResult(value=dict(initial))
    bar = tqdm(range(max_iterations), desc="fit", disable=not progress, leave=False)
    for it in bar:
        current = {k: math.exp(float(v.detach())) for k, v in logs.items()}
        if refresh is not None:
            refresh(current)
        opt = torch.optim.LBFGS(
            list(logs.values()),
            lr=1.0,
            max_iter=inner_iterations,
            tolerance_grad=1e-15,
            tolerance_change=1e-18,
            line_search_fn="strong_wolfe",
        )

        def closure(opt=opt):
            opt.zero_grad()
            pred = predict({k: torch.exp(v) for k, v in logs.items()})
            loss = torch.mean((pred - target) ** 2) / scale
            loss.backward()
            return loss

        loss = float(opt.step(closure).detach())
        new = {k: math.exp(float(v.detach())) for k, v in logs.items()}
        result.loss.append(loss * scale)
        result.iterations = it + 1
        result.value = new
        bar.set_postfix(loss=f"{loss * scale:.3g}", **{k: f"{v:.4g}" for k, v in new.items()})
        if all(abs(new[k] - current[k]) <= rtol * abs(current[k]) for k in new):
            result.converged = True
            break
    return result


#: fit_radius solves its eigenbasis at this multiple of the radius it needs, so that the radii up to it (which a line
#: search may try) are served by rescaling that basis.
RADIUS_COVER = 1.25


def radius_mesh(geometry: str, nodes: int) -> tuple[Mesh, Callable[[torch.Tensor], Mesh]]:
    """A unit-radius template mesh and the map radius (m) → mesh (an exact scaling; topology fixed)."""
    from . import geometry as geo

    if geometry == "sphere":
        template = geo.ball(1.0, nodes=nodes)
    elif geometry in ("cylinder", "disk"):
        template = geo.disk(1.0, nodes=nodes)
    else:
        raise ValueError(f"geometry must be 'sphere' or 'cylinder' (2-D cross-section), got {geometry!r}")
    base = template.points.detach()
    return template, lambda radius: template.with_points(radius * base)


def fit_radius(
    b,
    direction,
    signal,
    sequences,
    sequence_index=None,
    *,
    geometry: str = "sphere",
    initial_radius: float = 3e-6,
    diffusivity: float = 2e-9,
    mesh_nodes: int = 1500,
    length_scale: float = 1e-6,
    max_iterations: int = 50,
    progress: bool = False,
) -> FitResult:
    """Radius (m) of an impermeable sphere or cylinder (infinite, gradient in its cross-section) from its signals.

    Args:
        b: (S,) b-values in s/m²; direction: (S, 3) gradient directions (for a cylinder, ⊥ its axis: gz = 0);
        signal: (S,) measured S/S(b=0); sequences: one sequence or a list, with ``sequence_index`` (S,) choosing
        each row's. The model is the matrix formalism on a ``mesh_nodes`` mesh. A change of radius is a pure rescaling,
        so the eigenbasis is solved at 1.25× the radius first needed (a larger ball has more modes below λ_max, so
        the basis then covers every radius up to that one; solved again only when the fit goes beyond it) and mapped
        to the current radius exactly by
        :func:`~gradmr.diffusion.solvers.mf.scaled_basis`; the frozen-basis gradient is exact for it.
    """
    seqs = sequences if isinstance(sequences, list | tuple) else [sequences]
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    if sequence_index is None:
        sequence_index = torch.zeros(b.shape[0], dtype=torch.int64)
    dirs = torch.as_tensor(direction, dtype=torch.float64).reshape(b.shape[0], -1)
    template, at = radius_mesh(geometry, mesh_nodes)
    dirs = dirs[:, : template.dim]
    tissue = compartments(1, diffusivity=diffusivity)
    state = {"source": None, "source_radius": 0.0}
    lam_max = length_to_eigenvalue(length_scale, diffusivity)

    def refresh(values):
        radius = float(values["radius"])
        if radius > state["source_radius"]:
            state["source_radius"] = RADIUS_COVER * radius
            mesh = at(torch.tensor(state["source_radius"], dtype=torch.float64))
            state["source"] = eigenbasis(assemble(mesh, tissue), diffusivity=diffusivity, length_scale=length_scale)
        state["basis"] = scaled_basis(state["source"], radius / state["source_radius"], template.dim, lam_max)

    def predict(p):
        mesh = at(p["radius"])
        return simulate_rows(mesh, tissue, list(seqs), sequence_index, b, dirs, basis=state["basis"]).signal

    return fit_parameters(
        predict, signal, {"radius": initial_radius}, refresh=refresh, max_iterations=max_iterations, progress=progress
    )


def fit_permeability(
    mesh: Mesh,
    tissue: Compartments,
    b,
    direction,
    signal,
    sequences,
    sequence_index=None,
    *,
    initial_permeability: float = 1e-5,
    method: str = "mf",
    length_scale: float = 1e-6,
    max_iterations: int = 50,
    progress: bool = False,
) -> FitResult:
    """One membrane permeability κ (m/s), shared by every interface of ``mesh``, from its signals.

    ``tissue`` gives the other parameters (its permeability is replaced). ``method`` is the forward model:
    ``"mf"`` (basis with Q recomputed every iteration), ``"btpde"`` (adjoint gradients) or ``"dense"`` (small meshes).
    """
    seqs = sequences if isinstance(sequences, list | tuple) else [sequences]
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    if sequence_index is None:
        sequence_index = torch.zeros(b.shape[0], dtype=torch.int64)
    dirs = torch.as_tensor(direction, dtype=torch.float64).reshape(b.shape[0], -1)[:, : mesh.dim]
    n = tissue.n

    def with_kappa(kappa):
        return Compartments(
            diffusivity=tissue.diffusivity,
            t2=tissue.t2,
            density=tissue.density,
            permeability=kappa * (1 - torch.eye(n, dtype=torch.float64)),
        )

    state = {"basis": None}

    def refresh(values):
        if method == "mf":
            t = with_kappa(torch.tensor(values["permeability"], dtype=torch.float64))
            state["basis"] = eigenbasis(assemble(mesh, t), diffusivity=t.max_diffusivity, length_scale=length_scale)

    def predict(p):
        t = with_kappa(p["permeability"])
        return simulate_rows(mesh, t, list(seqs), sequence_index, b, dirs, method=method, basis=state["basis"]).signal

    return fit_parameters(
        predict,
        signal,
        {"permeability": initial_permeability},
        refresh=refresh,
        max_iterations=max_iterations,
        progress=progress,
    )

"""Axon shape from diffusion signals: a beaded, bent axon recovered from its PGSE signals by mesh deformation.

    python experiments/diffusion_axon_shape.py [--quick] [--out DIR] [--threads N]

writes ``results.md`` (tables, the command, wall time, threads), ``results.json`` (every number) and
``axon_shape.png`` to ``--out`` (default ``experiments/results/diffusion_axon_shape``; ``*_quick.*`` with
``--quick``).

The truth is a finite capped cylinder (R = 2 µm, L = 24 µm, one compartment, D = 2e-9 m²/s, impermeable), beaded
as r(z) = R·(1 + a·cos(2πz/λ)) with a = 0.2, λ = 8 µm (:func:`gradmr.diffusion.geometry.bead`) and then bent into
an arc of curvature κ = 4e4 1/m (radius of curvature 25 µm, 55° over the length; :func:`~.geometry.bend`). Its
noise-free signals (two PGSE, δ = 10 ms, Δ = 20 and 50 ms; b = 1, 3, 10 ms/µm²; five directions: ⊥ in and out of
the bending plane, ∥, and the two 45° mixtures) come from the matrix formalism with a finer truncation
(ℓ = 1.2 µm) than the fits use (ℓ = 1.5 µm), on the same mesh topology.

Every fit starts from the straight uniform cylinder and deforms the same template mesh (topology fixed, vertices
move). The model is the matrix formalism with a frozen eigenbasis, recomputed at the current geometry before every
outer iteration (``Config.inner`` = 5 L-BFGS iterations with a strong-Wolfe line search in between; the L-BFGS
history is kept across refreshes). The data term is mean((S − S_true)²) divided by its value at the straight cylinder.

* (a) low-dimensional: the bead amplitude a and the curvature through c = (κ·10 µm)² (the real signals are even in
  κ — a bend toward +x is the mirror image of one toward −x — so only |κ| is identifiable and the gradient in κ
  vanishes at κ = 0; in c it does not). λ and the phase are known.
* (b) free radial profile: the cross-section at height z is scaled by exp(v(z)) — a radial displacement field
  u = (e^v − 1)·(x, y, 0) on the nodes, given to :func:`~.geometry.displace` — with v either a few axial cosine
  modes (b1) or one value per axial node layer (b2, the freest), plus c as in (a). The loss adds
  w_s·:func:`~.geometry.smoothness` of u and w_q·:func:`~.geometry.quality_penalty` of the deformed mesh. (b2) is
  also run without the smoothness term to show what it does.

Identifiability is probed by loss scans along a (κ true), along the bead phase φ (a true) and along ±κ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gradmr.diffusion import geometry as geo
from gradmr.diffusion.assembly import assemble
from gradmr.diffusion.compartments import compartments
from gradmr.diffusion.mesh import Mesh
from gradmr.diffusion.sequences import PGSE
from gradmr.diffusion.simulate import simulate
from gradmr.diffusion.solvers.mf import ModalBasis, eigenbasis

REPO = Path(__file__).resolve().parents[1]
F64 = torch.float64
UM = 1e-6
#: Length that makes the curvature parameter dimensionless: c = (κ·KAPPA_LENGTH)².
KAPPA_LENGTH = 10 * UM
#: Loss returned for a trial step outside the valid geometry (|a| ≥ 1, inverted cells): the line search backs off.
REJECT_LOSS = 1e3


@dataclass(frozen=True)
class Config:
    """Geometry, tissue, protocol and optimiser settings (SI units)."""

    radius: float = 2 * UM
    length: float = 24 * UM
    wavelength: float = 8 * UM
    amplitude: float = 0.2
    curvature: float = 4e4
    diffusivity: float = 2e-9
    n: int = 7  # cells across the diameter of the template cylinder
    length_scale_fit: float = 1.5 * UM
    length_scale_true: float = 1.2 * UM
    bvalues: tuple[float, ...] = (1e9, 3e9, 1e10)
    directions: tuple[tuple[float, float, float], ...] = (
        (1.0, 0.0, 0.0),  # ⊥, in the bending plane
        (0.0, 1.0, 0.0),  # ⊥, out of the bending plane
        (0.0, 0.0, 1.0),  # ∥
        (1.0, 0.0, 1.0),
        (0.0, 1.0, 1.0),
    )
    pgse: tuple[tuple[float, float], ...] = ((10e-3, 20e-3), (10e-3, 50e-3))  # (δ, Δ) in s
    inner: int = 5  # L-BFGS iterations between eigenbasis refreshes
    outer_a: int = 10
    outer_b: int = 14
    n_modes: int = 10  # cosine modes k = 0 … n_modes − 1 in (b1)
    w_smooth: float = 1e-2
    w_quality: float = 1.0
    min_quality: float = 0.2
    start_amplitude: float = 0.0
    start_c: float = 1e-6  # (κ·10 µm)² at the start: κ₀ = 100 1/m, radius of curvature 1 cm (straight)
    scan_a: tuple[float, ...] = tuple(np.round(np.linspace(-0.3, 0.35, 14), 3))
    scan_phase: tuple[float, ...] = tuple(np.round(np.linspace(0, 2 * math.pi, 9)[:-1], 4))
    scan_kappa: tuple[float, ...] = (0.0, 2e4, -2e4, 4e4, -4e4, 6e4)
    run_b2_unregularised: bool = True


QUICK = Config(
    n=4,
    outer_a=6,
    outer_b=5,
    n_modes=8,
    scan_a=(-0.2, 0.0),
    scan_phase=(math.pi / 2,),
    scan_kappa=(-4e4,),
    run_b2_unregularised=False,
)


# ---------------------------------------------------------------------------------------------------------------
# forward model


class Problem:
    """The template mesh, the protocol and the target signals; data loss and eigenbasis at given node positions."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.template: Mesh = geo.cylinder(cfg.radius, cfg.length, n=cfg.n)
        self.x = geo.conforming_points(self.template).detach()  # (n, 3) straight-cylinder positions, m
        self.tissue = compartments(1, diffusivity=cfg.diffusivity)
        self.sequences = [PGSE(d, D) for d, D in cfg.pgse]
        self.n_evaluations = 0
        self.n_bases = 0
        self.time_basis = 0.0
        self.time_signal = 0.0
        true_points = self.bead_bend(torch.tensor(cfg.amplitude, dtype=F64), torch.tensor(cfg.curvature, dtype=F64))
        self.target = self.signals(true_points, self.basis(true_points, cfg.length_scale_true)).detach()
        straight = self.x[self.template.node_origin]
        self.loss0 = 1.0
        self.loss0 = float(self.data_loss(straight, self.basis(straight)).detach())

    def mesh(self, points: torch.Tensor) -> Mesh:
        return self.template.with_points(points)

    def bead_bend(self, amplitude, curvature, phase=0.0) -> torch.Tensor:
        """(n_nodes, 3) positions of the beaded (a, λ, φ) then bent (κ) template."""
        pts = geo.bead(self.template.points, amplitude, self.cfg.wavelength, phase=phase)
        return geo.bend(pts, curvature)

    def basis(self, points: torch.Tensor, length_scale: float | None = None) -> ModalBasis:
        t = time.perf_counter()
        fe = assemble(self.mesh(points.detach()), self.tissue)
        ell = self.cfg.length_scale_fit if length_scale is None else length_scale
        out = eigenbasis(fe, diffusivity=self.cfg.diffusivity, length_scale=ell)
        self.time_basis += time.perf_counter() - t
        self.n_bases += 1
        return out

    def signals(self, points: torch.Tensor, basis: ModalBasis) -> torch.Tensor:
        """(S,) normalised signals, rows ordered sequence → direction → b."""
        t = time.perf_counter()
        out = simulate(
            self.mesh(points), self.tissue, self.sequences, self.cfg.bvalues, self.cfg.directions, basis=basis
        ).signal
        self.time_signal += time.perf_counter() - t
        self.n_evaluations += 1
        return out

    def data_loss(self, points: torch.Tensor, basis: ModalBasis) -> torch.Tensor:
        """mean((S − S_true)²), relative to its value at the straight cylinder."""
        return torch.mean((self.signals(points, basis) - self.target) ** 2) / self.loss0


# ---------------------------------------------------------------------------------------------------------------
# parameterisations


def kappa_of(c: torch.Tensor) -> torch.Tensor:
    """Curvature κ (1/m) ≥ 0 from c = (κ·10 µm)² (floored at c = 1e-12: κ = 0.1 1/m)."""
    return torch.sqrt(torch.clamp(c, min=1e-12)) / KAPPA_LENGTH


@dataclass
class Profile:
    """v(z) = B(z)·θ, the log of the relative radius r(z)/R, on the template's nodes and on a plot grid."""

    name: str
    basis_nodes: torch.Tensor  # (n_nodes, K)
    basis_grid: Callable[[np.ndarray], np.ndarray]  # z (m) → (len(z), K)


def cosine_profile(x: torch.Tensor, length: float, k: int) -> Profile:
    """K cosine modes cos(mπ(z + L/2)/L), m = 0 … K−1 (m = 0: a uniform dilation)."""

    def basis(z):
        z = np.asarray(z, dtype=float)
        return np.cos(np.pi * np.arange(k)[None, :] * (z[:, None] + length / 2) / length)

    return Profile(f"{k} cosine modes", torch.as_tensor(basis(x[:, 2].numpy())), basis)


def layer_profile(x: torch.Tensor) -> Profile:
    """One value per axial node layer (piecewise linear in z between layers, as the P1 mesh is)."""
    z = x[:, 2].numpy()
    layers = np.unique(np.round(z, 12))
    idx = np.searchsorted(layers, np.round(z, 12))
    nodes = torch.zeros(len(z), len(layers), dtype=F64)
    nodes[torch.arange(len(z)), torch.as_tensor(idx)] = 1.0

    def basis(zz):
        zz = np.asarray(zz, dtype=float)
        return np.stack([np.interp(zz, layers, np.eye(len(layers))[j]) for j in range(len(layers))], axis=1)

    return Profile(f"{len(layers)} axial layers", nodes, basis)


def radial_displacement(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(n, 3) displacement (m) scaling each cross-section by exp(v): u = (e^v − 1)·(x, y, 0)."""
    return (torch.exp(v) - 1.0)[:, None] * x * torch.tensor([1.0, 1.0, 0.0], dtype=F64)


# ---------------------------------------------------------------------------------------------------------------
# fitting


@dataclass
class Fit:
    theta: np.ndarray
    history: list[dict] = field(default_factory=list)  # one row per outer iteration, fresh basis
    evaluations: list[float] = field(default_factory=list)  # total (frozen-basis) loss of every evaluation
    final: dict = field(default_factory=dict)
    seconds: float = 0.0


def fit(
    problem: Problem,
    theta0: np.ndarray,
    to_points: Callable[[torch.Tensor], torch.Tensor],
    regularisers: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]] | None,
    outer: int,
    inner: int,
    label: str,
    rtol: float = 1e-4,
) -> Fit:
    """L-BFGS on data + regularisers; the eigenbasis is recomputed at the current geometry before each outer step."""
    t0 = time.perf_counter()
    theta = torch.tensor(theta0, dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=inner,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
    )
    out = Fit(theta=np.asarray(theta0, dtype=float))

    def terms(points: torch.Tensor, basis: ModalBasis, th: torch.Tensor) -> dict[str, torch.Tensor]:
        t = {"data": problem.data_loss(points, basis)}
        if regularisers is not None:
            t.update(regularisers(th, points))
        return t

    for it in range(outer):
        with torch.no_grad():
            basis = problem.basis(to_points(theta))
        first: list[dict] = []

        def closure(basis=basis, first=first):
            opt.zero_grad(set_to_none=True)
            try:
                t = terms(to_points(theta), basis, theta)
            except ValueError:  # |a| ≥ 1 or inverted cells: reject the trial step
                out.evaluations.append(REJECT_LOSS)
                return torch.tensor(REJECT_LOSS, dtype=F64)
            loss = sum(t.values())
            loss.backward()
            out.evaluations.append(float(loss.detach()))
            if not first:  # the first evaluation of an outer step is at the fresh basis
                first.append({k: float(v.detach()) for k, v in t.items()} | {"total": float(loss.detach())})
            return loss.detach()

        before = theta.detach().clone()
        opt.step(closure)
        start = first[0] if first else {"data": math.nan, "total": math.nan}  # nan: the start itself was invalid
        row = {"outer": it, "basis_modes": basis.n_modes, **start, "theta": before.tolist()}
        out.history.append(row)
        step = float((theta.detach() - before).abs().max())
        scale = float(before.abs().max()) or 1.0
        print(
            f"  [{label}] outer {it}: loss {row['total']:.3e} (data {row['data']:.3e}), "
            f"modes {basis.n_modes}, max|Δθ| {step:.2e}, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        if step <= rtol * scale:
            break
    with torch.no_grad():
        points = to_points(theta)
        basis = problem.basis(points)
        t = terms(points, basis, theta)
        q = geo.mean_ratio_quality(points, problem.template.cells)
    out.final = {k: float(v) for k, v in t.items()} | {
        "total": float(sum(t.values())),
        "min_quality": float(q.min()),
        "outer_iterations": len(out.history),
        "evaluations": len(out.evaluations),
    }
    out.theta = theta.detach().numpy().copy()
    out.seconds = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------------------------------------------------------
# experiment


def run(cfg: Config) -> dict:
    t_start = time.perf_counter()
    problem = Problem(cfg)
    tpl = problem.template
    x = problem.x
    R, L = cfg.radius, cfg.length
    print(f"template {tpl!r}; target ready ({time.perf_counter() - t_start:.1f} s)", flush=True)
    z_grid = np.linspace(-L / 2, L / 2, 241)
    r_true = R * (1 + cfg.amplitude * np.cos(2 * np.pi * z_grid / cfg.wavelength))
    results: dict = {"mesh": {"nodes": tpl.n_nodes, "cells": tpl.n_cells, "n_across": cfg.n}}
    with torch.no_grad():
        b_true = problem.basis(problem.bead_bend(cfg.amplitude, cfg.curvature))
        b_straight = problem.basis(x[tpl.node_origin])
    results["modes"] = {"fit_at_truth": b_true.n_modes, "fit_at_straight": b_straight.n_modes}
    results["rows"] = int(problem.target.numel())
    results["target"] = problem.target.tolist()
    results["loss0"] = problem.loss0
    results["truncation_error"] = float(
        (problem.signals(problem.bead_bend(cfg.amplitude, cfg.curvature), b_true) - problem.target).abs().max().detach()
    )

    def profile_error(r_fit: np.ndarray) -> dict:
        err = r_fit - r_true
        return {
            "rms_over_R": float(np.sqrt(np.mean(err**2)) / R),
            "max_over_R": float(np.abs(err).max() / R),
            "relative_to_bead": float(np.linalg.norm(err) / np.linalg.norm(r_true - R)),
        }

    # (a) amplitude and curvature
    def points_a(theta):
        return problem.bead_bend(theta[0], kappa_of(theta[1]))

    fa = fit(problem, np.array([cfg.start_amplitude, cfg.start_c]), points_a, None, cfg.outer_a, cfg.inner, "a")
    a_hat, k_hat = float(fa.theta[0]), float(kappa_of(torch.tensor(fa.theta[1])))
    r_a = R * (1 + a_hat * np.cos(2 * np.pi * z_grid / cfg.wavelength))
    results["a"] = {
        "amplitude": a_hat,
        "curvature": k_hat,
        "amplitude_error": a_hat - cfg.amplitude,
        "curvature_rel_error": k_hat / cfg.curvature - 1,
        "profile": profile_error(r_a),
        **fa.final,
        "seconds": fa.seconds,
        "history": fa.history,
        "evaluation_losses": fa.evaluations,
    }
    print(f"(a) a = {a_hat:.5f} (true {cfg.amplitude}), κ = {k_hat:.5g} (true {cfg.curvature:g})", flush=True)

    # (b) free radial profiles
    def make_b(profile: Profile, w_smooth: float):
        def points_b(theta):
            u = radial_displacement(x, profile.basis_nodes @ theta[:-1])
            return geo.bend(geo.displace(tpl, u).points, kappa_of(theta[-1]))

        def regs(theta, points):
            u = radial_displacement(x, profile.basis_nodes @ theta[:-1])
            out = {"quality": cfg.w_quality * geo.quality_penalty(tpl, points, cfg.min_quality)}
            if w_smooth:
                out["smoothness"] = w_smooth * geo.smoothness(tpl, u)
            return out

        return points_b, regs

    # the regulariser at the truth (for the weights' justification): the bead's radial field, u = a·cos·(x, y, 0)
    u_true = (
        cfg.amplitude
        * torch.cos(2 * math.pi * x[:, 2] / cfg.wavelength)[:, None]
        * x
        * torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    )
    results["smoothness_at_truth"] = float(geo.smoothness(tpl, u_true))

    def best_log_profile(profile: Profile) -> np.ndarray:
        """The closest v(z) to log(r_true/R) the parameterisation can represent (least squares on the nodes)."""
        v_true = np.log1p(cfg.amplitude * np.cos(2 * np.pi * x[:, 2].numpy() / cfg.wavelength))
        coef, *_ = np.linalg.lstsq(profile.basis_nodes.numpy(), v_true, rcond=None)
        return profile.basis_grid(z_grid) @ coef

    variants = [("b1", cosine_profile(x, L, cfg.n_modes), cfg.w_smooth), ("b2", layer_profile(x), cfg.w_smooth)]
    if cfg.run_b2_unregularised:
        variants.append(("b2_no_smoothness", layer_profile(x), 0.0))
    profiles = {}
    points_fit = {}
    for key, profile, w in variants:
        points_b, regs = make_b(profile, w)
        k = profile.basis_nodes.shape[1]
        theta0 = np.concatenate([np.zeros(k), [cfg.start_c]])
        fb = fit(problem, theta0, points_b, regs, cfg.outer_b, cfg.inner, key)
        v = profile.basis_grid(z_grid) @ fb.theta[:-1]
        r_b = R * np.exp(v)
        profiles[key] = r_b
        points_fit[key] = points_b(torch.as_tensor(fb.theta)).detach().numpy()
        with torch.no_grad():
            u = radial_displacement(x, profile.basis_nodes @ torch.as_tensor(fb.theta[:-1]))
            smooth_raw = float(geo.smoothness(tpl, u))
        results[key] = {
            "parameterisation": profile.name,
            "parameters": int(k + 1),
            "w_smooth": w,
            "w_quality": cfg.w_quality,
            "curvature": float(kappa_of(torch.tensor(fb.theta[-1]))),
            "profile": profile_error(r_b),
            "best_possible_profile": profile_error(R * np.exp(best_log_profile(profile))),
            "smoothness_value": smooth_raw,
            **fb.final,
            "seconds": fb.seconds,
            "theta": fb.theta.tolist(),
            "history": fb.history,
            "evaluation_losses": fb.evaluations,
        }
        print(
            f"({key}) profile rms error {results[key]['profile']['rms_over_R']:.4f} R, "
            f"κ = {results[key]['curvature']:.5g}, data loss {fb.final['data']:.2e}",
            flush=True,
        )

    # identifiability scans (each point: basis at that geometry, data loss)
    cache: dict[tuple[float, float, float], float] = {}

    def scan_loss(a: float, kappa: float, phase: float = 0.0) -> float:
        key = (round(a, 9), round(kappa, 3), round(phase % (2 * math.pi), 9))
        if key not in cache:
            with torch.no_grad():
                points = problem.bead_bend(a, kappa, phase)
                cache[key] = float(problem.data_loss(points, problem.basis(points)))
        return cache[key]

    t = time.perf_counter()
    scans = {
        "amplitude": [(a, scan_loss(a, cfg.curvature)) for a in sorted({*cfg.scan_a, cfg.amplitude})],
        "phase": [(p, scan_loss(cfg.amplitude, cfg.curvature, p)) for p in sorted({*cfg.scan_phase, 0.0})],
        "curvature": [(k, scan_loss(cfg.amplitude, k)) for k in sorted({*cfg.scan_kappa, cfg.curvature})],
    }
    results["scans"] = scans
    results["scan_seconds"] = time.perf_counter() - t
    with torch.no_grad():
        s_plus = problem.signals(problem.bead_bend(cfg.amplitude, cfg.curvature), b_true)
        mirrored = problem.bead_bend(cfg.amplitude, -cfg.curvature)
        s_minus = problem.signals(mirrored, problem.basis(mirrored))
        results["kappa_sign_max_signal_difference"] = float((s_plus - s_minus).abs().max())
    # gradients of the data term at the straight cylinder: zero in κ by symmetry
    with torch.enable_grad():
        k0 = torch.tensor(0.0, dtype=F64, requires_grad=True)
        a0 = torch.tensor(0.0, dtype=F64, requires_grad=True)
        loss_k0 = problem.data_loss(problem.bead_bend(a0, k0), b_straight)
        g_a, g_k = torch.autograd.grad(loss_k0, (a0, k0))
    results["gradient_at_straight"] = {"d_loss_d_a": float(g_a), "d_loss_d_kappa_l0": float(g_k) / KAPPA_LENGTH}
    results["loss_at_truth"] = scan_loss(cfg.amplitude, cfg.curvature)

    results["timing"] = {
        "total_seconds": time.perf_counter() - t_start,
        "bases": problem.n_bases,
        "basis_seconds": problem.time_basis,
        "signal_evaluations": problem.n_evaluations,
        "signal_seconds": problem.time_signal,
    }
    results["_plot"] = {"z": z_grid, "r_true": r_true, "r_a": r_a, **{f"r_{k}": v for k, v in profiles.items()}}
    results["_points"] = {
        "true": problem.bead_bend(cfg.amplitude, cfg.curvature).detach().numpy(),
        "a": points_a(torch.as_tensor(fa.theta)).detach().numpy(),
        **points_fit,
    }
    return results


# ---------------------------------------------------------------------------------------------------------------
# report


def figure(res: dict, cfg: Config, path: Path, tpl: Mesh) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = res["_plot"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    zu = p["z"] / UM
    ax.plot(zu, p["r_true"] / UM, "k-", lw=2.5, label="truth")
    ax.axhline(cfg.radius / UM, color="0.6", ls=":", label="start (straight cylinder)")
    ax.plot(zu, p["r_a"] / UM, "C0--", lw=2, label=f"(a) a, κ: a = {res['a']['amplitude']:.4f}")
    styles = {"b1": "C1-", "b2": "C2-", "b2_no_smoothness": "C3-"}
    for key in ("b1", "b2", "b2_no_smoothness"):
        if f"r_{key}" in p:
            ax.plot(
                zu,
                p[f"r_{key}"] / UM,
                styles[key],
                lw=1.3,
                label=f"({key}) {res[key]['parameterisation']}" + ("" if res[key]["w_smooth"] else ", no smoothness"),
            )
    ax.set_xlabel("z along the axis (µm)")
    ax.set_ylabel("radius r(z) (µm)")
    ax.set_title("radius profile: recovered vs true")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    for key, style in (("a", "C0"), ("b1", "C1"), ("b2", "C2"), ("b2_no_smoothness", "C3")):
        if key in res:
            h = res[key]["history"]
            ax.semilogy(
                [r["outer"] for r in h] + [len(h)],
                [r["data"] for r in h] + [res[key]["data"]],
                "o-",
                color=style,
                label=f"({key}) data",
            )
            if key != "a":
                ax.semilogy(
                    [r["outer"] for r in h] + [len(h)],
                    [r["total"] for r in h] + [res[key]["total"]],
                    ":",
                    color=style,
                    label=f"({key}) total",
                )
    ax.set_xlabel(f"outer iteration (eigenbasis refresh; {cfg.inner} L-BFGS steps each)")
    ax.set_ylabel("loss (relative to the straight cylinder's)")
    ax.set_title("loss at the refreshed basis")
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    pts = res["_points"]
    bnodes = np.unique(tpl.boundary_facets.numpy())
    y0 = np.abs(tpl.points.detach().numpy()[bnodes, 1])
    sel = bnodes[y0 <= y0.min() + 1e-3 * cfg.radius]  # the template's boundary nodes nearest the plane y = 0
    for key, style, lab in (("true", "k.", "truth"), ("a", "C0x", "fit (a)"), ("b2", "C2+", "fit (b2)")):
        if key in pts:
            q = pts[key][sel]
            ax.plot(q[:, 2] / UM, q[:, 0] / UM, style, ms=4, label=lab)
    ax.set_aspect("equal")
    ax.set_xlabel("z (µm)")
    ax.set_ylabel("x (µm)")
    ax.set_title("boundary nodes in the slice |y| ≈ 0 (bending plane)")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    sa = np.array(res["scans"]["amplitude"])
    ax.semilogy(sa[:, 0], np.maximum(sa[:, 1], 1e-12), "o-", label="a (κ true)")
    ax.axvline(cfg.amplitude, color="k", ls=":")
    ax.set_xlabel("bead amplitude a")
    ax.set_ylabel("data loss (relative)")
    ax2 = ax.twiny()
    sp = np.array(res["scans"]["phase"])
    ax2.semilogy(sp[:, 0], np.maximum(sp[:, 1], 1e-12), "s--", color="C4", label="phase φ (a, κ true)")
    ax2.set_xlabel("bead phase φ (rad)")
    ax.set_title("identifiability scans", pad=28)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict, cfg: Config, meta: dict) -> str:
    a = res["a"]
    t = res["timing"]
    lines = [
        "# Axon shape from diffusion signals (gradmr.diffusion, matrix formalism, mesh deformation)",
        "",
        f"Command: `{meta['command']}` — {meta['date']}, {meta['threads']} torch thread(s), load average at start "
        f"{meta['load_start']}, wall time {t['total_seconds']:.0f} s.",
        "",
        "## Setup",
        "",
        f"* truth: capped cylinder R = {cfg.radius / UM:g} µm, L = {cfg.length / UM:g} µm, beaded "
        f"r(z) = R(1 + a cos(2πz/λ)) with a = {cfg.amplitude}, λ = {cfg.wavelength / UM:g} µm, then bent to "
        f"κ = {cfg.curvature:g} 1/m (radius of curvature {1e6 / cfg.curvature:g} µm); D = {cfg.diffusivity:g} m²/s.",
        f"* mesh: template cylinder with {res['mesh']['nodes']} nodes, {res['mesh']['cells']} tetrahedra "
        f"({cfg.n} cells across); the same topology for truth and fits.",
        f"* protocol: {res['rows']} noise-free signals = PGSE (δ, Δ) = "
        + ", ".join(f"({d * 1e3:g}, {D * 1e3:g}) ms" for d, D in cfg.pgse)
        + f" × b = {', '.join(f'{b / 1e9:g}' for b in cfg.bvalues)} ms/µm² × {len(cfg.directions)} directions "
        "(x, y ⊥; z ∥; (x+z)/√2, (y+z)/√2).",
        f"* target from the matrix formalism with ℓ = {cfg.length_scale_true / UM:g} µm; fits use ℓ = "
        f"{cfg.length_scale_fit / UM:g} µm ({res['modes']['fit_at_straight']} modes at the straight cylinder, "
        f"{res['modes']['fit_at_truth']} at the truth); the truncation difference at the truth is "
        f"{res['truncation_error']:.1e} in S/S0 (max over rows).",
        f"* optimiser: L-BFGS (strong Wolfe), eigenbasis recomputed every {cfg.inner} iterations (frozen in between);"
        " loss = mean((S − S_true)²) / (its value at the straight cylinder, "
        f"{res['loss0']:.3e}).",
        "",
        "## (a) bead amplitude and curvature",
        "",
        "| | truth | start | recovered | error |",
        "|---|---|---|---|---|",
        f"| a | {cfg.amplitude} | {cfg.start_amplitude} | {a['amplitude']:.5f} | {a['amplitude_error']:+.1e} |",
        f"| \\|κ\\| (1/m) | {cfg.curvature:g} | {kappa_of(torch.tensor(cfg.start_c)).item():g} | "
        f"{a['curvature']:.5g} | {100 * a['curvature_rel_error']:+.3f} % |",
        "",
        f"Final data loss {a['data']:.2e} (relative), {a['outer_iterations']} outer iterations, {a['evaluations']} "
        f"loss evaluations, {a['seconds']:.0f} s. r(z) error: rms {a['profile']['rms_over_R']:.1e} R.",
        "",
        "## (b) free radial profile with smoothness and mesh-quality regularisers",
        "",
        f"r(z) = R·exp(v(z)), a radial displacement u = (e^v − 1)(x, y, 0) on the nodes, plus |κ| as in (a). "
        f"Loss = data + w_s·smoothness(u) + w_q·quality_penalty (η_min = {cfg.min_quality}).",
        "",
        "| run | parameters | w_s | w_q | \\|κ\\| (1/m) | r(z) rms err / R | max err / R | err / bead | "
        "best possible rms / R | data loss | smoothness(u) | min η | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("b1", "b2", "b2_no_smoothness"):
        if key not in res:
            continue
        b = res[key]
        lines.append(
            f"| ({key}) {b['parameterisation']} | {b['parameters']} | {b['w_smooth']:g} | {b['w_quality']:g} | "
            f"{b['curvature']:.5g} | {b['profile']['rms_over_R']:.4f} | {b['profile']['max_over_R']:.4f} | "
            f"{b['profile']['relative_to_bead']:.3f} | {b['best_possible_profile']['rms_over_R']:.4f} | "
            f"{b['data']:.1e} | {b['smoothness_value']:.3g} | {b['min_quality']:.3f} | {b['seconds']:.0f} |"
        )
    g = res["gradient_at_straight"]
    lines += [
        "",
        '"err / bead" is ‖r̂ − r‖/‖r − R‖ over z; "best possible" is the closest profile the parameterisation '
        "can represent (least squares in log r on the nodes), so (b1)'s floor is its truncated cosine series. The data "
        f"loss of the true shape under the fit model (ℓ = {cfg.length_scale_fit / UM:g} µm vs the target's "
        f"{cfg.length_scale_true / UM:g} µm) is {res['loss_at_truth']:.1e}: the floor of every fit.",
        "",
        f"Weights. Smoothness: for a bead of relative amplitude ε the field costs ≈ ε²·O(1) (the true bead's "
        f"{res['smoothness_at_truth']:.3g}), so w_s = {cfg.w_smooth:g} charges "
        f"≈ {cfg.w_smooth * res['smoothness_at_truth']:.1e} of the initial misfit at the truth. The data misfit "
        "grows roughly as (profile error / bead amplitude)², "
        "so the term can shift the profile by only ~1–2 % of the bead amplitude where the data constrain it, while it "
        "decides where they do not (layer-to-layer wiggles, the caps). Quality: zero while every cell keeps η ≥ "
        f"{cfg.min_quality} (the template's cells have η > 0.5), and one degenerate cell costs w_q/n_cells ≈ "
        f"{cfg.w_quality / res['mesh']['cells']:.0e} of the initial misfit — more than the whole misfit left near "
        "convergence — so near the solution a fit does not buy data misfit with a collapsing cell (the assembly "
        "rejects inverted cells outright: the optimiser treats such a trial step as a failed line-search point); "
        "it does not bias any acceptable mesh. In these radial-scaling "
        "fits it never became active (min η above); `tests/diffusion/test_shape_fit.py` shows it acting on a "
        "per-node displacement.",
        "",
        "## Identifiability",
        "",
        "Data loss (relative) with the basis recomputed at each geometry:",
        "",
        "| a (κ true) | " + " | ".join(f"{v:+.3g}" for v, _ in res["scans"]["amplitude"]) + " |",
        "|---|" + "---|" * len(res["scans"]["amplitude"]),
        "| loss | " + " | ".join(f"{loss:.2e}" for _, loss in res["scans"]["amplitude"]) + " |",
        "",
        "| phase φ (a, κ true) | " + " | ".join(f"{v:.3g}" for v, _ in res["scans"]["phase"]) + " |",
        "|---|" + "---|" * len(res["scans"]["phase"]),
        "| loss | " + " | ".join(f"{loss:.2e}" for _, loss in res["scans"]["phase"]) + " |",
        "",
        "| κ (1/m, a true) | " + " | ".join(f"{v:+.3g}" for v, _ in res["scans"]["curvature"]) + " |",
        "|---|" + "---|" * len(res["scans"]["curvature"]),
        "| loss | " + " | ".join(f"{loss:.2e}" for _, loss in res["scans"]["curvature"]) + " |",
        "",
        "* **Sign of κ: not identifiable.** A bend toward −x is the mirror image (x → −x) of one toward +x; with the "
        "shape's y and z mirror symmetries and S(−g) = conj S(g) this makes S(−κ) = conj S(κ) for every gradient "
        "direction, so the real part and the magnitude of the signal are even in κ (the imaginary part — the phase, "
        f"unusable in practice — is odd). Here max |S(κ) − S(−κ)| = {res['kappa_sign_max_signal_difference']:.1e}"
        + (
            " (round-off: this mesh is mirror-symmetric)."
            if res["kappa_sign_max_signal_difference"] < 1e-10
            else ", not 0 only because this tetrahedral mesh is not mirror-symmetric."
        )
        + " For the same reason the gradient in κ "
        f"vanishes at the straight cylinder (d loss/d(κ·10 µm) = {g['d_loss_d_kappa_l0']:.1e} vs "
        f"d loss/da = {g['d_loss_d_a']:.3g}), so a fit started there never bends in κ; (a) therefore fits "
        "c = (κ·10 µm)² ≥ 0, whose gradient at the straight cylinder is finite.",
        "* **Sign of a and the bead phase: identifiable here only through the caps.** For an infinitely long axon "
        "a → −a is the translation z → z + λ/2, and any phase is a translation: the signals could not tell them "
        "apart. This axon is 3 wavelengths long and capped, so the caps see whether they cut a neck or a bulge "
        "(a = −a_true is a phase of π), and the scans show clear minima. Expect both to become ill-determined as "
        "L/λ grows or when the ends are out of the voxel.",
        "* **Magnitudes** (a, |κ|) are well determined: sharp single minima; the fits reach the loss floor from the "
        "straight cylinder in a few basis refreshes.",
        "* **The free profile** (b): r(z) rms errors "
        + ", ".join(
            f"({k}) {res[k]['profile']['rms_over_R']:.4f} R" for k in ("b1", "b2", "b2_no_smoothness") if k in res
        )
        + f" for a bead of {cfg.amplitude:g} R. The least constrained parts are the end layers next to the caps "
        "(the largest errors sit there; the per-layer fit without smoothness puts kinks there). For a straight "
        "axisymmetric axon r(z) and r(−z) give identical signals for every protocol (the mirror z → −z followed by a "
        "half-turn about the axis maps g to −g); the truth here is even in z, so this does not show.",
        "* Taken as known: L, D, impermeable walls; in (a) also R, λ and the phase (in (b) the mean radius and the "
        "wavelength are free).",
        "",
        "## Caveats",
        "",
        "* Noise-free and an inverse crime in everything but the truncation: the target comes from the same mesh "
        "topology and the same model (matrix formalism), only with more modes. Real data would add noise, a "
        "distribution of axons and extra-axonal water; the numbers above are identifiability, not accuracy.",
        "* The bend is a circular arc in a known plane (x–z; no parameter for its orientation); the bead is one "
        "cosine; the free profiles are axisymmetric (a radial scaling of each cross-section), so they cannot "
        "represent an elliptic or off-centre cross-section.",
        "* Local minima: along a the loss has a second basin on the negative side (it falls again below "
        "a ≈ −0.1); a start there would descend away from the truth. From the straight cylinder the gradient "
        "points to +a.",
        "",
        "## Timing",
        "",
        f"{t['bases']} eigenbases ({t['basis_seconds']:.0f} s), {t['signal_evaluations']} signal evaluations with "
        f"gradients or without ({t['signal_seconds']:.0f} s); scans {res['scan_seconds']:.0f} s; total "
        f"{t['total_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="625-node mesh, fewer iterations and scan points")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "diffusion_axon_shape")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else Config()
    meta = {
        "command": "python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "load_start": " ".join(f"{v:.1f}" for v in os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    res = run(cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    tpl = geo.cylinder(cfg.radius, cfg.length, n=cfg.n)
    figure(res, cfg, args.out / f"axon_shape{suffix}.png", tpl)
    (args.out / f"results{suffix}.md").write_text(markdown(res, cfg, meta))
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    public["config"] = asdict(cfg)
    public["meta"] = meta
    public["profiles"] = {k: np.asarray(v).tolist() for k, v in res["_plot"].items()}
    (args.out / f"results{suffix}.json").write_text(json.dumps(public, indent=1))
    print(f"wrote {args.out}/results{suffix}.md ({res['timing']['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()

"""Small test meshes built directly (independent of gradmr.diffusion.geometry)."""

from __future__ import annotations

import numpy as np
import skfem

from gradmr.diffusion.mesh import Mesh, from_conforming


def interval(lengths=(10e-6,), n_per=200) -> Mesh:
    """1-D segments side by side, one compartment each."""
    edges = np.concatenate([[0.0], np.cumsum(lengths)])
    pts = np.unique(np.concatenate([np.linspace(a, b, n_per + 1) for a, b in zip(edges[:-1], edges[1:], strict=True)]))
    cells = np.stack([np.arange(len(pts) - 1), np.arange(1, len(pts))], 1)
    centre = 0.5 * (pts[cells[:, 0]] + pts[cells[:, 1]])
    labels = np.searchsorted(edges[1:-1], centre)
    return from_conforming(pts[:, None], cells, labels)


def disk(radius=5e-6, refine=4) -> Mesh:
    m = skfem.MeshTri.init_circle(refine)
    return from_conforming(m.p.T * radius, m.t.T)


def ball(radius=5e-6, refine=3) -> Mesh:
    m = skfem.MeshTet.init_ball(refine)
    return from_conforming(m.p.T * radius, m.t.T)


def boxes(widths=(5e-6, 5e-6), n=(8, 2, 2), size=2e-6) -> Mesh:
    """3-D boxes stacked along x (one compartment each) sharing faces."""
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    x = np.unique(np.concatenate([np.linspace(a, b, n[0] + 1) for a, b in zip(edges[:-1], edges[1:], strict=True)]))
    m = skfem.MeshTet.init_tensor(x, np.linspace(0, size, n[1] + 1), np.linspace(0, size, n[2] + 1))
    centre = m.p[:, m.t].mean(axis=1)
    labels = np.searchsorted(edges[1:-1], centre[0])
    return from_conforming(m.p.T, m.t.T, labels)

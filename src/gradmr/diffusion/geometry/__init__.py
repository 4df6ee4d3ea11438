"""Geometry for the Bloch–Torrey solvers: mesh generators, differentiable deformations, quality, file I/O.

All lengths in metres. Generators return a :class:`gradmr.diffusion.mesh.Mesh` whose ``points`` are computed in
torch from the geometry parameters (a radius given as a tensor with ``requires_grad=True`` gives points with autograd
history); the topology is fixed when the mesh is made.
"""

from .deform import bead, bend, conforming_points, displace, scale, smoothness
from .io import read_mesh, write_mesh
from .quality import mean_ratio_quality, quality_penalty
from .shapes import ball, cylinder, cylinder_in_box, cylinders, disk, interval, n_for_nodes, slabs, sphere_in_box
from .structured import cell_lattice, flip_toward_centre, kuhn_split, lattice, lattice_boxes, simplices

__all__ = [
    "interval",
    "slabs",
    "disk",
    "ball",
    "cylinder",
    "sphere_in_box",
    "cylinder_in_box",
    "cylinders",
    "n_for_nodes",
    "scale",
    "bend",
    "bead",
    "displace",
    "conforming_points",
    "smoothness",
    "mean_ratio_quality",
    "quality_penalty",
    "read_mesh",
    "write_mesh",
    "lattice",
    "cell_lattice",
    "simplices",
    "kuhn_split",
    "lattice_boxes",
    "flip_toward_centre",
]

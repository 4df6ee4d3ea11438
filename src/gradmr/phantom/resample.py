"""Area-averaging resampling of maps on regular grids (exact overlap weights, differentiable).

Both grids are centred on their *geometric* centre: voxel ``i`` of an axis with ``n`` voxels of size ``Δ`` covers
``[(i − n/2)Δ, (i + 1 − n/2)Δ]``. So resampling to the same extent keeps the edges (coarsening by an integer
factor is plain block averaging), and a different output extent crops or zero-pads symmetrically. (This differs
by at most half a voxel from :class:`~gradmr.phantom.VoxelPhantom`'s ``(i − n//2)·Δ`` centres for even ``n``;
the resampled map is then placed on the phantom grid as it is.) An output voxel takes the mean of the input over
its extent, the input counting as zero outside its grid. So fractions stay fractions, tissue volumes (sum of
fraction × voxel volume) are kept when the output covers the input, and the result is linear — and
differentiable — in the input.
"""

from __future__ import annotations

import string

import torch


def area_weights(
    n_in: int, n_out: int, *, voxel_in: float, voxel_out: float, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Overlap weights of one axis, shape ``(n_out, n_in)``.

    ``W[j, i]`` is the length of output voxel ``j`` covered by input voxel ``i``, over the length of ``j``
    (``voxel_out``); rows sum to 1 where the output lies inside the input, to less at the edges.

    Parameters
    ----------
    n_in, n_out : int
        Voxels along the axis, ≥ 1.
    voxel_in, voxel_out : float
        Voxel sizes [m] (any common length unit works), > 0.
    """
    if int(n_in) < 1 or int(n_out) < 1:
        raise ValueError(f"n_in and n_out must be ≥ 1, got {n_in} and {n_out}")
    if not (voxel_in > 0 and voxel_out > 0):
        raise ValueError(f"voxel_in and voxel_out must be > 0, got {voxel_in} and {voxel_out}")
    i = torch.arange(int(n_in), dtype=torch.float64)
    j = torch.arange(int(n_out), dtype=torch.float64)
    lo_in = (i - int(n_in) / 2) * float(voxel_in)
    lo_out = (j - int(n_out) / 2) * float(voxel_out)
    lo = torch.maximum(lo_out[:, None], lo_in[None, :])
    hi = torch.minimum(lo_out[:, None] + float(voxel_out), lo_in[None, :] + float(voxel_in))
    return ((hi - lo).clamp(min=0.0) / float(voxel_out)).to(dtype)


def area_resample(
    array: torch.Tensor,
    shape,
    *,
    voxel_size_in,
    voxel_size_out=None,
) -> torch.Tensor:
    """Resample the last ``len(shape)`` axes of ``array`` by area averaging.

    Parameters
    ----------
    array : Tensor, shape ``(..., n_1, …, n_d)``
        Real values on a regular grid (d = 1, 2 or 3 resampled axes; leading axes are kept, e.g. tissues).
    shape : tuple of d ints
        Output voxels along the resampled axes.
    voxel_size_in : tuple of d floats
        Input voxel size along the resampled axes, *in array-axis order* (e.g. ``(Δy, Δx)`` for ``(y, x)``).
    voxel_size_out : tuple of d floats, optional
        Output voxel size in the same order; by default the output spans the input's extent
        (``n_in·Δ_in / n_out``). A larger extent pads with zeros, a smaller one crops, both centred.

    Returns
    -------
    Tensor, shape ``(..., *shape)``, same dtype as ``array``; differentiable in ``array``.
    """
    shape = tuple(int(s) for s in shape)
    d = len(shape)
    if not 1 <= d <= 3:
        raise ValueError(f"shape must have 1 to 3 axes, got {shape}")
    if array.ndim < d:
        raise ValueError(f"array has {array.ndim} axes, fewer than the {d} to resample")
    vin = tuple(float(v) for v in voxel_size_in)
    if len(vin) != d:
        raise ValueError(f"voxel_size_in must have {d} values (one per resampled axis), got {len(vin)}")
    n_in = array.shape[array.ndim - d :]
    if voxel_size_out is None:
        vout = tuple(n * v / m for n, v, m in zip(n_in, vin, shape, strict=True))
    else:
        vout = tuple(float(v) for v in voxel_size_out)
        if len(vout) != d:
            raise ValueError(f"voxel_size_out must have {d} values, got {len(vout)}")
    if not array.is_floating_point():
        raise TypeError(f"array must be a real floating tensor, got {array.dtype}")
    weights = [
        area_weights(n, m, voxel_in=a, voxel_out=b, dtype=array.dtype).to(array.device)
        for n, m, a, b in zip(n_in, shape, vin, vout, strict=True)
    ]
    letters = string.ascii_lowercase
    ins = letters[:d]
    outs = letters[d : 2 * d]
    spec = "..." + ins + "," + ",".join(o + i for o, i in zip(outs, ins, strict=True)) + "->..." + outs
    return torch.einsum(spec, array, *weights)

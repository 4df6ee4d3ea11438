"""Batched, differentiable EPG of FISP fingerprinting trains (Weigel, J Magn Reson Imaging 2015;41:266).

The model of one TR n (:class:`~gradmr.sim.epg.train.FispTrain`):

    RF(α_n · B1, φ) → free precession for TE_n → sample F⁺₀ → free precession for TR_n − TE_n → shift by +1

with Weigel's rotation (conventions of ``docs/conventions.md``: φ = 0 tips +z to M⁺ = −i sin α), free precession
``F± ← F± e^{−t/T2} e^{∓2πi Δf t}``, ``Z ← Z e^{−t/T1} + (1 − e^{−t/T1})·[k = 0]`` and the shift
``F⁺_k ← F⁺_{k−1}``, ``F⁻_k ← F⁻_{k+1}``, ``F⁺₀ = conj(F⁻₀)``. An inversion (if any) sets ``Z₀ = −η`` and relaxes it
for the inversion time. Magnetisation is relative to M0 = 1: multiply by PD yourself.

Truncation
    Only states k < ``n_states`` are kept. A state of order k needs k TRs to be made and k more to come back to
    k = 0, so what is dropped reaches the signal only after ≥ 2·``n_states`` TRs of T2 decay; the error grows with T2
    and with the fraction of the train spent at small flip angles. Measured on the 1000-TR MRF-FISP train (tests and
    ``docs/epg.md``): see :data:`DEFAULT_STATES`.

Three ways to compute the same thing (``method``):

``"kernel"``
    The compiled numba kernel (:mod:`~gradmr.sim.epg.kernels`), no gradients: dictionaries.
``"sensitivities"``
    The kernel with forward sensitivities; gradients reach T1, T2 and B1 (not the train) through a custom
    ``autograd.Function`` with O(atoms × states) memory: the physics decoder of BlochNet.
``"autograd"``
    Plain torch operations, complex states, any RF phase/off-resonance; gradients reach everything (flip angles, TR,
    TE, T1, T2, B1, Δf) through the tape; memory grows with TRs × atoms × states.
``"auto"`` picks ``"kernel"`` when no input needs a gradient and the model fits it (no off-resonance),
``"sensitivities"`` when only T1/T2/B1 need one, ``"autograd"`` otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..._tensors import complex_dtype
from .train import FispTrain

#: Default number of EPG states kept. Truncation error of the 1000-TR MRF-FISP fingerprint against the exact
#: (untruncated) one, worst case over T1 ≤ 5 s, T2 ≤ 2.5 s (always T1 = 5 s, T2 = 2.5 s;
#: ``tests/sim/epg/test_truncation.py``, docs/epg.md): max |Δ| / max |signal| — 20 states 5.8e-2, 32: 4.1e-2,
#: 50: 2.3e-2, 64: 1.4e-2, 100: 3.8e-3, 200: 8.5e-4; NRMSE at 64 states 6.0e-3, and 1 − cos (what matching sees)
#: 1.8e-5. For T2 ≤ 0.3 s, 64 states give 5.4e-5. Raise ``n_states`` to 100–200 where long-T2 fingerprints must be
#: accurate to better than 1 %.
DEFAULT_STATES = 64

METHODS = ("auto", "kernel", "sensitivities", "autograd")

__all__ = ["DEFAULT_STATES", "METHODS", "fisp_signal", "phase_factor"]


def _check_tissue(name: str, value: torch.Tensor, *, positive: bool = True) -> None:
    v = value.detach()
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if positive and v.numel() and float(v.min()) <= 0:
        raise ValueError(f"{name} must be > 0 s, got {float(v.min()):.4g}")


def _prepare(train: FispTrain, t1, t2, b1, off_resonance, n_states):
    if not isinstance(train, FispTrain):
        raise TypeError(f"train must be a FispTrain, got {type(train).__name__}")
    train.validate()
    t1 = torch.as_tensor(t1)
    t2 = torch.as_tensor(t2)
    dtype = t1.dtype if t1.is_floating_point() else torch.get_default_dtype()
    t1 = t1.to(dtype)
    t2 = t2.to(dtype)
    if t1.shape != t2.shape:
        try:
            shape = torch.broadcast_shapes(t1.shape, t2.shape)
        except RuntimeError as err:
            raise ValueError(f"t1 {tuple(t1.shape)} and t2 {tuple(t2.shape)} must have one batch shape") from err
        t1, t2 = t1.expand(shape), t2.expand(shape)
    _check_tissue("t1", t1)
    _check_tissue("t2", t2)
    if t1.numel() and float(t1.detach().max()) > 1000:
        raise ValueError(f"t1 must be in seconds, got up to {float(t1.detach().max()):.4g}: milliseconds?")
    b1 = torch.ones((), dtype=dtype) if b1 is None else torch.as_tensor(b1).to(dtype)
    df = torch.zeros((), dtype=dtype) if off_resonance is None else torch.as_tensor(off_resonance).to(dtype)
    _check_tissue("b1", b1)
    _check_tissue("off_resonance", df, positive=False)
    try:
        shape = torch.broadcast_shapes(t1.shape, b1.shape, df.shape)
    except RuntimeError as err:
        raise ValueError("b1 and off_resonance must broadcast against t1/t2") from err
    if shape != t1.shape:
        raise ValueError(f"b1 and off_resonance must broadcast to t1's shape {tuple(t1.shape)}, not beyond")
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 1:
        raise ValueError(f"n_states must be an integer ≥ 1, got {n_states!r}")
    return train.to(dtype=dtype), t1, t2, b1, df, dtype


def fisp_signal(
    train: FispTrain,
    t1,
    t2,
    *,
    b1=None,
    off_resonance=None,
    n_states: int = DEFAULT_STATES,
    method: str = "auto",
    real: bool = False,
) -> torch.Tensor:
    """F⁺₀ at the echo time of every TR of a FISP train, for a batch of tissues and of sequences.

    Parameters
    ----------
    train : FispTrain
        Flip angles (..., N) [rad], TR and TE [s], RF phase, inversion. Leading dims = several sequences.
    t1, t2 : Tensor, shape ``(B...)``
        Relaxation times [s] (> 0). Their dtype sets the precision: float32 → complex64 signal, float64 →
        complex128.
    b1 : Tensor, shape broadcastable to ``(B...)``, optional
        Relative transmit field (the flip angle is scaled by it); default 1.
    off_resonance : Tensor, shape broadcastable to ``(B...)``, optional
        Off-resonance [Hz] (method ``"autograd"`` only; with a constant TR it does not change a FISP fingerprint).
    n_states : int
        EPG states kept (truncation; see the module docs and :data:`DEFAULT_STATES`).
    method : {"auto", "kernel", "sensitivities", "autograd"}
        See the module docs.
    real : bool
        Return the real amplitude ``a`` with ``signal = i·e^{iφ}·a`` (half the memory; exact without off-resonance,
        where the signal has that constant phase). With off-resonance it raises.

    Returns
    -------
    Tensor, shape ``train.batch_shape + t1.shape + (N,)``
        The signal relative to M0 = 1: complex (complex64 for float32 tissue, complex128 for float64), or real.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    train, t1, t2, b1, df, dtype = _prepare(train, t1, t2, b1, off_resonance, n_states)
    needs_train_grad = any(t.requires_grad for t in (train.flip, train.tr, train.te, train.phase))
    needs_tissue_grad = any(t.requires_grad for t in (t1, t2, b1))
    has_df = df.requires_grad or bool((df.detach() != 0).any())
    if method == "auto":
        if needs_train_grad or has_df or t1.device.type != "cpu":
            method = "autograd"
        elif needs_tissue_grad and torch.is_grad_enabled():
            method = "sensitivities"
        else:
            method = "kernel"
    if method in ("kernel", "sensitivities"):
        if has_df:
            raise ValueError(f"method {method!r} has no off-resonance; use method='autograd'")
        if needs_train_grad and torch.is_grad_enabled():
            raise ValueError(f"method {method!r} gives no gradient for the train; use method='autograd'")
        if method == "kernel" and needs_tissue_grad and torch.is_grad_enabled():
            raise ValueError("method 'kernel' gives no gradients; use 'sensitivities' or 'autograd'")
        amplitude = _fisp_compiled(train, t1, t2, b1, n_states, sensitivities=method == "sensitivities")
        return amplitude if real else amplitude * phase_factor(train)
    signal = _fisp_autograd(train, t1, t2, b1, df, n_states, dtype)
    if not real:
        return signal
    if has_df:
        raise ValueError("real=True needs off_resonance = 0 (the signal then has one constant phase)")
    return (signal * phase_factor(train).conj()).real


def phase_factor(train: FispTrain) -> torch.Tensor:
    """``i·e^{iφ}``: the constant phase of a FISP signal without off-resonance (``signal = factor · amplitude``)."""
    return 1j * torch.exp(1j * train.phase.to(complex_dtype(train.phase.dtype)))


# ----------------------------------------------------------------------------------------------- torch (autograd)


def _fisp_autograd(train, t1, t2, b1, df, n_states, dtype):
    """Complex EPG with plain torch ops (differentiable in everything). States (S, B, K)."""
    cdtype = complex_dtype(dtype)
    seq_shape = train.batch_shape
    n = train.frames
    flip = torch.broadcast_to(train.flip, seq_shape + (n,)).reshape(-1, n)
    tr = torch.broadcast_to(train.tr, seq_shape + (n,)).reshape(-1, n)
    te = torch.broadcast_to(train.te, seq_shape + (n,)).reshape(-1, n)
    tissue_shape = t1.shape
    r1 = (1.0 / t1).reshape(1, -1, 1)
    r2 = (1.0 / t2).reshape(1, -1, 1)
    b1f = torch.broadcast_to(b1, tissue_shape).reshape(1, -1, 1)
    w = (2 * math.pi * torch.broadcast_to(df, tissue_shape)).reshape(1, -1, 1)
    s_count, b_count, k = flip.shape[0], r1.shape[1], n_states
    zero_row = torch.zeros(s_count, b_count, 1, dtype=cdtype, device=t1.device)
    e_phi = torch.exp(1j * train.phase.to(cdtype))
    e_2phi = e_phi * e_phi
    fp = torch.zeros(s_count, b_count, k, dtype=cdtype, device=t1.device)
    fm = torch.zeros_like(fp)
    z0 = torch.ones(s_count, b_count, 1, dtype=dtype, device=t1.device)
    if train.inversion_time is not None:
        z0 = 1 + (-train.inversion_efficiency - 1) * torch.exp(-train.inversion_time * r1) * z0
    z = torch.cat([z0.to(cdtype), torch.zeros(s_count, b_count, k - 1, dtype=cdtype, device=t1.device)], -1)
    unit = torch.zeros(k, dtype=dtype, device=t1.device)
    unit[0] = 1
    out = []
    for i in range(n):
        alpha = flip[:, i].reshape(-1, 1, 1) * b1f
        c2 = torch.cos(alpha / 2) ** 2
        s2 = torch.sin(alpha / 2) ** 2
        sa = torch.sin(alpha)
        ca = torch.cos(alpha)
        fp, fm, z = (
            c2 * fp + e_2phi * s2 * fm - 1j * e_phi * sa * z,
            s2 * fp / e_2phi + c2 * fm + 1j * sa * z / e_phi,
            -0.5j * sa * fp / e_phi + 0.5j * e_phi * sa * fm + ca * z,
        )
        t_e = te[:, i].reshape(-1, 1, 1)
        t_r = tr[:, i].reshape(-1, 1, 1)
        out.append(fp[..., 0] * torch.exp(-t_e * r2 - 1j * w * t_e)[..., 0])
        e2 = torch.exp(-t_r * r2)
        rot = torch.exp(-1j * w * t_r)
        e1 = torch.exp(-t_r * r1)
        fp = fp * (e2 * rot)
        fm = fm * (e2 / rot)
        z = z * e1 + (1 - e1) * unit
        # shift by +1: F+ moves up, F- moves down, the new F+_0 is conj(F-_1)
        fm = torch.cat([fm[..., 1:], zero_row], -1)
        fp = torch.cat([fm[..., :1].conj(), fp[..., :-1]], -1)
    signal = torch.stack(out, -1)
    return signal.reshape(seq_shape + tissue_shape + (n,))


# ----------------------------------------------------------------------------------------------- compiled (numba)


def _set_threads() -> None:
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _kernel_args(train: FispTrain, np_dtype):
    seq_shape = train.batch_shape
    n = train.frames

    def as_array(t: torch.Tensor) -> np.ndarray:  # contiguous: one compiled version of each kernel
        return np.ascontiguousarray(torch.broadcast_to(t.detach(), seq_shape + (n,)).reshape(-1, n).cpu().double())

    flip, tr, te = as_array(train.flip), as_array(train.tr), as_array(train.te)
    if train.inversion_time is None:
        z_start, ti = 1.0, 0.0
    else:
        z_start, ti = -train.inversion_efficiency, train.inversion_time
    return flip, tr, te, z_start, ti, np_dtype(0.5)


def _fisp_compiled(train, t1, t2, b1, n_states, *, sensitivities: bool):
    if sensitivities:
        return _FispSensitivity.apply(train, n_states, t1, t2, torch.broadcast_to(b1, t1.shape))
    amplitude, _ = _run_kernel(train, t1, t2, b1, n_states, jacobian=False)
    return amplitude


def _run_kernel(train, t1, t2, b1, n_states, *, jacobian: bool):
    """Real amplitude p₀ ``(S..., B..., N)`` [and ∂p₀/∂(T1, T2, B1) ``(S..., B..., N, 3)``] from the compiled kernel."""
    from .kernels import fisp_kernel, fisp_sensitivities

    _set_threads()
    dtype = t1.dtype
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    flip, tr, te, z_start, ti, half = _kernel_args(train, np_dtype)
    tissue_shape = t1.shape
    t1n = t1.detach().reshape(-1).cpu().double().numpy()
    t2n = t2.detach().reshape(-1).cpu().double().numpy()
    b1n = torch.broadcast_to(b1.detach(), tissue_shape).reshape(-1).cpu().double().numpy()
    s_count, n = flip.shape
    atoms = t1n.shape[0]
    real = np.empty((s_count, atoms, n), np_dtype)
    jac = np.empty((s_count, atoms, n, 3), np_dtype) if jacobian else None
    for s in range(s_count):
        if atoms == 0:
            continue
        if jacobian:
            fisp_sensitivities(flip[s], tr[s], te[s], t1n, t2n, b1n, n_states, z_start, ti, half, real[s], jac[s])
        else:
            fisp_kernel(flip[s], tr[s], te[s], t1n, t2n, b1n, n_states, z_start, ti, half, real[s])
    shape = train.batch_shape + tissue_shape + (n,)
    amplitude = torch.from_numpy(real).reshape(shape)
    return amplitude, None if jac is None else torch.from_numpy(jac).reshape(shape + (3,))


class _FispSensitivity(torch.autograd.Function):
    """Amplitude from the kernel; its vector-Jacobian product from the forward sensitivities."""

    @staticmethod
    def forward(ctx, train, n_states, t1, t2, b1):
        amplitude, jac = _run_kernel(train, t1, t2, b1, n_states, jacobian=True)
        ctx.save_for_backward(jac)
        ctx.seq_dims = len(train.batch_shape)
        return amplitude

    @staticmethod
    def backward(ctx, grad):
        (jac,) = ctx.saved_tensors
        per = (grad.unsqueeze(-1) * jac).sum(-2)  # (S..., B..., 3)
        if ctx.seq_dims:
            per = per.sum(tuple(range(ctx.seq_dims)))
        return None, None, per[..., 0], per[..., 1], per[..., 2]

"""PDG: gradients (float64 gradcheck), state merging, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gradmr.phantom import VoxelPhantom, brain_phantom
from gradmr.recon import reconstruct_cartesian
from gradmr.sequence import Repetition, Sequence, flash
from gradmr.sim.pdg import simulate_pdg
from sim_seqs import rep, spin_echo

F64 = torch.float64
NX = NY = 2
FOV = 0.02


def _maps():
    g = torch.Generator().manual_seed(1)
    pd = 0.5 + torch.rand(1, NY, NX, generator=g, dtype=F64)
    t1 = 0.5 + torch.rand(1, NY, NX, generator=g, dtype=F64)
    t2 = 0.05 + 0.05 * torch.rand(1, NY, NX, generator=g, dtype=F64)
    b0 = 20 * torch.randn(1, NY, NX, generator=g, dtype=F64)
    return pd, t1, t2, b0


def _sequence(angles, times, moments):
    """A 2-line FLASH-like sequence whose flip angles, readout event times and moments are inputs."""
    reps = []
    dk = 1 / FOV
    for line in range(NY):
        ky = (line - NY // 2) * dk
        gradm = torch.stack(
            [
                torch.stack([moments[0], torch.tensor(ky, dtype=F64), torch.tensor(0.0, dtype=F64)]),
                torch.stack([moments[1], torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64)]),
                torch.stack([moments[1], torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64)]),
                torch.tensor([3 * dk, -ky, 0.0], dtype=F64),
            ]
        )
        event_time = torch.stack([times[0], times[1], times[1], torch.tensor(5e-3, dtype=F64)])
        reps.append(
            Repetition(
                pulse_angle=angles[line],
                pulse_phase=torch.tensor(0.7 * line, dtype=F64),
                event_time=event_time,
                gradm=gradm,
                adc_usage=torch.tensor([False, True, True, False]),
                adc_phase=torch.zeros(4, dtype=F64),
            )
        )
    return Sequence(reps)


def _image(sig):
    k = sig[:, 0].reshape(NY, NX)
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k)))


@pytest.mark.parametrize("voxel_shape", ["sinc", "box"])
def test_gradcheck_image_loss(voxel_shape):
    """d(image-space loss)/d(PD, T1, T2, B0, flip angles, event times, gradient moments), float64."""
    pd, t1, t2, b0 = _maps()
    target = torch.randn(NY, NX, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    angles = torch.tensor([0.3, 0.5], dtype=F64)
    times = torch.tensor([2e-3, 1e-3], dtype=F64)
    moments = torch.tensor([-2 / FOV, 1 / FOV], dtype=F64)

    def loss(pd, t1, t2, b0, angles, times, moments):
        ph = VoxelPhantom.create(
            pd=pd, t1=t1, t2=t2, t2dash=0.03, b0=b0, voxel_size=(FOV / NX, FOV / NY, 5e-3), dtype=F64
        )
        img = _image(simulate_pdg(_sequence(angles, times, moments), ph, voxel_shape=voxel_shape))
        return (img - target).abs().pow(2).sum()

    inputs = tuple(x.clone().requires_grad_(True) for x in (pd, t1, t2, b0, angles, times, moments))
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-7, atol=1e-6, rtol=1e-4)


def test_gradcheck_diffusion_and_t2dash():
    """Gradients with respect to D and T2' through a spin echo with a diffusion gradient pair."""
    seq = Sequence(
        [
            rep(math.pi / 2, math.pi / 2, [4e-3, 1e-3], gradm=[[5e3, 0, 0], [0, 0, 0]]),
            rep(
                math.pi,
                0.0,
                [1e-3, 4e-3, 1e-3, 1e-3],
                gradm=[[0, 0, 0], [5e3, 0, 0], [0, 0, 0], [0, 0, 0]],
                adc=[2, 3],
                usage="refocusing",
            ),
        ]
    )

    def sig(d, t2dash):
        one = torch.ones(1, 1, dtype=F64)
        ph = VoxelPhantom.create(pd=one, t1=one, t2=one * 0.1, t2dash=t2dash, d=d, voxel_size=(1e-6,) * 3, dtype=F64)
        return simulate_pdg(seq, ph)

    d = torch.full((1, 1), 2e-9, dtype=F64, requires_grad=True)
    t2dash = torch.full((1, 1), 0.02, dtype=F64, requires_grad=True)
    # D is ~1e-9: scale it to O(1) for the finite differences
    assert torch.autograd.gradcheck(lambda ds, t: sig(ds * 1e-9, t), (d * 1e9, t2dash), eps=1e-6, atol=1e-7)


def test_merging_is_exact_in_value():
    """Merged and unmerged graphs give the same signal where the unmerged one is not truncated."""
    seq = spin_echo(te=20e-3, tr=0.2, n_tr=3)
    ph = brain_phantom(matrix=(8, 8), pools="multi", dtype=F64)
    merged = simulate_pdg(seq, ph, merge_states=True)
    plain = simulate_pdg(seq, ph, merge_states=False)
    torch.testing.assert_close(merged, plain, rtol=1e-10, atol=1e-12)


def test_per_tissue_graph_equals_per_voxel():
    """Grouping voxels by (T1, T2, D, B1) is exact: compare against per-voxel (T1 requiring grad)."""
    seq = flash(matrix=(8, 8), fov=(0.2, 0.2), flip_angle=math.radians(20), tr=8e-3)
    ph = brain_phantom(matrix=(8, 8), pools="multi", dtype=F64)
    grouped = simulate_pdg(seq, ph)
    per_voxel = simulate_pdg(seq, ph.replace(t1=ph.t1.clone().requires_grad_(True)))
    torch.testing.assert_close(grouped, per_voxel.detach(), rtol=1e-10, atol=1e-12)


def test_image_orientation_and_normalisation():
    """An off-centre, asymmetric object reconstructs in place, not mirrored, at its PD."""
    n = 16
    pd = torch.zeros(1, n, n, dtype=F64)
    pd[0, 3, 10] = 1.0  # y index 3, x index 10
    one = torch.ones_like(pd)
    ph = VoxelPhantom.create(
        pd=pd, t1=one * 0.1, t2=one * 0.09, t2dash=one * 100, voxel_size=(0.2 / n, 0.2 / n, 5e-3), dtype=F64
    )
    seq = flash(matrix=(n, n), fov=(0.2, 0.2), flip_angle=math.pi / 2, tr=5.0)
    img = reconstruct_cartesian(simulate_pdg(seq, ph), seq.kspace(), fov=(0.2, 0.2, 1.0), matrix=(1, n, n))[0, 0]
    peak = divmod(int(img.abs().argmax()), n)
    assert peak == (3, 10)
    # TR = 50·T1, so every 90° pulse sees full Mz; a lone voxel's image value is then the mean
    # over the readout of PD·exp(−t_j/T2 − t_j/T2′) (every line is identical)
    t_samples = torch.cumsum(seq[0].event_time, 0)[seq[0].adc_usage]
    assert img.abs()[3, 10].item() == pytest.approx(
        torch.exp(-t_samples * (1 / 0.09 + 1 / 100)).mean().item(), rel=1e-9
    )


# ------------------------------------------------------------------ bad input
def _ok_phantom(**overrides):
    maps = dict(pd=torch.ones(2, 2), t1=torch.ones(2, 2), t2=torch.full((2, 2), 0.1))
    maps.update(overrides)
    return maps


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(t1=-torch.ones(2, 2)), "map t1 must be > 0"),
        (dict(t2=torch.zeros(2, 2)), "map t2 must be > 0"),
        (dict(pd=torch.tensor([[1.0, float("nan")], [1, 1]])), "map pd contains 1 NaN"),
        (dict(b0=torch.tensor([[0.0, float("inf")], [0, 0]])), "map b0 contains 1 NaN or infinite"),
        (dict(t2=torch.ones(3, 2)), "map t2 has shape"),
        (dict(d=torch.full((2, 2), 3e-3)), "diffusivity is in m²/s"),
        (dict(pd=-torch.ones(2, 2)), "map pd must be ≥ 0"),
    ],
)
def test_phantom_validation_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        VoxelPhantom.create(**_ok_phantom(**overrides))


def test_t2_above_t1_warns():
    with pytest.warns(UserWarning, match="T2 > T1"):
        VoxelPhantom.create(**_ok_phantom(t2=torch.full((2, 2), 2.0)))


def test_flip_angle_in_degrees_is_rejected():
    seq = Sequence([rep(90.0, 0.0, [1e-3], adc=[0])])
    ph = VoxelPhantom.create(**_ok_phantom())
    with pytest.raises(ValueError, match="pulse_angle = 90 rad.*radians"):
        simulate_pdg(seq, ph)
    with pytest.raises(ValueError, match="flip_angle must be in"):
        flash(flip_angle=30.0)


def test_sequence_value_errors():
    ph = VoxelPhantom.create(**_ok_phantom())
    with pytest.raises(ValueError, match="event_time must be ≥ 0"):
        simulate_pdg(Sequence([rep(0.5, 0.0, [-1e-3], adc=[0])]), ph)
    with pytest.raises(ValueError, match="gradm must have shape"):
        Repetition(
            pulse_angle=torch.tensor(0.1),
            pulse_phase=torch.tensor(0.0),
            event_time=torch.ones(3),
            gradm=torch.zeros(2, 3),
            adc_usage=torch.zeros(3, dtype=torch.bool),
            adc_phase=torch.zeros(3),
        )
    with pytest.raises(ValueError, match="te = .* shorter than the readout"):
        flash(te=1e-4)
    with pytest.raises(ValueError, match="voxel_shape must be one of"):
        simulate_pdg(flash(matrix=(2, 2)), ph, voxel_shape="gauss")


def test_checkpointing_gives_identical_gradients():
    seq = flash(matrix=(8, 8), fov=(0.2, 0.2), flip_angle=math.radians(20), tr=8e-3)
    ph = brain_phantom(matrix=(8, 8), pools="mixed", dtype=F64)
    grads = []
    for every in (0, 3):
        t1 = ph.t1.clone().requires_grad_(True)
        simulate_pdg(seq, ph.replace(t1=t1), checkpoint_every=every).abs().pow(2).sum().backward()
        grads.append(t1.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=0)

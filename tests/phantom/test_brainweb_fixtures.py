"""The BrainWeb label fixtures (``BrainModel.mat``, ``brain2D.mat``) as partial-volume fractions: exact area
averaging, orientation checked against the anatomy, and a FLASH image of a slice that shows it."""

import math

import numpy as np
import pytest
import torch

from gradmr.io.brainweb import (
    BRAIN2D_CODES,
    BRAINMODEL_CODES,
    brain2d_fractions,
    brain2d_labels,
    brainmodel_fractions,
    brainmodel_volume_fractions,
    load_label_volume_mat,
)
from gradmr.phantom.fractions import phantom_from_fractions
from gradmr.phantom.resample import area_resample
from gradmr.phantom.tissues import tissue_table
from gradmr.recon import reconstruct_cartesian
from gradmr.sequence.flash import flash
from gradmr.sim import simulate
from shared_data import shared_file

EXACT = 1e-6


@pytest.fixture(scope="module")
def anatomy():
    """``Anatomy`` as stored: [anterior → posterior, left–right, vertex → inferior]."""
    return load_label_volume_mat(shared_file("BrainModel.mat"), variable="Anatomy")


def _stored_slice(a, orientation, index):
    """The slice of the stored array, oriented by hand: axial (y anterior, x), coronal and sagittal (z superior, …);
    ``index`` counts from inferior (axial), posterior (coronal) or along the stored left–right axis (sagittal)."""
    n0, _, n2 = a.shape
    if orientation == "axial":
        return a[::-1, :, n2 - 1 - index]
    if orientation == "coronal":
        return a[n0 - 1 - index, :, ::-1].T
    return a[::-1, index, ::-1].T


def _check_fractions(tf, labels, codes, voxel_volume):
    """Sums ≤ 1, = 1 where the output voxel lies wholly in the head; volumes = label counts × voxel volume."""
    total = tf.total()[0].double()
    assert float(total.max()) <= 1 + EXACT
    head = torch.from_numpy((labels != 0).astype(np.float64))
    vin = (voxel_volume[1], voxel_volume[0])  # (y, x)
    vout = (float(tf.voxel_size[1]), float(tf.voxel_size[0]))
    head_cover = area_resample(head, tf.grid_shape[1:], voxel_size_in=vin, voxel_size_out=vout)
    full = head_cover > 1 - 1e-12
    assert full.sum() > 10
    torch.testing.assert_close(total[full], torch.ones_like(total[full]), atol=EXACT, rtol=0)
    volumes = tf.volumes()
    dv = voxel_volume[0] * voxel_volume[1] * voxel_volume[2]
    for name in tf.names:
        count = int(np.isin(labels, [c for c, n in codes.items() if n == name]).sum())
        assert volumes[name] == pytest.approx(count * dv, rel=EXACT, abs=1e-30), name


# ---------------------------------------------------------------------------------------------------- BrainModel
@pytest.mark.parametrize(
    ("orientation", "index"),
    [("axial", None), ("axial", 40), ("coronal", None), ("coronal", 150), ("sagittal", None), ("sagittal", 120)],
)
def test_brainmodel_slices(anatomy, orientation, index):
    path = shared_file("BrainModel.mat")
    full = brainmodel_fractions(path, orientation=orientation, index=index)
    expected_shape = {"axial": (216, 180), "coronal": (180, 180), "sagittal": (180, 216)}[orientation]
    assert full.grid_shape == (1,) + expected_shape
    k = {"axial": 180, "coronal": 216, "sagittal": 180}[orientation] // 2 if index is None else index
    labels = _stored_slice(anatomy, orientation, k)
    for name in full.names:  # full resolution: the one-hot labels, oriented as documented
        onehot = np.isin(labels, [c for c, n in BRAINMODEL_CODES.items() if n == name])
        np.testing.assert_array_equal(full[name][0].numpy(), onehot.astype(np.float32), err_msg=name)
    coarse = brainmodel_fractions(path, orientation=orientation, index=index, matrix=(24, 20))
    assert coarse.grid_shape == (1, 24, 20)
    _check_fractions(coarse, labels, BRAINMODEL_CODES, (1e-3, 1e-3, 1e-3))
    # a larger square FOV pads with background and keeps every volume
    padded = brainmodel_fractions(path, orientation=orientation, index=index, matrix=(32, 32), fov=(0.24, 0.24))
    assert torch.allclose(padded.voxel_size, torch.tensor([0.24 / 32, 0.24 / 32, 1e-3]))
    _check_fractions(padded, labels, BRAINMODEL_CODES, (1e-3, 1e-3, 1e-3))


def test_brainmodel_volume(anatomy):
    path = shared_file("BrainModel.mat")
    vol = brainmodel_volume_fractions(path)
    assert vol.grid_shape == (180, 216, 180) and vol.names == ("csf", "gm", "wm", "fat", "skin", "skull")
    # every slice is the matching slice of the volume
    torch.testing.assert_close(
        brainmodel_fractions(path, orientation="axial", index=30).fractions, vol.slice_z(30).fractions
    )
    sag = brainmodel_fractions(path, orientation="sagittal", index=70).fractions[:, 0]
    torch.testing.assert_close(sag, vol.fractions[:, :, :, 70])
    cor = brainmodel_fractions(path, orientation="coronal", index=150).fractions[:, 0]
    torch.testing.assert_close(cor, vol.fractions[:, :, 150, :])
    coarse = brainmodel_volume_fractions(path, shape=(45, 54, 45))
    assert torch.allclose(coarse.voxel_size, torch.tensor([4e-3] * 3))
    for name, v in coarse.volumes().items():
        count = int(np.isin(anatomy, [c for c, n in BRAINMODEL_CODES.items() if n == name]).sum())
        assert v == pytest.approx(count * 1e-9, rel=EXACT), name
    total = coarse.total()
    assert float(total.max()) <= 1 + EXACT
    # the brain sits above the head's centre of mass (the neck is in the volume); anterior: see the sagittal test
    f = vol.fractions.double()
    head, brain = f.sum(0), f[1] + f[2]
    z, _, _ = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in vol.grid_shape), indexing="ij")
    centroid = lambda w, c: float((w * c).sum() / w.sum())  # noqa: E731
    assert centroid(brain, z) > centroid(head, z) + 5


@pytest.mark.parametrize("orientation", ["coronal", "sagittal"])
def test_brainmodel_is_right_way_up(orientation):
    """Superior = +y: scalp and skull above the brain, the neck cut by the inferior FOV edge."""
    tf = brainmodel_fractions(shared_file("BrainModel.mat"), orientation=orientation)
    _superior_is_plus_y(tf)


def _superior_is_plus_y(tf):
    """The FOV cuts the head wide open at its inferior edge (neck, face) and at most through the crown at the
    superior one, and scalp and skull lie above the brain."""
    head = tf.total()[0]
    brain = tf["gm"][0] + tf["wm"][0]
    width = (head > 0).sum(1).double()
    rows = torch.nonzero(width)[:, 0]
    bottom, top = float(width[0]), float(width[int(rows.max())])
    assert bottom > 0.5 * float(width.max()) and bottom > 1.5 * top
    top = int(rows.max())
    assert float(brain[top - 2 : top + 1].sum()) == 0, "the top of the head must be scalp and skull"


def _anterior_is_plus_x_in_sagittal(tf):
    """Face and jaw lie in front of the brain, below it: the head's lowest part is anterior to the brain."""
    head = tf.total()[0].double()
    brain = (tf["gm"][0] + tf["wm"][0]).double()
    zz, yy = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in head.shape), indexing="ij")
    brain_rows = torch.nonzero(brain.sum(1) > 0)[:, 0]
    low = head * (zz < brain_rows.min() + (brain_rows.max() - brain_rows.min()) // 4)
    ant = lambda w: float((w * yy).sum() / w.sum())  # noqa: E731
    assert ant(low) > ant(brain) + 0.03 * head.shape[1]


def test_brainmodel_midline_sagittal_faces_plus_x():
    _anterior_is_plus_x_in_sagittal(brainmodel_fractions(shared_file("BrainModel.mat"), orientation="sagittal"))


def test_brainmodel_axial_anatomy():
    tf = brainmodel_fractions(shared_file("BrainModel.mat"), orientation="axial", index=84, matrix=(54, 45))
    _axial_anatomy(tf)


def _axial_anatomy(tf):
    """WM centred in the head; the ventricles (CSF) near the centre."""
    head = tf.total()[0].double()
    ny, nx = head.shape
    yy, xx = torch.meshgrid(torch.arange(ny, dtype=torch.float64), torch.arange(nx, dtype=torch.float64), indexing="ij")
    c = lambda w, g: float((w * g).sum() / w.sum())  # noqa: E731
    wm, csf = tf["wm"][0].double(), tf["csf"][0].double()
    cy, cx = c(head, yy), c(head, xx)
    assert abs(c(wm, yy) - cy) < 0.08 * ny and abs(c(wm, xx) - cx) < 0.08 * nx
    central = ((yy - cy).abs() < 0.12 * ny) & ((xx - cx).abs() < 0.12 * nx)
    assert float(csf[central].mean()) > 0.1, "the lateral ventricles must lie near the centre"


# ---------------------------------------------------------------------------------------------------- brain2D
@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_brain2d_slices(orientation):
    path = shared_file("brain2D.mat")
    stored = load_label_volume_mat(path, variable=orientation)
    labels = brain2d_labels(path, orientation=orientation)
    np.testing.assert_array_equal(labels, stored if orientation == "axial" else stored.T)
    full = brain2d_fractions(path, orientation=orientation)
    assert full.grid_shape == (1,) + labels.shape
    assert torch.allclose(full.voxel_size, torch.tensor([0.5e-3] * 3))
    for name in full.names:
        onehot = np.isin(labels, [c for c, n in BRAIN2D_CODES.items() if n == name])
        np.testing.assert_array_equal(full[name][0].numpy(), onehot.astype(np.float32), err_msg=name)
    for matrix, fov in (((17, 23), None), ((40, 40), (0.23, 0.23))):
        tf = brain2d_fractions(path, orientation=orientation, matrix=matrix, fov=fov)
        assert tf.grid_shape == (1,) + matrix
        _check_fractions(tf, labels, BRAIN2D_CODES, (0.5e-3, 0.5e-3, 0.5e-3))


def test_brain2d_slices_intersect_consistently():
    """The three slices come from one volume: where they cross, their labels agree — along y (axial and sagittal),
    along x (axial and coronal) and along z (coronal and sagittal); with y or z reversed in one of them they don't.
    This pins the relative orientation; the anatomy tests below pin the absolute one."""
    path = shared_file("brain2D.mat")
    ax, co, sa = (brain2d_labels(path, orientation=o) for o in ("axial", "coronal", "sagittal"))
    # axial (y, x) is slice z = 180; coronal (z, x) is slice y = 216; sagittal (z, y) is slice x = 180
    np.testing.assert_array_equal(ax[:, 180], sa[180, :])
    np.testing.assert_array_equal(ax[216, :], co[180, :])
    np.testing.assert_array_equal(co[:, 180], sa[:, 216])
    assert (ax[:, 180] != 0).sum() > 300 and (co[:, 180] != 0).sum() > 300
    assert (ax[::-1, 180] != sa[180, :]).mean() > 0.2
    assert (co[::-1, 180] != sa[:, 216]).mean() > 0.2


def test_brain2d_anatomy():
    path = shared_file("brain2D.mat")
    for orientation in ("coronal", "sagittal"):
        _superior_is_plus_y(brain2d_fractions(path, orientation=orientation))
    _anterior_is_plus_x_in_sagittal(brain2d_fractions(path, orientation="sagittal"))
    _axial_anatomy(brain2d_fractions(path, orientation="axial", matrix=(62, 52)))


# ---------------------------------------------------------------------------------------------------- FLASH
def test_flash_image_of_a_slice_shows_the_anatomy():
    n, fov = 32, 0.22
    fractions = brain2d_fractions(
        shared_file("brain2D.mat"), orientation="axial", matrix=(n, n), fov=(fov, fov), slice_thickness=5e-3
    )
    table = tissue_table(3.0)
    if not set(fractions.names) <= set(table):
        fractions = fractions.select(["csf", "gm", "wm"])
    phantom = phantom_from_fractions(fractions, model="multi", dtype=torch.float64)
    alpha, tr = math.radians(30), 20e-3  # T1-weighted: WM brighter than GM
    seq = flash(matrix=(n, n), fov=(fov, fov), flip_angle=alpha, tr=tr, dummy_scans=20)
    image = reconstruct_cartesian(simulate(seq, phantom), seq.kspace(), fov=(fov, fov, 1.0), matrix=(1, n, n))[0, 0]
    image = image.abs()
    # expected: Σ fraction · PD · spoiled steady state · T2* decay at the echo
    rep = seq[-1]
    te = float(torch.cumsum(rep.event_time, 0)[rep.adc_usage][n // 2])
    expected = torch.zeros(n, n, dtype=torch.float64)
    for i, name in enumerate(fractions.names):
        t = table[name]
        e1 = math.exp(-tr / t.t1)
        steady = t.pd * math.sin(alpha) * (1 - e1) / (1 - math.cos(alpha) * e1)
        expected += fractions.fractions[i, 0].double() * steady * math.exp(-te * (1 / t.t2 + 1 / t.t2dash))
    r = np.corrcoef(image.flatten().numpy(), expected.flatten().numpy())[0, 1]
    assert r > 0.9, f"Pearson correlation {r:.3f}"
    gm, wm = fractions["gm"][0], fractions["wm"][0]
    assert float(image[wm > 0.7].mean()) > 1.2 * float(image[gm > 0.6].mean())
    # No check of the absolute level here: RF-spoiled FLASH departs from the ideal-spoiling (Ernst) formula by
    # ~10 % for CSF's long T2 (that physics is tested against Bloch and MR-zero in tests/sim); this test is
    # about the anatomy.

"""BrainWeb fuzzy models: every file layout on tiny synthetic volumes, the download path with the network blocked,
and the BMapEst preprocessing against a literal re-implementation of its steps."""

import gzip
import socket
import struct
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from gradmr.io.brainweb import (
    BRAINWEB_ALIASES,
    BRAINWEB_DL_CHANNELS,
    BRAINWEB_URL,
    BrainWebUnavailableError,
    fetch_brainweb,
    labels_to_fractions,
    load_brainweb,
    load_brainweb_fuzzy,
    load_brainweb_raw_tissue,
)
from gradmr.phantom.brainweb import bmapest_preprocess

SHAPE = (4, 5, 6)  # (z, y, x)
MARK = (1, 3, 4)  # a voxel away from every symmetry of SHAPE
ALIASES = tuple(BRAINWEB_ALIASES)  # the 11 fuzzy classes
LIBRARY_ORDER = ("csf", "gm", "wm", "fat", "muscle", "skin", "skull", "vessels", "dura", "marrow")


def _flat(z, y, x, shape=SHAPE):
    """Position in BrainWeb's file order: x fastest, then y, then z."""
    return (z * shape[1] + y) * shape[2] + x


def _counts(levels, seed=0, over=True):
    """Integer fuzzy values per alias, shape (z, y, x): random partitions of ``levels``, a marker voxel that is all
    grey matter, and (``over``) one voxel whose values sum above ``levels`` as quantisation makes them do."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(ALIASES) + 1), size=SHAPE)  # + background
    counts = np.floor(weights[..., 1:] * levels).astype(np.int64)
    counts[MARK] = 0
    counts[MARK + (ALIASES.index("gry"),)] = levels
    if over:
        counts[0, 0, 0] = 0
        counts[0, 0, 0, ALIASES.index("csf")] = levels
        counts[0, 0, 0, ALIASES.index("wht")] = 3  # sum = levels + 3
    return {a: counts[..., i] for i, a in enumerate(ALIASES)}


def _expected(counts, levels):
    """Library fractions the loaders must return: fat + fat2, clipped, divided by the sum where it exceeds 1."""
    out = {}
    for alias, c in counts.items():
        name = BRAINWEB_ALIASES[alias]
        out[name] = out.get(name, 0) + c / levels
    names = [n for n in LIBRARY_ORDER if n in out]
    stack = np.clip(np.stack([out[n] for n in names]), 0, 1)
    total = stack.sum(0)
    stack = np.where(total > 1, stack / np.where(total > 1, total, 1), stack)
    return names, stack


def _encode(values, encoding):
    """Bytes of one raw file, written value by value in file order (independent of NumPy's reshape)."""
    nz, ny, nx = SHAPE
    out = bytearray()
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                v = int(values[z, y, x])
                if encoding == "rawb":
                    out.append(v)
                elif encoding == "i8":
                    out.append((v + 128) % 256)  # MR-zero/BMapEst cache: the stored byte is the value − 128
                else:
                    out += struct.pack("<H", v)
    return bytes(out)


def _write_raw(folder, counts, encoding, *, gz=False, subject=4, aliases=ALIASES):
    folder.mkdir(parents=True, exist_ok=True)
    for alias in aliases:
        data = _encode(counts[alias], encoding)
        name = f"subject{subject:02d}_{alias}.{encoding}" + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(data) if gz else data)


def _write_dl(path, counts):
    """A brainweb-dl style file: (z, y, x, 12) uint16 in raw order, affine diag 0.5 mm (which claims x, y, z)."""
    data = np.zeros(SHAPE + (len(BRAINWEB_DL_CHANNELS),), dtype=np.uint16)
    for i, ch in enumerate(BRAINWEB_DL_CHANNELS):
        if ch != "bck":
            data[..., i] = counts[ch]
    data[..., 0] = 4095 - np.minimum(data[..., 1:].sum(-1), 4095)
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve a name or open a connection fails as it does offline."""

    def refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def empty_home_cache(monkeypatch, tmp_path):
    """brainweb-dl's default cache pointed at an empty folder, so no real download on this machine is found."""
    d = tmp_path / "home-cache"
    d.mkdir()
    monkeypatch.setenv("BRAINWEB_DIR", str(d))
    return d


# ---------------------------------------------------------------------------------------------------- raw layout
@pytest.mark.parametrize(
    ("encoding", "levels", "gz", "subfolder"),
    [("rawb", 255, False, False), ("rawb", 255, True, True), ("raws", 4095, False, True), ("i8", 255, True, False)],
)
def test_raw_directory_reads_every_encoding(tmp_path, encoding, levels, gz, subfolder):
    counts = _counts(levels)
    _write_raw(tmp_path / "subject04" if subfolder else tmp_path, counts, encoding, gz=gz)
    tf = load_brainweb_fuzzy(tmp_path, shape=SHAPE)
    names, expected = _expected(counts, levels)
    assert tf.names == tuple(names) == LIBRARY_ORDER
    assert tf.grid_shape == SHAPE
    torch.testing.assert_close(tf.fractions, torch.from_numpy(expected).float(), atol=1e-6, rtol=0)
    assert torch.allclose(tf.voxel_size, torch.tensor([0.5e-3] * 3))
    # orientation: the all-GM marker written at file position (z, y, x) = MARK lands at [z, y, x]
    assert tf["gm"][MARK] == 1 and float(tf.total()[MARK]) == 1
    # fat is fat + fat2; the over-full voxel is renormalised to a sum of 1
    assert float(tf.total()[0, 0, 0]) == pytest.approx(1.0, abs=1e-6)
    assert float(tf.total().max()) <= 1 + 1e-6


def test_raw_tissue_decodings_and_marker(tmp_path):
    values = np.zeros(SHAPE, dtype=np.int64)
    values[MARK] = 200
    values[0, 0, 1] = 1
    for encoding, full in (("rawb", 255), ("i8", 255), ("raws", 4095)):
        p = tmp_path / f"t.{encoding}"
        p.write_bytes(_encode(values, encoding))
        out = load_brainweb_raw_tissue(p, shape=SHAPE)
        assert out.shape == SHAPE and out.dtype == np.float32
        np.testing.assert_allclose(out, values / full, atol=1e-7)
    # .i8: background (value 0) is stored as byte 128 and value 255 as byte 127
    p = tmp_path / "s.i8"
    p.write_bytes(bytes([128, 127, 0, 255]) + bytes([128]) * (int(np.prod(SHAPE)) - 4))
    out = load_brainweb_raw_tissue(p, shape=SHAPE).ravel()
    np.testing.assert_allclose(out[:4], [0, 1, 128 / 255, 127 / 255], atol=1e-7)
    # a file without a known extension needs its encoding; a wrong size is reported with the expected one
    q = tmp_path / "t.bin"
    q.write_bytes(_encode(values, "rawb"))
    with pytest.raises(ValueError, match="encoding"):
        load_brainweb_raw_tissue(q, shape=SHAPE)
    np.testing.assert_allclose(load_brainweb_raw_tissue(q, shape=SHAPE, encoding="rawb"), values / 255, atol=1e-7)
    with pytest.raises(ValueError, match="needs 480"):
        load_brainweb_raw_tissue(q, shape=(4, 5, 12), encoding="raws")
    with pytest.raises(FileNotFoundError, match="nothing.rawb"):
        load_brainweb_raw_tissue(tmp_path / "nothing.rawb", shape=SHAPE)


def test_raw_directory_subset_subjects_and_missing_files(tmp_path):
    counts = _counts(255, over=False)
    _write_raw(tmp_path, counts, "rawb", aliases=("csf", "gry", "wht", "fat"))
    tf = load_brainweb_fuzzy(tmp_path, shape=SHAPE)
    assert tf.names == ("csf", "gm", "wm", "fat")
    fat = load_brainweb_fuzzy(tmp_path, shape=SHAPE, tissues=("fat",))  # fat2 ("around fat") is optional
    np.testing.assert_allclose(fat["fat"].numpy(), counts["fat"] / 255, atol=1e-6)
    with pytest.raises(FileNotFoundError, match=r"subject04_ves\.rawb"):
        load_brainweb_fuzzy(tmp_path, shape=SHAPE, tissues=("csf", "gm", "wm", "vessels"))
    assert load_brainweb_fuzzy(tmp_path, shape=SHAPE, tissues=("gm",)).names == ("gm",)
    # a second subject: the directory is ambiguous until one is chosen
    _write_raw(tmp_path / "subject05", counts, "rawb", subject=5, aliases=("csf",))
    with pytest.raises(ValueError, match="subject="):
        load_brainweb_fuzzy(tmp_path, shape=SHAPE)
    assert load_brainweb_fuzzy(tmp_path, subject=5, shape=SHAPE).names == ("csf",)
    with pytest.raises(ValueError, match="BrainWeb ids"):
        load_brainweb_fuzzy(tmp_path, subject=7, shape=SHAPE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"subject04_gry\.rawb") as err:
        load_brainweb_fuzzy(empty)
    assert "brainweb_s04_fuzzy.nii.gz" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_brainweb_fuzzy(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------- NIfTI layouts
@pytest.mark.parametrize("as_directory", [False, True])
def test_brainweb_dl_file_is_read_in_raw_order(tmp_path, as_directory):
    counts = _counts(4095)
    path = tmp_path / "brainweb_s04_fuzzy.nii.gz"
    _write_dl(path, counts)
    tf = load_brainweb_fuzzy(tmp_path if as_directory else path)
    names, expected = _expected(counts, 4095)
    assert tf.names == tuple(names)
    torch.testing.assert_close(tf.fractions, torch.from_numpy(expected).float(), atol=1e-6, rtol=0)
    assert tf["gm"][MARK] == 1  # array index [z, y, x], not transposed although the affine says (x, y, z)
    assert torch.allclose(tf.voxel_size, torch.tensor([0.5e-3] * 3))


def test_generic_nifti_follows_the_nifti_convention(tmp_path):
    counts = _counts(255, over=False)
    nz, ny, nx = SHAPE
    data = np.zeros((nx, ny, nz, 12), dtype=np.uint8)  # (x, y, z, tissue)
    for i, ch in enumerate(BRAINWEB_DL_CHANNELS[1:], start=1):
        data[..., i] = counts[ch].transpose(2, 1, 0)
    path = tmp_path / "fuzzy.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.6, 0.7, 1.0])), str(path))
    tf = load_brainweb_fuzzy(path)
    names, expected = _expected(counts, 255)  # uint8 data with maximum ≤ 255: divided by 255
    assert tf.names == tuple(names)
    torch.testing.assert_close(tf.fractions, torch.from_numpy(expected).float(), atol=1e-6, rtol=0)
    assert torch.allclose(tf.voxel_size, torch.tensor([0.5e-3, 0.6e-3, 0.7e-3]))
    # an x axis stored right → left (negative affine) is flipped to RAS: the marker moves to x = nx − 1 − x
    nib.save(nib.Nifti1Image(data, np.diag([-0.5, 0.6, 0.7, 1.0])), str(path))
    flipped = load_brainweb_fuzzy(path)
    assert flipped["gm"][MARK[0], MARK[1], nx - 1 - MARK[2]] == 1
    # 12-bit integers (maximum > 255) are divided by 4095; float data are fractions as they are; named channels
    twelve = np.zeros((nx, ny, nz, 2), dtype=np.uint16)
    twelve[MARK[2], MARK[1], MARK[0]] = (4095, 0)
    twelve[0, 0, 0] = (2000, 1000)
    p12 = tmp_path / "twelve.nii"
    nib.save(nib.Nifti1Image(twelve, np.eye(4)), str(p12))
    tf12 = load_brainweb_fuzzy(p12, channels=("gm", "wht"))
    assert tf12.names == ("gm", "wm")
    assert tf12["gm"][MARK] == 1 and float(tf12["wm"][0, 0, 0]) == pytest.approx(1000 / 4095)
    floats = (twelve / 4095.0).astype(np.float32)
    pf = tmp_path / "floats.nii.gz"
    nib.save(nib.Nifti1Image(floats, np.eye(4)), str(pf))
    torch.testing.assert_close(load_brainweb_fuzzy(pf, channels=("gm", "wm")).fractions, tf12.fractions)
    with pytest.raises(ValueError, match="channels="):
        load_brainweb_fuzzy(pf)
    with pytest.raises(ValueError, match="channel name"):
        load_brainweb_fuzzy(pf, channels=("gm", "bone"))


# ---------------------------------------------------------------------------------------------------- download
def test_fetch_offline_raises_with_where_to_put_files(tmp_path, no_network, empty_home_cache):
    with pytest.raises(BrainWebUnavailableError) as err:
        fetch_brainweb(4, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for expected in ("no network", "brainweb_s04_fuzzy.nii.gz", "subject04_gry.rawb", "subject04_mrw.rawb"):
        assert expected in msg
    assert BRAINWEB_URL in msg and str(tmp_path / "cache") in msg
    with pytest.raises(BrainWebUnavailableError, match="brainweb_s04_fuzzy.nii.gz"):
        load_brainweb(4, cache_dir=tmp_path / "cache", download=True)


def test_load_without_download_or_package(tmp_path, monkeypatch, no_network, empty_home_cache):
    with pytest.raises(BrainWebUnavailableError, match="download=True") as err:
        load_brainweb(5, cache_dir=tmp_path)
    assert "brainweb_s05_fuzzy.nii.gz" in str(err.value) and "subject05_wht.rawb" in str(err.value)
    monkeypatch.setitem(sys.modules, "brainweb_dl", None)  # as if not installed
    with pytest.raises(BrainWebUnavailableError, match="not installed") as err:
        fetch_brainweb(5, cache_dir=tmp_path)
    assert "subject05_csf.rawb" in str(err.value)


def test_cached_subject_loads_with_the_network_blocked(tmp_path, monkeypatch, no_network, empty_home_cache):
    counts = _counts(4095)
    path = tmp_path / "brainweb_s04_fuzzy.nii.gz"
    _write_dl(path, counts)
    monkeypatch.setitem(sys.modules, "brainweb_dl", None)  # a cached file needs no package either
    assert fetch_brainweb(4, cache_dir=tmp_path) == path
    tf = load_brainweb(4, cache_dir=tmp_path, download=True)
    assert tf["gm"][MARK] == 1
    # brainweb-dl's default cache ($BRAINWEB_DIR) is searched too, for the raw layout as well
    _write_raw(empty_home_cache / "subject06", _counts(255, over=False), "i8", gz=True, subject=6, aliases=("gry",))
    with pytest.raises(ValueError, match="needs"):  # the real grid is 362 × 434 × 362; this file is tiny
        load_brainweb(6)
    assert load_brainweb_fuzzy(empty_home_cache, subject=6, shape=SHAPE).names == ("gm",)


# ---------------------------------------------------------------------------------------------------- labels
def test_labels_to_fractions_one_hot_and_unknown_codes():
    labels = np.array([[0, 1, 2], [3, 3, 9]])
    tf = labels_to_fractions(labels, {1: "csf", 2: "gm", 3: "wm", 9: "wm", 4: "fat"}, voxel_size=(1e-3, 1e-3, 2e-3))
    assert tf.names == ("csf", "gm", "wm", "fat") and tf.grid_shape == (1, 2, 3)
    np.testing.assert_array_equal(tf["wm"][0].numpy(), [[0, 0, 0], [1, 1, 1]])
    assert float(tf["fat"].sum()) == 0
    coarse = labels_to_fractions(
        labels, {1: "csf", 2: "gm", 3: "wm", 9: "wm"}, voxel_size=(1e-3, 1e-3, 2e-3), shape=(1, 1)
    )
    np.testing.assert_allclose([float(coarse[n]) for n in ("csf", "gm", "wm")], [1 / 6, 1 / 6, 3 / 6], rtol=1e-6)
    with pytest.raises(ValueError, match=r"labels \[9\]"):
        labels_to_fractions(labels, {1: "csf", 2: "gm", 3: "wm"}, voxel_size=(1e-3, 1e-3, 1e-3))
    background = labels_to_fractions(labels, {1: "csf", 2: "gm", 3: "wm", 9: None}, voxel_size=(1e-3, 1e-3, 1e-3))
    assert float(background.total()[0, 1, 2]) == 0


# ---------------------------------------------------------------------------------------------------- BMapEst
def _adaptive_mean(a, out):
    """torch's area interpolation along axis 0 written out: window i is [floor(i·n/out), ceil((i+1)·n/out))."""
    n = a.shape[0]
    rows = [a[(i * n) // out : -((-(i + 1) * n) // out)].mean(0) for i in range(out)]
    return np.stack(rows).astype(np.float32)


def _bmapest_reference(gm_b, wm_b, csf_b, ves_b, cube, matrix, fix_vessels=True):
    """BMapEst's utils/generate_maps.py, step by step, on uint8 arrays indexed [z, y, x] as read from the files."""
    load = lambda a: a.transpose(2, 1, 0)  # noqa: E731 — data.reshape(z, y, x).swapaxes(0, 2) → [x, y, z]
    gm, wm, ves = load(gm_b), load(wm_b), load(ves_b).copy()
    if fix_vessels:
        ves[ves > 0] -= 1
    csf = load(csf_b) + ves

    def downsample(t):
        s = (np.array(t.shape) // 3) * 3
        return t[: s[0], : s[1], : s[2]].astype(np.float32)

    gm, wm, csf = downsample(gm), downsample(wm), downsample(csf)
    total = gm + wm + csf
    mask = total > 0.01
    idx = np.where(total > 0.1)
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    length = [min(cube, h - m) for m, h in zip(lo, hi, strict=True)]
    lo = [int((m + h) / 2 - n / 2) for m, h, n in zip(lo, hi, length, strict=True)]

    def pad(d):
        p = [(cube - n) // 2 for n in length]
        out = np.zeros((cube,) * 3, dtype=d.dtype)
        out[p[0] : p[0] + length[0], p[1] : p[1] + length[1], p[2] : p[2] + length[2]] = d[
            lo[0] : lo[0] + length[0], lo[1] : lo[1] + length[1], lo[2] : lo[2] + length[2]
        ]
        return out

    mask, total, gm, wm, csf = pad(mask), pad(total), pad(gm), pad(wm), pad(csf)
    maps = {}
    for name, t in (("csf", csf), ("gm", gm), ("wm", wm)):
        t[mask] /= total[mask]
        t[~mask] = 0
        pooled = _adaptive_mean(_adaptive_mean(t, matrix).transpose(1, 0, 2), matrix).transpose(1, 0, 2)
        maps[name] = pooled[:, :, cube // 2]  # [x, y]
    return maps, mask[:, :, cube // 2]


def _brain_bytes(shape=(22, 25, 17), seed=1):
    """uint8 fuzzy values [z, y, x] of a lopsided blob of GM/WM/CSF, vessels reading 1 in the background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    r = np.sqrt(((z - 11) / 7.0) ** 2 + ((y - 10) / 8.0) ** 2 + ((x - 9) / 5.0) ** 2)
    inside = r < 1
    w = rng.dirichlet(np.ones(4), size=shape)
    gm, wm, csf, ves = (np.where(inside, np.floor(w[..., i] * 255), 0).astype(np.uint8) for i in range(4))
    ves = np.where(inside, ves, 1).astype(np.uint8)  # the .i8 vessels bug
    return gm, wm, csf, ves


@pytest.mark.parametrize(("cube", "matrix"), [(30, 7), (30, 30), (12, 5)])
def test_bmapest_matches_a_literal_reimplementation(cube, matrix):
    gm, wm, csf, ves = _brain_bytes()
    tf = bmapest_preprocess(gm / 255, wm / 255, csf / 255, ves / 255, cube=cube, matrix=matrix)
    maps, mask = _bmapest_reference(gm, wm, csf, ves, cube, matrix)
    assert tf.names == ("csf", "gm", "wm") and tf.grid_shape == (1, matrix, matrix)
    for name in tf.names:
        np.testing.assert_allclose(tf[name][0].numpy(), maps[name].T, atol=2e-6, err_msg=name)  # [x, y] → (y, x)
    assert torch.allclose(tf.voxel_size, torch.tensor([cube * 0.5e-3 / matrix] * 2 + [0.5e-3]))
    total = tf.total()[0]
    assert float(total.max()) <= 1 + 1e-6
    if matrix == cube:  # no averaging: the fractions sum to 1 exactly where the mask is set, 0 elsewhere
        np.testing.assert_allclose(total.numpy(), mask.T.astype(np.float32), atol=1e-6)


def test_bmapest_vessel_fix():
    gm, wm, csf, ves = _brain_bytes()
    fixed = bmapest_preprocess(gm / 255, wm / 255, csf / 255, ves / 255, cube=30, matrix=30)
    raw = bmapest_preprocess(gm / 255, wm / 255, csf / 255, ves / 255, cube=30, matrix=30, fix_vessels=False)
    # with the fix the background (vessels 1/255) holds no tissue; without it, all of the cropped volume is "CSF"
    # (its first voxel, x = y = 0, sits after the padding (30 − 15)//2 = 7 in x and (30 − 24)//2 = 3 in y)
    assert float(fixed.total()[0, 3, 7]) == 0
    assert float(raw["csf"][0, 3, 7]) == pytest.approx(1.0)
    assert float(raw.total()[0, 0, 0]) == 0  # the padding stays empty
    maps, _ = _bmapest_reference(gm, wm, csf, ves, 30, 30, fix_vessels=False)
    np.testing.assert_allclose(raw["csf"][0].numpy(), maps["csf"].T, atol=2e-6)
    # inside the brain a vessel value v counts v − 1 toward CSF
    one = np.zeros((3, 3, 3))
    gm1, v = one.copy(), one.copy()
    gm1[1, 1, 1], v[1, 1, 1] = 100 / 255, 51 / 255
    tf = bmapest_preprocess(gm1, one, one, v, cube=3, matrix=3)
    assert float(tf["csf"][0, 1, 1]) == pytest.approx(50 / 150, rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        bmapest_preprocess(gm1, one, one, np.zeros((3, 3, 4)))
    with pytest.raises(ValueError, match="no tissue"):
        bmapest_preprocess(one, one, one, one, cube=3, matrix=3)

"""The EPG of a core :class:`~gradmr.sequence.Sequence`: one sequence drives PDG, EPG and Bloch.

* ``simulate(method="epg")`` on an MRF-FISP train equals ``fisp_signal`` of the train read off that sequence
  (``fisp_train_from_sequence``) to round-off, and the PDG merging by k alone (``tau_resolution=inf``) without T2′
  and B0 to the PDG's pruning accuracy;
* how a sequence maps onto the model (``epg_shifts``: integer multiples of one dephasing moment) and what does not
  fit (clear ``ValueError``\\ s);
* what ``simulate_epg`` does with voxels, pools, PD, coils and ADC phases;
* a physics property of FISP at a constant TR: off-resonance only adds the phase accrued up to TE.
"""

from __future__ import annotations

import math

import pytest
import torch

from gradmr.metrics import nrmse
from gradmr.phantom import VoxelPhantom
from gradmr.sequence import Sequence
from gradmr.sequence.mrf import JIANG_TE, JIANG_TI, fisp_mrf, jiang_flip_angles, jiang_trs
from gradmr.sim import simulate
from gradmr.sim.epg import DEFAULT_STATES, epg_shifts, fisp_signal, fisp_train_from_sequence, simulate_epg
from gradmr.sim.pdg import simulate_pdg
from sim_seqs import bssfp, rep

F64 = torch.float64
#: Two implementations of one recursion in float64 (event-level complex states vs the FISP kernel): round-off only
#: (measured ≤ 8e-15 relative to the largest sample).
ROUND_OFF = 1e-13
#: The PDG prunes states below 1e-4 of M0 (its ``min_emitted``/``min_latent``); measured NRMSE against the EPG 2e-6
#: (GM-like) and 4e-6 (CSF-like).
PDG_NRMSE = 1e-4


def _phantom(t1, t2, *, pd=None, b0=0.0, b1=1.0, coil_sens=None) -> VoxelPhantom:
    """Voxels along x (maps ``(1, V)``), float64; T2′ off (1e6 s) for the PDG. Voxel 1 × 1 × 5 mm: the builders'
    spoiler (2 cycles per 5 mm along z) dephases it by whole cycles."""
    t1 = torch.as_tensor(t1, dtype=F64).reshape(1, -1)
    v = t1.shape[1]

    def full(x):
        return torch.as_tensor(x, dtype=F64).expand(1, v).clone()

    return VoxelPhantom.create(
        pd=full(1.0) if pd is None else full(pd),
        t1=t1,
        t2=full(t2),
        t2dash=full(1e6),
        b0=full(b0),
        b1=full(b1),
        coil_sens=coil_sens,
        voxel_size=(1e-3, 1e-3, 5e-3),
        dtype=F64,
    )


def _rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ------------------------------------------------------------------------------------------------ one sequence, three
@pytest.mark.parametrize(("t1", "t2"), [(1.3, 0.08), (4.0, 2.0)], ids=["gm-like", "csf-like"])
def test_simulate_epg_equals_fisp_signal_of_the_same_train(t1, t2):
    """The default Jiang train (varying TR), 300 TRs, default states in both: identical up to round-off."""
    seq = fisp_mrf(n_frames=300)
    sig = simulate(seq, _phantom(t1, t2), method="epg")[:, 0]
    train = fisp_train_from_sequence(seq)
    ref = fisp_signal(train, torch.tensor(t1, dtype=F64), torch.tensor(t2, dtype=F64))
    assert sig.shape == ref.shape == (300,)
    assert _rel_max(sig, ref) < ROUND_OFF


def test_fisp_train_from_sequence_reads_the_builder_inputs():
    n = 50
    flips, trs = jiang_flip_angles(n), jiang_trs(n, seed=4)
    train = fisp_train_from_sequence(fisp_mrf(n_frames=n, trs=trs))
    assert torch.equal(train.flip, flips)
    torch.testing.assert_close(train.tr, trs, rtol=0, atol=1e-15)
    torch.testing.assert_close(train.te, torch.full((n,), JIANG_TE, dtype=F64), rtol=0, atol=1e-15)
    assert train.inversion_time == pytest.approx(JIANG_TI, abs=1e-15)
    assert float(train.phase) == 0.0 and train.inversion_efficiency == 1.0
    assert fisp_train_from_sequence(fisp_mrf(n_frames=n, inversion=False)).inversion_time is None


@pytest.mark.parametrize(("t1", "t2"), [(1.3, 0.08), (4.0, 2.0)], ids=["gm-like", "csf-like"])
def test_epg_equals_pdg_merging_by_k(t1, t2):
    """PDG with ``tau_resolution=inf`` (states merged by k, as an EPG does), no T2′ (1e6 s), no B0."""
    seq = fisp_mrf(n_frames=300)
    phantom = _phantom(t1, t2)
    epg = simulate_epg(seq, phantom, n_states=302)[:, 0]
    pdg = simulate_pdg(seq, phantom, tau_resolution=math.inf)[:, 0]
    assert float(nrmse(pdg, epg)) < PDG_NRMSE


def test_constant_tr_fisp_is_insensitive_to_off_resonance():
    """At a constant TR every path back to k = 0 has spent as long in +k as in −k: off-resonance only adds the phase
    e^{−2πiΔf·TE} of the last TE (not true of a varying TR; see test_epg_physics)."""
    n = 200
    seq = fisp_mrf(n_frames=n, trs=[12e-3] * n)
    df = 17.0
    on = simulate_epg(seq, _phantom(1.0, 0.3), n_states=n + 2)[:, 0]
    off = simulate_epg(seq, _phantom(1.0, 0.3, b0=df), n_states=n + 2)[:, 0]
    assert _rel_max(off, on * math.e ** (-2j * math.pi * df * JIANG_TE)) < ROUND_OFF


# ------------------------------------------------------------------------------------------------ voxels, coils, ADC


def test_voxels_pools_pd_coils_and_adc_phase():
    """The signal is Σ_voxels Σ_pools PD · coil · F⁺₀, demodulated by the ADC phase."""
    n = 40
    seq = fisp_mrf(n_frames=n)
    t1s, t2s, pds = [0.9, 1.6, 3.5], [0.07, 0.12, 1.2], [1.0, 0.6, 0.3]
    singles = [simulate_epg(seq, _phantom(a, b))[:, 0] for a, b in zip(t1s, t2s, strict=True)]
    coils = torch.tensor([[1.0, 0.5j, -0.2], [0.3, 1.0, 0.7 - 0.1j]], dtype=torch.complex128).reshape(2, 1, 1, 3)
    grid = _phantom(t1s, t2s, pd=pds, coil_sens=coils)
    sig = simulate_epg(seq, grid)
    expected = torch.stack(
        [sum(c[0, 0, v] * pds[v] * singles[v] for v in range(3)) for c in coils], -1
    )  # (samples, coils)
    assert _rel_max(sig, expected) < ROUND_OFF
    # two pools in one voxel: the pools add, weighted by their PD
    pools = VoxelPhantom.create(
        pd=torch.tensor(pds[:2], dtype=F64).reshape(2, 1, 1, 1),
        t1=torch.tensor(t1s[:2], dtype=F64).reshape(2, 1, 1, 1),
        t2=torch.tensor(t2s[:2], dtype=F64).reshape(2, 1, 1, 1),
        voxel_size=(1e-3, 1e-3, 5e-3),
        dtype=F64,
    )
    assert _rel_max(simulate_epg(seq, pools)[:, 0], pds[0] * singles[0] + pds[1] * singles[1]) < ROUND_OFF
    # ADC phase ψ: every sample times e^{−iψ}
    psi = 0.9
    shifted = Sequence(r.replace(adc_phase=torch.full_like(r.adc_phase, psi)) for r in seq)
    assert _rel_max(simulate_epg(shifted, _phantom(t1s[0], t2s[0]))[:, 0], singles[0] * math.e ** (-1j * psi)) < 1e-14


def test_no_samples_gives_an_empty_signal():
    seq = Sequence([rep(0.3, 0.0, [5e-3, 5e-3], gradm=[[0, 0, 0], [0, 0, 100.0]])])
    out = simulate_epg(seq, _phantom([1.0, 2.0], 0.1, coil_sens=torch.ones(3, 1, 1, 2, dtype=torch.complex128)))
    assert out.shape == (0, 3)


# ------------------------------------------------------------------------------------------------ what fits the model


def test_epg_shifts_counts_units_of_the_smallest_moment():
    seq = Sequence(
        [
            rep(0.5, 0.0, [1e-3, 2e-3, 3e-3], gradm=[[0, 0, 0], [0, 0, 250.0], [0, 0, -500.0]]),
            rep(0.5, 0.0, [1e-3, 1e-3], gradm=[[0, 0, 750.0], [0, 0, 0]]),
        ]
    )
    assert [s.tolist() for s in epg_shifts(seq)] == [[0, 1, -2], [3, 0]]
    assert [s.tolist() for s in epg_shifts(seq, unit_moment=[0, 0, 125.0])] == [[0, 2, -4], [6, 0]]
    # no gradients at all: every shift 0 (a balanced sequence)
    assert all(int(s.abs().sum()) == 0 for s in epg_shifts(bssfp(0.5, 5e-3, 4)))


@pytest.mark.parametrize(
    ("gradm", "match"),
    [
        ([[0, 0, 100.0], [0, 0, 150.0]], "not an integer multiple"),
        ([[0, 0, 100.0], [100.0, 0, 0]], "not an integer multiple"),
    ],
    ids=["non-integer", "other-direction"],
)
def test_sequences_that_do_not_fit_raise(gradm, match):
    seq = Sequence([rep(0.5, 0.0, [1e-3, 1e-3], adc=[0], gradm=gradm)])
    with pytest.raises(ValueError, match=match) as info:
        simulate_epg(seq, _phantom(1.0, 0.1))
    assert "repetition 0, event 1" in str(info.value)


def test_imaging_readout_does_not_fit_the_epg():
    """A spiral readout per TR: its gradients are not multiples of the spoiler; the error names PDG/Bloch."""
    seq = fisp_mrf(n_frames=3, readout="spiral", matrix=16, n_interleaves=4)
    with pytest.raises(ValueError, match="use PDG or Bloch"):
        simulate(seq, _phantom(1.0, 0.1), method="epg")
    with pytest.raises(ValueError):
        fisp_train_from_sequence(seq)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("balanced", "net .*gradient moment"),
        ("phase", "changes the RF phase"),
        ("two_adc", "2 ADC samples"),
        ("moment", "different net gradient moment"),
    ],
)
def test_fisp_train_from_sequence_rejects_what_is_not_fisp(change, match):
    seq = list(fisp_mrf(n_frames=4, inversion=False))
    if change == "balanced":
        seq = [r.replace(gradm=torch.zeros_like(r.gradm)) for r in seq]
    elif change == "phase":
        seq[2] = seq[2].replace(pulse_phase=torch.tensor(0.5, dtype=F64))
    elif change == "two_adc":
        seq[1] = seq[1].replace(adc_usage=torch.tensor([True, True, False]))
    elif change == "moment":
        seq[3] = seq[3].replace(gradm=2 * seq[3].gradm)
    with pytest.raises(ValueError, match=match):
        fisp_train_from_sequence(Sequence(seq))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_n_states_raise(bad):
    with pytest.raises(ValueError, match="n_states"):
        simulate_epg(fisp_mrf(n_frames=2), _phantom(1.0, 0.1), n_states=bad)


def test_default_states_is_what_simulate_uses():
    """``simulate(method="epg")`` runs with :data:`DEFAULT_STATES` (its truncation is documented in docs/epg.md)."""
    seq = fisp_mrf(n_frames=200)
    ph = _phantom(4.0, 2.0)
    assert torch.equal(simulate(seq, ph, method="epg"), simulate_epg(seq, ph, n_states=DEFAULT_STATES))

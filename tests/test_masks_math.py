"""Pure mask math on hand-made tensors: top-k, rows, global, N:M, Wanda, PQ index, SAP, packing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from compressor.io import packing
from compressor.pruning.unstructured import masks as M
from compressor.pruning.unstructured.activation import low_units, unit_fraction
from compressor.pruning.unstructured.lottery import round_targets
from compressor.pruning.unstructured.sap import _scale, group_ranges, sap_step
from compressor.pruning.unstructured.settings import SapConfig


def test_topk_mask_removes_exactly_the_smallest():
    scores = torch.tensor([[0.5, 3.0, 1.0], [2.0, 0.1, 4.0]])
    mask = M.topk_mask(scores, 0.5)
    assert mask.tolist() == [[False, True, False], [True, False, True]]
    assert M.topk_mask(scores, 0.0).all()


def test_row_mask_prunes_the_same_fraction_in_every_row():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [40.0, 30.0, 20.0, 10.0]])
    mask = M.row_mask(scores, 0.5)
    assert mask.tolist() == [[False, False, True, True], [True, True, False, False]]
    assert M.row_mask(torch.rand(4, 9), 0.97).sum(1).tolist() == [1, 1, 1, 1]  # never an empty row


def test_global_masks_use_one_threshold_across_tensors():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([10.0, 20.0, 0.5])}
    out = M.global_masks(scores, 0.5)
    assert out["a"].tolist() == [False, False, True]
    assert out["b"].tolist() == [True, True, False]


def test_global_allocation_one_threshold_with_a_cap():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([10.0, 20.0, 30.0, 40.0])}
    raw = M.global_allocation(scores, 0.5, normalize="raw")
    assert raw == {"a": 1.0 - 1 / 4, "b": 1.0 - 3 / 4}  # capped: "a" keeps its best score
    # divided by the mean, both tensors look alike and share the cut equally
    assert M.global_allocation(scores, 0.5, normalize="mean") == {"a": 0.5, "b": 0.5}
    uneven = {"a": torch.tensor([1.0, 1.0, 1.0, 9.0]), "b": torch.tensor([3.0, 3.0, 3.0, 3.0])}
    got = M.global_allocation(uneven, 0.5, normalize="mean")  # a: 0.33 of its mean, b: 1.0
    assert got == {"a": 0.75, "b": 0.25}
    small_first = {"a": torch.rand(100), "b": torch.rand(10) + 5}  # every "a" below every "b"
    got = M.global_allocation(small_first, 0.85, normalize="raw", max_layer_sparsity=0.9)
    assert got == {"a": pytest.approx(0.9), "b": pytest.approx(0.4)}  # 94 of 110: "b" gives the rest
    got = M.global_allocation(small_first, 0.95, normalize="raw", max_layer_sparsity=0.9)
    assert got["a"] == pytest.approx(0.95)  # a cap below the target rises to the target
    with pytest.raises(ValueError, match="normalisation"):
        M.global_allocation(scores, 0.5, normalize="max")


def test_nm_mask_keeps_n_best_of_every_m_block():
    scores = torch.tensor([[1.0, 4.0, 2.0, 3.0, 8.0, 5.0, 6.0, 7.0]])
    mask = M.nm_mask(scores, 2, 4)
    assert mask.tolist() == [[False, True, False, True, True, False, False, True]]
    conv = torch.rand(3, 2, 2, 2)
    cmask = M.nm_mask(conv, 2, 4)
    assert cmask.shape == conv.shape
    assert (cmask.reshape(3, -1, 4).sum(-1) == 2).all()
    with pytest.raises(ValueError):
        M.nm_mask(torch.rand(2, 6), 2, 4)


def test_wanda_scores_linear_and_grouped_conv():
    w = torch.tensor([[1.0, -2.0], [-3.0, 4.0]])
    norm = torch.tensor([10.0, 0.5])
    assert M.wanda_scores(w, norm).tolist() == [[10.0, 1.0], [30.0, 2.0]]
    depthwise = torch.ones(4, 1, 3, 3)  # groups=4: output o sees input channel o only
    s = M.wanda_scores(depthwise, torch.tensor([1.0, 2.0, 3.0, 4.0]), groups=4)
    assert s[:, 0, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    grouped = torch.ones(4, 2, 1, 1)  # groups=2: outputs 0,1 see inputs 0,1; outputs 2,3 see 2,3
    s = M.wanda_scores(grouped, torch.tensor([1.0, 2.0, 3.0, 4.0]), groups=2)
    assert s[:, :, 0, 0].tolist() == [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [3.0, 4.0]]


def test_input_sq_sum_over_batch_and_positions():
    x = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]], [[[0.0, 1.0]], [[1.0, 1.0]]]])  # [2, 2, 1, 2]
    assert M.input_sq_sum(x, conv=True).tolist() == [6.0, 11.0]
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # [1, tokens, features] for a Linear
    assert M.input_sq_sum(tokens, conv=False).tolist() == [10.0, 20.0]


def test_pq_index_hand_values():
    assert M.pq_index(torch.ones(8)) == pytest.approx(0.0, abs=1e-12)
    assert M.pq_index(torch.tensor([0.0, 0.0, 0.0, 5.0])) == pytest.approx(0.75)  # 1 - 1/d
    # ||w||_0.5 = (1 + 2)^2 = 9, ||w||_1 = 5, d^(1-2) = 1/2 -> 1 - 9/10
    assert M.pq_index(torch.tensor([1.0, -4.0])) == pytest.approx(0.1)
    w = torch.randn(100)
    assert M.pq_index(w) == pytest.approx(M.pq_index(7 * w))  # scale-invariant
    sparse_w = w * (torch.arange(100) < 10)
    assert M.pq_index(sparse_w) > M.pq_index(w)
    with pytest.raises(ValueError):
        M.pq_index(w, p=1.0, q=0.5)


def test_sap_amounts_follow_the_formula():
    r, c = M.sap_amounts(100, 0.1)  # p=.5, q=1: r = d (1 - I)^1
    assert r == pytest.approx(90.0) and c == 10
    r, c = M.sap_amounts(100, 0.1, eta_r=1.0)  # (1+1)^(-2) = 0.25
    assert r == pytest.approx(22.5) and c == 77
    assert M.sap_amounts(100, 0.1, gamma=10.0)[1] == 90  # capped by beta
    r, c = M.sap_amounts(50, 0.2, p=1.0, q=2.0)  # exponents -2 and 2
    assert r == pytest.approx(50 * 0.8**2) and c == math.floor(50 * (1 - 0.64))


def test_prune_smallest_only_among_alive():
    mag = torch.tensor([0.1, 5.0, 0.2, 3.0, 0.3])
    alive = torch.tensor([False, True, True, True, True])
    assert M.prune_smallest(mag, alive, 2).tolist() == [False, True, False, True, False]


def test_sap_step_groups_and_budget():
    mag = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 100.0])
    alive = torch.ones(8, dtype=torch.bool)
    opts = SapConfig()  # p 0.5, q 1, eta_r 0, gamma 1, beta 0.9
    out, stats = sap_step(mag, alive, [(0, 4), (4, 8)], opts)
    assert out[:4].all()  # equal magnitudes: PQ index 0, nothing pruned
    expected = M.sap_amounts(4, M.pq_index(mag[4:]))[1]
    assert stats["pruned"] == expected > 0 and not out[4]
    capped, stats = sap_step(mag, alive, [(0, 8)], replace(opts, gamma=10.0), budget=3)
    assert stats["pruned"] == 3 and capped.tolist()[-1]
    scaled = _scale([6, 3, 1], 5)
    assert sum(scaled) == 5 and all(0 <= s <= a for s, a in zip(scaled, [6, 3, 1]))
    assert scaled[0] == 3


def test_group_ranges_by_scope():
    layers = [("a", torch.nn.Linear(3, 2)), ("b", torch.nn.Linear(2, 1))]
    assert group_ranges(layers, "row") == [(0, 3), (3, 6), (6, 8)]
    assert group_ranges(layers, "layer") == [(0, 6), (6, 8)]
    assert group_ranges(layers, "global") == [(0, 8)]


def test_pack_bits_round_trip():
    mask = torch.tensor([True, False, False, False, False, False, False, True, True])
    packed = packing.pack_bits(mask)
    assert packed.tolist() == [129, 128] and packed.dtype == torch.uint8
    assert torch.equal(packing.unpack_bits(packed, 9), mask)
    w = torch.randn(5, 7)
    m = torch.rand(5, 7) > 0.8
    dense, back = packing.unpack(packing.pack(w * m, m))
    assert torch.equal(back, m) and torch.equal(dense, w * m)
    assert packing.worth_packing(m, 4) and not packing.worth_packing(torch.ones(64, dtype=torch.bool), 4)


def test_activation_unit_choice():
    means = torch.tensor([0.5, 0.0, 2.0, 0.1])
    alive = torch.ones(4, dtype=torch.bool)
    assert low_units(means, alive, 0.5, None).tolist() == [True, False, True, False]
    assert low_units(means, alive, 0.75, 0.2).tolist() == [True, False, True, False]
    assert low_units(means, alive, 0.25, 0.2).tolist() == [True, False, True, True]  # ceiling
    assert low_units(torch.zeros(3), torch.ones(3, dtype=torch.bool), 1.0, None).sum() == 1
    layers = [("a", torch.nn.Linear(10, 10)), ("b", torch.nn.Linear(10, 10))]
    assert unit_fraction(layers, layers[:1], 0.4) == pytest.approx(0.8)


def test_lottery_round_targets():
    assert round_targets(None, 2, 0.2) == pytest.approx([0.2, 0.36])
    targets = round_targets(0.5, 1, 0.2)
    assert len(targets) == 4 and targets[-1] == 0.5 and targets[2] == pytest.approx(0.488)

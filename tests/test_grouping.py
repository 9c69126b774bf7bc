"""Coupled groups found with each channel walked once: the same groups as torch-pruning's, without
the walks that double with every block where a residual joins a channel slice (timm ReXNet)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch
import torch_pruning as tp
from torch import nn

from compressor.pruning.structured import coupling, graph, grouping, norm
from tests.conftest import prune_l1_half


class SliceResidual(nn.Module):
    """A ReXNet block: the shortcut is added onto the first ``cin`` of the wider output's channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.cin = cin
        self.expand = nn.Conv2d(cin, 2 * cout, 1)
        self.dw = nn.Conv2d(2 * cout, 2 * cout, 3, padding=1, groups=2 * cout)
        self.project = nn.Conv2d(2 * cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(torch.relu(self.dw(self.expand(x))))
        return torch.cat([y[:, : self.cin] + x, y[:, self.cin :]], dim=1)


class Ghost(nn.Module):
    """A GhostNet module with its gate: half the channels are a depthwise conv of the other half, so
    one channel of ``primary`` is coupled to two channels of the gate."""

    def __init__(self, cin: int, half: int) -> None:
        super().__init__()
        self.primary = nn.Conv2d(cin, half, 1)
        self.cheap = nn.Conv2d(half, half, 3, padding=1, groups=half)
        self.gate = nn.Conv2d(2 * half, 2 * half, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.primary(x)
        y = torch.cat([p, self.cheap(p)], dim=1)
        return y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))


def slice_chain(blocks: int) -> nn.Module:
    widths = [4 + 2 * i for i in range(blocks + 1)]
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        *[SliceResidual(a, b) for a, b in zip(widths, widths[1:])],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[-1], 3),
    ).eval()


def ghost_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), Ghost(8, 6), nn.ReLU(), Ghost(12, 5), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()


def signature(dg: tp.DependencyGraph, model: nn.Module) -> dict[str, list]:
    """Root -> every (layer, function, channel, root channel it is scored with) of its group."""
    names = {m: n for n, m in model.named_modules()}
    found = {}
    for group in dg.get_all_groups(root_module_types=graph.PRUNABLE):
        found[names[group[0].dep.target.module]] = sorted(
            (
                names.get(item.dep.target.module, item.dep.target.name),
                item.dep.handler.__name__,
                tuple(sorted(zip(item.idxs, item.root_idxs))),
            )
            for item in group
        )
    return found


def test_groups_are_torch_prunings_own():
    """Same layers, channels and root channels as torch-pruning's walk (one output channel of a
    Ghost module's primary conv is coupled to two root channels: the first reached is kept)."""
    model, x = ghost_net(), torch.randn(1, 3, 10, 10)
    ours = signature(grouping.build(model, x), model)
    theirs = signature(tp.DependencyGraph().build_dependency(model, example_inputs=x), model)
    assert ours == theirs
    assert len(ours) == 3


def test_slice_residual_chain_prunes_and_runs():
    """The channel slices of this chain reach past the layers' widths in torch-pruning's mapping:
    those groups are kept, every other layer loses channels, and the model still runs."""
    model = slice_chain(6)
    before = graph.out_widths(model)
    handle, _ = prune_l1_half(model, (1, 3, 10, 10))
    after = graph.out_widths(handle.module)
    assert handle.module(torch.randn(2, 3, 10, 10)).shape == (2, 3)
    assert after["1.expand"] < before["1.expand"]
    assert sum(after.values()) < 0.8 * sum(before.values())


def test_slice_residual_chain_is_walked_once_per_channel(monkeypatch):
    """torch-pruning's own walk takes several times the steps with every block of this chain (four
    blocks took over a minute); each channel walked once, eight blocks take about ten thousand."""
    steps = [0]
    triggered = tp.dependency.Dependency.is_triggered_by

    def counted(self, fn):
        steps[0] += 1
        assert steps[0] < 30_000, "the group walk revisits channels"
        return triggered(self, fn)

    model, x = slice_chain(8), torch.randn(1, 3, 10, 10)
    dg = grouping.build(model, x)
    monkeypatch.setattr(tp.dependency.Dependency, "is_triggered_by", counted)
    groups = list(dg.get_all_groups(root_module_types=graph.PRUNABLE))
    assert len(groups) >= 10  # at least the stem, each block's expand and the head
    assert steps[0] > 0


def test_a_pruner_walks_each_group_once_until_it_prunes():
    model, x = ghost_net(), torch.randn(1, 3, 10, 10)
    pruner = graph.make_pruner(model, x, norm.importance("l1"), ratio=0.5)
    assert isinstance(pruner.DG, grouping.Graph)

    def listed() -> list:
        return list(pruner.DG.get_all_groups(pruner.ignored_layers, pruner.root_module_types))

    walks = grouping.Graph.walks
    first = listed()
    assert grouping.Graph.walks == walks  # counted and checked while the pruner was made: remembered
    stem = next(g for g in first if g[0].dep.target.module is model[0])
    stem.prune(idxs=[0])
    after = listed()
    assert grouping.Graph.walks > walks  # a cut changes widths: the groups are walked again
    assert [len(g[0].idxs) for g in after if g[0].dep.target.module is model[0]] == [7]
    assert model[1].primary.in_channels == 7
    assert model(x).shape == (1, 10)


class Edge:
    """A dependency of a hand-made graph: every edge fires on every function, ``mapping`` its map."""

    def __init__(self, target: object, mapping, calls: list[int]) -> None:
        self.target, self.handler, self.calls = target, "cut", calls
        self.index_mapping = [self.count, mapping]

    def count(self, idxs: list) -> list:
        self.calls[0] += 1
        assert self.calls[0] < 1_000, "the walk keeps carrying channels"
        return idxs

    def is_triggered_by(self, fn: object) -> bool:
        return True


class Node:
    def __init__(self, name: str) -> None:
        self.name, self.dependencies = name, []


def test_a_walk_ends_where_channels_pass_a_layers_width():
    """A reshape that folds channels with positions maps channel i to 4i and back onto the layer:
    the indices grow without end; the walk stops at the first past the layer's 8 channels."""
    calls = [0]
    layer, fold = Node("layer"), Node("reshape")
    layer.dependencies = [Edge(fold, None, calls)]
    fold.dependencies = [
        Edge(layer, lambda idxs: [grouping.Index(4 * i.idx + 1, i.root_idx) for i in idxs], calls)
    ]
    start = Edge(layer, None, calls)
    found = grouping.walk(start, range(8), lambda node, fn: 8 if node is layer else None)
    assert max(i.idx for _, idxs in found for i in idxs) >= 8  # recorded: scoring it fails
    assert [dep.target.name for dep, _ in found] == ["layer", "reshape", "layer"]


class GatedChannelsLast(nn.Module):
    """A MambaOut gated block: channels last, split and concatenated on the last dim, a depthwise
    conv between permutes. torch-pruning maps the conv's channels onto the wrong part of ``fc1``
    and scores them against root channels past the end."""

    def __init__(self, dim: int, hidden: int, conv: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * hidden)
        self.split = (hidden, hidden - conv, conv)
        self.conv = nn.Conv2d(conv, conv, 3, padding=1, groups=conv)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, i, c = torch.split(self.fc1(self.norm(x)), self.split, dim=-1)
        c = self.conv(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.fc2(torch.relu(g) * torch.cat((i, c), dim=-1))


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(GatedChannelsLast(8, 20, 8), GatedChannelsLast(8, 20, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x).permute(0, 2, 3, 1)).mean((1, 2)))


def test_a_group_scored_past_its_root_is_kept_and_named():
    """Each gated block's conv group cannot be mapped (scoring it overruns the root's channels):
    it is kept and named in the notes; the residual stream around it is pruned and the model runs."""
    torch.manual_seed(0)
    model = GatedNet().eval()
    handle, report = prune_l1_half(model, (1, 3, 6, 6))
    after = graph.out_widths(handle.module)
    assert handle.module(torch.randn(2, 3, 6, 6)).shape == (2, 3)
    assert after["blocks.0.conv"] == after["blocks.1.conv"] == 8
    assert after["stem"] < 8
    assert any("cannot map" in n and "blocks.0.conv" in n for n in report.notes)


class FakeGroup(list):
    """A group of a hand-made graph: its root only, and whether its walk ran past a width."""

    def __init__(self, root: object) -> None:
        super().__init__([SimpleNamespace(dep=SimpleNamespace(target=SimpleNamespace(module=root)))])
        self.unmapped = True


def test_roots_freed_by_keeping_an_unmappable_group_are_checked_too():
    """Listing groups skips the layers already in one (iFormer's value gate sits in its query's
    group): once the query is kept, the gate roots a group of its own, unmappable too."""
    query, gate = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)

    def groups(ignored_layers: list, root_module_types: tuple) -> list:
        return (
            [FakeGroup(query)]
            if query not in ignored_layers
            else [FakeGroup(gate)][: gate not in ignored_layers]
        )

    pruner = SimpleNamespace(
        DG=SimpleNamespace(get_all_groups=groups), ignored_layers=[], root_module_types=()
    )
    assert coupling.keep_unmapped(pruner) == [query, gate]
    assert pruner.ignored_layers == [query, gate]


def test_unmappable_roots_are_found_once_per_structure_within_one_prune(monkeypatch):
    """One prune builds pruners for the preflight's copy, the plan and the cut of the same model:
    inside the scope the roots found for one structure are kept by name on a copy without
    scoring its groups again; a model whose layers changed width is searched afresh."""
    torch.manual_seed(0)
    model = GatedNet().eval()
    example = torch.randn(1, 3, 6, 6)
    searches = []
    search = coupling.unmapped_roots
    monkeypatch.setattr(coupling, "unmapped_roots", lambda pruner: searches.append(1) or search(pruner))

    def kept(m: nn.Module) -> list[str]:
        pruner = graph.make_pruner(m, example, tp.importance.MagnitudeImportance(p=1), ratio=0.5)
        names = {module: name for name, module in m.named_modules()}
        return [names[layer] for layer in pruner.ignored_layers]

    with coupling.remembering_unmapped():
        first = kept(model)
        done = len(searches)
        assert kept(copy.deepcopy(model)) == first and len(searches) == done  # remembered
        assert "blocks.0.conv" in first
        wider = GatedNet().eval()
        wider.head = nn.Linear(8, 5)
        kept(wider)
        assert len(searches) > done  # another structure: searched
    done = len(searches)
    kept(model)
    assert len(searches) > done  # outside the scope: nothing remembered


def test_a_walk_ends_where_channels_pass_every_layer_between_two_operations():
    """EfficientViT-MSRA's attention folds channels with positions between operations, with no
    layer on the cycle: the indices grow there without end (one group took minutes and millions
    of channels). Past the channels of all layers together no channel exists: the walk ends and
    the group is marked unmappable."""
    calls = [0]
    conv = nn.Conv2d(2, 8, 1)
    layer, view, matmul = Node("conv"), Node("view"), Node("matmul")
    layer.module, view.module, matmul.module = conv, object(), object()
    layer.dependencies = [Edge(view, None, calls)]
    view.dependencies = [
        Edge(matmul, lambda idxs: [grouping.Index(4 * i.idx + 1, i.root_idx) for i in idxs], calls)
    ]
    matmul.dependencies = [Edge(view, None, calls)]
    dg = grouping.Graph()
    dg.module2node = {conv: layer}
    found = grouping.walk(Edge(layer, None, calls), range(8), dg._width)
    assert dg._width(view, "cut") == 10  # the conv's 8 output and 2 input channels
    assert max(i.idx for i in found[-1][1]) >= 10


class _RecordsInputs(nn.Module):
    """A fully convolutional model: it runs on an unbatched (C, H, W) input as well."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 3)
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return self.b(torch.relu(self.a(x)))


def test_one_example_tensor_is_traced_as_one_batched_input():
    """torch-pruning calls ``model(*example)`` first: one tensor was split along its batch, and a
    model that accepts the unbatched input was traced on that call (an R-CNN adapter then pooled
    regions of images that do not exist and crashed the process). The trace sees the batch."""
    torch.manual_seed(0)
    model = _RecordsInputs()
    graph = grouping.build(model, torch.randn(1, 3, 8, 8))  # batch 1: the split is one (C, H, W) call
    assert model.seen == [(1, 3, 8, 8)]
    assert model.a in graph.module2node and model.b in graph.module2node


def test_a_walk_past_the_entry_bound_is_kept_as_unmappable(monkeypatch):
    """A walk whose mappings fan channels out without end (timm's DeepSeek ViT grew one by about
    1 GB every 30 s) stops at ``UNROOTED_LIMIT`` entries: that group is kept and named, the rest is
    pruned. Here the bounds are lowered so that the walks of the 16-channel convs (the last one's
    channels fan out over the flattened positions into the head) pass them and the 4-channel
    bottleneck's does not."""
    monkeypatch.setattr(grouping, "ROOTED_LIMIT", 10)
    monkeypatch.setattr(grouping, "UNROOTED_LIMIT", 40)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1),
        nn.Flatten(), nn.LazyLinear(3),
    )  # fmt: skip
    model(torch.randn(1, 3, 4, 4))
    handle, report = prune_l1_half(model.eval(), (1, 3, 4, 4))
    after = graph.out_widths(handle.module)
    assert after["0"] == after["4"] == 16 and after["2"] < 4  # the wide groups kept, the narrow pruned
    assert any("cannot map" in n and n.endswith(": 0, 4") for n in report.notes)
    assert handle.module(torch.randn(2, 3, 4, 4)).shape == (2, 3)

"""Multi-scale feature extraction for every family, as timm's ``features_only=True``.

:class:`FeatureNet` wraps a :class:`~architectures._base.SlimNet` and returns, instead of logits,
a list of NCHW feature maps taken at slim end points, described by :class:`FeatureInfo`
(channels, reduction, end point and module name: timm's ``feature_info`` API).

Which end points are the feature levels is decided once, generically, from the network itself:
the end points that its ``forward_features`` computes (not the head's), that are not nested in
another end point (``layer_3/expansion_output`` is inside ``layer_3``, a ResNet unit inside its
block), and that are the last one at their reduction (the deepest map at each stride, as timm
chooses). The reductions are measured by running ``forward_features`` once on a fake 224x224
input (``FakeTensorMode``: shapes only, no arithmetic). A family may instead list its levels in
``feature_end_point_names()`` (the ResNets list ``conv1`` and every block, so that with an
``output_stride`` of 8 or 16 the dilated blocks stay separate levels). A new family thus needs
no code here, only correct ``end_point_modules``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["FeatureInfo", "FeatureNet", "feature_levels"]

PROBE_SIZE = 224  # every family accepts it; shapes only, so its cost does not matter


class FeatureInfo:
    """Description of a feature extractor's outputs, with timm's ``FeatureInfo`` accessors.

    ``info[i]`` / iteration give dicts with timm's keys ``num_chs``, ``reduction`` and
    ``module`` (the torch module path) plus ``end_point`` (slim's end point name); the
    accessors take an optional index (an int or a sequence of ints) into the selected levels.
    """

    def __init__(self, levels: Sequence[dict[str, Any]], out_indices: Sequence[int]) -> None:
        self.info = [dict(level) for level in levels]  # every level the network offers
        self.out_indices = tuple(out_indices)
        self._selected = [self.info[i] for i in self.out_indices]

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [level[key] for level in self._selected]
        if isinstance(idx, int):
            return self._selected[idx][key]
        return [self._selected[i][key] for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def end_point(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("end_point", idx)

    def get_dicts(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        if keys is None:
            return [dict(level) for level in self._selected]
        return [{k: level[k] for k in keys} for level in self._selected]

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return dict(self._selected[idx])

    def __len__(self) -> int:
        return len(self._selected)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (dict(level) for level in self._selected)

    def __repr__(self) -> str:
        rows = ", ".join(f"{d['end_point']}: {d['num_chs']}ch /{d['reduction']}" for d in self)
        return f"FeatureInfo([{rows}])"


def _module_paths(model: nn.Module) -> dict[int, str]:
    return {id(module): name for name, module in model.named_modules()}


def feature_levels(model: nn.Module) -> list[dict[str, Any]]:
    """Every feature level of ``model``: ``{num_chs, reduction, module, end_point}`` dicts in
    run order (see the module docstring for the choice)."""
    modules = model.end_point_modules()
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(output.shape)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in modules.items()]
    was_training = {m: m.training for m in model.modules()}
    model.eval()  # batch norm must not update its statistics from the probe
    try:
        _probe(model)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in was_training.items():
            module.training = mode

    computed = [n for n in modules if n in shapes and len(shapes[n]) == 4]  # the base's maps
    listed = getattr(model, "feature_end_point_names", None)
    if listed is not None:
        names = [n for n in listed() if n in shapes]
    else:
        top = [n for n in computed if not any(n.startswith(o + "/") for o in computed if o != n)]
        reductions = {n: _reduction(shapes[n]) for n in top}
        names = [
            n
            for i, n in enumerate(top)
            if i + 1 == len(top) or reductions[top[i + 1]] != reductions[n]
        ]
    paths = _module_paths(model)
    return [
        {
            "num_chs": shapes[n][1],
            "reduction": _reduction(shapes[n]),
            "module": paths[id(modules[n])],
            "end_point": n,
        }
        for n in names
    ]


def _probe(model: nn.Module) -> None:
    """Run ``forward_features`` on a 224x224 batch of one, shapes only where possible."""
    x = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE)
    with torch.no_grad():
        try:
            from torch._subclasses.fake_tensor import FakeTensorMode

            with FakeTensorMode(allow_non_fake_inputs=True):
                model.forward_features(torch.empty(1, 3, PROBE_SIZE, PROBE_SIZE))
            return
        except Exception:  # a layer fake tensors cannot run: the real thing, once
            pass
        finally:
            for module in model.modules():  # no weight packed for a fake input may stay
                if getattr(module, "_packed_cache", None) is not None:
                    module._packed_cache = None
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        model.forward_features(x.to(device))


def _reduction(shape: tuple[int, ...]) -> int:
    """The stride of a map of ``shape`` from the probe: a power of two (VALID-padded networks
    give 35 or 25 rows for a nominal 8, which rounds there in log scale)."""
    return 2 ** round(math.log2(PROBE_SIZE / shape[-1]))


class FeatureNet(nn.Module):
    """A network returning its feature maps (a list of NCHW tensors), as timm's
    ``features_only=True`` models do. Built by ``zoo.load(name, features_only=True)``.

    ``out_indices`` selects levels of :func:`feature_levels` (negative indices count from the
    last). The wrapped network is ``self.body``; its classifier head is never run.
    """

    def __init__(self, body: nn.Module, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        levels = feature_levels(body)
        count = len(levels)
        if out_indices is None:
            out_indices = range(count)
        chosen = []
        for index in out_indices:
            if not isinstance(index, int) or not -count <= index < count:
                names = ", ".join(f"{i}: {lv['end_point']}" for i, lv in enumerate(levels))
                raise ValueError(
                    f"out_indices must be ints in [-{count}, {count - 1}] for "
                    f"{type(body).__name__}, whose {count} feature levels are {names}; "
                    f"got {index!r}"
                )
            chosen.append(index % count)
        if len(set(chosen)) != len(chosen) or chosen != sorted(chosen):
            raise ValueError(
                f"out_indices must be increasing and distinct, got {tuple(out_indices)}"
            )
        self.body = body
        self.feature_info = FeatureInfo(levels, chosen)
        # module paths, looked up at each call: a deepcopy (e.g. an EMA copy) hooks its own body
        self._modules_read = tuple(levels[i]["module"] for i in chosen)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        captured: list[torch.Tensor | None] = [None] * len(self._modules_read)

        def keep(index: int):
            def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
                # a copy: later layers may reuse an output's memory in place (ReLU, residual add)
                captured[index] = output.clone()

            return hook

        handles = [
            self.body.get_submodule(path).register_forward_hook(keep(i))
            for i, path in enumerate(self._modules_read)
        ]
        try:
            self.body.forward_features(x)
        finally:
            for handle in handles:
                handle.remove()
        return captured  # type: ignore[return-value]

"""What NASNet-A and PNASNet-5 share, as slim's ``nets/nasnet/nasnet_utils.py`` (and the stem, aux
head and final layer of ``nasnet.py`` that ``pnasnet.py`` reuses) shares it.

Both families are a stack of *cells* searched by a controller. A cell takes the previous cell's
output ``x`` and the one before it ``prev`` and works on a list of hidden states:

* state 0 = ``beginning_bn(1x1(relu(x)))``, state 1 = ``prev`` brought to the cell's filter count
  and spatial size (``_reduce_prev_layer``: a factorized reduction when ``prev`` is twice as
  large, ``prev_1x1``/``prev_bn`` when only the channel count differs, or ``x`` itself in the
  first stem cell, which has no ``prev``);
* five ``comb_iter_i`` each apply one operation to each of two earlier states (``left``,
  ``right``) and add the results, appending a new state;
* the output is the channel concat of the states the cell description lists (slim's
  ``used_hiddenstates`` marks the complement).

A cell with stride 2 strides only the operations that read states 0 and 1. Operations are
written as slim's strings: ``separable_<k>x<k>_<n>`` (``n`` × relu → separable conv →
``bn_sep``), ``max_pool_3x3``/``avg_pool_3x3`` ('SAME'; followed by ``1x1``/``bn_1`` when the
input has another channel count) and ``none`` (identity, or relu → strided ``1x1`` → ``bn_1``
where the stride or the channel count requires it).

TF scopes: there is no root scope (``tf_scope = ""``). Where a slim scope is not a Python name
(``1x1``) the module is named ``conv_1x1`` and ``tf_scopes`` maps it; where slim puts variables
straight into the cell's scope (``path1_conv``, ``prev_1x1``) the wrapping module maps to ``""``.
The separable convs keep their batch norm in a *sibling* scope (``separable_5x5_1`` holds
``depthwise_weights``/``pointwise_weights``, ``bn_sep_5x5_1`` the batch norm), so each is a
:class:`~architectures.layers.SeparableConv2dSame` without batch norm next to its own
:class:`~architectures.layers.BatchNorm2d`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ._base import SlimNet
from ._input import check_input
from ._nasnet_ops import (
    FactorizedReduction,
    PrevProjection,
    ReluFactorizedReduction,
    bn,
    calc_reduction_layers,
    conv1x1,
    drop_path,
    make_operation,
)
from .layers import (
    AvgPool2dSame,
    Conv2dSame,
    GlobalAvgPool,
    SpatialSqueeze,
    conv_then_bn,
)

__all__ = [
    "AuxHead",
    "Cell",
    "CellNetwork",
    "CellSpec",
    "FactorizedReduction",
    "aux_pooled_size",
    "calc_reduction_layers",
    "drop_path",
    "make_operation",
]

# --------------------------------------------------------------------------- the cell


@dataclass(frozen=True)
class CellSpec:
    """A searched cell: five ``((left_op, left_state), (right_op, right_state))`` combinations
    and the states whose concat is the output (state 0 = x after ``1x1``, 1 = prev, 2.. = the
    combinations in order)."""

    combinations: tuple[tuple[tuple[str, int], tuple[str, int]], ...]
    concat: tuple[int, ...]


class CombIter(nn.Module):
    """``comb_iter_<i>``: ``left(states[a]) + right(states[b])``; each operation other than
    ``none`` gets drop path in training. Only operations on states 0 and 1 stride."""

    def __init__(
        self,
        combination: tuple[tuple[str, int], tuple[str, int]],
        state_channels: Sequence[int],
        filter_size: int,
        stride: int,
    ) -> None:
        super().__init__()
        (left_op, self.left_state), (right_op, self.right_state) = combination
        self.left = make_operation(
            left_op,
            state_channels[self.left_state],
            filter_size,
            stride if self.left_state < 2 else 1,
        )
        self.right = make_operation(
            right_op,
            state_channels[self.right_state],
            filter_size,
            stride if self.right_state < 2 else 1,
        )
        self.drop_left, self.drop_right = left_op != "none", right_op != "none"

    def forward(self, states: list[torch.Tensor], keep_prob: float = 1.0) -> torch.Tensor:
        left = self.left(states[self.left_state])
        right = self.right(states[self.right_state])
        if keep_prob < 1.0:
            left = drop_path(left, keep_prob) if self.drop_left else left
            right = drop_path(right, keep_prob) if self.drop_right else right
        return left + right


class Cell(nn.Module):
    """slim's ``NasNetABaseCell`` called with a scope (``cell_<i>``, ``cell_stem_<i>``,
    ``reduction_cell_<i>``): ``forward(x, prev)`` → the concat of the listed states.

    Args:
        spec: the searched operations.
        in_channels: channels of ``x``.
        prev_channels: channels of ``prev``; ``None`` when the cell has no ``prev`` (the first
            stem cell, which then uses ``x`` as state 1, untouched).
        prev_is_larger: ``prev`` has twice the spatial size of ``x`` (a reduction sits between
            them); slim compares the static shapes, this port knows it from the layout.
        filter_size: ``int(num_conv_filters * filter_scaling)``.
        stride: 2 for reduction cells (and PNASNet's strided cells).
    """

    tf_scopes = {"reduce_prev": "", "conv_1x1": "1x1"}
    fuse_pairs = (("conv_1x1", "beginning_bn"),)  # see architectures._fuse

    def __init__(
        self,
        spec: CellSpec,
        *,
        in_channels: int,
        prev_channels: int | None,
        prev_is_larger: bool,
        filter_size: int,
        stride: int,
    ) -> None:
        super().__init__()
        if prev_channels is None:
            self.reduce_prev = None
            prev_out = in_channels
        elif prev_is_larger:
            self.reduce_prev = ReluFactorizedReduction(prev_channels, filter_size)
            prev_out = filter_size
        elif prev_channels != filter_size:
            self.reduce_prev = PrevProjection(prev_channels, filter_size)
            prev_out = filter_size
        else:
            self.reduce_prev = nn.Identity()
            prev_out = prev_channels
        self.conv_1x1 = conv1x1(in_channels, filter_size)
        self.beginning_bn = bn(filter_size)

        channels = [filter_size, prev_out]
        for i, combination in enumerate(spec.combinations):
            self.add_module(f"comb_iter_{i}", CombIter(combination, channels, filter_size, stride))
            channels.append(filter_size)
        # slim would factorize-reduce a concatenated state of another size or channel count
        # (``_combine_unused_states``); none of the released configurations has one.
        odd = [i for i in spec.concat if i < 2 and (stride > 1 or channels[i] != filter_size)]
        if odd:
            raise NotImplementedError(f"cell output concatenates states {odd} that need reducing")
        self.concat = spec.concat
        self.out_channels = sum(channels[i] for i in spec.concat)
        self.num_combinations = len(spec.combinations)
        # Drop path in training (see CellNetwork.set_drop_path_progress); 1.0 = off.
        self.drop_path_keep_prob = 1.0

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        if self.reduce_prev is None:
            prev = x
        else:
            prev = self.reduce_prev(prev)
        states = [conv_then_bn(self.conv_1x1, self.beginning_bn, torch.relu(x)), prev]
        keep_prob = self.drop_path_keep_prob if self.training else 1.0
        for i in range(self.num_combinations):
            states.append(getattr(self, f"comb_iter_{i}")(states, keep_prob))
        return torch.cat([states[i] for i in self.concat], dim=1)


# --------------------------------------------------------------------------- aux head


class AuxLogitsLayers(nn.Sequential):
    """The layers of the ``aux_<k>/aux_logits`` scope (after the relu of the cell output)."""

    fuse_pairs = (("proj", "aux_bn0"), ("Conv", "aux_bn1"))
    # NASNet's checkpoints were re-uploaded in 2017-11 with 'fully_connected' for 'FC'
    # (tensorflow/models#2648); copies of both exist, so both are read.
    tf_scope_aliases = {"FC": ("fully_connected",)}


class AuxHead(nn.Module):
    """slim's ``_build_aux_head`` (scope ``aux_<k>``): relu → 5x5/3 VALID average pool → ``proj``
    1x1 (128) → ``aux_bn0`` → relu → ``Conv`` over the whole pooled map (768) → ``aux_bn1`` →
    relu → flatten → ``FC``.

    slim sizes ``Conv``'s kernel to the pooled map of the training input, so the checkpoints
    hold a 4x4 (224 nets) or 6x6 (331 nets) kernel; this head accepts exactly that pooled size
    and raises ``ValueError`` for another one. The network asks for it only with
    ``aux_logits=True`` in training mode; ``end_points`` leaves ``AuxLogits`` out at such sizes
    and the main logits work at any size.
    """

    def __init__(
        self, in_channels: int, num_classes: int, pooled_size: int, cell_end_point: str
    ) -> None:
        super().__init__()
        self.pooled_size = pooled_size
        self.cell_end_point = cell_end_point
        self.aux_logits = AuxLogitsLayers(
            OrderedDict(
                pool=AvgPool2dSame(5, 3, "VALID"),
                proj=conv1x1(in_channels, 128),
                aux_bn0=bn(128),
                relu0=nn.ReLU(),
                Conv=Conv2dSame(128, 768, pooled_size, padding="VALID", bias=False),
                aux_bn1=bn(768),
                relu1=nn.ReLU(),
                flatten=nn.Flatten(),
                FC=nn.Linear(768, num_classes) if num_classes else nn.Identity(),
            )
        )

    def pooled_shape(self, x: torch.Tensor) -> tuple[int, int]:
        return (x.shape[-2] - 5) // 3 + 1, (x.shape[-1] - 5) // 3 + 1

    def fits(self, x: torch.Tensor) -> bool:
        """Whether the cell output ``x`` pools to the map the ``Conv`` kernel was built for."""
        return self.pooled_shape(x) == (self.pooled_size, self.pooled_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fits(x):
            pooled = self.pooled_shape(x)
            raise ValueError(
                f"the auxiliary head takes a {self.pooled_size}x{self.pooled_size} map after its "
                f"5x5/3 pool (the checkpoint's Conv kernel), but {self.cell_end_point} is "
                f"{x.shape[-2]}x{x.shape[-1]}, giving {pooled[0]}x{pooled[1]}. It needs a "
                f"{self.cell_end_point} map of {3 * self.pooled_size + 2}..."
                f"{3 * self.pooled_size + 4} pixels (e.g. the default input size); for other "
                "sizes build the model with aux_logits=False (the main logits work at any size)."
            )
        return self.aux_logits(torch.relu(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.aux_logits.FC = nn.Linear(768, num_classes) if num_classes else nn.Identity()


# --------------------------------------------------------------------------- the network frame


class CellNetwork(SlimNet):
    """The frame slim's ``_build_nasnet_base`` and ``_build_pnasnet_base`` share: the ImageNet
    stem conv, a sequence of cells each fed ``(x, prev)``, the aux head after one cell, and
    ``final_layer`` (relu → global average → dropout → ``FC``).

    A family's ``__init__`` calls :meth:`add_cell` in slim's order and :meth:`add_aux_head`
    after the cell that carries it, then :meth:`add_final_layer`.

    Head API: ``forward_features`` returns ``relu(last cell)`` (the final layer's activation, as
    in timm's NASNet); ``forward_head(x, pre_logits=True)`` the globally pooled features (slim's
    ``global_pool`` end point). In training mode with ``aux_logits=True``, ``forward`` returns
    ``(logits, aux_logits)``; otherwise only the logits, and the aux head is not run.
    ``end_points`` has ``AuxLogits`` (after the cell it reads, as in slim's graph, in eval mode
    too) where the input size suits the aux head (see :class:`~architectures._base.SlimNet`).

    Speed: most of the time goes to the separable convs, which run 20-30% faster on CPU in
    channels-last memory layout, so the input is converted to it (same shapes and values);
    ``model.to(memory_format=torch.channels_last)`` saves the kernels' reorder as well.
    """

    tf_scope = ""  # NASNet variables have no root scope: 'conv0/weights', 'cell_0/...'
    classifier_name = "final_layer.FC"
    fuse_pairs = (("conv0", "conv0_bn"),)  # see architectures._fuse

    def __init__(
        self,
        *,
        num_classes: int,
        num_conv_filters: int,
        stem_multiplier: float,
        image_size: int,
        drop_rate: float,
        drop_path_keep_prob: float,
        aux_logits: bool,
    ) -> None:
        super().__init__()
        stem_filters = int(32 * stem_multiplier)  # conv0
        self.num_conv_filters = num_conv_filters
        self.default_image_size = image_size
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        self.drop_rate = drop_rate
        self.drop_path_keep_prob = drop_path_keep_prob
        # _imagenet_stem: 3x3/2 VALID conv and batch norm, no activation (cells start with relu)
        self.conv0 = Conv2dSame(3, stem_filters, 3, stride=2, padding="VALID", bias=False)
        self.conv0_bn = bn(stem_filters)
        # slim's cell_outputs as (channels, reductions so far); None = the stem cell's missing prev
        self._outputs: list[tuple[int, int] | None] = [None, (stem_filters, 0)]
        # run order: (cell attribute, index of its prev counted from the end of cell_outputs)
        self.cell_plan: list[tuple[str, int]] = []
        self.cell_end_points: dict[str, str] = {}
        self.aux_after: str | None = None
        self.aux_head_name: str | None = None
        self._dropped_aux_head: str | None = None

    # -- building

    def add_cell(
        self,
        name: str,
        spec: CellSpec,
        *,
        filter_size: int,
        stride: int,
        prev_offset: int = 2,
        end_point: str | None = None,
    ) -> None:
        """Append cell ``name`` on the last output; its ``prev`` is ``cell_outputs[-prev_offset]``
        (slim's list before this cell's output is appended)."""
        in_channels, in_level = self._outputs[-1]
        prev = self._outputs[-prev_offset]
        cell = Cell(
            spec,
            in_channels=in_channels,
            prev_channels=None if prev is None else prev[0],
            prev_is_larger=prev is not None and prev[1] < in_level,
            filter_size=filter_size,
            stride=stride,
        )
        self.add_module(name, cell)
        self._outputs.append((cell.out_channels, in_level + (stride > 1)))
        self.cell_plan.append((name, prev_offset))
        if end_point:
            self.cell_end_points[name] = end_point

    def filters(self, scaling: float) -> int:
        """slim's ``int(num_conv_filters * filter_scaling)``."""
        return int(self.num_conv_filters * scaling)

    def add_imagenet_stem(self, spec: CellSpec) -> None:
        """slim's ``_imagenet_stem`` after ``conv0``: two stride-2 cells of ``spec`` at 1/4 and
        1/2 of the filters (end point ``Stem``)."""
        self.add_cell("cell_stem_0", spec, filter_size=self.filters(0.25), stride=2)
        self.add_cell(
            "cell_stem_1", spec, filter_size=self.filters(0.5), stride=2, end_point="Stem"
        )

    def add_aux_head(self, cell_name: str) -> None:
        """slim's ``aux_<k>`` on ``relu(cell_<k>)``, built whatever the mode (it is in the
        checkpoints); run only for ``aux_logits=True`` in training and for ``end_points``. Its
        ``Conv`` kernel is sized for the default image size."""
        pooled_size = aux_pooled_size(self.default_image_size)
        self.aux_after = cell_name
        self.aux_head_name = "aux_" + cell_name.rsplit("_", 1)[1]
        channels = self._outputs[-1][0]
        head = AuxHead(channels, self.num_classes, pooled_size, self.cell_end_points[cell_name])
        self.add_module(self.aux_head_name, head)

    def add_final_layer(self) -> None:
        """``final_layer``: dropout (training only) and ``FC``, after the pooled features."""
        self.num_features = self._outputs[-1][0]
        self.global_pool = nn.Sequential(GlobalAvgPool(), SpatialSqueeze())
        self.final_layer = nn.Sequential(
            OrderedDict(
                dropout=nn.Dropout(self.drop_rate),
                FC=self._fc(self.num_classes),
            )
        )
        # drop path scales with depth (slim's 'v2'/'v3'): cell i of n keeps 1 - (i+1)/n * (1-p)
        self.set_drop_path_progress(1.0)

    def _fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    @property
    def classifier_names(self) -> tuple[str, ...]:
        """The main and the auxiliary classifier (``skip_classifier`` skips both)."""
        names = [self.classifier_name]
        if self.aux_head_name:
            names.append(f"{self.aux_head_name}.aux_logits.FC")
        return tuple(names)

    @property
    def optional_heads(self) -> tuple[str, ...]:
        """The aux head: NASNet-A and PNASNet-5 Large were published without part of it."""
        return (self.aux_head_name,) if self.aux_head_name else ()

    @property
    def unbuilt_heads(self) -> tuple[str, ...]:
        """The aux head once dropped (:meth:`drop_optional_head`): weights with it still load."""
        return (self._dropped_aux_head,) if self._dropped_aux_head else ()

    def drop_optional_head(self, path: str) -> None:
        """Remove the aux head (weights without it were loaded); ``aux_logits`` is then off."""
        if path != self.aux_head_name:
            raise ValueError(f"{path!r} is not an optional head of {type(self).__name__}")
        delattr(self, path)
        self._dropped_aux_head, self.aux_head_name, self.aux_logits = path, None, False

    def set_drop_path_progress(self, progress: float) -> None:
        """Scale drop path with training progress as slim does with ``global_step /
        total_training_steps`` (``drop_connect_version='v3'``): 0 = no drop path, 1 = the full
        ``drop_path_keep_prob`` (scaled by depth). Drop path is never applied in eval mode."""
        progress = min(max(float(progress), 0.0), 1.0)
        cells = [getattr(self, name) for name, _ in self.cell_plan]
        drop = 1.0 - self.drop_path_keep_prob
        for i, cell in enumerate(cells):
            layer_ratio = (i + 1) / len(cells)
            cell.drop_path_keep_prob = 1.0 - progress * layer_ratio * drop

    # -- running

    def aux_head(self) -> nn.Module | None:
        return getattr(self, self.aux_head_name) if self.aux_head_name else None

    @property
    def aux_input_end_point(self) -> str:  # the cell the head reads; AuxLogits follows it
        return self.cell_end_points[self.aux_after] if self.aux_after else ""

    def _forward_cells(
        self, x: torch.Tensor, with_aux: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stem and cells → (last cell output, aux logits if ``with_aux``: an input size the aux
        head cannot take raises)."""
        x = conv_then_bn(
            self.conv0, self.conv0_bn, self.to_channels_last(x)
        )  # faster separable convs
        outputs: list[torch.Tensor | None] = [None, x]
        aux_logits = None
        for name, prev_offset in self.cell_plan:
            x = getattr(self, name)(x, outputs[-prev_offset])
            # keep only what a later cell can still read as its prev
            outputs = [*outputs[-2:], x]
            if with_aux and name == self.aux_after:
                aux_logits = self.aux_head()(x)
        return x, aux_logits

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``relu`` of the last cell (N, C, H/32, W/32, rounded up)."""
        return torch.relu(self._forward_cells(x)[0])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Features → logits; ``pre_logits=True`` stops at the pooled features (N, C)."""
        x = self.global_pool(x)
        return x if pre_logits else self.final_layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; ``(logits, aux_logits)`` in training mode when built with ``aux_logits=True``."""
        check_input(x)
        if not (self.training and self.aux_logits):
            return self.forward_head(self.forward_features(x))
        features, aux = self._forward_cells(x, with_aux=True)
        return self.forward_head(torch.relu(features)), aux

    def reset_classifier(self, num_classes: int) -> None:
        """New ``final_layer/FC`` and aux ``FC`` for ``num_classes`` (0 = identity)."""
        self.num_classes = num_classes
        self.final_layer.FC = self._fc(num_classes)
        if self.aux_head_name:
            getattr(self, self.aux_head_name).reset_classifier(num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points: OrderedDict[str, nn.Module] = OrderedDict()
        for name, _ in self.cell_plan:
            if name in self.cell_end_points:
                points[self.cell_end_points[name]] = getattr(self, name)
        points["global_pool"] = self.global_pool
        if self.num_classes:
            points["Logits"] = self.final_layer.FC
        return points


def aux_pooled_size(image_size: int) -> int:
    """Side of the aux head's pooled map for a square ``image_size`` input: ``conv0`` (3x3/2
    VALID), three stride-2 'SAME' cells (two stem cells, the first reduction), 5x5/3 VALID."""
    size = (image_size - 3) // 2 + 1
    for _ in range(3):
        size = math.ceil(size / 2)
    return (size - 5) // 3 + 1

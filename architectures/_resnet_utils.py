"""What slim's ``nets/resnet_utils.py`` shares between ResNet V1 and V2, and the common head.

Ported from tensorflow/models ``research/slim/nets/resnet_utils.py``:

* :func:`resnet_blocks` + :func:`stack_blocks_dense`: the four blocks of bottleneck units and
  slim's ``output_stride`` control by atrous convolution (which unit gets which stride and rate);
* :func:`subsample` (the strided identity shortcut) and :func:`conv2d_same_padding`;
* :class:`SlimResNet`: the part of ``resnet_v1()``/``resnet_v2()`` that slim writes twice:
  stacking the blocks, global pooling, the 1x1-conv ``logits`` and slim's end point names.

slim places the stride of a block on the 3x3 conv of its *last* unit (``resnet_v1_block`` /
``resnet_v2_block``: units 1..n-1 stride 1, unit n the block stride; block4 stride 1), unlike
the paper and torchvision (first unit). The released checkpoints were evaluated with slim's code,
so the ports follow slim.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SlimNet
from ._packed import cached_on, fast_inference_enabled, own_tensor, packing_enabled
from .layers import BatchNorm2d, Conv1x1AsLinear, GlobalAvgPool, MaxPool2dSame, SpatialSqueeze

__all__ = [
    "BN_EPS",
    "NUM_UNITS",
    "BatchNormRelu",
    "ConvLogits",
    "ResNetBlock",
    "SlimResNet",
    "UnitSpec",
    "conv2d_same_padding",
    "resnet_blocks",
    "stack_blocks_dense",
    "subsample",
    "unit_shortcut",
]

# resnet_arg_scope: batch_norm_epsilon=1e-5, batch_norm_scale=True
BN_EPS = 1e-5
# conv1 (stride 2) and pool1 (stride 2) come before the blocks
ROOT_STRIDE = 4
# units per block of slim's resnet_v1_<depth> / resnet_v2_<depth> (the same in both)
NUM_UNITS = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}


# --------------------------------------------------------------------------- slim's blocks


@dataclass(frozen=True)
class UnitSpec:
    """The arguments slim passes to one bottleneck unit (``Block.args`` + the atrous rate)."""

    depth: int  # output channels (4 * base_depth)
    depth_bottleneck: int  # channels of the 1x1 / 3x3 / 1x1 bottleneck (base_depth)
    stride: int  # stride of the unit's 3x3 conv and of its shortcut
    rate: int = 1  # atrous rate of the 3x3 conv


def resnet_blocks(num_units: tuple[int, int, int, int]) -> list[list[UnitSpec]]:
    """slim's ``resnet_v{1,2}_block`` calls: base depths 64/128/256/512, block strides 2/2/2/1,
    each block's stride on its last unit."""
    blocks = []
    for base_depth, units, stride in zip((64, 128, 256, 512), num_units, (2, 2, 2, 1)):
        blocks.append(
            [UnitSpec(4 * base_depth, base_depth, 1) for _ in range(units - 1)]
            + [UnitSpec(4 * base_depth, base_depth, stride)]
        )
    return blocks


def stack_blocks_dense(
    blocks: list[list[UnitSpec]], output_stride: int | None
) -> list[list[UnitSpec]]:
    """Strides and atrous rates of every unit for a network ``output_stride`` (None = nominal 32).

    As slim's ``resnet_v1``/``resnet_v2`` + ``stack_blocks_dense``: the root block takes a
    factor 4, then units run at their stride until the accumulated stride reaches the target.
    From there on every unit runs at stride 1 with the current rate, and a unit that would have
    strided multiplies the rate *of the units after it* by its stride (it keeps the old rate).

    Raises:
        ValueError: ``output_stride`` is not a multiple of 4 or is not reachable.
    """
    if output_stride is None:
        return [list(block) for block in blocks]
    if output_stride % ROOT_STRIDE != 0:
        raise ValueError(f"output_stride must be a multiple of 4 (or None), got {output_stride}")
    target = output_stride // ROOT_STRIDE
    current, rate = 1, 1
    stacked = []
    for block in blocks:
        units = []
        for unit in block:
            if current > target:
                raise _unreachable(output_stride, blocks)
            if current == target:
                units.append(replace(unit, stride=1, rate=rate))
                rate *= unit.stride
            else:
                units.append(unit)
                current *= unit.stride
        stacked.append(units)
    if current != target:
        raise _unreachable(output_stride, blocks)
    return stacked


def _unreachable(output_stride: int, blocks: list[list[UnitSpec]]) -> ValueError:
    strides, current = {ROOT_STRIDE}, ROOT_STRIDE
    for block in blocks:
        for unit in block:
            current *= unit.stride
            strides.add(current)
    return ValueError(
        f"output_stride {output_stride} cannot be reached by this network: "
        f"use None or one of {sorted(strides)}"
    )


def conv2d_same_padding(kernel_size: int, rate: int = 1) -> int:
    """Per-side zero padding of slim's ``conv2d_same`` (and of ``conv2d(padding='SAME')`` at
    stride 1) for an odd kernel, with the native symmetric ``padding=`` of ``nn.Conv2d``.

    ``conv2d_same`` pads ``k_eff - 1`` in total (``k_eff = k + (k - 1) * (rate - 1)``), the
    smaller half first, then convolves 'VALID'; at stride 1 it is a 'SAME' conv, whose total is
    also ``k_eff - 1`` for every input size. For odd ``k`` that total is even, so both halves
    are ``(k - 1) * rate // 2``: no asymmetric padding and no run-time padding op.
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"conv2d_same_padding needs an odd kernel, got {kernel_size}")
    return (kernel_size - 1) * rate // 2


def subsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """slim ``subsample``: a 1x1 max pool of stride ``factor`` ('SAME' pads nothing for a 1x1
    kernel), i.e. every ``factor``-th pixel from the first, as a strided view."""
    return x if factor == 1 else x[:, :, ::factor, ::factor]


# --------------------------------------------------------------------------- shared layers


class ResNetBlock(nn.Sequential):
    """``blockN``: its units (``unit_1``, ``unit_2``, ... each holding the bottleneck) in order.

    After :func:`~architectures.optimize_for_inference`, a unit after the first may write its
    output into its input where that input is its identity shortcut: the input is then the
    previous unit's output, which nothing but this loop holds, and the residual sum happens
    inside the unit's last conv (oneDNN's sum post-op) instead of in a separate pass over
    memory (ResNet-50 on CPU: 1-3% less time). The first unit's input is the
    caller's and is never written. A hook anywhere in the block could hold an input, so any
    hook (or autograd) keeps every unit on its ordinary path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, *rest = self
        x = first(x)
        if rest and _sums_in_place(rest[0], x) and _may_overwrite_unit_inputs(self, x):
            for unit in rest:
                x = unit[0](x, overwrite_input=True)  # no hooks to bypass (checked)
            return x
        for unit in rest:
            x = unit(x)
        return x


def unit_shortcut(
    unit: nn.Module, x: torch.Tensor, shortcut_input: torch.Tensor, overwrite_input: bool
) -> tuple[torch.Tensor, bool]:
    """A bottleneck's shortcut, and whether the unit may write its output into it: its
    projection (a new tensor) always, ``x`` itself only where the caller lets it
    (``overwrite_input``), a strided view of ``x`` never."""
    if unit.shortcut is None:
        return subsample(x, unit.stride), overwrite_input and unit.stride == 1
    return unit.shortcut(shortcut_input), True


def _sums_in_place(unit: nn.Module, x: torch.Tensor) -> bool:
    """Whether the unit's last conv may run packed (after
    :func:`~architectures.optimize_for_inference`, or by default in eval mode without autograd),
    the only case where it can take the residual sum; before it, no hook check is needed."""
    conv3 = unit[0].conv3
    return packing_enabled(getattr(conv3, "conv", conv3), x)  # V1: ConvBnAct, V2: a conv


def _may_overwrite_unit_inputs(block: nn.Module, x: torch.Tensor) -> bool:
    """No autograd and no forward hook (on the block's modules or global) that could see an
    intermediate tensor."""
    if torch.is_grad_enabled() and x.requires_grad:
        return False
    hooks = torch.nn.modules.module
    if any(getattr(hooks, name, None) for name in _GLOBAL_HOOKS):
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in block.modules())


# torch's module-level registries of register_module_forward_(pre_)hook
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks")


class BatchNormRelu(BatchNorm2d):
    """slim ``batch_norm(activation_fn=relu)`` as its own scope (V2's ``preact``/``postnorm``):
    ``<scope>/gamma``, ``<scope>/beta``, ... with no ``BatchNorm`` sub-scope."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=BN_EPS, scale=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._affine_applies(x):
            # one fused multiply-add from the cached scale and shift: 0.46-0.81x the time of
            # the batch norm op (1 thread, batch 1 and 16, ResNet-50's map sizes). Not into x:
            # the unit's shortcut may still need it.
            scale, shift = cached_on(self, self._sources(), None, self._scale_shift)
            return torch.addcmul(shift, x, scale).relu_()
        return torch.relu_(super().forward(x))  # the normalised tensor is new: ReLU in place

    def _affine_applies(self, x: torch.Tensor) -> bool:
        """The fast path by default (see :mod:`architectures._packed`): eval mode with moving
        statistics, nothing for autograd, eager mode, the parameters' dtype."""
        if self.training or not fast_inference_enabled() or torch.compiler.is_compiling():
            return False
        weight, bias, _, running_var = self._sources()
        return (
            running_var is not None
            and x.dtype == running_var.dtype
            and x.dim() == 4
            and not (
                torch.is_grad_enabled()
                and (x.requires_grad or weight.requires_grad or bias.requires_grad)
            )
        )

    def _sources(self) -> tuple[torch.Tensor | None, ...]:
        return (
            own_tensor(self, "weight"),
            own_tensor(self, "bias"),
            own_tensor(self, "running_mean"),
            own_tensor(self, "running_var"),
        )

    def _scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch norm as ``x * scale + shift``, each (1, C, 1, 1)."""
        scale = torch.rsqrt(self.running_var + self.eps) * self.weight
        shift = self.bias - self.running_mean * scale
        return scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)


class ConvLogits(Conv1x1AsLinear):
    """slim's ``logits`` 1x1 conv (with bias) as an ``nn.Linear`` that also takes NCHW maps.

    (N, C, H, W) → (N, K, H, W), exactly the conv (slim's ``<scope>/logits`` end point is this
    4-D tensor; ``global_pool=False`` gives a score map); (N, C) → (N, K).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        if x.shape[-2:] == (1, 1):
            return super().forward(x.flatten(1))[:, :, None, None]
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


# --------------------------------------------------------------------------- the common model


class SlimResNet(SlimNet):
    """The skeleton of slim's ``resnet_v1()`` and ``resnet_v2()``: root block (``conv1``, the
    3x3/2 'SAME' max pool ``pool1``), four blocks, the family's :meth:`add_top`, head.

    A family sets ``unit_name`` (``bottleneck_v1``/``bottleneck_v2``), ``unit`` (the bottleneck
    module, built as ``unit(in_channels, spec)``), its released class count and default scope,
    and implements :meth:`root_conv` (and :meth:`add_top`/:meth:`top` for ``postnorm``). This
    class holds what both generators share: the block/unit modules named after the TF scopes
    (``block1.unit_1.bottleneck_v1``), global pooling, the ``logits`` 1x1 conv (a
    :class:`ConvLogits`), the spatial squeeze and slim's end point names.

    Args:
        num_units: units per block (``(3, 4, 6, 3)`` for ResNet-50, see :data:`NUM_UNITS`).
        num_classes: classes of ``logits`` (None: the released checkpoints' count); 0 = no
            logits, the model then returns the pooled features.
        global_pool: average the final map before ``logits``; off, a larger map gives a score
            map (N, classes, h, w), as in slim (fully convolutional use).
        output_stride: None (32) or 4/8/16: keep this resolution with atrous convolution.
        tf_scope: root TF scope, e.g. ``resnet_v1_50`` (None: the family's ResNet-50 scope).
    """

    predictions_end_point = False  # slim's resnets call it 'predictions' (lower case): below
    unit_name: str
    unit: Callable[[int, UnitSpec], nn.Module]
    released_num_classes: int
    default_tf_scope: str

    def __init__(
        self,
        *,
        num_units: tuple[int, int, int, int],
        num_classes: int | None = None,
        global_pool: bool = True,
        output_stride: int | None = None,
        tf_scope: str | None = None,
    ) -> None:
        super().__init__()
        self.tf_scope = tf_scope or self.default_tf_scope
        self.classifier_name = "logits"
        self.num_classes = self.released_num_classes if num_classes is None else num_classes
        self.global_pool = global_pool
        self.output_stride = output_stride
        self.block_names: list[str] = []

        self.conv1 = self.root_conv()
        self.pool1 = MaxPool2dSame(3, 2, "SAME")
        num_features = self.add_blocks(type(self).unit, num_units, in_channels=64)
        self.add_top(num_features)
        self.add_head(num_features)
        self.use_channels_last()

    def root_conv(self) -> nn.Module:
        """``conv1``: slim's 7x7/2 ``conv2d_same`` of the family."""
        raise NotImplementedError

    def add_top(self, num_features: int) -> None:
        """Layers between ``block4`` and the head (V2's ``postnorm``); none by default."""

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → final map (N, 2048, H/s, W/s), s = ``output_stride``."""
        x = self.to_channels_last(x)
        return self.top(self.forward_blocks(self.pool1(self.conv1(x))))

    def add_blocks(
        self,
        unit_fn: Callable[..., nn.Module],
        num_units: tuple[int, int, int, int],
        in_channels: int = 64,
    ) -> int:
        """Add ``block1..block4``, each ``unit_<i>`` holding one ``<unit_name>`` module built by
        ``unit_fn(in_channels, spec)``. Returns the channels of the last block."""
        blocks = stack_blocks_dense(resnet_blocks(num_units), self.output_stride)
        for b, units in enumerate(blocks, start=1):
            block = ResNetBlock()
            for u, spec in enumerate(units, start=1):
                unit = nn.Sequential(OrderedDict([(self.unit_name, unit_fn(in_channels, spec))]))
                block.add_module(f"unit_{u}", unit)
                in_channels = spec.depth
            setattr(self, f"block{b}", block)
            self.block_names.append(f"block{b}")
        return in_channels

    def add_head(self, num_features: int) -> None:
        """``pool5`` (global mean, end point ``global_pool``), ``logits``, ``SpatialSqueeze``."""
        self.num_features = num_features
        self.pool = GlobalAvgPool() if self.global_pool else nn.Identity()
        self.logits = self._make_logits(self.num_classes)
        self.squeeze = SpatialSqueeze()

    def _make_logits(self, num_classes: int) -> nn.Module:
        return ConvLogits(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.block_names:
            x = getattr(self, name)(x)
        return x

    def use_channels_last(self) -> None:
        """Store the conv kernels channels-last; with :meth:`to_channels_last` on the input the
        whole network then runs in that memory layout (same shapes and values to the caller).

        On CPU, oneDNN convolves channels-last activations directly instead of converting every
        one to and from its blocked layout, and max pooling, batch norm and the residual adds
        get cheaper (ResNet-50 on CPU: about 30% less time than NCHW at batch 16; kernels
        stored channels-last save another 10-20% at batch 1, where PyTorch would otherwise
        convert them at every call). It is also the layout tensor-core GPUs prefer.
        """
        self.to(memory_format=torch.channels_last)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map → logits (N, classes), or a score map (N, classes, h, w) when
        ``global_pool`` is off and the map is larger than 1x1. ``pre_logits=True`` returns the
        pooled features (N, C), the input of ``logits``."""
        x = self.pool(x)
        if pre_logits:
            return self.squeeze(x)
        return self.squeeze(self.logits(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.logits = self._make_logits(num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        s, unit_name = self.tf_scope, self.unit_name
        points: OrderedDict[str, nn.Module] = OrderedDict()
        points[f"{s}/conv1"] = self.conv1
        for block_name in self.block_names:
            block = getattr(self, block_name)
            for name, unit in block.named_children():
                bottleneck = getattr(unit, unit_name)
                scope = f"{s}/{block_name}/{name}/{unit_name}"
                if bottleneck.shortcut is not None:  # a subsampled identity is no end point
                    points[f"{scope}/shortcut"] = bottleneck.shortcut
                for conv in ("conv1", "conv2", "conv3"):
                    points[f"{scope}/{conv}"] = getattr(bottleneck, conv)
                points[scope] = bottleneck
            points[f"{s}/{block_name}"] = block
        if self.global_pool:
            points["global_pool"] = self.pool
        if self.num_classes:
            points[f"{s}/logits"] = self.logits
            points[f"{s}/spatial_squeeze"] = self.squeeze
        return points

    def feature_end_point_names(self) -> list[str]:
        """The feature levels of ``features_only``: ``conv1`` and every block's output (slim
        puts each block's stride in its last unit: block1 is at 8, block4 at block3's stride;
        with an ``output_stride`` the atrous blocks stay separate levels at that stride)."""
        return [f"{self.tf_scope}/conv1", *(f"{self.tf_scope}/{b}" for b in self.block_names)]

    @torch.no_grad()
    def end_points(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        points = super().end_points(x)
        if self.num_classes:
            points["predictions"] = torch.softmax(points[f"{self.tf_scope}/spatial_squeeze"], 1)
        return points

"""Inception v3, ported from TF-slim.

Paper: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
https://arxiv.org/abs/1512.00567.
Slim source: tensorflow/models ``research/slim/nets/inception_v3.py`` (``inception_v3``,
``inception_v3_base``) with ``inception_utils.inception_arg_scope``.
Checkpoint: ``inception_v3_2016_08_28`` (TF V1 single file): 1001 classes (index 0 =
background), 299x299, "inception" preprocessing (RGB scaled to [-1, 1]); it holds the
auxiliary head.

Slim quirks reproduced here:

* the stem is 'VALID' except ``Conv2d_2b_3x3``, and so are the stride-2 convs and max pools of
  ``Mixed_6a``/``Mixed_7a``; everything else is 'SAME' (stride 1, symmetric); the 'SAME' 3x3
  average pools exclude the padding from the count, as TF does;
* batch norm after every conv except the classifiers: epsilon 1e-3, no gamma (``scale=False``),
  no conv biases; the logits are 1x1 convs with biases (``Logits/Conv2d_1c_1x1``,
  ``AuxLogits/Conv2d_2b_1x1``);
* checkpoint names that do not follow the pattern stay: ``Mixed_5c/Branch_1`` has
  ``Conv2d_0b_1x1`` and ``Conv_1_0c_5x5``; ``Mixed_6a``'s 3x3 stride-2 convs are called
  ``Conv2d_1a_1x1``; ``Mixed_7b/Branch_1`` has ``Conv2d_0b_3x1`` where ``Mixed_7c`` has
  ``Conv2d_0c_3x1``;
* ``global_pool=False`` (slim's default) is ``AvgPool_1a``: a VALID 8x8 average pool with
  slim's default *stride 2*, shrunk to the map when it is smaller
  (``_reduced_kernel_size_for_small_input``). An 8x8 or 9x9 ``Mixed_7c`` map (inputs of 299 to
  362 pixels) gives 1x1 (a 9x9 map averages its top-left 8x8 only, as in slim); a larger map
  needs ``global_pool=True`` (a mean over the whole map, end point ``global_pool``);
* the auxiliary head on ``Mixed_6e`` (``create_aux_logits=True``, slim's default): 5x5/3 VALID
  average pool, 1x1 conv, ``Conv2d_2a_5x5`` VALID conv, 1x1-conv logits. Slim sizes that conv's
  kernel to the pooled map (``Conv2d_2a_{k}x{k}``), so its variables only fit the checkpoint's
  5x5 when ``Mixed_6e`` is 17 to 19 pixels wide: inputs of 299 to 346 pixels. This port keeps
  the checkpoint's 5x5 conv; at other sizes computing the auxiliary logits raises an error
  (build with ``create_aux_logits=False`` there). The head is only run when its output is
  wanted: ``forward`` returns ``(logits, aux_logits)`` in training mode when built with
  ``aux_logits=True`` (as torchvision's ``inception_v3``), and ``end_points`` has ``AuxLogits``;
* ``depth_multiplier``/``min_depth`` thin every conv like slim's ``depth()``; the defaults (1.0,
  16) are the checkpoint's widths;
* dropout before the logits (slim's ``dropout_keep_prob=0.8``), active in training only; the
  dropout's output is the ``PreLogits`` end point.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from ._inception_utils import AuxLogits, FanOutBranch, InceptionNet, PoolBranch, conv, seq
from ._registry import register_model
from .layers import (
    Concat,
    Conv1x1AsLinear,
    ConvLogitsHead,
    FixedWindowAvgPool,
    GlobalAvgPool,
    MaxPool2dSame,
)

__all__ = ["InceptionV3", "inception_v3"]

# --------------------------------------------------------------------------- building blocks

Depth = Callable[[int], int]  # slim's depth(): width at depth_multiplier 1 → thinned width


def pool_branch(in_channels: int, width: int) -> PoolBranch:
    """Branch_3 of the stride-1 blocks: 3x3 'SAME' average pool → 1x1 conv (run conv first,
    which pools 4-11x fewer channels: see :class:`PoolBranch`)."""
    return PoolBranch(in_channels, width)


def inception_5x5(in_channels: int, pool_width: int, branch_1_names: tuple[str, str], d: Depth):
    """``Mixed_5b`` … ``5d`` (35x35): 1x1 | 1x1 → 5x5 | 1x1 → 3x3 → 3x3 | avg pool → 1x1.
    ``branch_1_names`` are the TF scopes of Branch_1's convs (``Mixed_5c`` differs)."""
    return Concat(
        Branch_0=seq(("Conv2d_0a_1x1", conv(in_channels, d(64), 1))),
        Branch_1=seq(
            (branch_1_names[0], conv(in_channels, d(48), 1)),
            (branch_1_names[1], conv(d(48), d(64), 5)),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(in_channels, d(64), 1)),
            ("Conv2d_0b_3x3", conv(d(64), d(96), 3)),
            ("Conv2d_0c_3x3", conv(d(96), d(96), 3)),
        ),
        Branch_3=pool_branch(in_channels, d(pool_width)),
    )


def reduction_35(in_channels: int, d: Depth) -> Concat:
    """``Mixed_6a`` (35 → 17): 3x3/2 | 1x1 → 3x3 → 3x3/2 | 3x3/2 max pool, all strided VALID."""
    return Concat(
        Branch_0=seq(("Conv2d_1a_1x1", conv(in_channels, d(384), 3, stride=2, padding="VALID"))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(in_channels, d(64), 1)),
            ("Conv2d_0b_3x3", conv(d(64), d(96), 3)),
            ("Conv2d_1a_1x1", conv(d(96), d(96), 3, stride=2, padding="VALID")),
        ),
        Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
    )


def inception_7x7(in_channels: int, mid: int, d: Depth) -> Concat:
    """``Mixed_6b`` … ``6e`` (17x17): 1x1 | 1x1 → 1x7 → 7x1 | 1x1 → 7x1 → 1x7 → 7x1 → 1x7 |
    avg pool → 1x1; ``mid`` is the width inside the factorised 7x7 branches."""
    return Concat(
        Branch_0=seq(("Conv2d_0a_1x1", conv(in_channels, d(192), 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(in_channels, d(mid), 1)),
            ("Conv2d_0b_1x7", conv(d(mid), d(mid), (1, 7))),
            ("Conv2d_0c_7x1", conv(d(mid), d(192), (7, 1))),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(in_channels, d(mid), 1)),
            ("Conv2d_0b_7x1", conv(d(mid), d(mid), (7, 1))),
            ("Conv2d_0c_1x7", conv(d(mid), d(mid), (1, 7))),
            ("Conv2d_0d_7x1", conv(d(mid), d(mid), (7, 1))),
            ("Conv2d_0e_1x7", conv(d(mid), d(192), (1, 7))),
        ),
        Branch_3=pool_branch(in_channels, d(192)),
    )


def reduction_17(in_channels: int, d: Depth) -> Concat:
    """``Mixed_7a`` (17 → 8): 1x1 → 3x3/2 | 1x1 → 1x7 → 7x1 → 3x3/2 | 3x3/2 max pool."""
    return Concat(
        Branch_0=seq(
            ("Conv2d_0a_1x1", conv(in_channels, d(192), 1)),
            ("Conv2d_1a_3x3", conv(d(192), d(320), 3, stride=2, padding="VALID")),
        ),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(in_channels, d(192), 1)),
            ("Conv2d_0b_1x7", conv(d(192), d(192), (1, 7))),
            ("Conv2d_0c_7x1", conv(d(192), d(192), (7, 1))),
            ("Conv2d_1a_3x3", conv(d(192), d(192), 3, stride=2, padding="VALID")),
        ),
        Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
    )


def inception_fan_out(in_channels: int, branch_1_3x1: str, d: Depth) -> Concat:
    """``Mixed_7b``, ``7c`` (8x8): 1x1 | 1x1 → (1x3, 3x1) | 1x1 → 3x3 → (1x3, 3x1) |
    avg pool → 1x1. ``branch_1_3x1`` is the TF scope of Branch_1's 3x1 conv (they differ)."""
    branch_1 = OrderedDict(
        [
            ("Conv2d_0a_1x1", conv(in_channels, d(384), 1)),
            ("Conv2d_0b_1x3", conv(d(384), d(384), (1, 3))),
            (branch_1_3x1, conv(d(384), d(384), (3, 1))),
        ]
    )
    branch_2 = OrderedDict(
        Conv2d_0a_1x1=conv(in_channels, d(448), 1),
        Conv2d_0b_3x3=conv(d(448), d(384), 3),
        Conv2d_0c_1x3=conv(d(384), d(384), (1, 3)),
        Conv2d_0d_3x1=conv(d(384), d(384), (3, 1)),
    )
    return Concat(
        Branch_0=seq(("Conv2d_0a_1x1", conv(in_channels, d(320), 1))),
        Branch_1=FanOutBranch(branch_1),
        Branch_2=FanOutBranch(branch_2),
        Branch_3=pool_branch(in_channels, d(192)),
    )


# --------------------------------------------------------------------------- the model


class InceptionV3(InceptionNet):
    """Inception v3 as in slim: a conv stem, eleven mixed blocks, pooled logits, and the
    auxiliary classifier on ``Mixed_6e``.

    Args:
        num_classes: classes of the classifiers (the checkpoint has 1001); 0 drops both and
            ``forward`` returns the pooled 2048 features.
        global_pool: average the whole ``Mixed_7c`` map (any input size) instead of slim's
            default fixed 8x8 stride-2 window (1x1 output for inputs up to 362 pixels only).
        create_aux_logits: build the auxiliary head (slim's default; the checkpoint has it).
        aux_logits: in training mode, ``forward`` returns ``(logits, aux_logits)``.
        drop_rate: dropout before the logits in training (slim: keep_prob 0.8).
        depth_multiplier: scales every conv's width (slim's ``depth_multiplier``, > 0).
        min_depth: smallest width a scaled conv gets (slim's ``min_depth``).
    """

    # slim has AuxLogits at every input size (with a kernel of another size): where the
    # checkpoint's 5x5 kernel does not fit, end_points() raises instead of leaving it out
    aux_end_point_always = True

    def __init__(
        self,
        *,
        num_classes: int = 1001,
        global_pool: bool = False,
        create_aux_logits: bool = True,
        aux_logits: bool = False,
        drop_rate: float = 0.2,
        depth_multiplier: float = 1.0,
        min_depth: int = 16,
    ) -> None:
        super().__init__()
        if depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be greater than 0, got {depth_multiplier}")
        self.tf_scope = "InceptionV3"
        self.classifier_name = "Logits.Conv2d_1c_1x1"
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.aux_logits = aux_logits

        def d(width: int) -> int:  # slim's depth()
            return max(int(width * depth_multiplier), min_depth)

        base: OrderedDict[str, nn.Module] = OrderedDict(
            Conv2d_1a_3x3=conv(3, d(32), 3, stride=2, padding="VALID"),
            Conv2d_2a_3x3=conv(d(32), d(32), 3, padding="VALID"),
            Conv2d_2b_3x3=conv(d(32), d(64), 3),
            MaxPool_3a_3x3=MaxPool2dSame(3, 2, "VALID"),
            Conv2d_3b_1x1=conv(d(64), d(80), 1, padding="VALID"),
            Conv2d_4a_3x3=conv(d(80), d(192), 3, padding="VALID"),
            MaxPool_5a_3x3=MaxPool2dSame(3, 2, "VALID"),
        )
        in_ch = d(192)
        for name, pool_width, branch_1 in (
            ("Mixed_5b", 32, ("Conv2d_0a_1x1", "Conv2d_0b_5x5")),
            ("Mixed_5c", 64, ("Conv2d_0b_1x1", "Conv_1_0c_5x5")),
            ("Mixed_5d", 64, ("Conv2d_0a_1x1", "Conv2d_0b_5x5")),
        ):
            base[name] = inception_5x5(in_ch, pool_width, branch_1, d)
            in_ch = d(64) + d(64) + d(96) + d(pool_width)
        base["Mixed_6a"] = reduction_35(in_ch, d)
        in_ch += d(384) + d(96)  # the max pool branch passes the input's channels on
        for name, mid in (
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ):
            base[name] = inception_7x7(in_ch, mid, d)
            in_ch = 4 * d(192)
        aux_input = in_ch  # channels of Mixed_6e
        base["Mixed_7a"] = reduction_17(in_ch, d)
        in_ch += d(320) + d(192)
        for name, branch_1_3x1 in (("Mixed_7b", "Conv2d_0b_3x1"), ("Mixed_7c", "Conv2d_0c_3x1")):
            base[name] = inception_fan_out(in_ch, branch_1_3x1, d)
            in_ch = d(320) + 2 * d(384) + 2 * d(384) + d(192)
        self.add_base(base)  # slim's inception_v3_base: every layer is an end point
        self.num_features = in_ch

        # slim's 'AuxLogits' scope: built only for a model with logits, as in slim
        self.AuxLogits = None
        if create_aux_logits and num_classes:
            self.AuxLogits = AuxLogits(
                aux_input,
                num_classes,
                scopes=("AvgPool_1a_5x5", "Conv2d_1b_1x1", "Conv2d_2a_5x5", "Conv2d_2b_1x1"),
                input_name="Mixed_6e",
                classifier=Conv1x1AsLinear,
                widths=(d(128), d(768)),
            )
        self.aux_after = "Mixed_6e"
        # slim's 'Logits' scope; the pool's name is its end point
        fixed = ("AvgPool_1a", FixedWindowAvgPool(8, 2, shrink=True))
        pool = ("global_pool", GlobalAvgPool()) if global_pool else fixed
        self.Logits = ConvLogitsHead(
            in_ch, num_classes, drop_rate, pool, "Dropout_1b", "Conv2d_1c_1x1"
        )
        self.check_aux_logits()

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points = super().end_point_modules()
        if self.num_classes:
            points["PreLogits"] = self.Logits.Dropout_1b  # the dropout's output, still 4-D
        return points


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes (FanOutBranch is a Sequential, so its convs sit
# directly in the Branch scope), ConvBnAct maps its batch norm to 'BatchNorm' and both
# classifiers are Conv1x1AsLinear, so the generic walker in _tf.py maps everything:
# ``AuxLogits.Conv2d_2a_5x5.conv.weight`` → ``InceptionV3/AuxLogits/Conv2d_2a_5x5/weights``.

# --------------------------------------------------------------------------- constructors


@register_model
def inception_v3(**kwargs) -> InceptionV3:
    """Inception v3, 1001 classes, 299x299, with the auxiliary head."""
    return InceptionV3(**kwargs)

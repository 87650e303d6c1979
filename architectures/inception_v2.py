"""Inception v2 (BN-Inception), ported from TF-slim.

Paper: Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
Internal Covariate Shift", ICML 2015, https://arxiv.org/abs/1502.03167.
Slim source: tensorflow/models ``research/slim/nets/inception_v2.py`` (``inception_v2``,
``inception_v2_base``) with ``inception_utils.inception_arg_scope``.
Checkpoint: ``inception_v2_2016_08_28`` (TF V1 single file): 1001 classes (index 0 =
background), 224x224, "inception" preprocessing (RGB scaled to [-1, 1]).

Slim quirks reproduced here:

* ``Conv2d_1a_7x7`` is a *separable* conv: a 7x7 stride-2 depthwise conv with depth multiplier
  ``min(depth(64) // 3, 8)`` (8) and a 1x1 pointwise conv, with a bias and ReLU but no batch
  norm (the arg scope puts batch norm on ``conv2d`` only);
* every conv and pool of the base network is 'SAME' with TF's padding, asymmetric for the
  stride-2 layers on even map sizes; the 'SAME' 3x3 average pools exclude the padding from the
  count, as TF does;
* batch norm after every other conv: epsilon 1e-3, no gamma (``scale=False``), no conv biases;
  the logits layer is a 1x1 conv with biases (``Logits/Conv2d_1c_1x1``);
* ``Mixed_5c``'s pool branch is a max pool (every other module averages);
* ``global_pool=False`` (slim's default) is ``AvgPool_1a``: a VALID average pool of 7x7 with
  slim's default *stride 2*, shrunk to the map when it is smaller
  (``_reduced_kernel_size_for_small_input``). A 7x7 or 8x8 ``Mixed_5c`` map (inputs of 193 to
  256 pixels) gives 1x1 (an 8x8 map averages its top-left 7x7 only, as in slim); a larger map
  needs ``global_pool=True`` (a mean over the whole map, end point ``global_pool``);
* ``depth_multiplier``/``min_depth`` thin every conv like slim's ``depth()``; the defaults (1.0,
  16) are the checkpoint's widths;
* dropout before the logits (slim's ``dropout_keep_prob=0.8``), active in training only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from ._base import ChainNet
from ._inception_utils import PoolBranch, conv, relu
from ._registry import register_model
from .layers import (
    Concat,
    ConvLogitsHead,
    FixedWindowAvgPool,
    GlobalAvgPool,
    MaxPool2dSame,
    SeparableConv2dSame,
)

__all__ = ["InceptionV2", "inception_v2"]

# --------------------------------------------------------------------------- building blocks


def inception_module(
    in_channels: int,
    branch_0: int,
    branch_1: tuple[int, int],
    branch_2: tuple[int, int],
    branch_3: int,
    pool: str = "AvgPool_0a_3x3",
) -> Concat:
    """``Mixed_3b``, ``3c``, ``4b`` … ``4e``, ``5b``, ``5c``: 1x1 | 1x1 → 3x3 | 1x1 → 3x3 → 3x3 |
    3x3 pool → 1x1.

    ``branch_1`` is (1x1 width, 3x3 width), ``branch_2`` (1x1 width, width of both 3x3s);
    ``pool`` is the TF scope of Branch_3's pool, ``MaxPool_0a_3x3`` for a max pool.
    """
    if pool.startswith("Max"):
        last: nn.Module = nn.Sequential(
            OrderedDict(
                [(pool, MaxPool2dSame(3, 1)), ("Conv2d_0b_1x1", conv(in_channels, branch_3, 1))]
            )
        )
    else:  # run conv first: it pools 4-8x fewer channels (see PoolBranch)
        last = PoolBranch(in_channels, branch_3)
    return Concat(
        Branch_0=nn.Sequential(OrderedDict(Conv2d_0a_1x1=conv(in_channels, branch_0, 1))),
        Branch_1=nn.Sequential(
            OrderedDict(
                Conv2d_0a_1x1=conv(in_channels, branch_1[0], 1),
                Conv2d_0b_3x3=conv(branch_1[0], branch_1[1], 3),
            )
        ),
        Branch_2=nn.Sequential(
            OrderedDict(
                Conv2d_0a_1x1=conv(in_channels, branch_2[0], 1),
                Conv2d_0b_3x3=conv(branch_2[0], branch_2[1], 3),
                Conv2d_0c_3x3=conv(branch_2[1], branch_2[1], 3),
            )
        ),
        Branch_3=last,
    )


def reduction_module(
    in_channels: int, branch_0: tuple[int, int], branch_1: tuple[int, int]
) -> Concat:
    """``Mixed_4a``, ``Mixed_5a`` (grid size halves): 1x1 → 3x3/2 | 1x1 → 3x3 → 3x3/2 | 3x3/2 max
    pool. ``branch_0`` is (1x1 width, 3x3 width), ``branch_1`` (1x1 width, width of both 3x3s)."""
    return Concat(
        Branch_0=nn.Sequential(
            OrderedDict(
                Conv2d_0a_1x1=conv(in_channels, branch_0[0], 1),
                Conv2d_1a_3x3=conv(branch_0[0], branch_0[1], 3, stride=2),
            )
        ),
        Branch_1=nn.Sequential(
            OrderedDict(
                Conv2d_0a_1x1=conv(in_channels, branch_1[0], 1),
                Conv2d_0b_3x3=conv(branch_1[0], branch_1[1], 3),
                Conv2d_1a_3x3=conv(branch_1[1], branch_1[1], 3, stride=2),
            )
        ),
        Branch_2=nn.Sequential(OrderedDict(MaxPool_1a_3x3=MaxPool2dSame(3, 2))),
    )


# The mixed blocks of slim's inception_v2_base at depth_multiplier 1: inception modules as
# (Branch_0, Branch_1, Branch_2, Branch_3) widths, reduction modules as (Branch_0, Branch_1).
MIXED = {
    "Mixed_3b": (64, (64, 64), (64, 96), 32),
    "Mixed_3c": (64, (64, 96), (64, 96), 64),
    "Mixed_4a": ((128, 160), (64, 96)),
    "Mixed_4b": (224, (64, 96), (96, 128), 128),
    "Mixed_4c": (192, (96, 128), (96, 128), 128),
    "Mixed_4d": (160, (128, 160), (128, 160), 96),
    "Mixed_4e": (96, (128, 192), (160, 192), 96),
    "Mixed_5a": ((128, 192), (192, 256)),
    "Mixed_5b": (352, (192, 320), (160, 224), 128),
    "Mixed_5c": (352, (192, 320), (192, 224), 128),
}


def _thin(widths, depth: Callable[[int], int]):
    """``widths`` (nested tuples of ints) with ``depth`` applied to every width."""
    return depth(widths) if isinstance(widths, int) else tuple(_thin(w, depth) for w in widths)


def _out_channels(widths: tuple, in_channels: int) -> int:
    """Channels a mixed block outputs: its branches' last widths (+ the input for a pool)."""
    last = sum(w if isinstance(w, int) else w[-1] for w in widths)
    return last + in_channels if len(widths) == 2 else last


# --------------------------------------------------------------------------- the model


class InceptionV2(ChainNet):
    """Inception v2 as in slim: a separable-conv stem, ten mixed blocks, pooled logits.

    Args:
        num_classes: classes of ``Logits/Conv2d_1c_1x1`` (the checkpoint has 1001); 0 drops the
            classifier and ``forward`` returns the pooled features.
        global_pool: average the whole ``Mixed_5c`` map (any input size) instead of slim's
            default fixed 7x7 stride-2 window (1x1 output for inputs up to 256 pixels only).
        drop_rate: dropout before the logits in training (slim: keep_prob 0.8).
        depth_multiplier: scales every conv's width (slim's ``depth_multiplier``, > 0).
        min_depth: smallest width a scaled conv gets (slim's ``min_depth``).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1001,
        global_pool: bool = False,
        drop_rate: float = 0.2,
        depth_multiplier: float = 1.0,
        min_depth: int = 16,
    ) -> None:
        super().__init__()
        if depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be greater than 0, got {depth_multiplier}")
        self.tf_scope = "InceptionV2"
        self.classifier_name = "Logits.Conv2d_1c_1x1"
        self.num_classes = num_classes
        self.global_pool = global_pool

        def depth(d: int) -> int:
            return max(int(d * depth_multiplier), min_depth)

        # the separable stem: channel multiplier at most 8 so that 3 * multiplier <= depth(64)
        multiplier = min(depth(64) // 3, 8)
        stem = SeparableConv2dSame(3, depth(64), 7, multiplier, 2, bias=True, bn=False, act=relu)
        base: OrderedDict[str, nn.Module] = OrderedDict(
            Conv2d_1a_7x7=stem,
            MaxPool_2a_3x3=MaxPool2dSame(3, 2),
            Conv2d_2b_1x1=conv(depth(64), depth(64), 1),
            Conv2d_2c_3x3=conv(depth(64), depth(192), 3),
            MaxPool_3a_3x3=MaxPool2dSame(3, 2),
        )
        in_ch = depth(192)
        for name, widths in MIXED.items():
            widths = _thin(widths, depth)
            if len(widths) == 2:
                base[name] = reduction_module(in_ch, *widths)
            else:
                pool = "MaxPool_0a_3x3" if name == "Mixed_5c" else "AvgPool_0a_3x3"
                base[name] = inception_module(in_ch, *widths, pool=pool)
            in_ch = _out_channels(widths, in_ch)
        self.add_base(base)  # slim's inception_v2_base: every layer is an end point
        self.num_features = in_ch

        # slim's 'Logits' scope; the pool's name is its end point
        fixed = ("AvgPool_1a", FixedWindowAvgPool(7, 2, shrink=True))
        pool = ("global_pool", GlobalAvgPool()) if global_pool else fixed
        self.Logits = ConvLogitsHead(
            in_ch, num_classes, drop_rate, pool, "Dropout_1b", "Conv2d_1c_1x1"
        )


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes; SeparableConv2dSame names its kernels
# ``depthwise_weights``/``pointwise_weights`` (+ ``biases``) in the ``Conv2d_1a_7x7`` scope,
# ConvBnAct maps its batch norm to 'BatchNorm' and the logits are a Conv1x1AsLinear, so the
# generic walker in _tf.py maps everything:
# ``Conv2d_1a_7x7.depthwise.weight`` → ``InceptionV2/Conv2d_1a_7x7/depthwise_weights``.

# --------------------------------------------------------------------------- constructors


@register_model
def inception_v2(**kwargs) -> InceptionV2:
    """Inception v2, 1001 classes, 224x224."""
    return InceptionV2(**kwargs)

"""VGG 16 and 19 (configurations D and E), ported from TF-slim.

Paper: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, https://arxiv.org/abs/1409.1556.
Slim source: tensorflow/models ``research/slim/nets/vgg.py`` (``vgg_16``, ``vgg_19``).
Checkpoints: ``vgg_16_2016_08_28`` / ``vgg_19_2016_08_28`` (TF V1 single file, converted from
Caffe): 1000 classes (no background class), 224x224, "vgg" preprocessing (RGB 0..255 minus the
ImageNet mean, no scaling).

Slim quirks reproduced here:

* the classifier is fully convolutional: ``fc6`` is a 7x7 VALID conv, ``fc7`` and ``fc8`` are
  1x1 convs. At 224x224 the map after ``fc7`` is 1x1; on larger inputs it is bigger and
  ``global_pool=True`` averages it before ``fc8`` (``global_pool=False`` returns a score map).
* every conv has a bias and no batch norm; the 3x3 convs are 'SAME', the 2x2 max pools 'VALID'
  (slim's default), so an odd map size loses its last row/column at a pool, as in TF.
* the checkpoints also hold ``vgg_16/mean_rgb`` and ``global_step``; the loader ignores both.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._base import SlimNet
from ._packed import RELU
from ._registry import register_model
from .layers import Conv2dSame, GlobalAvgPool, MaxPool2dSame, SpatialSqueeze

__all__ = ["VGG", "vgg_16", "vgg_19"]

# --------------------------------------------------------------------------- building blocks


class ConvRelu(Conv2dSame):
    """slim ``conv2d`` with a bias and ReLU (scope ``convN/convN_i``): the conv *is* the scope."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.runs_packed(x):
            return self.forward_packed(x, RELU)  # one oneDNN call (optimize_for_inference)
        return torch.relu_(super().forward(x))  # the conv output is a new tensor: ReLU in place


def repeat_block(index: int, depth: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """slim ``repeat(net, depth, conv2d, ..., scope='convN')``: ``convN_1 .. convN_<depth>``."""
    layers = OrderedDict()
    for i in range(1, depth + 1):
        in_ch = in_channels if i == 1 else out_channels
        layers[f"conv{index}_{i}"] = ConvRelu(in_ch, out_channels, 3)
    return nn.Sequential(layers)


# --------------------------------------------------------------------------- the model


class VGG(SlimNet):
    """VGG as in slim: five conv blocks with 'SAME' 2x2 max pools, then conv fc6/fc7/fc8.

    Args:
        depths: convs per block (``(2, 2, 3, 3, 3)`` for VGG 16, ``(2, 2, 4, 4, 4)`` for VGG 19).
        num_classes: classes of ``fc8`` (the released checkpoints have 1000).
        global_pool: average the ``fc7`` map before ``fc8`` (for inputs larger than 224).
        drop_rate: dropout before ``fc7`` and ``fc8`` in training (slim: keep_prob 0.5).
        tf_scope: root TF scope, ``vgg_16`` or ``vgg_19``.
    """

    predictions_end_point = False  # slim's vgg returns no 'Predictions' end point

    def __init__(
        self,
        *,
        depths: tuple[int, ...],
        num_classes: int = 1000,
        global_pool: bool = False,
        drop_rate: float = 0.5,
        tf_scope: str = "vgg_16",
    ) -> None:
        super().__init__()
        self.tf_scope = tf_scope
        self.classifier_name = "fc8"
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = 4096

        widths = (64, 128, 256, 512, 512)
        in_ch = 3
        for i, (depth, width) in enumerate(zip(depths, widths), start=1):
            setattr(self, f"conv{i}", repeat_block(i, depth, in_ch, width))
            setattr(self, f"pool{i}", MaxPool2dSame(2, 2, "VALID"))
            in_ch = width
        self.fc6 = ConvRelu(512, 4096, 7, padding="VALID")
        self.dropout6 = nn.Dropout(drop_rate)
        self.fc7 = ConvRelu(4096, 4096, 1)
        self.pool = GlobalAvgPool() if global_pool else nn.Identity()
        self.dropout7 = nn.Dropout(drop_rate)
        self.fc8 = Conv2dSame(4096, num_classes, 1) if num_classes else nn.Identity()
        self.squeeze = SpatialSqueeze()
        # Channels-last kernels and activations (same shapes and values to the caller): oneDNN
        # then convolves without re-laying out every activation, about 25% faster on CPU.
        self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``pool5`` map (N, 512, H/32, W/32)."""
        x = self.to_channels_last(x)
        for i in range(1, 6):
            x = getattr(self, f"pool{i}")(getattr(self, f"conv{i}")(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``pool5`` map → logits (N, classes); a score map if the fc7 map is not 1x1 and
        ``global_pool`` is off. ``pre_logits=True`` stops after ``fc7`` (and the pooling)."""
        x = self.pool(self.fc7(self.dropout6(self.fc6(x))))
        if pre_logits:
            return self.squeeze(x)
        return self.squeeze(self.fc8(self.dropout7(x)))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc8 = Conv2dSame(4096, num_classes, 1) if num_classes else nn.Identity()

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        s = self.tf_scope
        points: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(1, 6):
            for name, conv in getattr(self, f"conv{i}").named_children():
                points[f"{s}/conv{i}/{name}"] = conv
            points[f"{s}/pool{i}"] = getattr(self, f"pool{i}")
        points[f"{s}/fc6"] = self.fc6
        points[f"{s}/fc7"] = self.fc7
        if self.global_pool:
            points["global_pool"] = self.pool
        points[f"{s}/fc8"] = self.squeeze  # slim records fc8 after the squeeze
        return points


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes and every conv is a plain slim conv2d, so the
# generic walker in _tf.py maps all of them:
# ``conv3.conv3_2.weight`` → ``vgg_16/conv3/conv3_2/weights`` (HWIO → OIHW).

# --------------------------------------------------------------------------- constructors


@register_model
def vgg_16(**kwargs) -> VGG:
    """VGG 16 (configuration D), 1000 classes."""
    return VGG(depths=(2, 2, 3, 3, 3), tf_scope="vgg_16", **kwargs)


@register_model
def vgg_19(**kwargs) -> VGG:
    """VGG 19 (configuration E), 1000 classes."""
    return VGG(depths=(2, 2, 4, 4, 4), tf_scope="vgg_19", **kwargs)

"""A tiny slim-style network and its release, for the pipeline tests that need many loads.

The pipeline (download, verify, extract, convert, cache, lock) does not depend on the network,
so most of its tests use this ~3 k-parameter net instead of a 500 MB one: a conv + batch norm,
a separable conv (depthwise layout), global pooling and a 1x1-conv classifier, i.e. every
layout the mapping has. Its release mimics the MobileNet v2 bundles: a V2 checkpoint
(``model.ckpt.*``) holding ExponentialMovingAverage shadows, with other files beside it.

The network is registered only while :func:`registered` is active (tests run with the real
registry of networks otherwise); a child process calls :func:`register` itself.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from architectures import _registry
from architectures._base import SlimNet
from architectures._tf import tf_mapping
from architectures.layers import Conv1x1AsLinear, ConvBnAct, GlobalAvgPool, SeparableConv2dSame

NAME = "slimzoo_tiny"
TARBALL = "slimzoo_tiny_2017_01_01.tar.gz"
NUM_CLASSES = 10


class TinyNet(SlimNet):
    tf_scope = "TinyNet"
    classifier_name = "Logits"

    def __init__(self, *, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.Conv2d_1a_3x3 = ConvBnAct(3, 8, 3, stride=2)
        self.Conv2d_2a_3x3 = SeparableConv2dSame(8, 16, 3)
        self.pool = GlobalAvgPool()
        self.Logits = Conv1x1AsLinear(16, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))).flatten(1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.Logits(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.Logits = Conv1x1AsLinear(16, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(Conv2d_1a_3x3=self.Conv2d_1a_3x3, Conv2d_2a_3x3=self.Conv2d_2a_3x3)


def slimzoo_tiny(**kwargs) -> TinyNet:
    return TinyNet(**kwargs)


def register() -> None:
    if NAME not in _registry._CONSTRUCTORS:
        _registry.register_model(slimzoo_tiny)


@contextlib.contextmanager
def registered() -> Iterator[None]:
    register()
    try:
        yield
    finally:
        _registry._CONSTRUCTORS.pop(NAME, None)


def tf_weights(seed: int = 0, *, num_classes: int = NUM_CLASSES) -> dict[str, np.ndarray]:
    """Random TF-named weights of the tiny net (positive variances for the batch norms)."""
    rng = np.random.default_rng(seed)
    out = {}
    for target in tf_mapping(TinyNet(num_classes=num_classes)).values():
        value = rng.standard_normal(target.shape).astype(np.float32)
        out[target.name] = np.abs(value) + 0.5 if "variance" in target.name else value
    return out


def release_tensors(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(checkpoint tensors, the weights a use_ema=True load must give)``.

    The checkpoint holds every variable twice: the raw training value (deliberately different)
    and its ``/ExponentialMovingAverage`` shadow, as the MobileNet v2 releases do.
    """
    ema = tf_weights(seed)
    tensors = {}
    for name, value in ema.items():
        tensors[name] = value + 100.0  # raw variables: not what a default load must give
        tensors[f"{name}/ExponentialMovingAverage"] = value
    tensors["global_step"] = np.array(1000, np.int64)
    return tensors, ema


def registry_entry(url: str, size: int | None, sha256: str | None) -> dict:
    """A registry entry for the tiny release (same schema as the shipped ones)."""
    return {
        "architecture": NAME,
        "release": {
            "url": url,
            "size": size,
            "sha256": sha256,
            "format": "v2",
            "checkpoint": "model.ckpt",
            "files": ["model.ckpt.index", "model.ckpt.data-00000-of-00001"],
            "other_files": ["eval.graph"],
            "ema": True,
            "sources": "test release built by tests/_tinynet.py",
        },
        "num_classes": NUM_CLASSES,
        "label_offset": 0,
        "preprocessing": {
            "kind": "inception",
            "input_size": 64,
            "crop_mode": "crop_then_resize",
            "crop_fraction": 0.875,
            "interpolation": "bilinear",
            "value_scale": 1.0,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        },
        "accuracy": None,
        "paper": None,
        "license": "Apache-2.0",
        "notes": "test model",
    }

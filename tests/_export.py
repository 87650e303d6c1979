"""Helpers of the export tests: state comparisons, a small slim-style network, fine-tuning."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

import zoo
from architectures._base import SlimNet
from architectures.layers import Conv1x1AsLinear, ConvBnAct, GlobalAvgPool, SeparableConv2dSame

V2_FILES = ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def first_registered(*names: str) -> str:
    return next(n for n in names if n in zoo.list_models())


def tf_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers that TF stores (torch's num_batches_tracked counters are not)."""
    return {n: t for n, t in model.state_dict().items() if not n.endswith("num_batches_tracked")}


def assert_same_state(got: nn.Module, want: nn.Module) -> None:
    """The same TF-stored tensors, names in order, dtypes and values bit for bit."""
    got_state, want_state = tf_state(got), tf_state(want)
    assert list(got_state) == list(want_state)
    different = [
        n
        for n, t in want_state.items()
        if got_state[n].dtype != t.dtype or not torch.equal(got_state[n], t)
    ]
    assert different == [], "torch tensors that changed in the round trip"


def assert_bitwise_equal(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.dtype == want.dtype == np.float32, name
    assert got.shape == want.shape, name
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), name


def assert_checkpoint_holds(path, tensors: dict[str, np.ndarray], step: int) -> None:
    """The checkpoint holds exactly ``tensors`` (float32, bit for bit) and the int64 step."""
    with zoo.open_checkpoint(path) as reader:
        assert sorted(reader) == sorted([*tensors, "global_step"])
        for name, want in tensors.items():
            assert_bitwise_equal(reader[name], want, name)
        assert reader["global_step"].dtype == np.int64
        assert reader["global_step"].shape == ()
        assert int(reader["global_step"]) == step


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@torch.no_grad()
def perturb(model: nn.Module, seed: int = 0) -> None:
    """Move every TF-stored tensor a little, as fine-tuning would (variances stay positive)."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in tf_state(model).items():
        noise = torch.rand(tensor.shape, generator=generator)
        if name.endswith("running_var"):
            tensor.mul_(0.9 + 0.2 * noise)
        else:
            tensor.add_(0.02 * (noise - 0.5))


class TinyNet(SlimNet):
    """A small slim-style network (not registered) with every layout the mapping knows: conv +
    batch norm, depthwise + pointwise, a 1x1-conv classifier held as ``nn.Linear``."""

    def __init__(self, *, num_classes: int = 5, width: int = 16) -> None:
        super().__init__()
        self.tf_scope = "TinyNet"
        self.classifier_name = "Logits"
        self.num_classes = num_classes
        self.width = width
        self.Conv2d_0 = ConvBnAct(3, 8, 3, stride=2)
        self.Conv2d_1 = SeparableConv2dSame(8, width, 3, depth_multiplier=2)
        self.pool = GlobalAvgPool()
        self.Logits = Conv1x1AsLinear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.Conv2d_1(self.Conv2d_0(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.Logits(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.Logits = Conv1x1AsLinear(self.width, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(Conv2d_0=self.Conv2d_0, Conv2d_1=self.Conv2d_1)


def tiny_net(**kwargs) -> TinyNet:
    """TinyNet's constructor: what the export is given instead of a registered name."""
    return TinyNet(**kwargs)


def trained_tiny_net(num_classes: int = 5, **kwargs) -> TinyNet:
    """A TinyNet after a few SGD steps in training mode (batch norm statistics moved too)."""
    torch.manual_seed(0)
    model = tiny_net(num_classes=num_classes, **kwargs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(4, 3, 16, 16)
        nn.functional.cross_entropy(model(x), torch.arange(4) % num_classes).backward()
        optimizer.step()
    return model.eval()

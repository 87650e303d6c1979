"""``zoo.load(..., fuse_bn=True)`` / ``zoo.fuse_bn``: batch norm folded into the conv before it.

A fused network must give the unfused network's logits (up to float rounding) with its batch
norms gone, except the ones no conv directly feeds (ResNet V2's pre-activations, NASNet's
factorized-reduction BN over two concatenated convs).
"""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest
import torch
from conftest import expected, reference_input, reference_weights, runs, tolerance
from torch import nn

import architectures
import zoo

# Batch norms that fuse_bn leaves, by network: those with no conv directly before them.
UNFUSABLE = {
    "resnet_v2_*": "*.preact",  # BN → ReLU → conv (pre-activation), and 'postnorm'
    "*nasnet_*": "*.final_path_bn",  # over the concat of two convs' outputs
}


def _batch_norms(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _expected_left(name: str, before: list[str]) -> list[str]:
    keep = [p for arch, p in UNFUSABLE.items() if fnmatch.fnmatch(name, arch)]
    kept = [n for n in before if any(fnmatch.fnmatch(n, p) for p in keep)]
    if name.startswith("resnet_v2_"):
        kept += [n for n in before if n == "postnorm"]
    return kept


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_conv_batch_norm_pair_is_folded(name):
    with torch.device("meta"):  # structure only: no memory, no initialisation
        model = architectures.get_constructor(name)()
    before = _batch_norms(model)
    zoo.fuse_bn(model)
    assert _batch_norms(model) == _expected_left(name, before)
    assert not model.training


# One network per way batch norms are laid out: BN with gamma (resnet_v1), pre-activation
# (resnet_v2), no gamma (inception), depthwise + ReLU6 (mobilenet), NASNet's sibling BNs, and
# MobileNet v3's BN-free squeeze-excite and Conv_2 beside its folded BNs.
FAMILIES = [
    "resnet_v1_50",
    "resnet_v2_50",
    "inception_v3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "nasnet_mobile",
]


@pytest.mark.parametrize("name", FAMILIES)
def test_fused_model_gives_the_reference_logits(name):
    run = runs(name)[0]
    weights = reference_weights(name, run.gain)
    fused = zoo.load(name, checkpoint=weights, fuse_bn=True, **run.kwargs)
    plain = zoo.load(name, checkpoint=weights, **run.kwargs)
    assert len(_batch_norms(fused)) < len(_batch_norms(plain))
    x = reference_input(name, run.input_hw)
    with torch.no_grad():
        got, unfused = fused(x).numpy(), plain(x).numpy()
    want = expected(name)["logits" + run.suffix]
    assert np.max(np.abs(got - want)) <= tolerance(want)
    assert np.max(np.abs(got - unfused)) <= tolerance(want)


def test_fusing_folds_batch_norm_statistics_into_the_conv():
    block = architectures.layers.ConvBnAct(3, 5, 3, bn_scale=False, act=None)
    with torch.no_grad():
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
        block.bn.bias.uniform_(-1, 1)
    block.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = block.bn(block.conv(x))
        zoo.fuse_bn(block)
        got = block(x)
    assert isinstance(block.bn, nn.Identity) and block.conv.bias is not None
    assert torch.allclose(got, want, atol=1e-5)

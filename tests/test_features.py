"""``zoo.load(name, features_only=True)``: multi-scale NCHW feature maps with timm's
``feature_info``, for one network per family, equal to slim's end points of the reference runs.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from conftest import ONE_PER_FAMILY, compare_end_points, reference_input, reference_weights, runs

import zoo
from architectures._features import FeatureInfo, FeatureNet

# families whose every conv pads TF 'SAME': a map of an H-row input has ceil(H / reduction) rows
SAME_PADDED = {"resnet_v1_50", "resnet_v2_50", "vgg_16", "inception_v1", "inception_v2"}
SAME_PADDED |= {"mobilenet_v1", "mobilenet_v2", "nasnet_mobile", "pnasnet_mobile"}


@pytest.mark.parametrize("arch", ONE_PER_FAMILY)
def test_features_are_slims_end_points_at_every_stride(arch):
    run = runs(arch)[0]
    model = zoo.load(
        arch, checkpoint=reference_weights(arch, run.gain), features_only=True, **run.kwargs
    )
    assert isinstance(model, FeatureNet) and model.training  # as timm: train mode
    info = model.feature_info
    assert isinstance(info, FeatureInfo) and len(info) >= 3
    reductions = info.reduction()
    assert reductions[-1] == 32
    if not arch.startswith("resnet"):  # one level per stride, the deepest map there
        assert reductions == sorted(set(reductions))
    model.eval()
    x = reference_input(arch, run.input_hw)
    with torch.no_grad():
        features = model(x)
    assert isinstance(features, list) and len(features) == len(info)
    for feature, channels, reduction in zip(features, info.channels(), reductions):
        assert feature.dim() == 4 and feature.shape[:2] == (x.shape[0], channels)
        height, width = feature.shape[2:]
        if arch in SAME_PADDED:
            assert (height, width) == tuple(math.ceil(s / reduction) for s in run.input_hw)
        else:  # VALID-padded stems lose a few rows: 35 rows of a 299 input are stride 8
            assert 2 ** round(math.log2(run.input_hw[0] / height)) == reduction
    # the very values of slim's end points of those names (TF reference data)
    named = dict(zip(info.end_point(), features))
    assert compare_end_points(dataclasses.replace(run, end_points=tuple(named)), named) == []
    # the module paths name real submodules of the wrapped network
    for path in info.module_name():
        model.body.get_submodule(path)


def test_out_indices_select_levels_and_negative_ones_count_from_the_deepest():
    every = zoo.load("mobilenet_v1", depth_multiplier=0.25, features_only=True)
    some = zoo.load("mobilenet_v1", depth_multiplier=0.25, features_only=True, out_indices=(1, -1))
    assert some.feature_info.end_point() == [every.feature_info.end_point()[i] for i in (1, -1)]
    assert some.feature_info.reduction() == [4, 32]
    assert some.feature_info.channels(0) == every.feature_info.channels(1)
    assert some.feature_info.get_dicts(keys=("num_chs",)) == [{"num_chs": 32}, {"num_chs": 256}]
    some.load_state_dict(every.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        want = every.eval()(x)
        got = some.eval()(x)
    assert torch.equal(got[0], want[1]) and torch.equal(got[1], want[-1])
    twin = copy.deepcopy(some)  # e.g. an EMA copy: its own hooks, its own outputs
    with torch.no_grad():
        twin.body.get_submodule(twin.feature_info.module_name(1)).conv.weight.mul_(2)
        assert torch.equal(some(x)[1], got[1]) and not torch.equal(twin(x)[1], got[1])


@pytest.mark.parametrize("output_stride", [8, 16])
def test_resnet_features_honour_output_stride(output_stride):
    model = zoo.load("resnet_v2_50", features_only=True, output_stride=output_stride).eval()
    info = model.feature_info
    assert info.end_point() == [
        f"resnet_v2_50/{p}" for p in ("conv1", *(f"block{i}" for i in range(1, 5)))
    ]
    assert info.reduction() == [min(r, output_stride) for r in (2, 8, 16, 32, 32)]
    x = torch.randn(1, 3, 97, 113)
    with torch.no_grad():
        features = model(x)
        points = model.body.end_points(x)  # the atrous network's slim end points (TF-checked)
    for feature, name, reduction in zip(features, info.end_point(), info.reduction()):
        assert feature.shape[2:] == (math.ceil(97 / reduction), math.ceil(113 / reduction))
        # the two passes may take different fast paths (hooks differ): rounding only
        assert torch.allclose(feature, points[name], rtol=1e-5, atol=1e-5)


def test_bad_feature_arguments_are_clear_errors():
    with pytest.raises(
        ValueError, match=r"out_indices must be ints in \[-5, 4\].*Conv2d_13_pointwise"
    ):
        zoo.load("mobilenet_v1", depth_multiplier=0.25, features_only=True, out_indices=(7,))
    with pytest.raises(ValueError, match="increasing and distinct"):
        zoo.load("mobilenet_v1", depth_multiplier=0.25, features_only=True, out_indices=(2, 1))
    with pytest.raises(zoo.ConfigError, match="pass features_only=True"):
        zoo.load("mobilenet_v1", out_indices=(1,))
    with pytest.raises(zoo.ConfigError, match="drop_background does not apply"):
        zoo.load("mobilenet_v1", features_only=True, drop_background=True)


def test_an_unknown_keyword_is_a_clear_error_not_a_type_error():
    with pytest.raises(zoo.ConfigError) as caught:
        zoo.load("inception_v1", features_onyl=True)
    message = str(caught.value)
    assert "inception_v1 takes no option 'features_onyl'" in message
    assert "Did you mean: 'features_only'" in message
    assert "global_pool=False" in message  # what the network does take
    with pytest.raises(zoo.ConfigError, match="resnet_v1_50 takes no option 'output_strid'"):
        zoo.load("resnet_v1_50", output_strid=16)

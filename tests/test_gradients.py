"""Input gradients, for adversarial-robustness users who differentiate through the networks
(FGSM/PGD attacks, transfer attacks on the adversarially trained Inceptions).

Where pip's tf_slim has the network (``inception_v3``, ``resnet_v2_50``) the gradient of a loss
with respect to the input image is compared with TensorFlow's on the reference weights, both
in float64; the others (Inception v4, Inception-ResNet-v2) are checked against central finite
differences in float64 along a few random directions, on a small image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _slim import slim_input_gradient
from conftest import reference_input, reference_weights, runs

import zoo

LABEL = 1  # logit 1: ImageNet class 0 (index 0 of the 1001 is the background)


def _torch_input_gradient(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, ...]:
    x = x.clone().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, torch.full((len(x),), LABEL), reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    return logits.detach().numpy(), gradient.numpy()


# In float32 two implementations' input gradients differ by up to ~1 % of their largest value
# (measured for inception_v3 and resnet_v2_50: torch float32 vs torch float64 as much as TF vs
# torch): a ReLU or max-pool whose input is within rounding of a kink routes the gradient one
# way or the other. So both sides compute in float64 (weights cast, graph built in float64),
# where they agree to ~3e-15 of the largest gradient.
# arch -> (reference run of the weights, input size, zoo.load kwargs, pip tf_slim kwargs): the _hg
# weights (gain sqrt(2)) make inception_v3's logits depend on the image; a small image is enough
# for the check (pip's inception_v3 has no global_pool: its 8x8 pool shrinks to the map, as
# global_pool=False does here; the auxiliary head is left out, its kernel depends on the size).
TF_CASES = {
    "inception_v3": (
        "_hg",
        (107, 107),
        {"global_pool": False, "create_aux_logits": False},
        {"create_aux_logits": False},
    ),
    "resnet_v2_50": ("", (96, 96), {"global_pool": True}, {"global_pool": True}),
}
TF_GRADIENT_RTOL = 1e-10  # of max |gradient|; measured 2.6e-15 (inception_v3), 4.1e-15 (resnet)


@pytest.mark.tf
@pytest.mark.parametrize("arch", sorted(TF_CASES))
def test_input_gradient_is_tensorflows(tensorflow, arch):
    suffix, size, kwargs, tf_kwargs = TF_CASES[arch]
    run = next(r for r in runs(arch) if r.suffix == suffix)
    weights = reference_weights(arch, run.gain)
    model = zoo.load(arch, checkpoint=weights, **kwargs).double().eval()
    assert not model.training  # batch norm with the moving statistics, no dropout
    x = reference_input(arch, size)[:1].double()
    logits, gradient = _torch_input_gradient(model, x)

    images = x.permute(0, 2, 3, 1).numpy()
    tf_logits, tf_gradient = slim_input_gradient(
        tensorflow, arch, weights, images, np.array([LABEL]), num_classes=1001, **tf_kwargs
    )
    assert tf_gradient.dtype == np.float64
    tf_gradient = tf_gradient.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    np.testing.assert_allclose(logits, tf_logits, rtol=0, atol=1e-10 * np.abs(tf_logits).max())
    scale = float(np.abs(tf_gradient).max())
    assert scale > 1e-4  # the loss depends on the image
    error = float(np.abs(gradient - tf_gradient).max())
    assert error <= TF_GRADIENT_RTOL * scale, f"max |Δ gradient| {error:.3g} of max {scale:.3g}"


# Inception v4 and Inception-ResNet-v2 on a 75x75 image (the smallest their VALID stems take),
# in float64 with the _hg weights (the gain at which their logits depend on the image).
FD_ARCHS = ["inception_v4", "inception_resnet_v2"]
# central difference along unit directions: truncation error ~ step^2 (and a kink crossed now
# and then: at step 1e-3 and 1e-4 IRv2 is off by 0.4 % and 0.2 % along a direction), rounding
# ~ 1e-16 * loss / step (1e-6 and below: 1e-6 relative); measured at 1e-5: 3e-8 ... 1.2e-7.
FD_STEP = 1e-5
FD_DIRECTIONS = 2
FD_RTOL = 1e-5


@pytest.mark.parametrize("arch", FD_ARCHS)
def test_input_gradient_matches_finite_differences(arch):
    run = next(r for r in runs(arch) if r.suffix == "_hg")
    model = zoo.load(
        arch, checkpoint=reference_weights(arch, run.gain), create_aux_logits=False
    ).eval()
    model = model.double()
    x = reference_input(arch, (75, 75))[:1].double()
    _, gradient = _torch_input_gradient(model, x)

    def loss(image: torch.Tensor) -> float:
        with torch.no_grad():
            logits = model(image)
            return F.cross_entropy(logits, torch.full((1,), LABEL), reduction="sum").item()

    rng = np.random.default_rng(0)
    for _ in range(FD_DIRECTIONS):
        direction = rng.standard_normal(x.shape)
        direction /= np.linalg.norm(direction)
        step = torch.from_numpy(FD_STEP * direction)
        numeric = (loss(x + step) - loss(x - step)) / (2 * FD_STEP)
        analytic = float(np.sum(gradient * direction))
        assert abs(analytic) > 1e-6  # a direction the loss actually changes along
        assert abs(numeric - analytic) <= FD_RTOL * abs(analytic), (numeric, analytic)

"""A network built without its auxiliary head (``create_aux_logits=False``) loads a released
checkpoint, which has the head: the loader reports the head's tensors as ignored, the logits
are those of the full model, and nothing else in the checkpoint may go unused."""

from __future__ import annotations

import pytest
import torch
from conftest import reference_input, reference_weights
from safetensors.torch import save_model

import zoo
from zoo.errors import MappingError

ARCHS = {
    "inception_v3": "InceptionV3/AuxLogits/",
    "inception_v4": "InceptionV4/AuxLogits/",
    "inception_resnet_v2": "InceptionResnetV2/AuxLogits/",
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_model_without_aux_head_loads_a_checkpoint_with_it(arch):
    weights = reference_weights(arch)
    aux_scope = ARCHS[arch]
    aux_names = sorted(n for n in weights if n.startswith(aux_scope))
    assert aux_names  # the released checkpoint has the head

    full = zoo.load(arch, checkpoint=weights).eval()
    bare = zoo.load(arch, checkpoint=weights, create_aux_logits=False).eval()
    assert bare.AuxLogits is None
    assert sorted(n for n in bare.load_report.ignored if n.startswith(aux_scope)) == aux_names
    assert not any(n.startswith(aux_scope) for n in full.load_report.ignored)

    x = reference_input(arch, (299, 299))[:1]
    with torch.no_grad():
        want, got = full(x), bare(x)
    assert torch.equal(got, want)
    assert want.std() > 0.01  # logits that depend on the weights


def test_only_the_missing_head_may_go_unused():
    weights = reference_weights("inception_v3")
    weights["InceptionV3/Mixed_5b/Branch_9/weights"] = weights[
        "InceptionV3/Logits/Conv2d_1c_1x1/biases"
    ]
    with pytest.raises(MappingError, match="Mixed_5b/Branch_9"):
        zoo.load("inception_v3", checkpoint=weights, create_aux_logits=False).eval()
    # asked to require the head, a checkpoint without it does not fit (without the option it
    # loads without the head: tests/test_aux_head_absent.py)
    without_aux = {
        n: v for n, v in reference_weights("inception_v3").items() if "AuxLogits" not in n
    }
    with pytest.raises(MappingError, match="AuxLogits"):
        zoo.load("inception_v3", checkpoint=without_aux, require_aux_head=True)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_no_classes_means_no_aux_head_as_in_slim(arch):
    """slim builds the auxiliary head only ``if create_aux_logits and num_classes``."""
    headless = zoo.load(arch, num_classes=0).eval()
    assert headless.AuxLogits is None
    with pytest.raises(ValueError, match="num_classes > 0"):
        zoo.load(arch, num_classes=0, aux_logits=True).eval()
    model = zoo.load(arch).eval()
    assert model.AuxLogits is not None
    model.reset_classifier(0)
    assert model.AuxLogits is None and not model.aux_logits
    x = reference_input(arch, (299, 299))[:1]
    with torch.no_grad():
        assert headless.eval()(x).shape == (1, headless.num_features)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_model_without_aux_head_loads_a_weights_file_with_it(arch, tmp_path):
    """The same from a torch state dict of the full model (a weights file, the pretrained
    cache): the head's tensors are left unread."""
    full = zoo.load(arch, checkpoint=reference_weights(arch)).eval()
    path = tmp_path / "full.safetensors"
    save_model(full, str(path), force_contiguous=True)
    bare = zoo.load(arch, weights=path, create_aux_logits=False).eval()
    assert bare.AuxLogits is None
    x = reference_input(arch, (299, 299))[:1]
    with torch.no_grad():
        assert torch.equal(bare(x), full(x))

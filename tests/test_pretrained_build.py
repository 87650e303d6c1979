"""The warm path's build without random initialisation (``build_on_meta``): every network takes
it and ends up exactly like a normally built one once its state dict is loaded, and a model with
state that a state dict does not restore is built normally instead."""

from __future__ import annotations

import _tinynet
import pytest
import torch
from torch import nn

import architectures
from zoo.models import build_on_meta
from zoo.weights_file import read_safetensors


@pytest.mark.parametrize("name", architectures.list_architectures())
def test_every_network_can_skip_its_random_initialisation(name):
    torch.manual_seed(0)
    normal = architectures.create_model(name)
    fast = build_on_meta(architectures.get_constructor(name))
    assert fast is not None, f"{name} falls back to a normal (slow) build on pretrained loads"
    state = {k: v.clone() for k, v in normal.state_dict().items()}
    fast.load_state_dict(state, strict=True, assign=True)
    tensors = dict(fast.named_parameters()) | dict(fast.named_buffers())
    assert [n for n, t in tensors.items() if t.is_meta or t.device.type != "cpu"] == []
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in fast.parameters())
    loaded = fast.state_dict()
    for key, value in normal.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_uninitialised_build_computes_what_the_normal_build_computes():
    with _tinynet.registered():
        normal = architectures.create_model(_tinynet.NAME).eval()
        fast = build_on_meta(architectures.get_constructor(_tinynet.NAME)).to_empty(device="cpu")
    fast.load_state_dict(normal.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fast.eval()(x), normal(x))


class _WithExtraState(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        if how == "non_persistent_buffer":
            self.register_buffer("table", torch.arange(3.0), persistent=False)
        elif how == "tensor_attribute":
            self.table = torch.arange(3.0)
        elif how == "tensor_list":
            self.tables = [torch.arange(3.0)]
        elif how == "reads_a_value":
            self.size = int(torch.ones(()).item())


@pytest.mark.parametrize(
    "how", ["non_persistent_buffer", "tensor_attribute", "tensor_list", "reads_a_value"]
)
def test_state_outside_the_state_dict_means_a_normal_build(how):
    assert build_on_meta(_WithExtraState, how=how) is None


def test_plain_module_is_built_on_meta():
    model = build_on_meta(_WithExtraState, how="none")
    assert model is not None and model.fc.weight.is_meta


def test_loaded_weights_own_their_memory(tmp_path):
    """Weights that become parameters must not be a mapping of the cache file: overwriting the
    file in place would crash the process (SIGBUS) at the next forward."""
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(1000.0)}, path)
    state, owned = read_safetensors(path)
    assert owned
    path.write_bytes(b"")  # truncated in place
    assert float(state["a"][-1]) == 999.0

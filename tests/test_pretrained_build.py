"""The warm path's build without random initialisation (``build_on_meta``): every network takes
it and ends up exactly like a normally built one once its state dict is loaded, and a model with
state that a state dict does not restore is built normally instead."""

from __future__ import annotations

import _tinynet
import pytest
import torch
from torch import nn

import architectures
from zoo.skeleton import build_on_meta
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


def test_initialisers_skip_only_meta_tensors_and_come_back():
    from zoo.skeleton import _init_skipped_on_meta

    before = nn.init.kaiming_uniform_
    real = torch.zeros(4, 4)
    with _init_skipped_on_meta(), _init_skipped_on_meta():  # nested: one patch, undone once
        meta = torch.empty(4, 4, device="meta")
        assert nn.init.kaiming_uniform_(meta) is meta
        nn.init.kaiming_uniform_(real)  # a real tensor (another thread's model) still filled
        linear = nn.Linear(8, 8)
    assert real.abs().sum() > 0 and linear.weight.abs().sum() > 0
    assert nn.init.kaiming_uniform_ is before


def _fresh_and_state(name: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in architectures.create_model(name).state_dict().items()}
    return build_on_meta(architectures.get_constructor(name)), state


def test_assign_state_is_load_state_dict_with_assign():
    from zoo.skeleton import assign_state

    name = "inception_v1"
    fast, state = _fresh_and_state(name)
    slow, _ = _fresh_and_state(name)
    frozen = "Logits.Conv2d_0c_1x1.weight"  # requires_grad is kept, as load_state_dict keeps it
    fast.get_parameter(frozen).requires_grad_(False)
    slow.get_parameter(frozen).requires_grad_(False)
    assign_state(fast, state)
    slow.load_state_dict(state, strict=True, assign=True)
    got = dict(fast.named_parameters()) | dict(fast.named_buffers())
    want = dict(slow.named_parameters()) | dict(slow.named_buffers())
    assert got.keys() == want.keys() == state.keys()
    for key, tensor in got.items():
        assert tensor is state[key] or tensor.data_ptr() == state[key].data_ptr(), key
        assert type(tensor) is type(want[key]) and tensor.requires_grad == want[key].requires_grad
    assert not fast.get_parameter(frozen).requires_grad


class _Hooked(nn.Module):
    """Loading logic of its own (a load hook): assign_state must leave it to load_state_dict."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.calls: list[str] = []
        self.fc.register_load_state_dict_post_hook(lambda *_: self.calls.append("hook"))


class _WithExtraStateToLoad(_Hooked):
    """Extra state (``get_extra_state``) in the state dict, and no hook."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def get_extra_state(self) -> object:
        return {"version": 1}

    def set_extra_state(self, state: object) -> None:
        self.calls.append("extra_state")


@pytest.mark.parametrize("cls, call", [(_Hooked, "hook"), (_WithExtraStateToLoad, "extra_state")])
def test_assign_state_leaves_own_loading_logic_to_load_state_dict(cls, call):
    from zoo.skeleton import assign_state

    model = cls()
    state = {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()
    }
    assign_state(model, state)
    assert model.calls == [call]
    assert model.fc.weight.data_ptr() == state["fc.weight"].data_ptr()  # assigned, not copied

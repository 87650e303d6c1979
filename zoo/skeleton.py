"""The warm load's two steps around reading the file: the network built without storage or
random initialisation (:func:`build_on_meta`), and the tensors read put in place
(:func:`assign_state`), each about as cheap as Python allows.

For resnet_v2_152 (2 cores) building on ``meta`` spends about 40% of its time in
``torch.nn.init`` functions that compute nothing on meta tensors, and ``load_state_dict``
filters the whole state dict again for every one of the 3,000 submodules it descends into;
together they were a third of a warm ``zoo.load(pretrained=True)`` (see
``benchmarks/RESULTS.md``, bench_pretrained).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["assign_state", "build_on_meta"]


def build_on_meta(constructor: Callable[..., nn.Module], **kwargs: Any) -> nn.Module | None:
    """The network on PyTorch's ``meta`` device (no memory, no random initialisation), or
    ``None`` when a state dict would not restore it completely.

    For a model whose every parameter and buffer is loaded next (strictly, with
    ``assign=True``, or into ``to_empty`` storage). ``None`` (build it normally) when the
    constructor cannot run on ``meta``, or when the model holds state that a state dict does not
    carry: non-persistent buffers or plain tensor attributes.
    """
    try:
        with _init_skipped_on_meta(), torch.device("meta"):
            model = constructor(**kwargs)
    except Exception:  # e.g. a constructor that reads a tensor's value
        return None
    for module in model.modules():
        if module._non_persistent_buffers_set:
            return None
        for value in vars(module).values():
            values = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, torch.Tensor) for v in values):
                return None
    return model


# torch.nn.init's in-place initialisers (kaiming_uniform_, zeros_, ...), as module layers call
# them: through the module attribute, at call time
_INITIALISERS = tuple(
    name
    for name in dir(nn.init)
    if name.endswith("_") and not name.startswith("_") and callable(getattr(nn.init, name))
)
_skip_lock = threading.Lock()
_skip_depth = 0
_skip_saved: dict[str, Callable[..., Any]] = {}


def _skipping_meta(init: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(init)
    def skip_on_meta(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        # a meta tensor has no values to fill; any other goes to the real initialiser, so
        # another thread building a real model meanwhile is initialised as always
        if isinstance(tensor, torch.Tensor) and tensor.is_meta:
            return tensor
        return init(tensor, *args, **kwargs)

    return skip_on_meta


@contextlib.contextmanager
def _init_skipped_on_meta() -> Iterator[None]:
    """``torch.nn.init``'s initialisers return meta tensors untouched while this is open
    (process-wide, but only for meta tensors; nested and concurrent uses share one patch)."""
    global _skip_depth
    with _skip_lock:
        if _skip_depth == 0:
            _skip_saved.update({name: getattr(nn.init, name) for name in _INITIALISERS})
            for name, init in _skip_saved.items():
                setattr(nn.init, name, _skipping_meta(init))
        _skip_depth += 1
    try:
        yield
    finally:
        with _skip_lock:
            _skip_depth -= 1
            if _skip_depth == 0:
                for name, init in _skip_saved.items():
                    setattr(nn.init, name, init)
                _skip_saved.clear()


# the _load_from_state_dict methods that only copy (or assign) a module's own tensors: for
# modules with another one, assign_state lets load_state_dict run it
_PLAIN_LOADERS = {
    nn.Module._load_from_state_dict,
    nn.modules.batchnorm._NormBase._load_from_state_dict,  # (a num_batches_tracked default)
}


def assign_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state, strict=True, assign=True)`` for a fresh model (from
    :func:`build_on_meta`) and a ``state`` whose names and shapes were checked against it.

    Each tensor becomes the parameter (keeping ``requires_grad``) or buffer of its name, in one
    pass over the names. Where a module has its own loading logic (a load hook, a
    ``_load_from_state_dict`` of its own other than a cache owner's, extra state), the whole
    load goes through ``load_state_dict`` instead.
    """
    from architectures._packed import PackedCacheOwner  # its loader also drops a cache (none yet)

    loaders = {*_PLAIN_LOADERS, PackedCacheOwner._load_from_state_dict}
    modules = dict(model.named_modules())
    plain = not _registration_hooks() and all(
        not (module._load_state_dict_pre_hooks or module._load_state_dict_post_hooks)
        and type(module)._load_from_state_dict in loaders
        for module in modules.values()
    )
    places = []
    for key, tensor in state.items() if plain else ():
        path, _, leaf = key.rpartition(".")
        module = modules.get(path)
        if module is None:
            break
        if leaf in module._parameters:
            old = module._parameters[leaf]
            places.append((module._parameters, leaf, tensor, old is not None and old.requires_grad))
        elif leaf in module._buffers:
            places.append((module._buffers, leaf, tensor, None))
        else:  # extra state, or a name the module computes
            break
    if not plain or len(places) != len(state):
        model.load_state_dict(state, strict=True, assign=True)
        return
    for tensors, leaf, tensor, requires_grad in places:
        if requires_grad is None:
            tensors[leaf] = tensor
        else:
            tensors[leaf] = nn.Parameter(tensor, requires_grad=requires_grad)


def _registration_hooks() -> bool:
    """Whether someone registered global hooks on parameter or buffer assignment (which
    ``setattr``, as ``load_state_dict`` uses it, would call)."""
    from torch.nn.modules import module

    return bool(
        getattr(module, "_global_parameter_registration_hooks", None)
        or getattr(module, "_global_buffer_registration_hooks", None)
    )

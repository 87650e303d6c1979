"""Reading a torch weights file: safetensors (owned memory where the library allows) or a
``torch.save`` state dict read with ``weights_only=True``."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from .errors import CheckpointError

__all__ = ["TORCH_SUFFIXES", "read_safetensors", "read_weights_file"]


def read_safetensors(path: os.PathLike[str]) -> tuple[dict[str, torch.Tensor], bool]:
    """The file's tensors, and whether they own their memory (read with ``pread``).

    Owned tensors can become the model's parameters directly. Memory-mapped ones (the default
    backend, and the only one of older safetensors) must be copied: a model built on a mapping
    would crash (SIGBUS) if the file were later overwritten in place.
    """
    from safetensors.torch import load_file

    try:
        return load_file(path, backend="pread"), True
    except TypeError:  # safetensors < 0.7: no backend argument
        return load_file(path), False


# state dicts written by torch.save: read with torch.load(weights_only=True)
TORCH_SUFFIXES = (".pt", ".pth")


def read_weights_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], bool]:
    """``({torch name: tensor}, owned)`` from a ``.safetensors`` or ``.pt``/``.pth`` state dict.

    ``.pt`` files are read with ``torch.load(weights_only=True)`` (tensors and plain containers
    only: no pickled code runs); every other name is read as safetensors.

    Raises:
        FileNotFoundError: no file at ``path``.
        zoo.CheckpointError: the file is not a state dict of that format (what it is instead).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weights file at {path}")
    if path.endswith(TORCH_SUFFIXES):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"{path} is not a torch state dict that torch.load(weights_only=True) accepts "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Save "
                "it with torch.save(model.state_dict(), path), or use a .safetensors file."
            ) from None
        if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise CheckpointError(
                f"{path} holds a {type(state).__name__}, expected a flat state dict "
                "{name: tensor} (torch.save(model.state_dict(), path))"
            )
        return dict(state), True
    try:
        return read_safetensors(path)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a safetensors file ({type(exc).__name__}: {exc}). Pass a "
            f".safetensors file, or a torch.save state dict named *.pt / *.pth; a TF checkpoint "
            "goes to checkpoint=... instead."
        ) from None

"""Deployment: ``torch.export`` programs and ONNX files of any slimzoo model.

Every family traces to one graph with a dynamic batch dimension (tested against eager outputs);
the ONNX file is converted from that very program by torch's exporter (``onnxscript``) and runs
in ONNX Runtime (the ``onnx`` extra: ``pip install "slimzoo[onnx]"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["export_onnx", "export_program"]

MAX_BATCH = 4096  # the dynamic batch dimension's upper bound (torch.export wants one)


def _example_input(model: nn.Module, input_size: tuple[int, int] | None) -> torch.Tensor:
    """A batch of 2 (not 1: torch.export would specialise a batch of 1) at ``input_size`` or
    the model card's evaluation size."""
    if input_size is None:
        card = getattr(model, "pretrained_cfg", None) or {}
        size = card.get("input_size")
        if size is None:
            raise ConfigError(
                "no input size: the model has no pretrained_cfg['input_size'] (load it with "
                "zoo.load) and none was given; pass input_size=(H, W)"
            )
        input_size = tuple(size[-2:])
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.zeros(2, 3, *input_size, device=device)


def export_program(
    model: nn.Module,
    *,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = True,
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` in eval mode, for NCHW images of ``input_size``
    (default: the model card's), with a dynamic batch dimension unless ``dynamic_batch=False``.

    The model is switched to eval mode (an exported program has no training mode to follow).
    """
    model.eval()
    example = _example_input(model, input_size)
    shapes = None
    if dynamic_batch:
        shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=shapes)


def export_onnx(
    model: nn.Module | torch.export.ExportedProgram,
    path: str | os.PathLike[str],
    *,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = True,
    optimize: bool = False,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (input ``"images"``, NCHW float32; output
    the model's: logits, pooled features or feature maps) and return the path.

    The program of :func:`export_program` (or ``model`` itself when it is already an
    ``ExportedProgram``; ``input_size`` and ``dynamic_batch`` then do not apply) goes through
    torch's ONNX exporter, which needs ``onnxscript`` (``pip install "slimzoo[onnx]"``, which
    brings ``onnxruntime`` too). ``optimize`` runs onnxscript's graph optimizer; it is off by
    default because with onnxscript 0.7.2 it drops a ``Pad`` input of NASNet and PNASNet (ONNX
    Runtime refuses the file), and ONNX Runtime optimizes the graph itself when loading it.
    """
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it; say so clearly)
    except ImportError:
        raise ConfigError(
            'ONNX export needs the onnx extra: pip install "slimzoo[onnx]" (onnx, onnxscript, '
            "onnxruntime)"
        ) from None
    if isinstance(model, torch.export.ExportedProgram):
        program = model
    else:
        program = export_program(model, input_size=input_size, dynamic_batch=dynamic_batch)
    onnx_program = torch.onnx.export(
        program, dynamo=True, input_names=["images"], optimize=optimize, verbose=False
    )
    path = Path(path)
    onnx_program.save(str(path))
    return path

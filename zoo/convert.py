"""TF checkpoint → torch ``safetensors`` file, one tensor at a time.

The network is built as a skeleton on PyTorch's ``meta`` device (names, shapes and dtypes, no
memory), :func:`architectures._tf.plan_tf_weights` checks the checkpoint against it both ways,
and each tensor is then read, put in torch layout and written straight to the file. Peak memory
is about the largest tensor (twice, when its layout changes), not the model plus the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import architectures
from architectures._tf import plan_tf_weights
from architectures._values import checked_value, report_casts

from .safetensors_stream import TensorSpec, write_streaming

__all__ = ["MAPPING_VERSION", "Conversion", "build_skeleton", "convert_to_safetensors"]

log = logging.getLogger(__name__)

# Bump when a conversion of the same checkpoint would give different torch tensors (a mapping or
# layout fix): cache entries made with another version are then rebuilt.
MAPPING_VERSION = 1


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_to_safetensors` wrote."""

    tensors: int
    size: int  # bytes of the safetensors file
    crc32c: str  # of the safetensors file (8 hex digits)
    ema: tuple[str, ...]  # variables taken from their ExponentialMovingAverage shadow
    ignored: tuple[str, ...]  # checkpoint tensors deliberately unused (global_step, mean_rgb...)
    reasons: Mapping[str, str] = field(default_factory=dict)  # ignored tensor → why
    absent: tuple[str, ...] = ()  # TF tensors of an optional head the checkpoint lacks
    dropped_heads: tuple[str, ...] = ()  # torch paths of heads not converted (incomplete)


def build_skeleton(architecture: str, num_classes: int) -> nn.Module:
    """The network without memory (``meta`` device), for its names, shapes and dtypes.

    Falls back to a normal build if a constructor cannot run on ``meta`` (e.g. one that reads a
    tensor's value while building).
    """
    try:
        with torch.device("meta"):
            return architectures.create_model(architecture, num_classes=num_classes)
    except Exception as exc:  # whatever the reason: build it for real instead
        log.debug("%s cannot be built on the meta device (%s); building it", architecture, exc)
        return architectures.create_model(architecture, num_classes=num_classes)


def convert_to_safetensors(
    checkpoint: Mapping[str, np.ndarray],
    architecture: str,
    out: Path,
    *,
    num_classes: int,
    use_ema: bool = True,
    metadata: Mapping[str, str] | None = None,
    allow_nonfinite: bool = False,
) -> Conversion:
    """Write the torch state dict of ``architecture`` filled from ``checkpoint`` to ``out``.

    ``checkpoint`` is a ``{tf_name: array}`` mapping or a lazy reader (``zoo.open_checkpoint``).
    Raises :class:`zoo.MappingError` (nothing written) when it does not fit the network, or a
    value is not a float array or holds NaN/inf (unless ``allow_nonfinite``). An auxiliary head
    the checkpoint lacks in part is left out of the file (see
    :func:`architectures._tf.plan_tf_weights`): a model built from it has no such head.
    """
    model = build_skeleton(architecture, num_classes)
    plan, report = plan_tf_weights(model, checkpoint, use_ema=use_ema)
    state = model.state_dict(keep_vars=True)  # persistent tensors, in the module's order
    dropped = tuple(report.dropped_heads)
    state = {n: t for n, t in state.items() if not any(_under(n, h) for h in dropped)}
    specs = [TensorSpec(n, _numpy_dtype(t.dtype, n), tuple(t.shape)) for n, t in state.items()]

    casts: list[str] = []

    def arrays() -> Iterator[np.ndarray]:
        for spec in specs:
            if spec.name in plan:
                source, layout = plan[spec.name]
                # a view in torch layout: the writer copies it block by block (and casts, e.g.
                # a float16 checkpoint), so one tensor is in memory at a time, and once
                value = checked_value(
                    source, checkpoint[source], spec.dtype,
                    allow_nonfinite=allow_nonfinite, casts=casts,
                )  # fmt: skip
                yield layout.to_torch(value)
            elif spec.name.endswith("num_batches_tracked"):
                yield np.zeros(spec.shape, spec.dtype)  # torch's count, not stored by TF
            else:  # pragma: no cover - tf_mapping covers every other parameter and buffer
                raise AssertionError(f"{spec.name} has no TF source")

    size, crc = write_streaming(out, specs, arrays(), metadata)
    report_casts(casts)
    return Conversion(
        len(specs),
        size,
        crc,
        tuple(report.ema),
        tuple(report.ignored),
        dict(report.reasons),
        tuple(report.absent),
        dropped,
    )


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _numpy_dtype(dtype: torch.dtype, name: str) -> np.dtype:
    try:
        return torch.empty((), dtype=dtype, device="cpu").numpy().dtype
    except TypeError:
        raise TypeError(f"{name}: torch dtype {dtype} cannot be stored") from None

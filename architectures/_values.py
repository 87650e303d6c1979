"""What a checkpoint value must be before it fills a parameter: an array of floats, all finite.

A ``{tf_name: array}`` mapping built by hand can hold lists, int64 or float64 arrays, and a
diverged training run NaN or inf: copied silently, they give a network that outputs garbage.
Integer, bool, complex and object values are refused for float parameters; float64 is accepted
and reported (it is rounded to float32); non-finite values are refused unless allowed.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["checked_value", "report_casts"]

log = logging.getLogger("zoo")


def checked_value(
    source: str, value: object, dest: np.dtype, *, allow_nonfinite: bool, casts: list[str]
) -> np.ndarray:
    """``value`` as an array for a parameter of numpy dtype ``dest``, checked; a float64 to
    float32 (or similar) rounding is appended to ``casts``."""
    from zoo.errors import MappingError  # zoo depends on architectures, not the reverse

    if isinstance(value, (list, tuple)):
        raise MappingError(
            f"checkpoint value {source!r} is a {type(value).__name__}: pass numpy arrays (or "
            "tensors) of the stored dtype, not Python sequences"
        )
    array = np.asarray(value)
    dest = np.dtype(dest)
    if dest.kind == "f" and array.dtype.kind != "f":
        raise MappingError(
            f"checkpoint value {source!r} has dtype {array.dtype}, its parameter is {dest}: "
            "refusing to cast it (convert it yourself if the values are meant as floats)"
        )
    if array.dtype.kind == "f" and array.dtype.itemsize > dest.itemsize:
        casts.append(f"{source} ({array.dtype})")
    if not allow_nonfinite and array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise MappingError(
            f"checkpoint value {source!r} holds {bad} NaN or infinite value(s) of {array.size}: "
            "a diverged training run or a corrupt file. Pass allow_nonfinite=True to load it "
            "anyway."
        )
    return array


def report_casts(casts: list[str], dest: str = "float32") -> None:
    if casts:
        shown = ", ".join(casts[:5]) + (f" and {len(casts) - 5} more" if len(casts) > 5 else "")
        log.warning("rounded %d checkpoint value(s) to %s: %s", len(casts), dest, shown)


def check_finite_state(state: dict, what: str) -> None:
    """Refuse a state dict whose float tensors hold NaN or inf (``what`` names its source)."""
    import torch

    from zoo.errors import MappingError

    bad = [
        name
        for name, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise MappingError(
            f"{what} holds NaN or infinite values in {shown}: a diverged training run or a "
            "corrupt file. Pass allow_nonfinite=True to load it anyway."
        )

"""The TF-slim ImageNet networks as native PyTorch modules, one module per family.

Each family module holds the torch definition and, beside it, what its TF-name mapping needs
(see :mod:`architectures._tf`). Importing this package registers every network.
"""

import importlib
import pkgutil

from ._fuse import fuse_bn
from ._packed import fast_inference_enabled, optimize_for_inference, set_fast_inference
from ._registry import (
    create_model,
    get_constructor,
    list_architectures,
    natural_key,
    register_model,
)
from ._tf import Layout, LoadReport, TFTensor, load_tf_weights, tf_mapping

# Import every family module (the ones not starting with '_'), which registers its networks.
for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and _info.name != "layers":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "Layout",
    "LoadReport",
    "TFTensor",
    "create_model",
    "fast_inference_enabled",
    "fuse_bn",
    "get_constructor",
    "list_architectures",
    "load_tf_weights",
    "natural_key",
    "optimize_for_inference",
    "register_model",
    "set_fast_inference",
    "tf_mapping",
]

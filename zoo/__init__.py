"""slimzoo: the TF-slim ImageNet models as native PyTorch modules with their published weights.

>>> import zoo
>>> model = zoo.load("resnet_v2_50", pretrained=True)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ArchiveError,
    CacheError,
    CheckpointError,
    ChecksumError,
    ConfigError,
    DownloadError,
    MappingError,
    NoWeightsError,
    OfflineError,
    PartsError,
    RegistryError,
    UnknownModelError,
    ZooError,
)

if TYPE_CHECKING:  # the names below are imported on first use (see __getattr__)
    from architectures import fuse_bn, optimize_for_inference, set_fast_inference

    from .allocator import tune_cpu_allocator
    from .checkpoint import open_checkpoint
    from .deploy import export_onnx, export_program
    from .export import export_tf_checkpoint
    from .labels import imagenet_labels
    from .models import list_models, load
    from .pretrained import CacheInfo, cache_info, download_weights, import_tarball
    from .registry import ModelInfo, list_pretrained, model_info
    from .transforms import get_transform

# `import zoo` stays cheap (the networks, the HTTP stack and the checkpoint reader are imported
# when a name that needs them is first used): public name -> the module that defines it
_LAZY = {
    "fuse_bn": "architectures",
    "optimize_for_inference": "architectures",
    "set_fast_inference": "architectures",
    "tune_cpu_allocator": "zoo.allocator",
    "open_checkpoint": "zoo.checkpoint",
    "export_onnx": "zoo.deploy",
    "export_program": "zoo.deploy",
    "export_tf_checkpoint": "zoo.export",
    "imagenet_labels": "zoo.labels",
    "list_models": "zoo.models",
    "load": "zoo.models",
    "CacheInfo": "zoo.pretrained",
    "cache_info": "zoo.pretrained",
    "download_weights": "zoo.pretrained",
    "import_tarball": "zoo.pretrained",
    "ModelInfo": "zoo.registry",
    "list_pretrained": "zoo.registry",
    "model_info": "zoo.registry",
    "get_transform": "zoo.transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("__"):
        try:  # a submodule: zoo.checkpoint, zoo.cache, ...
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'zoo' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "CacheError",
    "CacheInfo",
    "CheckpointError",
    "ChecksumError",
    "ConfigError",
    "DownloadError",
    "MappingError",
    "ModelInfo",
    "NoWeightsError",
    "OfflineError",
    "PartsError",
    "RegistryError",
    "UnknownModelError",
    "ZooError",
    "__version__",
    "cache_info",
    "download_weights",
    "export_onnx",
    "export_program",
    "export_tf_checkpoint",
    "fuse_bn",
    "get_transform",
    "imagenet_labels",
    "import_tarball",
    "list_models",
    "list_pretrained",
    "load",
    "model_info",
    "open_checkpoint",
    "optimize_for_inference",
    "set_fast_inference",
    "tune_cpu_allocator",
]

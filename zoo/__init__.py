"""slimzoo: the TF-slim ImageNet models as native PyTorch modules with their published weights.

>>> import zoo
>>> model = zoo.load("resnet_v2_50", pretrained=True)   # doctest: +SKIP
"""

from __future__ import annotations

from architectures import fuse_bn, optimize_for_inference

from .allocator import tune_cpu_allocator
from .checkpoint import open_checkpoint
from .deploy import export_onnx, export_program
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
    RegistryError,
    UnknownModelError,
    ZooError,
)
from .export import export_tf_checkpoint
from .labels import imagenet_labels
from .models import list_models, load
from .pretrained import CacheInfo, cache_info, download_weights, import_tarball
from .registry import ModelInfo, list_pretrained, model_info
from .transforms import get_transform

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
    "tune_cpu_allocator",
]

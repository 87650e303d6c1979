"""slimzoo: the TF-slim ImageNet models as native PyTorch modules with their published weights.

>>> import zoo
>>> model = zoo.load("resnet_v2_50", pretrained=True)   # doctest: +SKIP
"""

from __future__ import annotations

from .checkpoint import open_checkpoint
from .errors import (
    ArchiveError,
    CheckpointError,
    ChecksumError,
    DownloadError,
    MappingError,
    OfflineError,
    RegistryError,
    UnknownModelError,
    ZooError,
)
from .export import export_tf_checkpoint
from .labels import imagenet_labels
from .models import list_models, load
from .transforms import get_transform

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "CheckpointError",
    "ChecksumError",
    "DownloadError",
    "MappingError",
    "OfflineError",
    "RegistryError",
    "UnknownModelError",
    "ZooError",
    "__version__",
    "export_tf_checkpoint",
    "get_transform",
    "imagenet_labels",
    "list_models",
    "load",
    "open_checkpoint",
]

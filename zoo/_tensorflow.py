"""Import TensorFlow and tf_slim for cross-checks, benchmarks and export tests (the ``tf`` extra).

Nothing at run time needs TensorFlow; this module is imported only by code that compares
against it. It applies the two work-arounds the current releases need:

* torch must be imported before TensorFlow in one process (both bundle native libraries; the
  other order can crash at import). This holds for triton too, which torch loads lazily (for
  ``torch.compile``, and for optimizers through ``torch._dynamo``): loaded after TensorFlow it
  crashes the process with a segmentation fault, so it is loaded first where installed;
* tf_slim 1.1 imports ``tf_keras.legacy_tf_layers.normalization``, which tf-keras 2.21 moved to
  ``tf_keras.src.legacy_tf_layers.normalization``: we alias the old name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["import_tensorflow"]


def import_tensorflow() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow, tf_slim)``, TF1 graph mode ready; ImportError says how to install them."""
    import torch  # noqa: F401  (before TensorFlow, see above)

    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")  # before TensorFlow too (see above)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN's reordered float sums differ from the reference data generator's (which had it off)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        tf = importlib.import_module("tensorflow")
        legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
        normalization = importlib.import_module("tf_keras.src.legacy_tf_layers.normalization")
    except ImportError as exc:
        raise ImportError(
            "TensorFlow cross-checks need the tf extra: pip install -e '.[tf]' and "
            "pip install --no-deps tf-keras==2.21.0"
        ) from exc
    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    sys.modules.setdefault("tf_keras.legacy_tf_layers.normalization", normalization)
    slim = importlib.import_module("tf_slim")
    return tf, slim

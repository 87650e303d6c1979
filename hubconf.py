"""torch.hub entry points: one per slimzoo network, with its published TF-slim weights.

    import torch
    torch.hub.list("slimzoo/slimzoo")                    # every network
    print(torch.hub.help("slimzoo/slimzoo", "resnet_v2_152"))
    model = torch.hub.load("slimzoo/slimzoo", "resnet_v2_152", pretrained=True)

Each entry point is ``name(pretrained=False, **kwargs)`` and calls ``zoo.load(name, ...)``: the
keyword arguments are zoo.load's (``num_classes``, ``skip_classifier``, ``use_ema``,
``cache_dir``, ``offline``, ...) and the network's (``global_pool``, ``output_stride``, ...).
The functions and their docstrings are generated from the registries (``zoo.hub_entries``), so
every network ``zoo.list_models()`` knows is here. torch.hub puts this directory on ``sys.path``
while it imports this file, so ``zoo`` is the one of this checkout (unless another ``zoo`` was
imported before). Only names without a leading underscore are entry points.
"""

import importlib.util as _importlib_util

# Import names (torch.hub checks them with importlib).
dependencies = [
    "torch",
    "torchvision",
    "numpy",
    "requests",
    "urllib3",
    "tqdm",
    "safetensors",
    "filelock",
    "google_crc32c",
]

_missing = [_name for _name in dependencies if _importlib_util.find_spec(_name) is None]
if _missing:  # say which, before `import zoo` fails on the first of them
    raise ImportError(
        f"slimzoo's torch.hub entry points need {', '.join(_missing)}: pip install torch "
        "torchvision numpy requests tqdm safetensors filelock google-crc32c"
    )

from zoo.hub_entries import entry_points as _entry_points  # noqa: E402

globals().update(_entry_points())

"""The README's examples run as written.

Every ```python block runs in a fresh interpreter and every ```bash block in bash (``set -e``),
in a working directory holding what the examples use (``cat.jpg``, a fine-tuned checkpoint under
``my_finetuned/``, this checkout's ``hubconf.py``), with a fresh cache and a registry whose
MobileNet releases (the models the examples download) are served from 127.0.0.1 — built like the
published tarballs from the reference weights. Any other request goes to a dead proxy. ```sh
blocks (the set-up commands, which CI itself runs) are not executed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _http import FileServer
from _pipeline import FAST
from _tarballs import release_tarball, release_tensors, write_checkpoint, write_registry
from PIL import Image

from zoo.registry import shipped_registry_path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SERVED = ("mobilenet_v1", "mobilenet_v2")  # the releases the examples download

_BLOCK = re.compile(r"^```(python|bash|sh)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str, int]]:
    text = README.read_text()
    found = []
    for match in _BLOCK.finditer(text):
        if match.group(1) != "sh":
            line = text[: match.start()].count("\n") + 1
            found.append((match.group(1), match.group(2), line))
    return found


BLOCKS = _blocks()


def test_the_readme_has_examples_of_every_surface():
    code = "\n".join(body for _, body, _ in BLOCKS)
    for surface in (
        "zoo.load(",
        "pretrained=True",
        "zoo.get_transform(",
        "zoo.imagenet_labels(",
        "zoo.model_info(",
        "zoo.download_weights(",
        "zoo.cache_info(",
        "zoo.export_tf_checkpoint(",
        "zoo.open_checkpoint(",
        "torch.hub.load(",
        "drop_background=True",
        "fuse_bn=True",
        "optimize_for_inference=True",
        "zoo.tune_cpu_allocator()",
        "features_only=True",
        "resolve_data_config(model=model)",
        ".eval()",
        "slimzoo-warm --dry-run",
        "slimzoo-warm --verify",
        "slimzoo predict",
        "slimzoo predict mobilenet_v2 photos/",
        "torchrun --standalone --nproc-per-node 2 -m zoo predict",
        "zoo.export_onnx(",
        "zoo.export_program(",
        "torch.autocast(",
        "slimzoo convert",
        "slimzoo export",
        "slimzoo info",
    ):
        assert surface in code, f"no README example uses {surface}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The examples' working directory and environment, with the releases served meanwhile."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(work / "cat.jpg")
    (work / "photos" / "2024").mkdir(parents=True)  # a folder for slimzoo predict
    for i, where in enumerate(("photos/a.jpg", "photos/2024/b.jpg", "photos/2024/c.png")):
        pixels = rng.integers(0, 255, (200 + 20 * i, 260, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(work / where)
    (work / "hubconf.py").symlink_to(REPO / "hubconf.py")
    # a fine-tuned mobilenet_v1: the released weights with a 10-class classifier
    tensors = release_tensors("mobilenet_v1")
    head = "MobilenetV1/Logits/Conv2d_1c_1x1/"
    tensors[head + "weights"] = tensors[head + "weights"][..., :10].copy()
    tensors[head + "biases"] = tensors[head + "biases"][:10].copy()
    (work / "my_finetuned").mkdir()
    write_checkpoint(tensors, work / "my_finetuned" / "model.ckpt", "v2")

    with FileServer() as server:
        releases: dict[str, dict | None] = {
            name: None for name in json.loads(shipped_registry_path().read_text())["models"]
        }
        for name in SERVED:
            tarball = release_tarball(name, root / "releases")
            url = server.add(f"/models/{tarball.path.name}", tarball.path)
            releases[name] = {"url": url, "size": tarball.size, "sha256": tarball.sha256}
        registry = write_registry(root / "registry.json", releases)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
        if "ZOO_REFERENCE_DIR" in os.environ:
            env["ZOO_REFERENCE_DIR"] = os.environ["ZOO_REFERENCE_DIR"]
        env.update(FAST)
        env.update(
            ZOO_CACHE_DIR=str(root / "cache"),
            ZOO_REGISTRY=str(registry),
            TORCH_HOME=str(root / "torch"),
            PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            http_proxy="http://127.0.0.1:9",
            https_proxy="http://127.0.0.1:9",
            HTTP_PROXY="http://127.0.0.1:9",
            HTTPS_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        yield work, env, server


@pytest.mark.parametrize(
    "kind,code,line", BLOCKS, ids=[f"{kind}-line{line}" for kind, _, line in BLOCKS]
)
def test_readme_example_runs(kind, code, line, workdir):
    work, env, server = workdir
    command = [sys.executable, "-c", code] if kind == "python" else ["bash", "-e", "-c", code]
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"README {kind} example at line {line} failed ({proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    outside = [r for r in server.requests if not r.path.startswith("/models/")]
    assert not outside, outside

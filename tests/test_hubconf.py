"""``hubconf.py``: torch.hub.load / list / help on this checkout.

``torch.hub.load(dir, name, source="local")`` imports the checkout's hubconf directly.
``torch.hub.list`` and ``torch.hub.help`` only take a GitHub ``owner/repo``; they use the copy in
torch's hub directory when there is one, so the tests put this checkout there (a symbolic link in
a temporary hub directory): the same code path as a real download, without the network.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect

import _tinynet
import pytest
import torch
from _http import FileServer
from _pipeline import REPO, isolate
from _tinyserve import TinyReleases, build_tiny_tarball

import architectures
import zoo
from zoo.hub_entries import network_options
from zoo.registry import get_registry

GITHUB = "slimzoo/slimzoo:main"


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """A torch hub directory whose cached copy of ``slimzoo/slimzoo:main`` is this checkout."""
    directory = tmp_path / "hub"
    directory.mkdir()
    (directory / "slimzoo_slimzoo_main").symlink_to(REPO, target_is_directory=True)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(directory))
    return directory


def hub_list() -> list[str]:
    return torch.hub.list(GITHUB, trust_repo=True, verbose=False)


def hub_help(name: str) -> str:
    return torch.hub.help(GITHUB, name, trust_repo=True)


def flat(text: str) -> str:
    """Whitespace-normalised text (docstrings are wrapped)."""
    return " ".join(text.split())


def test_list_is_exactly_the_networks(hub_dir):
    assert hub_list() == sorted(zoo.list_models())  # no helper, import or `dependencies`


def test_list_follows_the_registered_networks(hub_dir):
    with _tinynet.registered():
        assert _tinynet.NAME in hub_list()
    assert _tinynet.NAME not in hub_list()


@pytest.mark.parametrize("name", zoo.list_models())
def test_help_describes_the_model_from_its_registry_entry(hub_dir, name):
    doc = flat(hub_help(name))
    constructor_summary = inspect.getdoc(architectures.get_constructor(name)).splitlines()[0]
    assert doc.startswith(flat(constructor_summary))
    # a network without a registry entry of its own (a multiplier variant whose releases are named
    # like slim's checkpoints, mobilenet_v1_0.5_160) has no facts to state and no weights
    info = get_registry().models.get(name)
    if info is None:
        assert "Classes:" not in doc and "Published weights" not in doc
        assert "no weights were published" in doc and "zoo.NoWeightsError" in doc
    else:
        assert_states_the_entry(doc, name, zoo.model_info(name))
    load_keywords = [
        p.name for p in inspect.signature(zoo.load).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    assert {"num_classes", "use_ema", "cache_dir"} <= set(load_keywords)
    for option in load_keywords:
        assert option in doc
    for option in network_options(architectures.get_constructor(name)):
        assert option in doc


def assert_states_the_entry(doc: str, name: str, info: zoo.ModelInfo) -> None:
    assert f"Classes: {info.num_classes}" in doc
    if info.paper is not None:
        assert flat(info.paper.title) in doc and info.paper.url in doc
    if info.accuracy is not None:  # MobileNet v3: top-1 only, top-5 not published
        top5 = "" if info.accuracy.top5 is None else f", top-5 {info.accuracy.top5:g} %"
        assert f"top-1 {info.accuracy.top1:g} %{top5} (" in doc
    if info.preprocessing is not None:
        size = info.preprocessing.input_size
        assert f"3x{size}x{size}, {info.preprocessing.kind} preprocessing" in doc
    if info.has_weights:
        assert info.release.url in doc and f'"{name}", pretrained=True)' in doc
    else:
        assert "no weights were published" in doc and "zoo.NoWeightsError" in doc


def test_documented_network_options_are_accepted_and_not_fixed_by_the_constructor():
    """Every option the docstrings list, at its default, builds the network (on ``meta``): none
    is one the constructor already sets (that would be 'got multiple values')."""
    fixed = {
        "resnet_v2_50": "num_units",
        "vgg_16": "depths",
        "mobilenet_v2_140": "depth_multiplier",
    }
    fixed |= {"nasnet_large": "num_cells", "pnasnet_mobile": "image_size"}
    for name, option in fixed.items():
        listed = [o.split("=")[0] for o in network_options(architectures.get_constructor(name))]
        assert listed and option not in listed and "num_classes" not in listed, name
    assert "output_stride=None" in network_options(architectures.get_constructor("resnet_v1_50"))
    for name in zoo.list_models():
        constructor = architectures.get_constructor(name)
        options = dict(o.split("=", 1) for o in network_options(constructor))
        with torch.device("meta"):
            constructor(**{k: ast.literal_eval(v) for k, v in options.items()})


def test_load_untrained_network_with_options(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    model = torch.hub.load(
        str(REPO), "mobilenet_v1", source="local", num_classes=7, depth_multiplier=0.25
    )
    assert type(model).__name__ == "MobileNetV1" and model.training  # as torchvision's hub
    model.eval()
    assert model.num_classes == 7
    want = zoo.load("mobilenet_v1", num_classes=7, depth_multiplier=0.25).state_dict()
    got = model.state_dict()
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()}
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    assert not (tmp_path / "cache").exists()  # pretrained=False: no cache, no network


def test_load_pretrained_from_the_local_server(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    tarball, ema = build_tiny_tarball(tmp_path)
    with _tinynet.registered(), FileServer() as server:
        releases = TinyReleases(server, tarball, (_tinynet.NAME,))
        monkeypatch.setenv("ZOO_REGISTRY", str(releases.write(tmp_path / "registry.json")))
        model = torch.hub.load(str(REPO), _tinynet.NAME, source="local", pretrained=True).eval()
        again = torch.hub.load(str(REPO), _tinynet.NAME, source="local", pretrained=True).eval()
        assert releases.gets(_tinynet.NAME) == 1  # the second load comes from the cache
        want = zoo.load(_tinynet.NAME, checkpoint=ema).eval().state_dict()
    for loaded in (model, again):
        got = loaded.state_dict()
        assert sorted(got) == sorted(want)
        assert all(torch.equal(got[k], v) for k, v in want.items())
    with pytest.raises(zoo.NoWeightsError, match="resnet_v1_200"):
        torch.hub.load(str(REPO), "resnet_v1_200", source="local", pretrained=True).eval()


def test_missing_dependency_is_named(monkeypatch):
    real = importlib.util.find_spec

    def without_safetensors(name, *args, **kwargs):
        return None if name == "safetensors" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_safetensors)
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match="need safetensors: pip install"):
        spec.loader.exec_module(module)


def test_dependencies_are_importable_and_cover_zoo():
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert all(importlib.util.find_spec(name) for name in module.dependencies)
    required = {"torch", "numpy", "requests", "safetensors", "filelock", "google_crc32c", "tqdm"}
    assert required <= set(module.dependencies)

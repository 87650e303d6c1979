"""The ``slimzoo`` command line, run as real processes (``python -m zoo``) on this worktree.

Everything runs offline on an isolated cache: a MobileNet v1 "release" built from the reference
weights (at the He gain, so the predictions depend on the image) is imported into a cache with a
``ZOO_REGISTRY`` that pins it, and its TF checkpoints (V1 and V2) are written beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _pipeline import isolate
from _tarballs import release_tarball, write_checkpoint, write_registry
from conftest import reference_weights
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import zoo
from zoo.cli import main

REPO = Path(__file__).resolve().parents[1]
ARCH = "mobilenet_v1"
HE_GAIN = 2**0.5


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tensors = reference_weights(ARCH, gain=HE_GAIN)
    tensors["global_step"] = np.array(1234, np.int64)
    (root / "v2").mkdir()
    write_checkpoint(tensors, root / "v2" / "model.ckpt", "v2")
    write_checkpoint(tensors, root / "model_v1.ckpt", "v1")
    model = zoo.load(ARCH, checkpoint=tensors).eval()
    weights = root / "model.safetensors"
    save_file(model.state_dict(), weights)

    rng = np.random.default_rng(0)
    images = []
    for i, (h, w) in enumerate([(180, 240), (300, 200), (224, 224)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[: h // 2] //= i + 1  # not only noise: images that differ in content
        images.append(root / f"image{i}.png")
        Image.fromarray(pixels).save(images[-1])
    images.append(root / "grey.jpg")  # converted to RGB by predict
    Image.fromarray(rng.integers(0, 256, (120, 160), dtype=np.uint8)).save(images[-1])

    tarball = release_tarball(ARCH, root, tensors=tensors)
    pins = {ARCH: {"sha256": tarball.sha256, "size": tarball.size}, "vgg_16": None}
    registry = write_registry(root / "registry.json", pins)
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_REGISTRY", str(registry))
        zoo.import_tarball(tarball.path, ARCH, cache_dir=cache)
    return SimpleNamespace(
        root=root,
        tensors=tensors,
        model=model,
        weights=weights,
        v2=root / "v2" / "model.ckpt",
        v1=root / "model_v1.ckpt",
        images=[str(p) for p in images],
        registry=registry,
        cache=cache,
    )


def cli(*args, cache=None, registry=None) -> subprocess.CompletedProcess:
    """``python -m zoo ARGS`` with this worktree's packages, offline, on an isolated cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["ZOO_OFFLINE"] = "1"
    env["ZOO_CACHE_DIR"] = str(cache or REPO / "nonexistent-test-cache")
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[key] = "http://127.0.0.1:9"  # nothing listens: a request by mistake fails
    if registry is not None:
        env["ZOO_REGISTRY"] = str(registry)
    return subprocess.run(
        [sys.executable, "-m", "zoo", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    return result.stdout


def _same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], value), key


def _in_process_probabilities(model: torch.nn.Module, image: str) -> torch.Tensor:
    transform = zoo.get_transform(ARCH)
    with Image.open(image) as img, torch.no_grad():
        return torch.softmax(model(transform(img.convert("RGB"))[None]), dim=-1)[0]


def _parse_predictions(text: str) -> dict[str, list[tuple[float, int, str]]]:
    """``{image: [(probability, index, label), ...]}`` from predict's table (columns image,
    rank, probability, index, label, at the header's offsets)."""
    header, *rows = text.splitlines()
    starts = [header.index(c) for c in ("rank", "probability", "index", "label")]
    out: dict[str, list[tuple[float, int, str]]] = {}
    for line in rows:
        image = line[: starts[0]].strip()
        probability, index = line[starts[1] : starts[2]], line[starts[2] : starts[3]]
        out.setdefault(image, []).append((float(probability), int(index), line[starts[3] :]))
    return out


# --------------------------------------------------------------------------- list, info


def test_list_filters_with_a_pattern():
    lines = ok(cli("list", "resnet_v2_*")).splitlines()
    assert lines[0].split() == ["name", "network", "weights", "preprocessing", "classes", "top-1"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}  # one family: no heading
    assert list(rows) == zoo.list_models("resnet_v2_*")  # natural order: 50, 101, 152, 200
    top1 = zoo.model_info("resnet_v2_50").accuracy.top1
    assert rows["resnet_v2_50"] == [
        "resnet_v2_50",
        "yes",
        "inception",
        "299",
        "1001",
        f"{top1:.1f}",
    ]
    assert rows["resnet_v2_200"][1] == "-"  # a network without published weights

    names = ok(cli("list", "mobile", "--pretrained", "--names")).split()
    assert names == [n for n in zoo.list_pretrained() if "mobile" in n]
    assert "nasnet_mobile" in names and "mobilenet_v1" in names


def test_the_whole_list_is_grouped_by_family_in_natural_order():
    lines = ok(cli("list", "mobilenet_v1*")).splitlines()
    assert not [line for line in lines if line.endswith(":")]  # one family: no heading
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 19  # 16 releases and the three width networks
    names = [row[0] for row in rows]
    assert names.index("mobilenet_v1_0.25_128") < names.index("mobilenet_v1_0.5_128")
    assert names.index("mobilenet_v1_0.5_160") < names.index("mobilenet_v1_0.5_224")
    assert dict((row[0], row[1]) for row in rows)["mobilenet_v1_0.5_160"] == "mobilenet_v1_050"

    everything = ok(cli("list")).splitlines()
    families = [line.split()[0] for line in everything if line.endswith(":")]
    assert families[:3] == ["inception_resnet_v2", "inception_v1", "inception_v2"]
    assert {"mobilenet_v2", "mobilenet_v3", "nasnet", "vgg"} <= set(families)
    listed = [line.split()[0] for line in everything[1:] if not line.endswith(":")]
    assert sorted(listed) == sorted({*zoo.list_models(), *zoo.list_pretrained()})
    assert everything.index("inception_v3 (4, 4 with published weights):") < everything.index(
        next(line for line in everything if line.startswith("adv_inception_v3 "))
    )


def test_info_states_registry_facts_and_an_empty_cache(tmp_path):
    out = ok(cli("info", "inception_v3", cache=tmp_path / "empty"))
    info = zoo.model_info("inception_v3")
    for fact in (
        info.release.url,
        info.release.sha256,
        "3x299x299",
        "bilinear",
        "central crop of 87.5%",
        "index 0 is the background class",
        f"top-1 {info.accuracy.top1:g} %",
        "Apache-2.0",
        "not downloaded yet",
        str(tmp_path / "empty"),
    ):
        assert fact in out, fact


def test_info_json_has_the_model_info_and_a_complete_cache_entry(work, monkeypatch):
    document = json.loads(
        ok(cli("info", ARCH, "--json", "--verify", registry=work.registry, cache=work.cache))
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(work.registry))
    info = zoo.model_info(ARCH)
    entry = zoo.cache_info(ARCH, cache_dir=work.cache)
    assert entry.complete
    assert document["cache"]["status"] == "complete"
    assert document["cache"]["path"] == str(entry.path)
    assert document["cache"]["size"] == entry.size
    assert document["model_info"] == json.loads(json.dumps(dataclasses.asdict(info)))
    cfg = document["pretrained_cfg"]
    assert cfg["input_size"] == [3, 224, 224] and cfg["num_classes"] == 1001
    assert cfg["label_offset"] == 1 and cfg["mean"] == [0.5, 0.5, 0.5]


# --------------------------------------------------------------------------- convert


def test_convert_v2_and_v1_checkpoints_to_files_zoo_load_accepts(work, tmp_path):
    out = ok(cli("convert", work.v2, "--model", ARCH, "-o", tmp_path / "a.safetensors"))
    assert "1001 classes" in out
    ok(cli("convert", work.v1, "--model", ARCH, "--pt", "-o", tmp_path / "b.pt"))
    for name in ("a.safetensors", "b.pt"):
        _same_model(work.model, zoo.load(ARCH, weights=tmp_path / name).eval())
    with safe_open(tmp_path / "a.safetensors", "pt") as f:
        assert f.metadata()["slimzoo_model"] == ARCH
    state = torch.load(tmp_path / "b.pt", weights_only=True)
    assert isinstance(state, dict) and state.keys() == work.model.state_dict().keys()


def test_convert_can_drop_the_background_class(work, tmp_path):
    args = ("convert", work.v2, "--model", ARCH, "--num-classes", "1001", "--drop-background")
    out = ok(cli(*args, "-o", tmp_path / "c.safetensors"))
    assert "1000 classes" in out
    dropped = zoo.load(ARCH, weights=tmp_path / "c.safetensors").eval()
    assert dropped.num_classes == 1000
    want = work.model.state_dict()[f"{work.model.classifier_name}.bias"][1:]
    assert torch.equal(dropped.state_dict()[f"{dropped.classifier_name}.bias"], want)


# --------------------------------------------------------------------------- predict


def test_predict_prints_the_top5_of_the_in_process_model(work):
    printed = _parse_predictions(ok(cli("predict", ARCH, *work.images, "--checkpoint", work.v2)))
    assert list(printed) == work.images
    labels = zoo.imagenet_labels(ARCH)
    tops = set()
    for image, rows in printed.items():
        probabilities = _in_process_probabilities(work.model, image)
        want = probabilities.topk(5)
        assert want.values[0] - want.values[1] > 1e-3  # a clear top-1 (no near tie)
        assert [index for _, index, _ in rows] == want.indices.tolist()
        assert rows[0][1] == int(probabilities.argmax())
        assert [label for _, _, label in rows] == [labels[i] for i in want.indices.tolist()]
        np.testing.assert_allclose([p for p, _, _ in rows], want.values.numpy(), atol=1e-4)
        tops.add(tuple(p for p, _, _ in rows))
    assert len(tops) == len(work.images)  # each image got its own answer


def test_predict_json_from_weights_without_the_background_class(work):
    image = work.images[1]
    lines = ok(
        cli(
            "predict", ARCH, image, "--weights", work.weights, "--drop-background", "-k", "3",
            "--json",
        )
    ).splitlines()  # fmt: skip
    (result,) = [json.loads(line) for line in lines]  # JSON lines: one object per image
    assert result["image"] == image
    logits = torch.log(_in_process_probabilities(work.model, image))[1:]
    want = torch.softmax(logits, dim=-1).topk(3)
    assert [r["index"] for r in result["top"]] == want.indices.tolist()
    names = zoo.imagenet_labels(ARCH, drop_background=True)
    assert [r["label"] for r in result["top"]] == [names[i] for i in want.indices.tolist()]


def test_predict_uses_the_warmed_cache_offline(work):
    printed = _parse_predictions(
        ok(cli("predict", ARCH, work.images[0], registry=work.registry, cache=work.cache))
    )
    probabilities = _in_process_probabilities(work.model, work.images[0])
    assert printed[work.images[0]][0][1] == int(probabilities.argmax())


# --------------------------------------------------------------------------- export


def test_export_writes_the_tf_checkpoint_of_a_weights_file(work, tmp_path):
    prefix = tmp_path / "out" / "model.ckpt"
    out = ok(cli("export", ARCH, "--weights", work.weights, "-o", prefix))
    assert str(prefix) in out
    exported = zoo.open_checkpoint(prefix)
    assert set(exported) == set(work.tensors)
    for name, value in work.tensors.items():
        if name != "global_step":
            np.testing.assert_array_equal(exported[name], value, err_msg=name)


def test_export_of_the_published_weights_as_v1(work, tmp_path):
    path = tmp_path / "pretrained.ckpt"
    args = ("export", ARCH, "--weights", "pretrained", "--format", "v1", "--global-step", "9")
    ok(cli(*args, "-o", path, registry=work.registry, cache=work.cache))
    exported = zoo.open_checkpoint(path)
    assert int(exported["global_step"]) == 9
    name = "MobilenetV1/Logits/Conv2d_1c_1x1/weights"
    np.testing.assert_array_equal(exported[name], work.tensors[name])
    again = cli(*args, "-o", path, registry=work.registry, cache=work.cache)
    assert again.returncode == 2 and "--overwrite" in again.stderr


# --------------------------------------------------------------------------- errors


BAD_USAGE = {
    "unknown model": (("info", "incepton_v3"), "Did you mean: 'inception_v3'"),
    "unknown command": (("lst",), "invalid choice: 'lst'"),
    "missing option": (("convert", "{v2}", "--model", ARCH), "required: -o/--output"),
    "missing image": (("predict", ARCH, "{root}/nope.png", "--checkpoint", "{v2}"), "no image at"),
    "missing weights": (
        ("export", ARCH, "--weights", "{root}/nope.safetensors", "-o", "{root}/x"),
        "no weights file at",
    ),
    "wrong checkpoint": (
        ("convert", "{v2}", "--model", "inception_v1", "-o", "{root}/x.safetensors"),
        "does not fit InceptionV1",
    ),
    "wrong weights": (
        ("predict", "vgg_16", "{image}", "--weights", "{weights}"),
        "does not fit vgg_16",
    ),
    "no published weights": (("predict", "resnet_v1_200", "{image}"), "no pretrained weights"),
    "pt name": (
        ("convert", "{v2}", "--model", ARCH, "--pt", "-o", "{root}/x.safetensors"),
        "name it *.pt",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_USAGE))
def test_bad_usage_exits_2_with_one_clear_line(work, case):
    args, message = BAD_USAGE[case]
    fields = {"v2": work.v2, "root": work.root, "image": work.images[0], "weights": work.weights}
    result = cli(*(a.format(**fields) for a in args))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("slimzoo"), result.stderr
    assert message in lines[0]
    assert not list(work.root.glob("x*"))  # nothing written


def test_other_failures_exit_1_in_process(work, tmp_path, monkeypatch, capsys):
    isolate(tmp_path, monkeypatch)
    code = main(["predict", "inception_v3", work.images[0], "--offline"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert "offline mode is on" in err and "slimzoo-warm inception_v3" in err


def test_main_without_a_command_shows_help_and_the_console_script_is_main(capsys):
    assert main([]) == 2
    assert "commands" in capsys.readouterr().err
    for command in ("list", "info", "convert", "predict", "export"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: slimzoo {command}" in capsys.readouterr().out
    assert 'slimzoo = "zoo.cli:main"' in (REPO / "pyproject.toml").read_text()

"""The weights registry: its facts, its agreement with the networks and the reference manifests,
and its validation."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping

import pytest
from conftest import expected, manifest, meta, reference_archs
from test_registry_catalogue import CATALOGUE, expected_entry

import architectures
import zoo
from architectures._tf import checkpoint_num_classes
from zoo.convert import build_skeleton
from zoo.registry import load_registry, shipped_registry_path

SHIPPED = load_registry(shipped_registry_path())
NAMES = sorted(SHIPPED.models)

# checkpoint_facts.md, transcribed independently of weights_registry.json:
# name: (tarball, checkpoint, format, size, sha256, top1, top5, preprocessing, input size)
FACTS = {
    "inception_v1": ("inception_v1_2016_08_28.tar.gz", "inception_v1.ckpt", "v1", 24642554,
                     "7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6",
                     69.8, 89.6, "inception", 224),
    "inception_v2": ("inception_v2_2016_08_28.tar.gz", "inception_v2.ckpt", "v1", 41577079,
                     "3b9d269984402003d8330affc4e1463c0b4cfd536339ad12446a48d72477480a",
                     73.9, 91.8, "inception", 224),
    "inception_v3": ("inception_v3_2016_08_28.tar.gz", "inception_v3.ckpt", "v1", None,
                     "9430692d3002277fa1e1a94fb82331fe5da68b9afd725c2679c21a0319933228",
                     78.0, 93.9, "inception", 299),
    "inception_v4": ("inception_v4_2016_09_09.tar.gz", "inception_v4.ckpt", "v1", 171177982,
                     "272a2b24f68b2e51f3081479df075dd62b019ccda630e998fb7f6cf314c0f304",
                     80.2, 95.2, "inception", 299),
    "inception_resnet_v2": ("inception_resnet_v2_2016_08_30.tar.gz",
                            "inception_resnet_v2_2016_08_30.ckpt", "v1", None,
                            "3471bf35c5322271081346a0bdfae0aee706561b8243ec3ba2249aea2dcb8506",
                            80.4, 95.3, "inception", 299),
    "resnet_v1_50": ("resnet_v1_50_2016_08_28.tar.gz", "resnet_v1_50.ckpt", "v1", None,
                     "91a0dc25289e7ef648df304b15f06c43ce6f4446d08eb0168479dd2295101c73",
                     75.2, 92.2, "vgg", 224),
    "resnet_v1_101": ("resnet_v1_101_2016_08_28.tar.gz", "resnet_v1_101.ckpt", "v1", None,
                      "5d813fcf5e56e7c9c2483d73b46644394cdbb31f9f4bf7140fb2809f7aa11a19",
                      76.4, 92.9, "vgg", 224),
    "resnet_v1_152": ("resnet_v1_152_2016_08_28.tar.gz", "resnet_v1_152.ckpt", "v1", None,
                      "c89b549ada486d9c0db6d90e874a1a652d899f9b541ae9c430fee8251572181d",
                      76.8, 93.2, "vgg", 224),
    "resnet_v2_50": ("resnet_v2_50_2017_04_14.tar.gz", "resnet_v2_50.ckpt", "v1", None,
                     "2c5c3a852526d0d6e8a35829d4e50533468baaed834a0046ba430e80982ed57c",
                     75.6, 92.8, "inception", 299),
    "resnet_v2_101": ("resnet_v2_101_2017_04_14.tar.gz", "resnet_v2_101.ckpt", "v1", None,
                      "b324d02f28839d11f382785bdf4444ec3bdccb28e1b691a4f45b8f04370e4191",
                      77.0, 93.7, "inception", 299),
    "resnet_v2_152": ("resnet_v2_152_2017_04_14.tar.gz", "resnet_v2_152.ckpt", "v1", 675629399,
                      "c3ec824f19b4919fc7d069dc3a2a9d0f045f35e843c563c4eeeefbedf4852867",
                      77.8, 94.1, "inception", 299),
    "vgg_16": ("vgg_16_2016_08_28.tar.gz", "vgg_16.ckpt", "v1", None,
               "de44460bf79d3da5d843946bbee82a9a872a8bf020787922914aa9a4b125126e",
               71.5, 89.8, "vgg", 224),
    "vgg_19": ("vgg_19_2016_08_28.tar.gz", "vgg_19.ckpt", "v1", None,
               "9071fd96f91e261c62378cd073897cf038a278a1fbd6c763a8f9eecf311a3cf8",
               71.1, 89.8, "vgg", 224),
    "mobilenet_v1": ("mobilenet_v1_1.0_224.tgz", "mobilenet_v1_1.0_224.ckpt", "v2", None,
                     "1ccb74dbd9c5f7aea879120614e91617db9534bdfaa53dfea54b7c14162e126b",
                     70.9, 89.9, "inception", 224),
    "mobilenet_v2": ("mobilenet_v2_1.0_224.tgz", "mobilenet_v2_1.0_224.ckpt", "v2", 78306834,
                     "318084bc1b63d6d7b854553e09cdf77078b1c0168be27c59a0d44253b5ed49dc",
                     71.9, 91.0, "inception", 224),
    "mobilenet_v2_140": ("mobilenet_v2_1.4_224.tgz", "mobilenet_v2_1.4_224.ckpt", "v2", 135977516,
                         "a20d0c8d698502dc6a620528871c97a588885df7737556243a3412b39fce85e0",
                         74.9, 92.5, "inception", 224),
    "nasnet_mobile": ("nasnet-a_mobile_04_10_2017.tar.gz", "model.ckpt", "v2", None,
                      "aafa7066c238f02776da34b12fd6560e8d6784f73687ec5519d863a531335f38",
                      74.0, 91.6, "inception", 224),
    "nasnet_large": ("nasnet-a_large_04_10_2017.tar.gz", "model.ckpt", "v2", None,
                     "385a9aa44f1554e1e6cedf19b4e1bfe9b14b704b32acbf8f9f4f8327d72ad3fb",
                     82.7, 96.2, "inception", 331),
    "pnasnet_mobile": ("pnasnet-5_mobile_2017_12_13.tar.gz", "model.ckpt", "v2", None,
                       "06ce8bf80d7711e820d6d1266c5b23c4820c8cabf827c65b1cfed2e4b16b5b93",
                       74.2, 91.9, "inception", 224),
    "pnasnet_large": ("pnasnet-5_large_2017_12_13.tar.gz", "model.ckpt", "v2", None,
                      "ce5fa64421d5285ae0a434b51d9ab142c88b3d7e542558e6c91bd4f6533d17e3",
                      82.9, 96.2, "inception", 331),
}  # fmt: skip


def test_every_release_and_the_unreleased_networks_are_listed():
    # the first twenty here, the catalogue's 46 in test_registry_catalogue
    catalogue = {expected_entry(release)[0] for release in CATALOGUE}
    assert sorted(zoo.list_pretrained()) == sorted(set(FACTS) | catalogue)
    assert set(NAMES) - set(FACTS) - catalogue == {"resnet_v1_200", "resnet_v2_200"}
    for name in ("resnet_v1_200", "resnet_v2_200"):
        info = SHIPPED.models[name]
        assert info.release is None and info.accuracy is None and not info.has_weights


@pytest.mark.parametrize("name", sorted(FACTS))
def test_entry_states_the_checkpoint_facts(name):
    tarball, ckpt, fmt, size, sha256, top1, top5, kind, input_size = FACTS[name]
    info = SHIPPED.models[name]
    r = info.release
    assert (r.tarball, r.checkpoint, r.format) == (tarball, ckpt, fmt)
    assert (r.size, r.sha256) == (size, sha256)
    acc = info.accuracy
    got = (acc.top1, acc.top5) if acc else (None, None)
    assert got == (top1, top5)
    assert (info.preprocessing.kind, info.preprocessing.input_size) == (kind, input_size)
    assert info.license == "Apache-2.0"
    assert r.url.startswith(("http://download.tensorflow.org/models/", "https://storage."))
    want_classes = 1000 if name.startswith(("vgg", "resnet_v1")) else 1001
    assert (info.num_classes, info.label_offset) == (want_classes, want_classes - 1000)
    if name.startswith("mobilenet_v2"):
        assert r.ema is True


def _bundle(stem: str) -> tuple[set[str], set[str]]:
    """The seven files of a MobileNet v1/v2 release (checkpoint_facts.md, "files inside")."""
    checkpoint = {f"{stem}.ckpt.index", f"{stem}.ckpt.data-00000-of-00001"}
    others = {f"{stem}.ckpt.meta", f"{stem}.tflite", f"{stem}_frozen.pb", f"{stem}_eval.pbtxt"}
    return checkpoint, others | {f"{stem}_info.txt"}


_V2_NAS = ({"model.ckpt.index", "model.ckpt.data-00000-of-00001"}, set())
# checkpoint_facts.md's "files inside" column: (the checkpoint files, every other file)
RELEASE_FILES = {
    **{
        name: ({FACTS[name][1]}, set())
        for name in FACTS
        if name.startswith(("inception", "resnet_v1", "vgg"))
    },
    **{name: ({f"{name}.ckpt"}, {"eval.graph", "train.graph"}) for name in FACTS if "v2_" in name
       and name.startswith("resnet")},
    "mobilenet_v1": _bundle("mobilenet_v1_1.0_224"),
    "mobilenet_v2": _bundle("mobilenet_v2_1.0_224"),
    "mobilenet_v2_140": _bundle("mobilenet_v2_1.4_224"),
    "nasnet_large": _V2_NAS,
    "nasnet_mobile": _V2_NAS,
    "pnasnet_large": _V2_NAS,
    "pnasnet_mobile": _V2_NAS,
}  # fmt: skip


def test_every_release_lists_exactly_the_files_of_the_facts():
    assert sorted(RELEASE_FILES) == sorted(FACTS)
    for name, (checkpoint_files, others) in RELEASE_FILES.items():
        release = SHIPPED.models[name].release
        assert set(release.files) == checkpoint_files, name
        assert set(release.other_files) == others, name
        assert all(f.startswith(release.checkpoint) for f in release.files), name


class _Shapes(Mapping):
    """A manifest as a shape-only checkpoint (what checkpoint_num_classes reads)."""

    def __init__(self, arch: str) -> None:
        self._shapes = {e["name"]: tuple(e["shape"]) for e in manifest(arch)}

    def __getitem__(self, name):
        raise AssertionError("no tensor data here")

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def __contains__(self, name: object) -> bool:
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]


@pytest.mark.parametrize("name", NAMES)
def test_entry_agrees_with_the_reference_manifest_and_the_network(name):
    info = SHIPPED.models[name]
    arch = info.architecture
    # every slim network of the first twenty has reference data; the catalogue's width
    # variants (mobilenet_v1_050, mobilenet_v3_large_075, ...) need only be ported
    if arch in reference_archs():
        assert meta(arch)["num_classes"] == info.num_classes
        assert expected(arch)["logits"].shape[1] == info.num_classes
    else:
        assert name not in FACTS and arch in architectures.list_architectures()
    if arch in architectures.list_architectures():  # networks are ported in parallel
        model = build_skeleton(arch, info.num_classes)
        assert model.num_classes == info.num_classes
        if arch in reference_archs():
            assert checkpoint_num_classes(model, _Shapes(arch)) == info.num_classes


def test_model_info_has_what_a_trainer_needs():
    vgg = zoo.model_info("vgg_16")
    cfg = vgg.pretrained_cfg()
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875
    assert cfg["mean"] == pytest.approx((123.68 / 255, 116.78 / 255, 103.94 / 255))
    assert cfg["std"] == pytest.approx((1 / 255,) * 3)
    assert cfg["num_classes"] == 1000 and cfg["label_offset"] == 0
    assert cfg["url"] == vgg.release.url and cfg["license"] == "Apache-2.0"
    assert vgg.preprocessing.resize_size == 256
    assert vgg.preprocessing.crop_mode == "resize_then_crop"
    resnet = zoo.model_info("resnet_v2_50")
    assert resnet.input_size == (3, 299, 299) and resnet.label_offset == 1
    assert resnet.preprocessing.unit_mean == (0.5, 0.5, 0.5)
    assert resnet.pretrained_cfg()["top1"] == 75.6
    with pytest.raises(AttributeError):
        resnet.num_classes = 3  # frozen


def test_unknown_name_suggests_close_matches():
    with pytest.raises(zoo.UnknownModelError) as info:
        zoo.model_info("resnet_v2_5")
    assert "resnet_v2_50" in str(info.value)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- validation


def _document() -> dict:
    return json.loads(shipped_registry_path().read_text())


def _vgg(doc):
    return doc["models"]["vgg_16"]


MUTATIONS = {
    "bad sha256": (lambda d: _vgg(d)["release"].update(sha256="XYZ"), "sha256"),
    "upper-case sha256": (
        lambda d: _vgg(d)["release"].update(sha256=_vgg(d)["release"]["sha256"].upper()),
        "sha256",
    ),
    "ftp url": (lambda d: _vgg(d)["release"].update(url="ftp://x/vgg.tar.gz"), "url"),
    "unknown preprocessing": (lambda d: _vgg(d)["preprocessing"].update(kind="caffe"), "kind"),
    "vgg mean changed": (lambda d: _vgg(d)["preprocessing"].update(mean=[1, 2, 3]), "mean"),
    "1001 classes for vgg": (lambda d: _vgg(d).update(num_classes=1001), "num_classes"),
    "no background offset": (
        lambda d: d["models"]["resnet_v2_50"].update(label_offset=0),
        "label_offset",
    ),
    "v1 with two files": (
        lambda d: _vgg(d)["release"].update(files=["vgg_16.ckpt", "x"]),
        "files",
    ),
    "v2 without index": (
        lambda d: d["models"]["nasnet_large"]["release"].update(
            files=["model.ckpt.data-00000-of-00001"]
        ),
        "files",
    ),
    "traversal member": (
        lambda d: _vgg(d)["release"].update(checkpoint="../vgg_16.ckpt"),
        "checkpoint",
    ),
    "typo field": (lambda d: _vgg(d).update(num_clases=1000), "num_clases"),
    "missing field": (lambda d: _vgg(d).pop("notes"), "notes"),
    "string input size": (
        lambda d: _vgg(d)["preprocessing"].update(input_size="224"),
        "input_size",
    ),
    "top5 below top1": (lambda d: _vgg(d)["accuracy"].update(top5=10.0), "top5"),
    "released without licence": (lambda d: _vgg(d).update(license=None), "license"),
    "negative size": (lambda d: _vgg(d)["release"].update(size=-5), "size"),
    "bool as size": (lambda d: _vgg(d)["release"].update(size=True), "size"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_invalid_entries_name_the_entry_and_field(case, tmp_path):
    mutate, field = MUTATIONS[case]
    doc = copy.deepcopy(_document())
    mutate(doc)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(zoo.RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert str(path) in message and repr(field) in message
    entry = "resnet_v2_50" if "offset" in case else "nasnet_large" if "v2 " in case else "vgg_16"
    assert repr(entry) in message


def test_document_level_problems(tmp_path):
    path = tmp_path / "registry.json"
    doc = _document()
    path.write_text(json.dumps({**doc, "schema_version": 2}))
    with pytest.raises(zoo.RegistryError, match="schema_version"):
        load_registry(path)
    text = json.dumps(doc)
    first = text.index('"vgg_16": {')
    path.write_text(text[:first] + '"vgg_16": {}, ' + text[first:])  # the name twice
    with pytest.raises(zoo.RegistryError, match="'vgg_16' appears twice"):
        load_registry(path)
    path.write_text("{oops")
    with pytest.raises(zoo.RegistryError, match="not valid JSON"):
        load_registry(path)


def test_zoo_registry_replaces_the_shipped_one(tmp_path, monkeypatch):
    doc = _document()
    doc["models"] = {"vgg_16": _vgg(doc)}
    doc["models"]["vgg_16"]["release"]["url"] = "https://models.corp.example/vgg_16.tar.gz"
    path = tmp_path / "company.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert zoo.model_info("vgg_16").release.url == "https://models.corp.example/vgg_16.tar.gz"
    assert zoo.list_pretrained() == ["vgg_16"]
    doc["models"]["vgg_16"]["release"]["sha256"] = "nope"
    path.write_text(json.dumps(doc, indent=1))  # edited: re-read (size and mtime changed)
    with pytest.raises(zoo.RegistryError, match="sha256"):
        zoo.model_info("vgg_16")
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "missing.json"))
    with pytest.raises(zoo.RegistryError, match="ZOO_REGISTRY"):
        zoo.model_info("vgg_16")
    monkeypatch.delenv("ZOO_REGISTRY")
    assert len(zoo.list_pretrained()) == len(FACTS) + len(CATALOGUE)

"""The catalogue releases beyond the first twenty (issue 23): MobileNet v1 2018_02_22, MobileNet
v2, MobileNet v3 float and the adversarially trained Inceptions, as catalogue_facts.md states them.

The table below is catalogue_facts.md transcribed independently of weights_registry.json; an
unknown value is None in both (no hash, size or accuracy is invented).
"""
# ruff: noqa: E501  (one row per release, as in the facts table)

from __future__ import annotations

import re

import pytest

import architectures
import zoo
from zoo.registry import load_registry, shipped_registry_path

SHIPPED = load_registry(shipped_registry_path())

# release (tarball stem): (url, sha256, bytes, top-1, top-5, eval size | v3: ema step)
CATALOGUE = {
    "mobilenet_v1_1.0_192": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_1.0_192.tgz", "ad683fb270cd1b0f49c820c4acf5fcbbfa546ae354b1345a4fff5f19f99d7c44", None, 70.0, 89.2, 192),
    "mobilenet_v1_1.0_160": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_1.0_160.tgz", "1f612ebeda0e7e149897273c445b790ca8924a8a1488e6a61d36166a562fd89c", None, 68.0, 87.7, 160),
    "mobilenet_v1_1.0_128": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_1.0_128.tgz", "d16f3102c1cb087eacf94c6a5abf0477767158fb891b2710409472bca4d988a8", None, 65.2, 85.8, 128),
    "mobilenet_v1_0.75_224": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.75_224.tgz", "bf61b3ce7ca2d045bb35fa6ab9a68732e3531291266db4a8c7715227d7425657", None, 68.4, 88.2, 224),
    "mobilenet_v1_0.75_192": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.75_192.tgz", "3d91d279cd06c055500aabdff8dfbd51a63797c7bb6b3f9a39e243f7c13997e9", None, 67.2, 87.3, 192),
    "mobilenet_v1_0.75_160": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.75_160.tgz", "90b3f26406a89df489373358aa89d9db7bcb66d2400160f16f3687f79e4f66b2", None, 65.3, 86.0, 160),
    "mobilenet_v1_0.75_128": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.75_128.tgz", "54a28065f6f230d0b71cf8fbbc50bbb89b4fdfada8e7e2a622da68b971d5ab97", None, 62.1, 83.9, 128),
    "mobilenet_v1_0.5_224": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.5_224.tgz", "0eb9be8d18dcf9466a2a2d2157e71c83cd70dc168255d76d72bfe965318db725", None, 63.3, 84.9, 224),
    "mobilenet_v1_0.5_192": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.5_192.tgz", "57c81cc48349d1079377f8cdeed3f017500aeb98a12f16c6ed2086a50848ecb6", None, 61.7, 83.6, 192),
    "mobilenet_v1_0.5_160": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.5_160.tgz", "fb01b76ca1fb053e5f98d297e21c6c53d0d9f6a8b02ad2e88ac22b33b2adf729", None, 59.1, 81.9, 160),
    "mobilenet_v1_0.5_128": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.5_128.tgz", "5a0def0d844327526385b110cdcaa6428d0828ff6d07515ef25bf3976e049d88", None, 56.3, 79.4, 128),
    "mobilenet_v1_0.25_224": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.25_224.tgz", "eee166d4d1de004e2ee5de19a4f5045574d764ef59569dc284545f805a295074", None, 49.8, 74.2, 224),
    "mobilenet_v1_0.25_192": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.25_192.tgz", "4889d7afabc31011f5218f6111532947ff7d5b6b9368afe1f152c67c6f30ea73", None, 47.7, 72.3, 192),
    "mobilenet_v1_0.25_160": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.25_160.tgz", "8eb4540af0227e5e59849c41ca6da6f07e257cca887ec0f8cd33aeb46f1405cf", None, 45.5, 70.3, 160),
    "mobilenet_v1_0.25_128": ("http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.25_128.tgz", "34c52de7562259f66399993ef5ea222cc625d2e6f6f886a01fdc6cc99a0c7ee6", None, 41.5, 66.3, 128),
    "mobilenet_v2_1.3_224": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.3_224.tgz", "b04129d44a46e0eb409c1a2bc255472ebdd57f9c091812e7866d79d0cc7fecaa", None, 74.4, 92.1, 224),
    "mobilenet_v2_1.0_192": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_192.tgz", "e8d9cd7c571f375c80945b5f889705ae412db32d3419d747e796429e39132f48", None, 70.7, 90.1, 192),
    "mobilenet_v2_1.0_160": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_160.tgz", "e374bc70066dde0c3af6cb4c98ecd8707800d71d11353c4cc359b3069415f23e", None, 68.8, 89.0, 160),
    "mobilenet_v2_1.0_128": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_128.tgz", "f692e341cf1529df4f7e68ed13d0284ad8796ade1108f802eec135abc1fc1b83", None, 65.3, 86.9, 128),
    "mobilenet_v2_1.0_96": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_96.tgz", "8f0377b71d79f5626c5198f248b476d2604b3e4e596ca4076e1b1f8fcd3f3844", None, 60.3, 83.2, 96),
    "mobilenet_v2_0.75_224": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.75_224.tgz", "335cd22c7e1c5e80205dedd6e2ff5d1d8af5c29074496eb047fd621349e10cc5", None, 69.8, 89.6, 224),
    "mobilenet_v2_0.75_192": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.75_192.tgz", "40efef9324376d47b872d1cd6e4de8ba7c9323b6203252aa66dc2b2413e0dc8d", None, 68.7, 88.9, 192),
    "mobilenet_v2_0.75_160": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.75_160.tgz", "904d1a1f84c329ad766464d132f697e96814685853c45c6ee4dd21877ada36bc", None, 66.4, 87.3, 160),
    "mobilenet_v2_0.75_128": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.75_128.tgz", "9ac932679a9fb1304bc1435bb7fa30e1b2fcaa7f49e0902da24d154ec83f9302", None, 63.2, 85.3, 128),
    "mobilenet_v2_0.75_96": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.75_96.tgz", "bdf06eec5478dbb1bb9e01648637d8acd4cc500f72e1a3dad01ba45642e31e6f", None, 58.8, 81.6, 96),
    "mobilenet_v2_0.5_224": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.5_224.tgz", "813febbdbe2a7a50055ee2f6b374938aed03e2f607f63f3479622aefc4e12b00", None, 65.4, 86.4, 224),
    "mobilenet_v2_0.5_192": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.5_192.tgz", "5a344ed91cded5d420b6c65d47343ee60b43b570953b0feed4ee95451a679dd5", None, 63.9, 85.4, 192),
    "mobilenet_v2_0.5_160": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.5_160.tgz", "f89c879b1a45c5d677ad7fe499f08a7854ef1772f0f5ae5d606afaaa87218e45", None, 61.0, 83.2, 160),
    "mobilenet_v2_0.5_128": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.5_128.tgz", "ba078efd101c2308fb978467084f0ec12485ed8bfbb7695e477587b3272a1d66", None, 57.7, 80.8, 128),
    "mobilenet_v2_0.5_96": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.5_96.tgz", "71a814047d7729bad711ae3e7db30e6c32999a1189f88d328b73939f7aa80d62", None, 51.2, 75.8, 96),
    "mobilenet_v2_0.35_224": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.35_224.tgz", "efcc34277c52f7dd4b0b26c2f52686793f4ea5fdddc899ac5aac9eb8d5861550", None, 60.3, 82.9, 224),
    "mobilenet_v2_0.35_192": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.35_192.tgz", "5dec603e2714a780c3cfc0656dac51bf2f4b354c4f7acda879ad5b6017f3f55b", None, 58.2, 81.2, 192),
    "mobilenet_v2_0.35_160": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.35_160.tgz", "e579b5b50f47e88dc0c4390d20a396658b97457182f83905154a8a687ba15fa7", None, 55.7, 79.1, 160),
    "mobilenet_v2_0.35_128": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.35_128.tgz", "c21a8f89e2e1a49e9002b1e1b871f3c92695ccb0cd64e7e7a21b71f2820beddb", None, 50.8, 75.0, 128),
    "mobilenet_v2_0.35_96": ("https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.35_96.tgz", "282996bca7d799d0172ce5d34ac59dea497c4c75f069a8b466bb944c6f843353", None, 45.5, 70.4, 96),
    "v3-large_224_1.0_float": ("https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-large_224_1.0_float.tgz", "9be8563f92022f412c82f2811d670888d6db998e2da9af3e71415fdde2f4f504", 184251120, 75.2, None, 540000),
    "v3-large_224_0.75_float": ("https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-large_224_0.75_float.tgz", "4346e7893769d3f8ac79e28e7924b351bf8348a8a4d5e7a606260003e706aea5", None, 73.3, None, 220000),
    "v3-small_224_1.0_float": ("https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-small_224_1.0_float.tgz", "e60ad9f450f892ae56f8b9122ffc750d88940d9e6b63f6dc70649179fb3a9065", 113230261, 67.5, None, 388500),
    "v3-small_224_0.75_float": ("https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-small_224_0.75_float.tgz", "fffd2e437434f319623ecf26cdbebdb933dcd753afa38e7c2f78cb59c6fc470f", None, 65.4, None, 497500),
    "v3-large-minimalistic_224_1.0_float": ("https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-large-minimalistic_224_1.0_float.tgz", None, None, 72.3, None, 342500),
    "v3-small-minimalistic_224_1.0_float": ("https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-small-minimalistic_224_1.0_float.tgz", None, None, 61.9, None, 498000),
    "adv_inception_v3_2017_08_18": ("http://download.tensorflow.org/models/adv_inception_v3_2017_08_18.tar.gz", None, None, None, None, 299),
    "ens3_adv_inception_v3_2017_08_18": ("http://download.tensorflow.org/models/ens3_adv_inception_v3_2017_08_18.tar.gz", None, None, None, None, 299),
    "ens4_adv_inception_v3_2017_08_18": ("http://download.tensorflow.org/models/ens4_adv_inception_v3_2017_08_18.tar.gz", None, None, None, None, 299),
    "ens_adv_inception_resnet_v2_2017_08_18": ("http://download.tensorflow.org/models/ens_adv_inception_resnet_v2_2017_08_18.tar.gz", None, None, None, None, 299),
    "adv_inception_resnet_v2_2017_12_18": ("http://download.tensorflow.org/models/adv_inception_resnet_v2_2017_12_18.tar.gz", None, None, None, None, 299),

}  # fmt: skip

V1_NETWORKS = {"1.0": "mobilenet_v1", "0.75": "mobilenet_v1_075", "0.5": "mobilenet_v1_050",
               "0.25": "mobilenet_v1_025"}  # fmt: skip
V2_NETWORKS = {"1.4": "mobilenet_v2_140", "1.3": "mobilenet_v2_130", "1.0": "mobilenet_v2",
               "0.75": "mobilenet_v2_075", "0.5": "mobilenet_v2_050", "0.35": "mobilenet_v2_035"}  # fmt: skip
# v3 and adversarial releases: (registry name, network)
NAMED = {
    "v3-large_224_1.0_float": ("mobilenet_v3_large", "mobilenet_v3_large"),
    "v3-large_224_0.75_float": ("mobilenet_v3_large_0.75", "mobilenet_v3_large_075"),
    "v3-small_224_1.0_float": ("mobilenet_v3_small", "mobilenet_v3_small"),
    "v3-small_224_0.75_float": ("mobilenet_v3_small_0.75", "mobilenet_v3_small_075"),
    "v3-large-minimalistic_224_1.0_float": (
        "mobilenet_v3_large_minimalistic", "mobilenet_v3_large_minimalistic"),
    "v3-small-minimalistic_224_1.0_float": (
        "mobilenet_v3_small_minimalistic", "mobilenet_v3_small_minimalistic"),
    "adv_inception_v3_2017_08_18": ("adv_inception_v3", "inception_v3"),
    "ens3_adv_inception_v3_2017_08_18": ("ens3_adv_inception_v3", "inception_v3"),
    "ens4_adv_inception_v3_2017_08_18": ("ens4_adv_inception_v3", "inception_v3"),
    "ens_adv_inception_resnet_v2_2017_08_18": (
        "ens_adv_inception_resnet_v2", "inception_resnet_v2"),
    "adv_inception_resnet_v2_2017_12_18": ("adv_inception_resnet_v2", "inception_resnet_v2"),
}  # fmt: skip


def expected_entry(release: str) -> tuple[str, str, str, set[str], set[str]]:
    """(registry name, network, checkpoint, its files, the other files) by the facts' layouts."""
    mobilenet = re.fullmatch(r"mobilenet_v([12])_([\d.]+)_\d+", release)
    if mobilenet:  # the seven files at the archive root
        networks = V1_NETWORKS if mobilenet[1] == "1" else V2_NETWORKS
        others = {f"{release}.ckpt.meta", f"{release}.tflite", f"{release}_frozen.pb",
                  f"{release}_eval.pbtxt", f"{release}_info.txt"}  # fmt: skip
        checkpoint = f"{release}.ckpt"
        files = {f"{checkpoint}.index", f"{checkpoint}.data-00000-of-00001"}
        return release, networks[mobilenet[2]], checkpoint, files, others
    name, network = NAMED[release]
    if release.startswith("v3-"):  # everything under <n>/: ema/ (loaded) and pristine/
        step = CATALOGUE[release][5]
        checkpoint = f"{release}/ema/model-{step}"
        pristine = f"{release}/pristine/model.ckpt-{step}"
        others = {f"{checkpoint}.meta", f"{release}/{release}.pb",
                  *(pristine + s for s in (".index", ".data-00000-of-00001", ".meta"))}  # fmt: skip
        if "minimalistic" not in release:
            others.add(f"{release}/{release}.tflite")
    else:  # <name>.ckpt.* (V2) at the root
        checkpoint = f"{name}.ckpt"
        others = {f"{checkpoint}.meta"}
    files = {f"{checkpoint}.index", f"{checkpoint}.data-00000-of-00001"}
    return name, network, checkpoint, files, others


def test_the_catalogue_counts():
    families = [r.split("_")[0] if r.startswith("mobilenet") else r[:2] for r in CATALOGUE]
    assert len(CATALOGUE) == 46
    assert sum(r.startswith("mobilenet_v1") for r in CATALOGUE) == 15  # + mobilenet_v1 = 16
    assert sum(r.startswith("mobilenet_v2") for r in CATALOGUE) == 20  # + the two covered
    assert sum(r.startswith("v3-") for r in CATALOGUE) == 6 and len(families) == 46
    assert len(zoo.list_pretrained()) == 66


@pytest.mark.parametrize("release", sorted(CATALOGUE))
def test_entry_states_the_catalogue_facts(release):
    url, sha256, size, top1, top5, last = CATALOGUE[release]
    name, network, checkpoint, files, others = expected_entry(release)
    [info] = SHIPPED.by_tarball(url.rsplit("/", 1)[1])
    assert info.name == name and info.architecture == network
    assert network in architectures.list_architectures()
    r = info.release
    assert (r.url, r.sha256, r.size, r.format) == (url, sha256, size, "v2")
    assert (r.checkpoint, set(r.files), set(r.other_files)) == (checkpoint, files, others)
    acc = info.accuracy
    assert ((acc.top1, acc.top5) if acc else (None, None)) == (top1, top5)
    size = 224 if release.startswith("v3-") else last
    assert (info.preprocessing.kind, info.preprocessing.input_size) == ("inception", size)
    assert (info.num_classes, info.label_offset, info.license) == (1001, 1, "Apache-2.0")
    assert info.release.ema is (True if release.startswith("mobilenet_v2") else None)

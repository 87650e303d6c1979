"""Pretrained weights: release tarball → cached safetensors, and the warm ``zoo.load``.

(a) Conversion of a resnet_v2_152-sized release (the reference weights in the published layout:
a gzipped tar with ``eval.graph``, ``train.graph`` and a V1 ``resnet_v2_152.ckpt``), each approach
in a fresh process (for its own peak RSS):

* ``zoo.import_tarball``: sha256 of the tarball, streaming extraction of the checkpoint only,
  tensor-by-tensor conversion into ``safetensors`` and the sidecar (what ``pretrained=True`` does
  after the download);
* the common hand-written recipe: ``tarfile.extractall``, ``tf.train.load_checkpoint``, a loop of
  ``get_tensor`` + layout change into a state dict of the built model, ``torch.save``;
* the floor: ``gzip -dc`` of the tarball to ``/dev/null``.

Peak RSS is reported whole and as the increase over the process after its imports (what the
conversion itself costs), relative to the larger of the checkpoint and the model.

(b) Warm load: ``zoo.load(name, pretrained=True)`` from the cache vs building the model +
``safetensors.torch.load_file`` + ``load_state_dict`` by hand, timed alternately in one process.

If resnet_v2_152 is not registered yet, the first registered of ``PREFERRED`` is used instead
(and named in the output); ``--quick`` uses a smaller network (``QUICK``) and one run each.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

from benchmarks._util import machine_info, markdown_table, measure, reference, run_isolated

REPO = Path(__file__).resolve().parents[1]
PREFERRED = ("resnet_v2_152", "resnet_v1_152", "inception_v4", "vgg_16")
QUICK = ("resnet_v2_50", "resnet_v1_50", "inception_v3", "vgg_16")  # --quick: smaller first


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _pick_model(quick: bool) -> str:
    import architectures

    registered = set(architectures.list_architectures())
    for name in QUICK if quick else PREFERRED:
        if name in registered:
            return name
    raise RuntimeError(f"none of {QUICK if quick else PREFERRED} is registered")


def _reference_tensors(arch: str) -> dict:
    import numpy as np

    ref = reference()
    tensors = ref.recipe.reference_weights(ref.manifest(arch), ref.meta(arch)["seed"])
    if arch.startswith(("vgg_", "resnet_v1_")):
        tensors[f"{arch}/mean_rgb"] = np.array([123.68, 116.78, 103.94], np.float32)
    tensors["global_step"] = np.array(1, np.int64)
    return tensors


def _build_release(name: str, work: Path, level: int) -> tuple[Path, int]:
    """The release tarball of ``name`` with the reference weights (gzip ``level``); returns it
    and the checkpoint size in bytes."""
    import zoo
    from zoo.checkpoint import write_v1, write_v2

    release = zoo.model_info(name).release
    contents = work / "contents"
    contents.mkdir()
    ckpt = contents / release.checkpoint
    (write_v1 if release.format == "v1" else write_v2)(ckpt, _reference_tensors(name))
    tarball = work / release.tarball
    with tarfile.open(tarball, "w:gz", compresslevel=level) as tar:
        for other in release.other_files or ():
            data = contents / other
            data.write_bytes(b"graph " * 100_000)  # stand-ins for eval.graph / train.graph
            tar.add(data, arcname=other)
        for member in release.files:
            tar.add(contents / member, arcname=member)
    size = sum((contents / m).stat().st_size for m in release.files)
    for path in contents.iterdir():
        path.unlink()
    contents.rmdir()
    return tarball, size


def _registry_for(name: str, tarball: Path, path: Path) -> Path:
    """A ZOO_REGISTRY with the shipped entry of ``name`` pinned to the benchmark's tarball."""
    from zoo.hub import sha256_of_file
    from zoo.registry import shipped_registry_path

    document = json.loads(shipped_registry_path().read_text())
    entry = copy.deepcopy(document["models"][name])
    entry["release"].update(size=tarball.stat().st_size, sha256=sha256_of_file(tarball))
    document["models"] = {name: entry}
    path.write_text(json.dumps(document))
    return path


_PRELUDE = """
import sys, torch
sys.path.insert(0, {repo!r})
from benchmarks._util import measure
torch.set_num_threads({threads})

def peak_rss_mb():  # this process's own peak (as run_isolated reports it)
    line = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    return int(line.split()[1]) / 1024
"""

_ZOO = """
import zoo
before = peak_rss_mb()
seconds = measure(lambda: zoo.import_tarball({tarball!r}, {name!r}, cache_dir={cache!r}),
                  repeat=1, warmup=0)
result = {{"seconds": seconds, "rss_before_mb": before}}
"""

_TF_RECIPE = """
import tarfile, numpy as np
from zoo._tensorflow import import_tensorflow
tf, _ = import_tensorflow()
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads({threads})
import architectures
from architectures._tf import tf_mapping

def recipe():
    with tarfile.open({tarball!r}) as tar:
        tar.extractall({out!r}, filter="data")
    reader = tf.train.load_checkpoint({out!r} + "/" + {checkpoint!r})
    model = architectures.create_model({arch!r})
    state = model.state_dict()
    for torch_name, target in tf_mapping(model).items():
        value = target.layout.to_torch(reader.get_tensor(target.name))
        state[torch_name] = torch.from_numpy(np.ascontiguousarray(value))
    torch.save(state, {out!r} + "/model.pt")

before = peak_rss_mb()
seconds = measure(recipe, repeat=1, warmup=0)
result = {{"seconds": seconds, "rss_before_mb": before}}
"""


def _isolated(template: str, i: int, env: dict[str, str], **fields: str) -> dict:
    """Run ``template`` in a fresh process (``{i}`` in a field: the round number)."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    values = {k: v.replace("{i}", str(i)) for k, v in fields.items()}
    code = _PRELUDE.format(repo=str(REPO), threads=_threads())
    code += template.format(threads=_threads(), **values)
    return run_isolated(code, env={"PYTHONPATH": path, **env})


def _summary(runs: list[dict]) -> dict:
    """Median seconds and the largest RSS figures over the runs of one approach."""
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": max(r["peak_rss_mb"] for r in runs),
        "increase_mb": max(r["peak_rss_mb"] - r["rss_before_mb"] for r in runs),
    }


def run(quick: bool = False) -> str:
    """Measure (a) and (b); return a Markdown section."""
    import torch
    from safetensors.torch import load_file

    import architectures
    import zoo

    threads = _threads()
    torch.set_num_threads(threads)
    name = _pick_model(quick)
    rounds = 1 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="bench_pretrained_"))
    level = 0 if quick else 1  # --quick: stored gzip blocks, fast to build (a smoke test)
    tarball, ckpt_bytes = _build_release(name, work, level)
    registry = _registry_for(name, tarball, work / "registry.json")
    os.environ["ZOO_REGISTRY"] = str(registry)
    model_bytes = sum(
        t.numel() * t.element_size() for t in architectures.create_model(name).state_dict().values()
    )
    largest_mb = max(ckpt_bytes, model_bytes) / 2**20
    tarball_mb = tarball.stat().st_size / 2**20

    gunzip = ["gzip", "-dc", str(tarball)]
    floor_s = measure(
        lambda: subprocess.run(gunzip, stdout=subprocess.DEVNULL, check=True),
        repeat=rounds,
        warmup=1,
    )
    release = zoo.model_info(name).release
    env = {"ZOO_REGISTRY": str(registry)}
    arch = zoo.model_info(name).architecture
    ours_runs, tf_runs = [], []
    for i in range(rounds):  # alternating, so that a change in machine load hits both alike
        ours_runs.append(
            _isolated(_ZOO, i, env, tarball=str(tarball), name=name, cache=str(work / "cache{i}"))
        )
        tf_runs.append(
            _isolated(
                _TF_RECIPE,
                i,
                env,
                tarball=str(tarball),
                out=str(work / "tf{i}"),
                checkpoint=release.checkpoint,
                arch=arch,
            )
        )
    ours, tf_recipe = _summary(ours_runs), _summary(tf_runs)

    def row(label, r):
        return [
            label,
            r["seconds"],
            r["seconds"] / tf_recipe["seconds"],
            r.get("peak_mb", "-"),
            r.get("increase_mb", "-"),
            r["increase_mb"] / largest_mb if "increase_mb" in r else "-",
        ]

    conversion = markdown_table(
        [
            "tarball → weights file",
            "seconds",
            "time / TF recipe",
            "peak RSS MB",
            "RSS increase MB",
            "increase / max(ckpt, model)",
        ],
        [
            row("zoo.import_tarball (verify + extract + convert)", ours),
            row("TF recipe (extractall + load_checkpoint + torch.save)", tf_recipe),
            row("floor: gzip -dc > /dev/null", {"seconds": floor_s}),
        ],
    )

    # (b) warm load, from the cache the first conversion filled
    cache = work / "cache0"
    path = zoo.download_weights(name, cache_dir=cache, offline=True)

    def by_hand():
        model = architectures.create_model(name)
        model.load_state_dict(load_file(path))
        return model.eval()

    def ours_warm():
        return zoo.load(name, pretrained=True, cache_dir=cache, offline=True).eval()

    def floor():  # the least any loader must do: a network without storage, the bytes read
        with torch.device("meta"):
            architectures.create_model(name)
        # read into memory of the process's own (a memory-mapped load_file reads no byte until
        # a tensor is used, so it would leave the reading out)
        return load_file(path, backend="pread")

    def mapped():  # for reference: memory-mapped, nothing read yet
        return load_file(path)

    ours_warm(), by_hand(), floor(), mapped()
    warm_rounds = 3 if quick else 7
    ours_t, hand_t, floor_t, mapped_t = [], [], [], []
    for _ in range(warm_rounds):
        ours_t.append(measure(ours_warm, repeat=1, warmup=0))
        hand_t.append(measure(by_hand, repeat=1, warmup=0))
        floor_t.append(measure(floor, repeat=1, warmup=0))
        mapped_t.append(measure(mapped, repeat=1, warmup=0))
    ours_s, hand_s = statistics.median(ours_t), statistics.median(hand_t)
    floor_s, mapped_s = statistics.median(floor_t), statistics.median(mapped_t)
    # what zoo adds before the load itself: registry lookup, settings, sidecar + header check
    check_s = measure(lambda: zoo.download_weights(name, cache_dir=cache, offline=True), repeat=20)
    warm = markdown_table(
        ["warm load", "seconds", "time / by hand", "time / floor"],
        [
            ["zoo.load(pretrained=True)", ours_s, ours_s / hand_s, ours_s / floor_s],
            ["create_model + load_file + load_state_dict", hand_s, 1.0, hand_s / floor_s],
            ["floor: build on the meta device + read the file", floor_s, floor_s / hand_s, 1.0],
            [
                "(load_file memory-mapped, no byte read)",
                mapped_s,
                mapped_s / hand_s,
                mapped_s / floor_s,
            ],
            [
                "(of which zoo's cache check: registry, sidecar, header)",
                check_s,
                check_s / hand_s,
                check_s / floor_s,
            ],
        ],
    )
    os.environ.pop("ZOO_REGISTRY", None)
    shutil.rmtree(work, ignore_errors=True)

    info = machine_info()
    note = "" if name == "resnet_v2_152" or quick else (
        f" resnet_v2_152 is not registered in this checkout: measured with {name} instead."
    )  # fmt: skip
    return "\n".join(
        [
            "### Pretrained weights: tarball → cached safetensors, and the warm load",
            "",
            f"Model: {name} ({ckpt_bytes / 2**20:.0f} MB checkpoint, {model_bytes / 2**20:.0f} MB "
            f"torch state, tarball {tarball_mb:.0f} MB, gzip level {level}), "
            f"reference weights in the release layout.{note} Each conversion runs in a fresh "
            f"process, the approaches alternating ({rounds} run(s) each, median time, maximum "
            f"RSS); {threads} torch threads and "
            f"{threads} TF intra/inter-op threads. RSS increase = peak minus the process after "
            "its imports (torch, or torch + TensorFlow). Goals: faster than the TF recipe, "
            "increase < 1.5x the larger of checkpoint and model.",
            "",
            conversion,
            "",
            f"Warm load from the cache: median of {warm_rounds} alternating rounds in one "
            "process; goals: within 1.2x of building on the meta device plus reading the "
            'safetensors file (the floor: `load_file(path, backend="pread")`, the bytes read '
            "into memory the process owns, as zoo.load reads them; a memory-mapped `load_file` "
            "reads nothing until a tensor is used, so alone it is no floor), and faster than by "
            "hand. zoo.load builds the network without random initialisation (every tensor is "
            "loaded right after), which the hand-written way does not; its meta build also "
            "skips `torch.nn.init` on meta tensors (the floor's build, `create_model` under "
            "`torch.device('meta')`, runs it), and it assigns the tensors read in one pass "
            "instead of `load_state_dict` (`zoo/skeleton.py`).",
            "",
            warm,
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
            f"python {info['python']}.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per approach")
    print(run(quick=parser.parse_args().quick))

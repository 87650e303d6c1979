"""Reading a whole TF checkpoint: zoo's reader vs TensorFlow's vs a plain read of the bytes.

The checkpoint has resnet_v2_152's variables (the shapes of the reference manifest, 816 float32
tensors, 230 MB; ``--quick``: resnet_v2_50's, 98 MB), written once as V2 and once as V1 by
``zoo.checkpoint`` (byte-identical to what TF's savers write). Each approach runs in a fresh
process (``run_isolated``), reads every tensor (opening the checkpoint included) and lets it go:

* zoo: ``zoo.open_checkpoint(path)[name]`` for every name (crc32c checked, as TF does);
* TF: ``tf.train.load_checkpoint(path).get_tensor(name)`` (TF 2.21, intra- and inter-op threads
  set to 1; both readers are single-threaded);
* floor (the baseline): the files read sequentially through one reused 8 MB buffer: no
  parsing, no checksum, no new memory touched; no reader can be faster;
* plain ``read()`` of each file into one ``bytes`` (for reference: it allocates fresh memory for
  the whole file, which costs more than the reading itself).

Timings are the median of warm runs (one untimed run first, so the files are in the page cache
for every approach); "CPU s/run" is the process's user + system time per run (less sensitive to
other load on the machine than the wall time). Peak RSS is the child's maximum resident set;
"over imports" subtracts what the process held before reading: Python, numpy, torch
(``import zoo`` imports the whole package; ``zoo.checkpoint`` itself needs only numpy and
google-crc32c) and for TF the TensorFlow runtime.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from benchmarks._util import machine_info, markdown_table, reference, run_isolated

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import resource, sys
sys.path.insert(0, {repo!r})
{setup}
from benchmarks._util import measure
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def read_all():
{body}

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

cpu_before = cpu()
seconds = measure(read_all, repeat={repeat}, warmup=1)
result = {{
    "seconds": seconds,
    "cpu_seconds": (cpu() - cpu_before) / ({repeat} + 1),
    "base_rss_mb": base,
}}
"""

APPROACHES = {
    "zoo.open_checkpoint": (
        "import zoo",
        """    with zoo.open_checkpoint(PATH) as reader:
        for name in reader:
            value = reader[name]
            del value""",
    ),
    "tf.train.load_checkpoint": (
        """from zoo._tensorflow import import_tensorflow
tf, _ = import_tensorflow()
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)""",
        """    reader = tf.train.load_checkpoint(PATH)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        del value""",
    ),
    "floor: 8 MB chunks into one buffer": (
        "buffer = bytearray(8 << 20)",
        """    for file in FILES:
        with open(file, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass""",
    ),
    "plain read() of each file": (
        "",
        """    for file in FILES:
        with open(file, "rb", buffering=0) as f:
            data = f.read()
        del data""",
    ),
}
BASELINE = "floor: 8 MB chunks into one buffer"


_BUILD = """
import sys
import numpy as np
sys.path.insert(0, {repo!r})
from benchmarks._util import reference
from zoo.checkpoint import write_v1, write_v2
manifest = reference().manifest({arch!r})
rng = np.random.default_rng(0)
tensors = {{v["name"]: rng.standard_normal(v["shape"], dtype=np.float32) for v in manifest}}
write_v2({v2!r}, tensors)
write_v1({v1!r}, tensors)
result = {{}}
"""


def build(directory: Path, arch: str) -> dict[str, tuple[Path, list[Path], int]]:
    """The benchmark checkpoints: ``{format: (path to open, its files, total bytes)}``.

    Written by a child process: a child's peak RSS counts its parent's at the time it starts
    (Linux keeps the high-water mark across fork and exec), so this process stays small.
    """
    v2, v1 = directory / "v2" / "model.ckpt", directory / "v1" / f"{arch}.ckpt"
    run_isolated(_BUILD.format(repo=str(REPO), arch=arch, v2=str(v2), v1=str(v1)))
    v2_files = [v2.with_name(v2.name + ".index"), v2.with_name(v2.name + ".data-00000-of-00001")]
    return {
        "V2": (v2, v2_files, sum(p.stat().st_size for p in v2_files)),
        "V1": (v1, [v1], v1.stat().st_size),
    }


def run(quick: bool = False) -> str:
    arch = "resnet_v2_50" if quick else "resnet_v2_152"
    manifest = reference().manifest(arch)
    largest = max(math.prod(v["shape"]) for v in manifest) * 4 / 2**20
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ckpt_") as tmp:
        checkpoints = build(Path(tmp), arch)
        for fmt, (path, files, size) in checkpoints.items():
            figures = {}
            for approach, (setup, body) in APPROACHES.items():
                code = _CHILD.format(
                    repo=str(REPO),
                    setup=f"PATH = {str(path)!r}\nFILES = {[str(f) for f in files]!r}\n{setup}",
                    body=body,
                    repeat=1 if quick else 3,
                )
                figures[approach] = run_isolated(code)
            floor, floor_cpu = (figures[BASELINE][k] for k in ("seconds", "cpu_seconds"))
            tf_seconds = figures["tf.train.load_checkpoint"]["seconds"]
            for approach, r in figures.items():
                rows.append(
                    [
                        fmt,
                        approach,
                        r["seconds"],
                        size / r["seconds"] / 1e9,
                        r["seconds"] / floor,
                        r["seconds"] / tf_seconds,
                        r["cpu_seconds"],
                        r["cpu_seconds"] / floor_cpu,
                        r["peak_rss_mb"],
                        r["peak_rss_mb"] - r["base_rss_mb"],
                    ]
                )
            size_mb = size / 2**20
    table = markdown_table(
        [
            "format",
            "reader",
            "read all (s)",
            "GB/s",
            "× floor",
            "× TF",
            "CPU s/run",
            "CPU × floor",
            "peak RSS (MB)",
            "RSS over imports (MB)",
        ],
        rows,
    )
    info = machine_info()
    return (
        "### Reading a TF checkpoint (every tensor)\n\n"
        f"{arch} variables: {len(manifest)} float32 tensors, {size_mb:.0f} MB per checkpoint "
        f"file set, largest tensor {largest:.1f} MB. Each reader in a fresh process, warm page "
        "cache, median of "
        f"{1 if quick else 3} run(s); TF with 1 intra-op and 1 inter-op thread (both readers are "
        "single-threaded). × floor: against reading the files through one 8 MB buffer (no "
        "parsing, no checksum, no new memory). "
        f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}.\n\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller checkpoint (smoke test)")
    print(run(quick=parser.parse_args().quick))

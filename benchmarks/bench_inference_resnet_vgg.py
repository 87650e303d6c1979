"""CPU inference of the ResNet V1/V2 and VGG ports against the same slim graphs in TensorFlow.

Both sides run the same weights (our model's seeded random initialisation, exported to the TF
names through the mapping) on the same 224x224 batch with the same thread count:
``torch.set_num_threads(n)`` and TF's ``intra_op_parallelism_threads=n,
inter_op_parallelism_threads=1`` (TF at its defaults otherwise: grappler and oneDNN on). TF runs
the pip ``tf_slim`` network in a graph-mode session; we run the eager module under
``torch.inference_mode()`` on a contiguous NCHW batch, as a user would. Each side is a worker
process of its own, set up once; the workers take turns on the machine (``paired_rounds``), and
each ratio is the median over the rounds of the two times measured in the same round, so a
drift of the machine's speed moves both sides of a ratio alike. The logits of both sides are
compared, so they provably compute the same.
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchmarks._util import Worker, machine_info, markdown_table, only_networks, paired_rounds

__all__ = ["run"]

QUICK_ARCHS = ("resnet_v1_50", "resnet_v2_50", "vgg_16")
ALL_ARCHS = (
    *(f"resnet_v1_{d}" for d in (50, 101, 152, 200)),
    *(f"resnet_v2_{d}" for d in (50, 101, 152, 200)),
    "vgg_16",
    "vgg_19",
)

# Shared by every worker: the network with seeded weights and the input batch (NHWC).
_SETUP = """
import numpy as np, torch
torch.set_num_threads({threads})
from architectures import create_model, tf_mapping
torch.manual_seed(0)
model = create_model({arch!r}).eval()

def images(batch):
    return np.random.default_rng(0).uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)

benches, result = {{}}, {{}}
"""

_TORCH = """
def timed(x):
    def one_pass():
        with torch.inference_mode():
            return model(x)
    return one_pass

for batch in {batches}:
    benches[str(batch)] = timed(torch.from_numpy(images(batch)).permute(0, 3, 1, 2).contiguous())
result["logits"] = benches[str({batches}[0])]()[0].reshape(-1).tolist()
"""

# zoo.load(name, optimize_for_inference=True): BN folded, convs on packed oneDNN weights
_OPTIMIZE = """
from architectures import optimize_for_inference
optimize_for_inference(model)
"""

# zoo.tune_cpu_allocator() first (the switch is process-wide)
_TUNED_ALLOCATOR = """
import zoo
assert zoo.tune_cpu_allocator()
"""

_TENSORFLOW = """
import importlib, os
from zoo._tensorflow import import_tensorflow
tf, slim = import_tensorflow()
state = {{**dict(model.named_parameters()), **dict(model.named_buffers())}}
weights = {{
    t.name: t.layout.to_tf(state[name].detach().numpy(), t.shape)
    for name, t in tf_mapping(model).items()
}}
module, scope = ("vgg", "vgg_arg_scope") if {arch!r}.startswith("vgg") else (
    {arch!r}[:9], "resnet_arg_scope")
nets = importlib.import_module("tf_slim.nets." + module)
graph = tf.Graph()
with graph.as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, (None, 224, 224, 3))
    with slim.arg_scope(getattr(nets, scope)()):
        logits, _ = getattr(nets, {arch!r})(
            inputs, num_classes=model.num_classes, is_training=False)
    variables = tf.compat.v1.global_variables()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads={threads}, inter_op_parallelism_threads=1)
sess = tf.compat.v1.Session(graph=graph, config=config)
sess.run([v.initializer for v in variables],
         {{v.initializer.inputs[1]: weights[v.op.name] for v in variables}})
del model, state, weights
for batch in {batches}:
    benches[str(batch)] = (lambda x: lambda: sess.run(logits, {{inputs: x}}))(images(batch))
result["logits"] = benches[str({batches}[0])]()[0].reshape(-1).tolist()
result["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
"""

# the plain model as it was before it became fast by default (zoo.set_fast_inference(False))
_FAST_OFF = """
import architectures
architectures.set_fast_inference(False)
"""

# the sides of a row, in the table's order: what each runs
SIDES = {
    "TF": _SETUP + _TENSORFLOW,
    "ours": _SETUP + _TORCH,
    "fast path off": _SETUP + _FAST_OFF + _TORCH,
    "optimized": _SETUP + _OPTIMIZE + _TORCH,
    "+ tuned allocator": _TUNED_ALLOCATOR + _SETUP + _OPTIMIZE + _TORCH,
}


def _workers(arch: str, batches: tuple[int, ...], threads: int) -> list[Worker]:
    # TF's own default is oneDNN on; zoo._tensorflow switches it off for bit-stable tests.
    env = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    return [
        Worker(side, code.format(arch=arch, batches=batches, threads=threads), env=env)
        for side, code in SIDES.items()
    ]


def _measure(
    arch: str, batches: tuple[int, ...], threads: int, rounds: int, repeat: int
) -> list[tuple]:
    """The rows of ``arch`` (one per batch), each ending in the largest |logits difference|
    between TF and any of ours."""
    workers = _workers(arch, batches, threads)
    try:
        rows = []
        for batch in batches:
            # per side, the median of each round; the first side is TF
            medians = paired_rounds(workers, str(batch), rounds=rounds, repeat=repeat, warmup=1)
            row: list = [arch, batch, 1000 * statistics.median(medians[0])]
            for mine in medians[1:]:
                ratios = [m / t for m, t in zip(mine, medians[0])]  # same round: paired
                row += [1000 * statistics.median(mine), statistics.median(ratios)]
            rows.append(row)
        results = [w.close() for w in workers]
    finally:
        for w in workers:
            w.kill()
    tf_logits, *ours = (r["logits"] for r in results)
    diff = max(abs(t - o) for logits in ours for t, o in zip(tf_logits, logits))
    return [(*row, f"{diff:.1e}") for row in rows]


def run(
    quick: bool = False,
    threads: int | None = None,
    networks: list[str] | None = None,
    rounds: int | None = None,
) -> str:
    threads = threads or os.cpu_count() or 1
    archs = QUICK_ARCHS if quick else ALL_ARCHS
    if networks:
        archs = tuple(only_networks(ALL_ARCHS, networks))
    batches = (1,) if quick else (1, 16)
    repeat = 3
    rounds = rounds or (2 if quick else 5)
    rows = []
    for arch in archs:
        rows += _measure(arch, batches, threads, rounds, repeat)
    info = machine_info()
    header = ["network", "batch", "TF ms"]
    for side in list(SIDES)[1:]:
        header += [f"{side} ms", f"{side} / TF"]
    header.append("max |Δ logits|")
    return "\n".join(
        [
            "### CPU inference: ResNet V1/V2 and VGG ports vs TF-slim",
            "",
            f"Same weights and 224x224 input; {threads} threads on both sides (torch "
            "`set_num_threads`, TF intra-op threads, 1 inter-op thread); TF 2 graph mode with "
            "oneDNN (its default), torch eager with `inference_mode`. Each side runs in a "
            "process of its own, set up once; the sides take turns on the machine, "
            f"{rounds} rounds (the order rotating), each turn a warm-up pass and the median of "
            f"{repeat} timed passes. ms: a side's median over the rounds; ratio: the median "
            "over the rounds of the side's time / TF's time in the same round (< 1: ours is "
            "faster). ours: `zoo.load(name)` as it comes, in eval mode (fast by default: batch "
            "norm folded into cached packed oneDNN weights, bias, ReLU and residual add "
            "fused). fast path off: the same with `zoo.set_fast_inference(False)`, the "
            "eager modules as they were before. optimized: "
            "`zoo.optimize_for_inference(model)`: batch norms folded as TF's grappler does, "
            "convs on oneDNN weights packed once with bias and ReLU fused, and each residual "
            "add (with V1's ReLU) done inside the unit's last conv, as TF's oneDNN kernels run. "
            "+ tuned allocator: the same in a process that called `zoo.tune_cpu_allocator()` "
            "first (freed activations reused instead of returned to the OS; TF has its own "
            "allocator). max |Δ logits|: the largest difference between TF's logits and any of "
            "ours (batch 1).",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}.",
            "",
            markdown_table(header, rows),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three networks, batch 1 only")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--networks", nargs="+", help="only these (default: all)")
    parser.add_argument("--rounds", type=int, help="rounds of turns (default 5)")
    args = parser.parse_args()
    print(run(quick=args.quick, threads=args.threads, networks=args.networks, rounds=args.rounds))

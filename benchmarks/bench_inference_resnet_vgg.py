"""CPU inference of the ResNet V1/V2 and VGG ports against the same slim graphs in TensorFlow.

Both sides run the same weights (our model's seeded random initialisation, exported to the TF
names through the mapping) on the same 224x224 batch, in fresh processes, one framework at a
time, with the same thread count: ``torch.set_num_threads(n)`` and TF's
``intra_op_parallelism_threads=n, inter_op_parallelism_threads=1`` (TF at its defaults
otherwise: grappler and oneDNN on). TF runs the pip ``tf_slim`` network in a graph-mode
session; we run the eager module under ``torch.inference_mode()`` on a contiguous NCHW batch,
as a user would. The logits of both are compared, so the two sides provably compute the same.
"""

from __future__ import annotations

import argparse
import os

from benchmarks._util import machine_info, markdown_table, only_networks, run_isolated

__all__ = ["run"]

QUICK_ARCHS = ("resnet_v1_50", "resnet_v2_50", "vgg_16")
ALL_ARCHS = (
    *(f"resnet_v1_{d}" for d in (50, 101, 152, 200)),
    *(f"resnet_v2_{d}" for d in (50, 101, 152, 200)),
    "vgg_16",
    "vgg_19",
)

# Shared by both children: the network with seeded weights and the input batch (NHWC).
_SETUP = """
import numpy as np, torch
torch.set_num_threads({threads})
from architectures import create_model, tf_mapping
from benchmarks._util import measure
torch.manual_seed(0)
model = create_model({arch!r}).eval()

def images(batch):
    return np.random.default_rng(0).uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)

result = {{"ms": {{}}, "optimized_ms": {{}}}}
"""

_TORCH = """
with torch.inference_mode():
    for batch in {batches}:
        x = torch.from_numpy(images(batch)).permute(0, 3, 1, 2).contiguous()
        result["ms"][batch] = 1000 * measure(lambda: model(x), repeat={repeat}, warmup=2)
        result["logits"] = model(x)[0].reshape(-1).tolist()
"""

# zoo.load(name, optimize_for_inference=True): BN folded, convs on packed oneDNN weights
_TORCH_OPTIMIZED = """
from architectures import optimize_for_inference
optimize_for_inference(model)
with torch.inference_mode():
    for batch in {batches}:
        x = torch.from_numpy(images(batch)).permute(0, 3, 1, 2).contiguous()
        result["optimized_ms"][batch] = 1000 * measure(lambda: model(x), repeat={repeat}, warmup=2)
        result["optimized_logits"] = model(x)[0].reshape(-1).tolist()
"""

# zoo.tune_cpu_allocator() first, in its own process (the switch is process-wide)
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
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        sess.run([v.initializer for v in variables],
                 {{v.initializer.inputs[1]: weights[v.op.name] for v in variables}})
        for batch in {batches}:
            x = images(batch)
            result["ms"][batch] = 1000 * measure(
                lambda: sess.run(logits, {{inputs: x}}), repeat={repeat}, warmup=2)
            result["logits"] = sess.run(logits, {{inputs: x}})[0].reshape(-1).tolist()
result["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
"""


_CHILDREN = {
    "torch": _SETUP + _TORCH + _TORCH_OPTIMIZED,
    "torch, tuned allocator": _TUNED_ALLOCATOR + _SETUP + _TORCH_OPTIMIZED,
    "tensorflow": _SETUP + _TENSORFLOW,
}


def _child(framework: str, arch: str, batches: tuple[int, ...], threads: int, repeat: int):
    code = _CHILDREN[framework].format(arch=arch, batches=batches, threads=threads, repeat=repeat)
    # TF's own default is oneDNN on; zoo._tensorflow switches it off for bit-stable tests.
    env = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    return run_isolated(code, env=env)


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
    # alternate the frameworks: drifting machine load hits both
    rounds = rounds or (1 if quick else 2)
    rows = []
    for arch in archs:
        ours, tuned, tf = [], [], []
        for _ in range(rounds):
            ours.append(_child("torch", arch, batches, threads, repeat))
            tuned.append(_child("torch, tuned allocator", arch, batches, threads, repeat))
            tf.append(_child("tensorflow", arch, batches, threads, repeat))
        diff = max(
            abs(t - o)
            for r in (ours[0]["logits"], ours[0]["optimized_logits"], tuned[0]["optimized_logits"])
            for t, o in zip(tf[0]["logits"], r)
        )
        for batch in batches:
            b = min(r["ms"][str(batch)] for r in tf)
            a = min(r["ms"][str(batch)] for r in ours)
            opt = min(r["optimized_ms"][str(batch)] for r in ours)
            opt_tuned = min(r["optimized_ms"][str(batch)] for r in tuned)
            rows.append(
                (arch, batch, b, a, a / b, opt, opt / b, opt_tuned, opt_tuned / b, f"{diff:.1e}")
            )
    info = machine_info()
    header = (
        "network",
        "batch",
        "TF ms",
        "ours ms",
        "ours / TF",
        "optimized ms",
        "optimized / TF",
        "+ tuned allocator ms",
        "+ tuned allocator / TF",
        "max |Δ logits|",
    )
    return "\n".join(
        [
            "### CPU inference: ResNet V1/V2 and VGG ports vs TF-slim",
            "",
            f"Same weights and 224x224 input; {threads} threads on both sides (torch "
            "`set_num_threads`, TF intra-op threads, 1 inter-op thread); TF 2 graph mode with "
            "oneDNN (its default), torch eager with `inference_mode`. Median of "
            f"{repeat} runs after 2 warm-up runs, each framework in a fresh process, the best of "
            f"{rounds} alternating round(s). Ratio < 1: ours is faster. ours: `zoo.load(name)` "
            "as it comes. optimized: `zoo.optimize_for_inference(model)` (same process, after "
            "the plain timing): batch norms folded as TF's grappler does, convs on oneDNN "
            "weights packed once with bias and ReLU fused, and each residual add (with V1's ReLU) "
            "done inside the unit's last conv, as TF's oneDNN kernels run. "
            "+ tuned allocator: the same in a process that called `zoo.tune_cpu_allocator()` "
            "first (freed activations reused instead of returned to the OS; TF has its own "
            "allocator). max |Δ logits|: the largest difference between TF's logits and any of "
            "ours.",
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
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 2)")
    args = parser.parse_args()
    print(run(quick=args.quick, threads=args.threads, networks=args.networks, rounds=args.rounds))

"""The TF-slim side of the benchmarks: a network from pip's tf_slim in a TF1 graph session, built
once per batch size, with our weights or TF's own random init."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["session", "setup_tf", "tf_net"]


def tf_net(arch: str) -> tuple[str, str, str]:
    """(tf_slim.nets module, network function, arg scope function) of ``arch``."""
    if arch.startswith("vgg"):
        return "vgg", arch, "vgg_arg_scope"
    if arch.startswith("resnet"):
        return arch[: len("resnet_vN")], arch, "resnet_arg_scope"
    return arch, arch, f"{arch}_arg_scope"


def session(
    arch: str, batch: int, size: int, threads: int, weights: dict[str, Any] | None = None
) -> tuple[Any, Any, Any]:
    """(session, input placeholder, logits) of ``arch`` in a graph of its own, inference mode,
    input shape fixed (as fixed as ours); ``weights`` by variable name, else TF's random init.
    ``threads`` intra-op threads and one inter-op thread (both sides compute one op at a time)."""
    from architectures import create_model
    from zoo._tensorflow import import_tensorflow

    tf, slim = import_tensorflow()
    module, function, scope = tf_net(arch)
    nets = importlib.import_module(f"tf_slim.nets.{module}")
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
    )
    with tf.Graph().as_default() as graph:
        images = tf.compat.v1.placeholder(tf.float32, (batch, size, size, 3))
        with slim.arg_scope(getattr(nets, scope)()):
            logits, _ = getattr(nets, function)(
                images, num_classes=create_model(arch).num_classes, is_training=False
            )
        sess = tf.compat.v1.Session(graph=graph, config=config)
        if weights is None:
            sess.run(tf.compat.v1.global_variables_initializer())
        else:
            for v in tf.compat.v1.global_variables():
                v.load(weights[v.op.name], sess)
    return sess, images, logits


def setup_tf(
    arch: str, weights: str, batches: tuple[int, ...], size: int, threads: int
) -> tuple[dict[str, Callable[[], Any]], dict]:
    """(worker process) the tf_slim network with the weights saved in ``weights`` (npz), one
    pass per batch size, and the logits of the first image (the same in every batch)."""
    import numpy as np

    from benchmarks.bench_inference_inception import _input

    values = dict(np.load(weights))
    benches, first = {}, None
    for batch in batches:
        sess, images, logits = session(arch, batch, size, threads, values)
        feed = {images: _input(batch, size)}
        benches[str(batch)] = (lambda s, t, f: lambda: s.run(t, f))(sess, logits, feed)
        out = benches[str(batch)]()
        first = out[:1] if first is None else first
    return benches, {"logits": np.asarray(first).reshape(1, -1).tolist()}

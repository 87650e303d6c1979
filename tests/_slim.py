"""Run the original slim networks from pip's ``tf_slim`` (resnet v1/v2, vgg, inception v1–v3)
in TensorFlow with given weights, for cross-checks beyond the stored reference data
(other ``output_stride``, other class counts, checkpoints written by TensorFlow itself)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# slim network name -> (tf_slim.nets module, net function, arg scope function)
SLIM_NETS = {
    **{
        f"resnet_v1_{d}": ("resnet_v1", f"resnet_v1_{d}", "resnet_arg_scope")
        for d in (50, 101, 152, 200)
    },
    **{
        f"resnet_v2_{d}": ("resnet_v2", f"resnet_v2_{d}", "resnet_arg_scope")
        for d in (50, 101, 152, 200)
    },
    "vgg_16": ("vgg", "vgg_16", "vgg_arg_scope"),
    "vgg_19": ("vgg", "vgg_19", "vgg_arg_scope"),
    "inception_v1": ("inception_v1", "inception_v1", "inception_v1_arg_scope"),
    "inception_v2": ("inception_v2", "inception_v2", "inception_v2_arg_scope"),
    "inception_v3": ("inception_v3", "inception_v3", "inception_v3_arg_scope"),
}


def slim_logits(
    tensorflow: tuple[Any, Any],
    arch: str,
    weights: Mapping[str, np.ndarray],
    images_nhwc: np.ndarray,
    **net_kwargs: Any,
) -> np.ndarray:
    """Logits of the tf_slim network ``arch`` with ``weights`` (TF names) on an NHWC batch.

    ``net_kwargs`` go to the slim function (``num_classes``, ``output_stride``, ``global_pool``,
    ...); ``is_training`` is False. Every variable the graph creates must be in ``weights``.
    """
    tf, _ = tensorflow
    graph, images, logits = _slim_graph(tensorflow, arch, images_nhwc.shape, net_kwargs)
    with graph.as_default():
        variables = tf.compat.v1.global_variables()
        missing = [v.op.name for v in variables if v.op.name not in weights]
        if missing:
            raise KeyError(f"weights lack {len(missing)} slim variables, e.g. {missing[:3]}")
        with tf.compat.v1.Session(graph=graph) as sess:
            # one run feeding every initial value: ~15x faster than a Variable.load per variable
            initial_values = {v.initializer.inputs[1]: weights[v.op.name] for v in variables}
            sess.run([v.initializer for v in variables], initial_values)
            return sess.run(logits, {images: images_nhwc})


def slim_input_gradient(
    tensorflow: tuple[Any, Any],
    arch: str,
    weights: Mapping[str, np.ndarray],
    images_nhwc: np.ndarray,
    labels: np.ndarray,
    **net_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, d loss / d images)`` of the tf_slim network ``arch`` with ``weights``, where the
    loss is the summed softmax cross-entropy of the logits against ``labels`` (what an FGSM-style
    attack differentiates); the gradient is NHWC like the images. The graph computes in the
    images' dtype (float64 images: weights and every op in float64). Arguments as in
    :func:`slim_logits`."""
    tf, _ = tensorflow
    dtype = images_nhwc.dtype.name
    graph, images, logits = _slim_graph(tensorflow, arch, images_nhwc.shape, net_kwargs, dtype)
    with graph.as_default():
        flat = tf.reshape(logits, [images_nhwc.shape[0], -1])  # resnets: [N, 1, 1, classes]
        loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=flat)
        )
        (gradient,) = tf.compat.v1.gradients(loss, [images])
        variables = tf.compat.v1.global_variables()
        with tf.compat.v1.Session(graph=graph) as sess:
            initial_values = {
                v.initializer.inputs[1]: weights[v.op.name].astype(dtype) for v in variables
            }
            sess.run([v.initializer for v in variables], initial_values)
            return sess.run((flat, gradient), {images: images_nhwc})


def slim_logits_from_checkpoint(
    tensorflow: tuple[Any, Any],
    arch: str,
    checkpoint: str | Path,
    images_nhwc: np.ndarray,
    **net_kwargs: Any,
) -> np.ndarray:
    """Logits of the tf_slim network ``arch`` restored by ``tf.compat.v1.train.Saver`` from the
    checkpoint ``checkpoint`` (a V2 prefix or a V1 file), on an NHWC batch.

    The Saver restores every variable the graph creates, so each must be in the checkpoint with
    its shape and dtype (the restore fails otherwise); ``net_kwargs`` as in :func:`slim_logits`.
    """
    tf, _ = tensorflow
    graph, images, logits = _slim_graph(tensorflow, arch, images_nhwc.shape, net_kwargs)
    with graph.as_default():
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, str(checkpoint))
            return sess.run(logits, {images: images_nhwc})


def _slim_graph(
    tensorflow: tuple[Any, Any],
    arch: str,
    input_shape: tuple[int, ...],
    net_kwargs: Mapping[str, Any],
    dtype: str = "float32",
) -> tuple[Any, Any, Any]:
    """``(graph, images placeholder, logits)`` of the tf_slim network ``arch`` (is_training=False,
    under its own arg scope) on an NHWC input of ``input_shape`` (its variables take ``dtype``,
    the input's)."""
    tf, slim = tensorflow
    module_name, fn_name, scope_name = SLIM_NETS[arch]
    nets = importlib.import_module(f"tf_slim.nets.{module_name}")
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(dtype, input_shape)
        with slim.arg_scope(getattr(nets, scope_name)()):
            logits, _ = getattr(nets, fn_name)(images, is_training=False, **net_kwargs)
    return graph, images, logits


def write_tf_checkpoint(
    tensorflow: tuple[Any, Any],
    weights: Mapping[str, np.ndarray],
    prefix: Path,
    *,
    version: str = "v2",
) -> Path:
    """Write ``weights`` with TensorFlow's own save ops, the ones its ``Saver`` runs (``Save``
    for the V1 TensorSlice file, ``SaveV2`` for the V2 bundle). Returns the path to pass to
    ``zoo.open_checkpoint`` (the V1 file, or the V2 prefix). Eager ops: no graph constants, so
    checkpoints of any size are written at disk speed."""
    tf, _ = tensorflow
    names = sorted(weights)  # the order Saver writes them in (data file layout)
    tensors = [tf.constant(np.asarray(weights[n])) for n in names]
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    if version == "v1":
        tf.raw_ops.Save(filename=str(prefix), tensor_names=names, data=tensors)
    elif version == "v2":
        tf.raw_ops.SaveV2(
            prefix=str(prefix),
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=tensors,
        )
    else:
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    return Path(prefix)

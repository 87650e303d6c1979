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
    tf, slim = tensorflow
    module_name, fn_name, scope_name = SLIM_NETS[arch]
    nets = importlib.import_module(f"tf_slim.nets.{module_name}")
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, images_nhwc.shape)
        with slim.arg_scope(getattr(nets, scope_name)()):
            logits, _ = getattr(nets, fn_name)(images, is_training=False, **net_kwargs)
        variables = tf.compat.v1.global_variables()
        missing = [v.op.name for v in variables if v.op.name not in weights]
        if missing:
            raise KeyError(f"weights lack {len(missing)} slim variables, e.g. {missing[:3]}")
        # one assign op for all variables: Variable.load runs a session call per variable,
        # which takes ~30 s for inception_v3's 388 variables
        values = {v: tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in variables}
        assign_all = tf.group(*[v.assign(value) for v, value in values.items()])
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(assign_all, {value: weights[v.op.name] for v, value in values.items()})
            return sess.run(logits, {images: images_nhwc})


def write_tf_checkpoint(
    tensorflow: tuple[Any, Any],
    weights: Mapping[str, np.ndarray],
    prefix: Path,
    *,
    version: str = "v2",
) -> Path:
    """Write ``weights`` with TensorFlow's own ``Saver`` (``version`` 'v1' or 'v2'); returns the
    path to pass to ``zoo.open_checkpoint`` (the V1 file, or the V2 prefix)."""
    tf, _ = tensorflow
    graph = tf.Graph()
    with graph.as_default():
        variables = [
            tf.compat.v1.Variable(np.asarray(value), name=name) for name, value in weights.items()
        ]
        fmt = tf.compat.v1.train.SaverDef.V1 if version == "v1" else tf.compat.v1.train.SaverDef.V2
        saver = tf.compat.v1.train.Saver(variables, write_version=fmt)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=False, write_state=False)
    return prefix

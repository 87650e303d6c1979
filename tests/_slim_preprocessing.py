"""slim's eval preprocessing composed from TensorFlow's own ops, as the reference for transforms.

Each function builds the steps of ``research/slim/preprocessing/*_preprocessing.py``
``preprocess_for_eval`` in a TF1 graph whose image placeholder has a dynamic height and width,
as in slim's input pipeline (a decoded JPEG), so ``tf.image.central_crop`` takes the same
dynamic-shape code path. Graphs are built once per recipe and cached with their session.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

VGG_MEANS = (123.68, 116.78, 103.94)


class _Runner:
    """A TF graph with an HWC uint8 placeholder and a session to run it."""

    def __init__(self, tf: Any, build: Any, dtype: Any = None) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(dtype or tf.uint8, [None, None, 3])
            self.output = build(tf, self.image)
        self.session = tf.compat.v1.Session(graph=self.graph)

    def __call__(self, image_hwc: np.ndarray) -> np.ndarray:
        return self.session.run(self.output, {self.image: image_hwc})


def _inception_eval(tf: Any, image: Any, height: int, width: int, fraction: float) -> Any:
    # preprocess_for_eval: convert_image_dtype, central_crop, resize_bilinear, -0.5, *2
    x = tf.image.convert_image_dtype(image, dtype=tf.float32)
    x = tf.image.central_crop(x, central_fraction=fraction)
    x = tf.expand_dims(x, 0)
    x = tf.compat.v1.image.resize_bilinear(x, [height, width], align_corners=False)
    x = tf.squeeze(x, [0])
    return tf.multiply(tf.subtract(x, 0.5), 2.0)


def _vgg_eval(tf: Any, image: Any, height: int, width: int, side: int) -> Any:
    # _aspect_preserving_resize with the current _smallest_size_at_least (float32, rint)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    side_f = tf.cast(tf.convert_to_tensor(side, dtype=tf.int32), tf.float32)
    scale = tf.cond(tf.greater(h, w), lambda: side_f / w, lambda: side_f / h)
    new_h = tf.cast(tf.math.rint(h * scale), tf.int32)
    new_w = tf.cast(tf.math.rint(w * scale), tf.int32)
    resized = tf.compat.v1.image.resize_bilinear(
        tf.expand_dims(image, 0), tf.stack([new_h, new_w]), align_corners=False
    )
    resized = tf.squeeze(resized)
    # _central_crop: offsets (size - crop) / 2 (true division), truncated by to_int32; tf.slice
    rs = tf.shape(resized)
    top, left = (rs[0] - height) / 2, (rs[1] - width) / 2
    offsets = tf.cast(tf.stack([top, left, tf.constant(0.0, tf.float64)]), tf.int32)
    cropped = tf.slice(resized, offsets, tf.stack([height, width, rs[2]]))
    x = tf.cast(cropped, tf.float32)
    # _mean_image_subtraction: split the channels, subtract each mean, concatenate
    channels = tf.split(x, num_or_size_splits=3, axis=2)
    return tf.concat([c - m for c, m in zip(channels, VGG_MEANS)], axis=2)


@functools.cache
def _runner(tf: Any, recipe: str, height: int, width: int, param: float) -> _Runner:
    if recipe == "inception":
        return _Runner(tf, lambda tf, x: _inception_eval(tf, x, height, width, param))
    return _Runner(tf, lambda tf, x: _vgg_eval(tf, x, height, width, int(param)))


def tf_inception_eval(
    tensorflow: tuple[Any, Any], image_hwc: np.ndarray, size: int, fraction: float = 0.875
) -> np.ndarray:
    """slim ``inception_preprocessing.preprocess_for_eval`` of a uint8 HWC image, HWC float32."""
    return _runner(tensorflow[0], "inception", size, size, fraction)(image_hwc)


def tf_vgg_eval(
    tensorflow: tuple[Any, Any], image_hwc: np.ndarray, size: int = 224, side: int = 256
) -> np.ndarray:
    """slim ``vgg_preprocessing.preprocess_for_eval`` of a uint8 HWC image, HWC float32."""
    return _runner(tensorflow[0], "vgg", size, size, side)(image_hwc)


class TfResize:
    """``tf.compat.v1.image.resize_bilinear(align_corners=False)`` of NHWC float32 batches."""

    def __init__(self, tensorflow: tuple[Any, Any]) -> None:
        tf = tensorflow[0]
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(tf.float32, [None, None, None, None])
            self.size = tf.compat.v1.placeholder(tf.int32, [2])
            self.output = tf.compat.v1.image.resize_bilinear(
                self.images, self.size, align_corners=False
            )
        self.session = tf.compat.v1.Session(graph=self.graph)

    def __call__(self, images_nhwc: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return self.session.run(self.output, {self.images: images_nhwc, self.size: list(size)})


def tf_adjust_saturation(tensorflow: tuple[Any, Any], image_hwc: np.ndarray, factor: float):
    """``tf.image.adjust_saturation`` of a float32 HWC image."""
    tf = tensorflow[0]
    graph = tf.Graph()
    with graph.as_default():
        out = tf.image.adjust_saturation(tf.constant(image_hwc), factor)
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(out)

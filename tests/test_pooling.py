"""MaxPool2dSame / AvgPool2dSame against TensorFlow's own pools, on every code path.

NCHW CPU tensors are pooled from shifted slices, channels-last ones by torch's kernels or, for
stride-1 max pools, by dense row and column maxima (see ``architectures.layers``); all must be
TF's 'SAME' (padding never wins a max, averages count only real pixels, the extra pad at the
bottom/right) and 'VALID'.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from architectures.layers import AvgPool2dSame, MaxPool2dSame

# (height, width, kernel, stride): odd/even sizes, windows larger than the map, strided.
CASES = [
    (h, w, k, s)
    for (h, w), k, s in itertools.product([(7, 8), (9, 9), (2, 5)], [1, 2, 3, 5], [1, 2, 3])
]


def _ours(pool: torch.nn.Module, x_nhwc: np.ndarray, channels_last: bool) -> np.ndarray:
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=layout)
    with torch.no_grad():
        return pool(x).permute(0, 2, 3, 1).numpy()


def test_slice_path_equals_torch_kernels():
    rng = np.random.default_rng(0)
    for (h, w, k, s), padding in itertools.product(CASES, ["SAME", "VALID"]):
        if padding == "VALID" and (h < k or w < k):
            continue
        x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
        for pool in (MaxPool2dSame(k, s, padding), AvgPool2dSame(k, s, padding)):
            slices, kernels = _ours(pool, x, False), _ours(pool, x, True)
            assert slices.shape == kernels.shape
            assert np.abs(slices - kernels).max() <= 1e-6, (pool, h, w)


@pytest.mark.tf
def test_pools_match_tensorflow(tensorflow):
    tf, _ = tensorflow
    rng = np.random.default_rng(1)
    for (h, w, k, s), padding in itertools.product(CASES, ["SAME", "VALID"]):
        if padding == "VALID" and (h < k or w < k):
            continue
        x = rng.standard_normal((2, h, w, 3)).astype(np.float32) - 2.0  # mostly negative
        want_max = tf.nn.max_pool2d(x, k, s, padding).numpy()
        want_avg = tf.nn.avg_pool2d(x, k, s, padding).numpy()
        for channels_last in (False, True):
            got_max = _ours(MaxPool2dSame(k, s, padding), x, channels_last)
            got_avg = _ours(AvgPool2dSame(k, s, padding), x, channels_last)
            assert np.array_equal(got_max, want_max), (h, w, k, s, padding, channels_last)
            assert np.abs(got_avg - want_avg).max() <= 1e-6, (h, w, k, s, padding, channels_last)

"""Cross-checks with TensorFlow: TF reads what we write, we read what TF writes, bit for bit."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _checkpoints import assert_identical
from _slim import write_tf_checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import zoo
from zoo.checkpoint import write_v1, write_v2

pytestmark = pytest.mark.tf

# dtypes TF's savers write; V1 (SaveSlices) has no bfloat16, uint32, uint64
V2_DTYPES = [
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
    "uint16", "uint32", "uint64", "bool", "complex64", "complex128", "string",
]  # fmt: skip
V1_DTYPES = [d for d in V2_DTYPES if d not in ("bfloat16", "uint32", "uint64")]
# what tf.train.load_checkpoint (TF's CheckpointReader) reads from V1; the rest needs a restore
V1_TF_READER_DTYPES = ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


@pytest.fixture(scope="module")
def tf(tensorflow):
    tf, _ = tensorflow
    tf.get_logger().setLevel("ERROR")  # V1 deprecation banners
    return tf


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # shipped with TensorFlow

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(object if name == "string" else name)


def sample(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values of dtype ``name`` made from random bits (NaN payloads, signed zeros, denormals)."""
    if name == "string":
        flat = [rng.bytes(int(n)) for n in rng.integers(0, 20, int(np.prod(shape)))]
        return np.array(flat, object).reshape(shape)
    if name == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    dtype = numpy_dtype(name)
    bits = rng.integers(0, 256, int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    return bits.view(dtype).reshape(shape)


def tf_restore(tf, path: Path, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The values TF's ``Saver.restore`` gives for variables shaped and typed like ``like``."""
    graph = tf.Graph()
    with graph.as_default():
        variables = {
            name: tf.compat.v1.Variable(np.full(v.shape, b"" if v.dtype == object else 0, v.dtype))
            for name, v in like.items()
        }
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, str(path))
            return sess.run(variables)


def assert_tf_identical(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """Compare a value from TF (strings come back as ``bytes`` objects) with ours."""
    got = np.asarray(got)
    assert got.shape == want.shape, name
    if want.dtype == object:
        assert [bytes(s) for s in got.reshape(-1)] == want.reshape(-1).tolist(), name
    else:
        assert got.dtype == want.dtype, f"{name}: {got.dtype} vs {want.dtype}"
        assert got.tobytes() == want.tobytes(), name


def mixed_tensors(dtypes: list[str]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    shapes = [(), (0,), (3,), (2, 0, 3), (2, 3, 1, 2)]
    return {
        f"scope_{i}/{d}/v{j}": sample(d, shape, rng)
        for i, d in enumerate(dtypes)
        for j, shape in enumerate(shapes)
    }


# ----------------------------------------------------------------------------- TF reads ours


def test_tf_reads_our_v2(tmp_path, tf) -> None:
    tensors = mixed_tensors(V2_DTYPES)
    prefix = write_v2(tmp_path / "model.ckpt", tensors)
    reader = tf.train.load_checkpoint(str(prefix))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(tensors)
    for name, want in tensors.items():
        assert_tf_identical(reader.get_tensor(name), want, name)


def test_tf_reads_our_v1(tmp_path, tf) -> None:
    tensors = mixed_tensors(V1_DTYPES)
    path = write_v1(tmp_path / "model.ckpt", tensors)
    reader = tf.train.load_checkpoint(str(path))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(tensors)
    for name, want in tensors.items():
        if name.split("/")[1] in [*V1_TF_READER_DTYPES, "string"]:
            assert_tf_identical(reader.get_tensor(name), want, name)
    # float16, complex and uint16: TF's CheckpointReader says "Data type not supported" for V1
    # (its own files too); Saver.restore reads them
    restored = tf_restore(tf, path, tensors)
    for name, want in tensors.items():
        assert_tf_identical(restored[name], want, name)


# ----------------------------------------------------------------------------- same bytes


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_our_files_are_byte_identical_to_tf_saver(tmp_path, tensorflow, tf, version) -> None:
    rng = np.random.default_rng(3)
    tensors = mixed_tensors(V1_DTYPES if version == "v1" else V2_DTYPES)
    # > 2 blocks of 256 KiB: TF puts such a record in a block of its own
    tensors["net/conv/weights"] = rng.standard_normal((3, 3, 64, 256)).astype(np.float32)
    tensors["net/conv/biases"] = rng.standard_normal(256).astype(np.float32)
    (tmp_path / "tf").mkdir()  # TF's V1 saver does not create it
    theirs = write_tf_checkpoint(
        tensorflow, tensors, tmp_path / "tf" / "model.ckpt", version=version
    )
    writer = write_v1 if version == "v1" else write_v2
    mine = writer(tmp_path / "zoo" / "model.ckpt", tensors)
    names = sorted(p.name for p in theirs.parent.iterdir())
    assert names == sorted(p.name for p in mine.parent.iterdir())
    for file in names:
        a, b = (mine.parent / file).read_bytes(), (theirs.parent / file).read_bytes()
        assert a == b, f"{file}: {len(a)} bytes vs TF's {len(b)}"


# ----------------------------------------------------------------------------- we read TF's

_FIRST = string.ascii_lowercase + string.digits
_REST = _FIRST + "_.-"
scope_part = st.builds(
    lambda a, b: a + b, st.sampled_from(_FIRST), st.text(_REST, min_size=0, max_size=6)
)
var_name = st.lists(scope_part, min_size=1, max_size=4).map("/".join)


def _no_scope_clash(names: list[str]) -> bool:
    # A variable "a" owns the ops "a/read", "a/Assign", ...: a variable under "a/" could be
    # renamed by TF's graph (names are unique ignoring case), so keep names off each other's scope.
    lower = [n.lower() for n in names]
    return not any(b.startswith(a + "/") for a in lower for b in lower)


def tensor_sets(dtypes: list[str]) -> st.SearchStrategy[dict[str, np.ndarray]]:
    def one(draw_dtype: str) -> st.SearchStrategy[np.ndarray]:
        shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
        if draw_dtype == "string":
            return shapes.flatmap(
                lambda s: st.lists(
                    st.binary(max_size=12), min_size=int(np.prod(s)), max_size=int(np.prod(s))
                ).map(lambda items, s=s: np.array(items, object).reshape(s))
            )
        if draw_dtype == "bool":
            return hnp.arrays(bool, shapes, fill=st.nothing())
        # random bits, each element drawn (no fill value): every NaN payload, signed zero and
        # denormal is fair game
        dtype = numpy_dtype(draw_dtype)
        width = min(dtype.itemsize, 8)  # complex128 = two uint64
        bits = hnp.arrays(
            np.dtype(f"<u{width}"),
            shapes.map(lambda s: (*s, dtype.itemsize // width)),
            fill=st.nothing(),
        )
        return bits.map(lambda b: b.view(dtype).reshape(b.shape[:-1]))

    names = st.lists(var_name, min_size=1, max_size=6, unique_by=str.lower).filter(_no_scope_clash)
    return names.flatmap(
        lambda ns: st.tuples(*(st.sampled_from(dtypes).flatmap(one) for _ in ns)).map(
            lambda values: dict(zip(ns, values))
        )
    )


_HYPOTHESIS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_we_read_what_tf_writes(tmp_path_factory, tensorflow, tf, version) -> None:
    @_HYPOTHESIS
    @given(tensors=tensor_sets(V1_DTYPES if version == "v1" else V2_DTYPES))
    def check(tensors: dict[str, np.ndarray]) -> None:
        prefix = tmp_path_factory.mktemp(version) / "model.ckpt"  # a fresh directory each time
        write_tf_checkpoint(tensorflow, tensors, prefix, version=version)
        with zoo.open_checkpoint(prefix) as reader:
            assert reader.format == version
            assert list(reader) == sorted(tensors)
            for name, want in tensors.items():
                got = reader[name]
                if want.dtype.name == "bfloat16":
                    assert reader.tf_dtype(name) == "bfloat16"
                    want = (want.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
                assert reader.shape(name) == want.shape
                assert_identical(got, want, name)

    check()


def test_torch_compile_machinery_loads_after_tensorflow(tensorflow) -> None:
    """After ``import_tensorflow``, what loads triton (optimizers, ``torch.compile``) must not
    crash the process: triton loaded after TensorFlow is a segmentation fault."""
    code = (
        "import torch\n"
        "from zoo._tensorflow import import_tensorflow\n"
        "import_tensorflow()\n"
        "import torch._dynamo\n"
        "torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)\n"
        "print('alive')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "alive", (
        run.returncode,
        run.stderr[-2000:],
    )

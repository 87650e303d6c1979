"""Every checkpoint-format fixture of the reference data, read without TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _checkpoints import fixture_expected, fixture_names, fixture_prefix, sha256

import zoo

FIXTURES = fixture_names()


def test_all_fixtures_are_found() -> None:
    assert {"v1_float16", "v1_partitioned", "v1_single", "v2_sharded", "v2_single"} <= set(FIXTURES)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_matches_expected(fixture: str) -> None:
    expected = fixture_expected(fixture)
    variables = expected["variables"]
    tf_result = expected.get("tensorflow_read_result", {})
    with zoo.open_checkpoint(fixture_prefix(fixture)) as reader:
        assert reader.format == fixture[:2]
        assert list(reader) == sorted(variables)
        assert len(reader) == len(variables)
        for name, want in variables.items():
            assert name in reader
            # metadata comes from the index alone, even where the data is damaged
            assert reader.shape(name) == tuple(want["shape"])
            assert reader.tf_dtype(name) == want["dtype"]
            if tf_result.get(name, "ok") != "ok":
                continue  # the damaged tensors: see test_checkpoint_errors.py
            value = reader[name]
            assert isinstance(value, np.ndarray)
            assert value.dtype == reader.dtype(name)
            assert value.shape == tuple(want["shape"]), name
            assert value.flags.c_contiguous and value.flags.writeable
            assert sha256(value) == want["sha256"], name
            if "values" in want:
                got = value.reshape(-1).tolist()
                assert len(got) == len(want["values"])
                for g, w in zip(got, want["values"]):
                    assert g == w or (math.isnan(g) and math.isnan(w)), name
                    if isinstance(w, float) and w == 0.0:
                        assert math.copysign(1, g) == math.copysign(1, w), f"{name}: sign of 0"
            if "value_utf8" in want:
                assert value.dtype == object and value.shape == ()
                assert value[()].decode("utf-8") == want["value_utf8"]


def test_damaged_fixtures_have_damaged_tensors() -> None:
    """The fixture test above skips the damaged tensors; make sure that is not all of them."""
    for fixture in FIXTURES:
        results = fixture_expected(fixture).get("tensorflow_read_result", {})
        assert not results or 0 < sum(r != "ok" for r in results.values()) < len(results)

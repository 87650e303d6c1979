"""The variable names public sources show for real releases fit the loader (see
tests/reference/real_names/README.md for the sources).

Every listed name is filled into the network or classified as skippable, with the listed shape
where the source gives one; and for a complete list every tensor the network needs is in it
(the auxiliary head aside: a release may lack it). The check runs the loader's own planning
(:func:`architectures._tf.plan_tf_weights`) on a checkpoint of names and shapes only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import zoo
from architectures._tf import plan_tf_weights, tf_mapping
from zoo.convert import build_skeleton

LISTS = Path(__file__).resolve().parent / "reference" / "real_names"
FILES = sorted(p.name for p in LISTS.glob("*.txt"))
# the network of each list (the file name up to its first '.': a release or network name)
NETWORKS = {"mobilenet_v2_1": "mobilenet_v2"}
_SHAPE = re.compile(r"^\[[0-9, ]*\]$")


def read_list(file: str) -> tuple[dict[str, tuple[int, ...] | None], bool]:
    """``({name: shape or None}, whether the list is complete)``."""
    names: dict[str, tuple[int, ...] | None] = {}
    partial = False
    for line in (LISTS / file).read_text().splitlines():
        if line.startswith("#"):
            partial |= "PARTIAL" in line
            continue
        if not line.strip():
            continue
        name, *columns = line.split("\t")
        shapes = [c for c in columns if _SHAPE.match(c)]
        names[name] = (
            tuple(int(d) for d in shapes[0][1:-1].split(",") if d.strip()) if shapes else None
        )
    return names, not partial


class Shapes(Mapping):
    """A checkpoint of names and shapes only (what plan_tf_weights reads)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self._shapes = shapes

    def __getitem__(self, name):
        raise AssertionError("no tensor data here")

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def __contains__(self, name: object) -> bool:
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]


def network(file: str) -> str:
    stem = file.split(".")[0]
    return NETWORKS.get(stem, stem)


def test_every_list_is_for_a_released_network():
    assert len(FILES) >= 9
    for file in FILES:
        assert zoo.model_info(network(file)).has_weights, file


@pytest.mark.parametrize("file", FILES)
def test_every_real_name_is_mapped_or_skippable_and_needed_names_are_there(file):
    listed, complete = read_list(file)
    arch = network(file)
    model = build_skeleton(arch, zoo.model_info(arch).num_classes)
    targets = tf_mapping(model)
    spellings = {n: t for t in targets.values() for n in (t.name, *t.alternatives)}
    # a listed name without a shape: the network's shape where it maps, any shape otherwise
    # (an extra such as global_step, or a name the check must reject)
    shapes = {n: s if s is not None else spellings.get(n, (1,)).shape for n, s in listed.items()}
    if not complete:  # only the first direction: fill in what the excerpt does not show
        for target in targets.values():
            if not any(n in listed for n in (target.name, *target.alternatives)):
                shapes[target.name] = target.shape
    # raises MappingError listing any unknown name, wrong shape or (complete lists) missing name
    plan, report = plan_tf_weights(model, Shapes(shapes))
    used = {source for source, _ in plan.values()}
    assert set(listed) <= used | set(report.ignored)
    # the aux head may be absent from a list (as from a release), nothing else
    assert set(report.dropped_heads) <= set(getattr(model, "optional_heads", ()))


def test_a_name_that_fits_nothing_would_fail_the_check():
    listed, _ = read_list("vgg_16.txt")
    model = build_skeleton("vgg_16", 1000)
    shapes = {n: s for n, s in listed.items() if s is not None}
    shapes["vgg_16/conv1/conv1_1/weights"] = (3, 3, 3, 65)  # a wrong shape
    shapes["vgg_16/fc9/weights"] = (1, 1)  # an unknown tensor
    with pytest.raises(zoo.MappingError) as err:
        plan_tf_weights(model, Shapes(shapes))
    assert "vgg_16/fc9/weights" in str(err.value) and "[3, 3, 3, 65]" in str(err.value)
    del shapes["vgg_16/fc8/biases"]  # a needed name missing from a complete list
    with pytest.raises(zoo.MappingError, match="fc8/biases"):
        plan_tf_weights(model, Shapes(shapes))

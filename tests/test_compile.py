"""``torch.compile`` of the ports: every family traces to one graph (no graph break, so inductor
sees the whole network), and the inference recipe of the README (inductor's freezing) gives the
eager model's logits.
"""

from __future__ import annotations

import pytest
import torch
from conftest import ONE_PER_FAMILY, reference_input, reference_weights, tolerance

import zoo


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Compiled code is cached per function: each test starts from none and leaves none."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("arch", ONE_PER_FAMILY)
def test_every_family_traces_to_one_graph(arch):
    model = zoo.load(arch).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        explained = torch._dynamo.explain(model)(x)
    reasons = [str(b.reason) for b in explained.break_reasons]
    assert (explained.graph_count, explained.graph_break_count, reasons) == (1, 0, [])
    assert explained.op_count > 30  # the network itself was traced, not a stub


def test_compiled_with_freezing_gives_the_eager_logits():
    """The README's fastest Inception recipe: inductor folds the frozen weights (batch norms
    into the convs, oneDNN-packed weights) and fuses the rest; the logits stay the eager ones
    to float rounding."""
    import torch._inductor.config

    arch = "inception_v1"
    model = zoo.load(arch, checkpoint=reference_weights(arch)).eval()
    x = reference_input(arch, (224, 224))[:2]
    with torch.inference_mode():
        want = model(x)
        with torch._inductor.config.patch(freezing=True):
            compiled = torch.compile(model, dynamic=False)
            got = compiled(x)
        other = torch.flip(x, dims=(0, 3))  # another input, the same graph (same shape)
        want_other, got_other = model(other), compiled(other)
    _assert_eager_logits((want, got), (want_other, got_other))


def test_aot_inductor_package_gives_the_eager_logits(tmp_path):
    """The README's batch-1 recipe: ``torch.export`` and AOTInductor with freezing, saved as a
    package and run from it (a C++ runner with the weights inside); the logits stay the eager
    ones to float rounding, for any input of the exported shape."""
    import torch._inductor.config

    arch = "inception_v1"
    model = zoo.load(arch, checkpoint=reference_weights(arch)).eval()
    x = reference_input(arch, (224, 224))[:1]
    package = tmp_path / f"{arch}.pt2"
    with torch.no_grad(), torch._inductor.config.patch(freezing=True):
        program = torch.export.export(model, (x,))
        torch._inductor.aoti_compile_and_package(program, package_path=str(package))
    runner = torch._inductor.aoti_load_package(str(package))
    other = torch.flip(x, dims=(3,))
    with torch.inference_mode():
        want, want_other = model(x), model(other)
        got, got_other = runner(x), runner(other)
    _assert_eager_logits((want, got), (want_other, got_other))


def _assert_eager_logits(*pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Each (eager, compiled) pair of logits agrees to float rounding; the logits depend on the
    weights and the compiled ones on the input (not a constant)."""
    (want, got), (_, got_other) = pairs[0], pairs[-1]
    assert want.std() > 0.01
    atol = tolerance(want.abs().max().item())
    for eager, compiled in pairs:
        assert torch.allclose(compiled, eager, rtol=0, atol=atol)
    assert not torch.equal(got_other, got)

"""The ``torch.hub`` entry points of slimzoo, generated from the registries (see ``hubconf.py``).

One function per network of :func:`zoo.list_models`, named after it, taking
``(pretrained=False, **kwargs)`` and returning :func:`zoo.load`'s module; its docstring (what
``torch.hub.help`` prints) is written from the network's constructor and its weights registry
entry: paper, accuracy, classes, input size and preprocessing, release, and the keyword
arguments it accepts.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

import architectures

from .models import list_models, load
from .registry import ModelInfo, Preprocessing, get_registry

__all__ = ["describe", "entry_point", "entry_points", "load_options", "network_options"]


def load_options() -> list[str]:
    """The keyword arguments of :func:`zoo.load` itself besides ``pretrained`` (``num_classes``,
    ``skip_classifier``, ``use_ema``, ...), documented for every entry point."""
    return [
        p.name
        for p in inspect.signature(load).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "pretrained"
    ]


def entry_points() -> dict[str, Callable[..., nn.Module]]:
    """``{network name: entry point}`` for every network of :func:`zoo.list_models`."""
    return {name: entry_point(name) for name in list_models()}


def entry_point(name: str) -> Callable[..., nn.Module]:
    """The ``torch.hub`` entry point of the network ``name``."""

    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return load(name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = describe(name)
    return entry


def describe(name: str) -> str:
    """The docstring of the entry point ``name``."""
    constructor = architectures.get_constructor(name)
    summary = (inspect.getdoc(constructor) or name).splitlines()[0]
    info = get_registry().models.get(name)
    lines = [
        summary,
        "",
        f"The TF-slim network ``{name}`` as a native PyTorch module (slimzoo), in training "
        "mode as torchvision's (call ``.eval()`` for inference).",
    ]
    if info is not None:
        lines += ["", *_facts(info)]
    options = network_options(constructor)
    has_weights = info is not None and info.has_weights
    pretrained = (
        "the published weights: downloaded, verified, converted and cached on first use "
        "(ZOO_CACHE_DIR, ZOO_MIRROR, ZOO_OFFLINE apply; see zoo.download_weights)."
        if has_weights
        else "not available: no weights were published for this network (raises "
        "zoo.NoWeightsError); load your own TF checkpoint with checkpoint=... instead."
    )
    kwargs = (
        f"passed to zoo.load: {', '.join(load_options())}; and to the network: "
        f"{', '.join(options) if options else 'none'}."
    )
    lines += [
        "",
        "Args:",
        *_wrapped(f"pretrained: {pretrained}", indent=4),
        *_wrapped(f"**kwargs: {kwargs}", indent=4),
        "",
        "Example::",
        "",
        f'    model = torch.hub.load("slimzoo/slimzoo", "{name}", pretrained={has_weights})',
    ]
    return "\n".join(lines)


def _facts(info: ModelInfo) -> list[str]:
    lines = []
    if info.paper is not None:
        lines += _wrapped(f"Paper: {info.paper.title} ({info.paper.url}).")
    classes = f"Classes: {info.num_classes}"
    if info.label_offset:
        classes += " (index 0 is 'background': ImageNet class i is logit i + 1)"
    lines.append(classes + ".")
    if info.preprocessing is not None:
        lines += _wrapped(_preprocessing(info.name, info.preprocessing))
    release = info.release
    if release is None:
        lines.append("Published weights: none.")
    else:
        size = f", {release.size / 2**20:.1f} MiB" if release.size else ""
        text = f"Published weights: {release.url}{size}, licence {info.license}"
        if info.accuracy is not None:
            acc = info.accuracy
            top5 = f", top-5 {acc.top5:g} %" if acc.top5 is not None else ""
            text += f"; ImageNet top-1 {acc.top1:g} %{top5} ({acc.source})"
        lines += _wrapped(text + ".")
    if info.notes:
        lines += _wrapped(f"Notes: {info.notes}")
    return lines


def _preprocessing(name: str, p: Preprocessing) -> str:
    size = p.input_size
    if p.crop_mode == "crop_then_resize":
        crop = f"central crop of {p.crop_fraction:.1%}, {p.interpolation} resize to {size}"
    else:
        crop = (
            f"{p.interpolation} resize of the shorter side to {p.resize_size}, central crop {size}"
        )
    mean = ", ".join(f"{m:g}" for m in p.mean)
    std = ", ".join(f"{s:g}" for s in p.std)
    return (
        f"Input: 3x{size}x{size}, {p.kind} preprocessing: pixels in [0, {p.value_scale:g}], "
        f"{crop}, then (x - ({mean})) / ({std}); zoo.get_transform({name!r}) builds it."
    )


def network_options(constructor: Callable[..., nn.Module]) -> list[str]:
    """The network's own keyword arguments a user may pass, with their defaults
    (``["global_pool=True", "output_stride=None"]``): those of the class the constructor builds,
    less the ones the constructor sets itself and ``num_classes`` (a :func:`zoo.load` option)."""
    try:
        cls = typing.get_type_hints(constructor)["return"]
        parameters = inspect.signature(cls.__init__).parameters
    except Exception:  # an unannotated or unusual constructor: document none rather than fail
        return []
    fixed = _keywords_set_by(constructor) | {"num_classes"}
    return [
        f"{p.name}={p.default!r}" if p.default is not p.empty else p.name
        for p in parameters.values()
        if p.name != "self"
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.name not in fixed
    ]


def _keywords_set_by(constructor: Callable[..., nn.Module]) -> set[str]:
    """Keyword names the constructor's body passes to any call (``depths=``, ``tf_scope=``,
    ``dict(num_cells=...)``): the network fixes them, so a caller cannot."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(constructor)))
    except (OSError, TypeError, SyntaxError):
        return set()
    return {
        keyword.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg is not None
    }


def _wrapped(text: str, indent: int = 0) -> list[str]:
    """``text`` wrapped at 96 columns, continuation lines indented 4 more than ``indent``."""
    return textwrap.wrap(
        text,
        width=96,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 4),
        break_long_words=False,
        break_on_hyphens=False,
    )

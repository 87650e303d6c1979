"""TF-slim variable names ↔ torch state names, written once for every family.

Torch submodules are named after the TF scopes, so the mapping is a walk over the module tree:
``block1.unit_1.bottleneck_v2.conv1.conv.weight`` becomes
``resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/weights`` with the layout ``CONV`` (HWIO → OIHW).

What the walker reads from the modules (no per-family tables):

* ``model.tf_scope``: the root scope (``"resnet_v2_50"``, ``"InceptionV3"``; ``""`` for NASNet).
* ``module.tf_scopes``: ``{child_attribute: scope_component}``, ``""`` = no scope of its own
  (``ConvBnAct`` maps ``conv`` → ``""`` and ``bn`` → ``"BatchNorm"``). Default: the attribute name.
* ``module.tf_scope_aliases``: ``{child_attribute: (other spellings,)}`` of a scope that some
  releases spell otherwise (NASNet's aux ``FC``, re-uploaded as ``fully_connected``): read under
  either name, written under the first.
* ``model.optional_heads``: torch paths of heads a release may lack (the auxiliary head), and
  ``model.drop_optional_head(path)``: a load without their tensors drops them (see
  :func:`load_tf_weights`).
* ``module.tf_leaves``: ``{param_name: tf_leaf_name}`` for a tensor whose leaf name is not the
  default of its module type (``pointwise_weights``).
* The module type gives the default leaf names and layout: ``nn.Conv2d`` → ``weights`` (``CONV``;
  ``depthwise_weights``/``DEPTHWISE`` when ``groups == in_channels > 1``) and ``biases``;
  batch norm → ``gamma``/``beta``/``moving_mean``/``moving_variance``; ``nn.Linear`` →
  ``weights`` (``FC``, or ``CONV_AS_FC`` for :class:`~architectures.layers.Conv1x1AsLinear`).

Every layout change lives in :class:`Layout` as a pure function and its inverse (export runs the
mapping backwards). :func:`load_tf_weights` checks the mapping both ways before copying anything.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._load_report import EMA_SUFFIX, LoadReport, Reason, classify_extra
from ._values import checked_value, report_casts
from .layers import Conv1x1AsLinear

__all__ = [
    "EMA_SUFFIX",
    "Layout",
    "LoadReport",
    "TFTensor",
    "checkpoint_num_classes",
    "load_tf_weights",
    "plan_tf_weights",
    "settle_optional_heads",
    "tf_mapping",
    "tf_scope_of",
]


class Layout(enum.Enum):
    """How a TF tensor is laid out relative to its torch counterpart."""

    IDENTITY = "identity"  # biases, batch norm statistics
    CONV = "conv"  # TF HWIO [kh, kw, in, out] -> torch OIHW [out, in, kh, kw]
    DEPTHWISE = "depthwise"  # TF [kh, kw, in, mult] -> torch [in * mult, 1, kh, kw]
    FC = "fc"  # TF [in, out] -> torch [out, in]
    CONV_AS_FC = "conv_as_fc"  # TF [1, 1, in, out] -> torch nn.Linear [out, in]

    def to_torch(self, value: np.ndarray) -> np.ndarray:
        """TF array → torch layout (a view where numpy can make one; no copy here)."""
        if self is Layout.CONV:
            return value.transpose(3, 2, 0, 1)
        if self is Layout.DEPTHWISE:
            kh, kw, cin, mult = value.shape
            # channel i*mult + m of torch's grouped conv is input i, multiplier m, as in TF
            return value.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        if self is Layout.FC:
            return value.T
        if self is Layout.CONV_AS_FC:
            return value.reshape(value.shape[-2], value.shape[-1]).T
        return value

    def to_tf(self, value: np.ndarray, tf_shape: tuple[int, ...]) -> np.ndarray:
        """Torch array → TF layout of ``tf_shape`` (the inverse of :meth:`to_torch`)."""
        if self is Layout.CONV:
            return value.transpose(2, 3, 1, 0)
        if self is Layout.DEPTHWISE:
            kh, kw, cin, mult = tf_shape
            return value.reshape(cin, mult, kh, kw).transpose(2, 3, 0, 1)
        if self is Layout.FC:
            return value.T
        if self is Layout.CONV_AS_FC:
            return value.T.reshape(tf_shape)
        return value.reshape(tf_shape)

    def tf_shape(self, torch_shape: tuple[int, ...], groups: int = 1) -> tuple[int, ...]:
        """The TF shape that holds a torch tensor of ``torch_shape``."""
        if self is Layout.CONV:
            o, i, kh, kw = torch_shape
            return (kh, kw, i, o)
        if self is Layout.DEPTHWISE:
            o, _, kh, kw = torch_shape
            return (kh, kw, groups, o // groups)
        if self is Layout.FC:
            return (torch_shape[1], torch_shape[0])
        if self is Layout.CONV_AS_FC:
            return (1, 1, torch_shape[1], torch_shape[0])
        return tuple(torch_shape)


@dataclass(frozen=True)
class TFTensor:
    """Where one torch parameter or buffer comes from in a TF checkpoint."""

    name: str  # full TF variable name
    layout: Layout
    shape: tuple[int, ...]  # TF shape
    # the same variable under another spelling of a scope that releases use (read, never written)
    alternatives: tuple[str, ...] = ()


_BN_LEAVES = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
# Torch state that has no TF variable: it is not part of the mapping in either direction.
_NOT_IN_TF = {"num_batches_tracked"}


def _leaf_default(module: nn.Module, param: str) -> tuple[str, Layout]:
    if isinstance(module, nn.Conv2d):
        if param == "weight":
            if module.groups > 1 and module.groups == module.in_channels:
                return "depthwise_weights", Layout.DEPTHWISE
            return "weights", Layout.CONV
        return "biases", Layout.IDENTITY
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _BN_LEAVES[param], Layout.IDENTITY
    if isinstance(module, nn.Linear):
        if param == "weight":
            as_conv = isinstance(module, Conv1x1AsLinear)
            return "weights", (Layout.CONV_AS_FC if as_conv else Layout.FC)
        return "biases", Layout.IDENTITY
    raise TypeError(
        f"no TF naming rule for parameter {param!r} of {type(module).__name__}; "
        "give the module a tf_leaves entry"
    )


def _walk(
    module: nn.Module, torch_prefix: str, tf_prefixes: tuple[str, ...]
) -> Iterator[tuple[str, TFTensor]]:
    """``(torch name, TFTensor)`` of ``module``'s tensors; ``tf_prefixes[0]`` is its scope, the
    others the same scope spelled as some releases spell it (``tf_scope_aliases``)."""
    leaves: dict[str, str] = getattr(module, "tf_leaves", {})
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    for pname, tensor in own:
        if pname in _NOT_IN_TF or tensor is None:
            continue
        leaf, layout = _leaf_default(module, pname)
        leaf = leaves.get(pname, leaf)
        groups = getattr(module, "groups", 1)
        shape = layout.tf_shape(tuple(tensor.shape), groups)
        name, *others = (_join(prefix, leaf) for prefix in tf_prefixes)
        yield torch_prefix + pname, TFTensor(name, layout, shape, tuple(others))
    scopes: dict[str, str] = getattr(module, "tf_scopes", {})
    aliases: dict[str, tuple[str, ...]] = getattr(module, "tf_scope_aliases", {})
    for cname, child in module.named_children():
        spellings = (scopes.get(cname, cname), *aliases.get(cname, ()))
        prefixes = tuple(dict.fromkeys(_join(p, c) for p in tf_prefixes for c in spellings))
        yield from _walk(child, f"{torch_prefix}{cname}.", prefixes)


def _join(prefix: str, component: str) -> str:
    if not component:
        return prefix
    return f"{prefix}/{component}" if prefix else component


def tf_mapping(model: nn.Module) -> dict[str, TFTensor]:
    """``{torch state name: TFTensor}`` for every parameter and buffer that TF stores."""
    mapping: dict[str, TFTensor] = {}
    seen: dict[str, str] = {}
    for torch_name, target in _walk(model, "", (getattr(model, "tf_scope", ""),)):
        if target.name in seen:
            raise AssertionError(
                f"{seen[target.name]!r} and {torch_name!r} both map to {target.name!r}"
            )
        seen[target.name] = torch_name
        mapping[torch_name] = target
    return mapping


def tf_scope_of(model: nn.Module, path: str) -> str:
    """The TF scope of the torch submodule ``path`` (``"Logits.Conv2d_1c_1x1"`` →
    ``"InceptionV3/Logits/Conv2d_1c_1x1"``), by the same rules as :func:`tf_mapping`.

    The submodule itself need not exist: a model built without classes still names the scope
    of the classifier it would have, so that a checkpoint's classifier can be recognised.
    """
    scope, module = getattr(model, "tf_scope", ""), model
    for part in path.split("."):
        scopes: dict[str, str] = getattr(module, "tf_scopes", {}) if module is not None else {}
        scope = _join(scope, scopes.get(part, part))
        module = getattr(module, part, None) if isinstance(module, nn.Module) else None
    return scope


def checkpoint_num_classes(model: nn.Module, checkpoint: Mapping[str, np.ndarray]) -> int | None:
    """Class count stored in ``checkpoint`` for ``model``'s classifier (None if it has none).

    Also for a model built without classes (``num_classes=0``): the classifier's biases are
    then looked up under the scope the classifier would have."""
    name = getattr(model, "classifier_name", None)
    if not name:
        return None
    target = tf_mapping(model).get(f"{name}.bias")
    bias = target.name if target is not None else f"{tf_scope_of(model, name)}/biases"
    if bias not in checkpoint:
        return None
    return int(_shape_of(checkpoint, bias)[-1])


def _shape_of(checkpoint: Mapping[str, np.ndarray], name: str) -> tuple[int, ...]:
    shape = getattr(checkpoint, "shape", None)
    if callable(shape):  # zoo's lazy reader: no tensor data read
        return tuple(shape(name))
    return tuple(np.shape(checkpoint[name]))


def _list(title: str, names: list[str], limit: int = 20) -> str:
    shown = "\n    ".join(names[:limit])
    more = f"\n    ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"\n  {title} ({len(names)}):\n    {shown}{more}"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _find_source(target: TFTensor, names: set[str], use_ema: bool) -> str | None:
    """The checkpoint tensor that fills ``target``: its EMA shadow (``use_ema``) or itself,
    under its own name or a known other spelling; None if the checkpoint has neither."""
    for name in (target.name, *target.alternatives):
        if use_ema and name + EMA_SUFFIX in names:
            return name + EMA_SUFFIX
        if name in names:
            return name
    return None


def plan_tf_weights(
    model: nn.Module,
    checkpoint: Mapping[str, np.ndarray],
    *,
    skip: tuple[str, ...] = (),
    use_ema: bool = True,
    require_aux_head: bool = False,
) -> tuple[dict[str, tuple[str, Layout]], LoadReport]:
    """Check that ``checkpoint`` fits ``model`` and say where each torch tensor comes from.

    Returns ``{torch name: (checkpoint name, layout)}`` for every tensor to fill and a report
    (``loaded`` still empty), reading only names and shapes. :func:`load_tf_weights` copies
    along this plan; the weights cache streams along it into a file. Same checks and errors as
    :func:`load_tf_weights`. An optional head (``model.optional_heads``: the auxiliary head)
    that the checkpoint lacks in whole or part is left out of the plan and named in the
    report's ``dropped_heads`` and ``absent``; ``require_aux_head=True`` makes it an error.
    """
    from zoo.errors import MappingError  # zoo depends on architectures, not the reverse at import

    mapping = tf_mapping(model)
    skipped = [t for t in mapping if any(_under(t, s) for s in skip)]
    wanted = {t: m for t, m in mapping.items() if t not in skipped}
    skipped_tf = {n for t in skipped for n in (mapping[t].name, *mapping[t].alternatives)}
    # a skipped module the model was built without (num_classes=0) has no mapping: its scope
    skipped_scopes = tuple(f"{tf_scope_of(model, s)}/" for s in skip)

    names = set(checkpoint.keys())
    # scopes of released heads the model was built without (e.g. create_aux_logits=False)
    ignorable = tuple(f"{tf_scope_of(model, p)}/" for p in getattr(model, "unbuilt_heads", ()))
    report = LoadReport(skipped=skipped)
    sources = {t: _find_source(m, names, use_ema) for t, m in wanted.items()}

    # An auxiliary head the checkpoint lacks in part is not loaded at all: inference never
    # runs it, and half of a head from the checkpoint would be worse than none.
    dropped_tf: set[str] = set()
    for head in () if require_aux_head else getattr(model, "optional_heads", ()):
        under = [t for t in wanted if _under(t, head)]
        if all(sources[t] is not None for t in under):
            continue
        report.dropped_heads.append(head)
        for t in under:
            if sources.pop(t) is None:
                report.absent.append(wanted[t].name)
            dropped_tf.update((wanted[t].name, *wanted[t].alternatives))

    missing, mismatched = [], []
    for torch_name, source in sources.items():
        target = wanted[torch_name]
        if source is None:
            missing.append(f"{target.name}  (for {torch_name})")
            continue
        if source.endswith(EMA_SUFFIX) and not target.name.endswith(EMA_SUFFIX):
            report.ema.append(target.name)
        found = _shape_of(checkpoint, source)
        if found != target.shape:
            mismatched.append(
                f"{source}: checkpoint {list(found)}, {torch_name} needs {list(target.shape)}"
            )

    # Every checkpoint tensor ends up in report.loaded or report.ignored (with its reason):
    # anything else is a tensor this network does not know, an error.
    used = {s for s in sources.values() if s is not None}
    unused = []
    for name in sorted(names - used):
        base = name[: -len(EMA_SUFFIX)] if name.endswith(EMA_SUFFIX) else name
        if base in dropped_tf:
            report.ignore(name, Reason.INCOMPLETE_HEAD)
        elif base in skipped_tf or name.startswith(skipped_scopes):
            report.ignore(name, Reason.SKIPPED)
        elif name.startswith(ignorable):
            report.ignore(name, Reason.UNBUILT_HEAD)
        elif name == base and name + EMA_SUFFIX in used:
            report.ignore(name, Reason.RAW_REPLACED)
        elif name != base and base in used:
            report.ignore(name, Reason.EMA_UNUSED)
        elif reason := classify_extra(name, names):
            report.ignore(name, reason)
        else:
            unused.append(name)

    if missing or mismatched or unused:
        scope = getattr(model, "tf_scope", "")
        hint = (
            " Check that the checkpoint belongs to this architecture"
            + (f" (variables under {scope!r})" if scope else "")
            + "; for another class count pass num_classes=... (or skip_classifier=True)."
        )
        raise MappingError(
            f"checkpoint does not fit {type(model).__name__}:"
            + (_list("missing from the checkpoint", missing) if missing else "")
            + (_list("shape mismatches", mismatched) if mismatched else "")
            + (_list("unused checkpoint tensors", unused) if unused else "")
            + "\n"
            + hint
        )
    plan = {t: (source, wanted[t].layout) for t, source in sources.items() if source is not None}
    return plan, report


def settle_optional_heads(model: nn.Module, heads: list[str], absent: list[str]) -> None:
    """After a load that could not fill the optional ``heads`` (``absent``: their TF tensors the
    weights lack): a model that runs them (``aux_logits=True``) keeps them as initialised,
    with one warning; any other model drops them (as if built without them)."""
    if not heads:
        return
    if getattr(model, "aux_logits", False):
        warnings.warn(
            f"the weights hold no complete auxiliary head ({len(absent)} tensors absent, e.g. "
            f"{', '.join(absent[:3])}): with aux_logits=True, {', '.join(heads)} is built "
            "freshly initialised; train it before using the auxiliary logits "
            "(require_aux_head=True makes this an error)",
            stacklevel=3,
        )
        return
    for head in heads:
        model.drop_optional_head(head)


def load_tf_weights(
    model: nn.Module,
    checkpoint: Mapping[str, np.ndarray],
    *,
    skip: tuple[str, ...] = (),
    use_ema: bool = True,
    allow_nonfinite: bool = False,
    require_aux_head: bool = False,
) -> LoadReport:
    """Fill ``model`` from a ``{tf_name: array}`` mapping (or a lazy checkpoint reader).

    The mapping is checked both ways before anything is copied: every checkpoint tensor is used
    once or classified as not needed (``global_step``, ``mean_rgb``, optimizer slots, EMA shadows,
    the model's ``unbuilt_heads``, e.g. an auxiliary head it was built without: see
    :mod:`architectures._load_report`), every torch parameter and buffer is filled once, and
    shapes agree. A failure raises :class:`zoo.errors.MappingError` listing the names. ``skip``
    holds torch name prefixes to leave untouched (e.g. the classifier when loading a backbone for
    another class count); their checkpoint tensors are then ignored. ``use_ema`` takes
    ``<name>/ExponentialMovingAverage`` instead of ``<name>`` where the checkpoint has both.
    Values must be float arrays, all finite unless ``allow_nonfinite`` (see :mod:`._values`).

    An auxiliary head the checkpoint lacks in whole or in part is not loaded: the model drops it
    (``report.absent`` names the missing tensors), or keeps it freshly initialised with one
    warning when built with ``aux_logits=True``; ``require_aux_head=True`` makes it an error.
    """
    plan, report = plan_tf_weights(
        model, checkpoint, skip=skip, use_ema=use_ema, require_aux_head=require_aux_head
    )
    casts: list[str] = []
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    with torch.no_grad():
        for torch_name, (source, layout) in plan.items():
            dest = state[torch_name]
            value = checked_value(
                source, checkpoint[source], _numpy_dtype(dest.dtype),
                allow_nonfinite=allow_nonfinite, casts=casts,
            )  # fmt: skip
            array = layout.to_torch(value)
            dest.copy_(torch.from_numpy(np.ascontiguousarray(array)).to(dest.dtype))
            report.loaded.append(source)
    report_casts(casts)
    settle_optional_heads(model, report.dropped_heads, report.absent)
    return report


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a torch dtype (bfloat16: a 2-byte float)."""
    if dtype.is_floating_point:
        return np.dtype(f"f{dtype.itemsize}")
    return torch.empty((), dtype=dtype).numpy().dtype

"""What a load did with each checkpoint tensor, and why a tensor that fills nothing may be left.

Published checkpoints hold more than the network's variables, and some lack part of a head.
Every tensor a load leaves unread is classified here with its reason; anything unclassified is
an error for the loader to report (a checkpoint of another network, a renamed scope):

* ``global_step``: the training step counter (every release);
* ``<scope>/mean_rgb``: the dataset mean of the Caffe conversions (vgg, resnet_v1), unused;
* optimizer slots of a variable the checkpoint holds: ``<var>/RMSProp`` and ``/RMSProp_1``
  (MobileNet v2), ``/Momentum``, Adam's ``/Adam`` (m) and ``/Adam_1`` (v), ``/Adagrad``,
  ``/Ftrl(_1)``, and Adam's ``beta1_power``/``beta2_power``;
* ``<var>/ExponentialMovingAverage`` shadows: the loaded value where present (``use_ema``), the
  raw variable then being the one left (or the shadow, with ``use_ema=False``);
* the tensors of a head the model was built without, or of an auxiliary head that the
  checkpoint holds only in part (NASNet-A and PNASNet-5 Large lack ``aux_bn0``/``aux_bn1``);
  the missing ones are listed as ``absent``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

__all__ = ["EMA_SUFFIX", "LoadReport", "Reason", "classify_extra"]

EMA_SUFFIX = "/ExponentialMovingAverage"


class Reason:
    """Why a checkpoint tensor was left unread (the values of :attr:`LoadReport.reasons`)."""

    STEP = "global_step: the training step counter"
    MEAN_RGB = "mean_rgb: the dataset mean of the Caffe conversion, unused by the network"
    SLOT = "optimizer slot ({})"
    ADAM_POWER = "optimizer state (Adam's beta power accumulator)"
    RAW_REPLACED = "raw variable: its ExponentialMovingAverage shadow was loaded instead"
    EMA_UNUSED = "ExponentialMovingAverage shadow: the raw variable was loaded (use_ema=False)"
    UNBUILT_HEAD = "a head the model was built without"
    INCOMPLETE_HEAD = "auxiliary head incomplete in the checkpoint: the head is not loaded"
    SKIPPED = "skipped on request (skip=..., e.g. the classifier for another class count)"


# slot name of TF1's optimizers → what it holds
_SLOTS = {
    "RMSProp": "RMSProp mean square",
    "RMSProp_1": "RMSProp momentum",
    "Momentum": "Momentum accumulator",
    "Adam": "Adam first moment m",
    "Adam_1": "Adam second moment v",
    "Adagrad": "Adagrad accumulator",
    "Ftrl": "Ftrl accumulator",
    "Ftrl_1": "Ftrl linear term",
}
_SLOT = re.compile(rf"^(?P<variable>.+)/(?P<slot>{'|'.join(_SLOTS)})$")
_STEP = re.compile(r"(^|/)global_step$")
_MEAN_RGB = re.compile(r"(^|/)mean_rgb$")
_ADAM_POWER = re.compile(r"(^|/)beta[12]_power$")


def classify_extra(name: str, names: Collection[str]) -> str | None:
    """Why ``name``, which fills no tensor of the network, may be left unread; ``None`` when it
    is not a known extra. ``names`` are all the checkpoint's tensors: an optimizer slot counts
    only beside the variable it belongs to."""
    if _STEP.search(name):
        return Reason.STEP
    if _MEAN_RGB.search(name):
        return Reason.MEAN_RGB
    if _ADAM_POWER.search(name):
        return Reason.ADAM_POWER
    slot = _SLOT.match(name)
    if slot and slot["variable"] in names:
        return Reason.SLOT.format(_SLOTS[slot["slot"]])
    return None


@dataclass
class LoadReport:
    """What a load did: the tensors read, the EMA shadows taken, every checkpoint tensor left
    unread with its reason, and the tensors of an optional head the checkpoint lacks."""

    loaded: list[str] = field(default_factory=list)  # TF names actually read
    ema: list[str] = field(default_factory=list)  # variables filled from their EMA shadow
    ignored: list[str] = field(default_factory=list)  # checkpoint names deliberately unused
    skipped: list[str] = field(default_factory=list)  # torch names left as built (skip=...)
    reasons: dict[str, str] = field(default_factory=dict)  # ignored name → why
    absent: list[str] = field(default_factory=list)  # TF names of an optional head not in it
    dropped_heads: list[str] = field(default_factory=list)  # torch paths of heads not loaded

    def ignore(self, name: str, reason: str) -> None:
        self.ignored.append(name)
        self.reasons[name] = reason

    def by_reason(self) -> dict[str, list[str]]:
        """``{reason: ignored names}``, in the order the reasons first occur."""
        groups: dict[str, list[str]] = {}
        for name in self.ignored:
            groups.setdefault(self.reasons.get(name, "not needed"), []).append(name)
        return groups

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.ema:
            parts.append(f"{len(self.ema)} from ExponentialMovingAverage shadows")
        if self.ignored:
            kinds = "; ".join(f"{len(n)} {r.split(':')[0]}" for r, n in self.by_reason().items())
            parts.append(f"skipped {len(self.ignored)} checkpoint tensors ({kinds})")
        if self.absent:
            heads = ", ".join(self.dropped_heads)
            parts.append(
                f"{len(self.absent)} tensors of the auxiliary head {heads} absent from the "
                "checkpoint (the head is not loaded)"
            )
        if self.skipped:
            parts.append(f"left {len(self.skipped)} torch tensors as initialised")
        return ", ".join(parts)

    def describe(self, limit: int = 10) -> str:
        """The summary, then every skipped checkpoint tensor under its reason, and the absent
        ones (at most ``limit`` names per group)."""
        lines = [str(self)]
        groups = dict(self.by_reason())
        if self.absent:
            groups["absent from the checkpoint (optional head, not loaded)"] = self.absent
        for reason, names in groups.items():
            lines.append(f"  {reason} ({len(names)}):")
            lines.extend(f"    {n}" for n in names[:limit])
            if len(names) > limit:
                lines.append(f"    ... and {len(names) - limit} more")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """The classification, as the weights cache records it (no ``loaded`` list)."""
        return {
            "skipped_tensors": dict(self.reasons),
            "absent_tensors": list(self.absent),
            "dropped_heads": list(self.dropped_heads),
        }

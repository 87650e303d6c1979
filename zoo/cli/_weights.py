"""``slimzoo convert`` and ``slimzoo export``: TF checkpoints to torch weights and back."""

from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path
from typing import Any

from ._common import (
    EXIT_OK,
    PRETRAINED,
    UsageError,
    add_command,
    check_writable,
    existing,
    load_model,
)

__all__ = ["add_convert", "add_export"]


def add_convert(commands: Any) -> None:
    p = add_command(
        commands,
        "convert",
        _cmd_convert,
        "convert a TF checkpoint to torch weights",
        "Convert a TF-slim checkpoint of the network --model (e.g. your own fine-tuned one; V1 "
        "file, V2 prefix or .index, or a directory holding one checkpoint) to a .safetensors "
        "file (or with --pt a torch.save state dict), which zoo.load(NAME, weights=OUT) and "
        "'slimzoo predict/export --weights OUT' take. The class count is read from the "
        "checkpoint.",
        epilog="example: slimzoo convert train_dir/model.ckpt-20000 --model inception_v3 "
        "-o flowers.safetensors",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--model", required=True, metavar="NAME", help="the slim network name")
    p.add_argument(
        "--num-classes",
        type=int,
        metavar="N",
        help="expected class count (an error if the checkpoint's differs)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    p.add_argument("--pt", action="store_true", help="write a torch.save state dict (.pt/.pth)")
    p.add_argument(
        "--drop-background",
        action="store_true",
        help="remove the background class of a 1001-class classifier (1000 outputs, "
        "torchvision's order)",
    )
    p.add_argument(
        "--no-ema",
        action="store_true",
        help="take the raw variables, not their ExponentialMovingAverage shadows",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def add_export(commands: Any, cache: argparse.ArgumentParser) -> None:
    p = add_command(
        commands,
        "export",
        _cmd_export,
        "write torch weights as a TF-slim checkpoint",
        "Write the weights W of the network NAME as the TF-slim checkpoint PREFIX "
        "(zoo.export_tf_checkpoint), for tf.compat.v1.train.Saver / tf_slim. W is a "
        ".safetensors or .pt file of NAME (e.g. from 'slimzoo convert' or a PyTorch "
        "fine-tuning run), or 'pretrained' for the published weights.",
        parents=[cache],
        epilog="example: slimzoo export inception_v3 --weights tuned.safetensors -o out/model.ckpt",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--weights", required=True, metavar="W", help="weights file or 'pretrained'")
    p.add_argument("-o", "--output", required=True, metavar="PREFIX", help="checkpoint prefix")
    p.add_argument("--format", choices=("v2", "v1"), default="v2", help="checkpoint format (v2)")
    p.add_argument("--global-step", type=int, default=0, metavar="N", help="global_step value")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")


def _cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from ..models import load
    from ..weights_file import TORCH_SUFFIXES

    out = Path(args.output)
    is_torch_name = out.name.endswith(TORCH_SUFFIXES)
    if args.pt and not is_torch_name:
        raise UsageError(f"--pt writes a torch.save file: name it *.pt or *.pth, not {out.name}")
    if is_torch_name and not args.pt:
        raise UsageError(
            f"{out.name} names a torch.save file: add --pt for that format, or name the output "
            "*.safetensors"
        )
    check_writable(out, args.overwrite)
    checkpoint = existing(args.checkpoint, "checkpoint")
    if args.num_classes is not None:
        _check_num_classes(checkpoint, args.model, args.num_classes)
    model = load(
        args.model,
        checkpoint=checkpoint,
        num_classes=args.num_classes,
        use_ema=not args.no_ema,
        drop_background=args.drop_background,
    )
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if args.pt:
            torch.save(state, tmp)
        else:
            from safetensors.torch import save_file

            metadata = {
                "format": "pt",
                "slimzoo_model": args.model,
                "num_classes": str(model.num_classes),
                "converted_from": Path(args.checkpoint).name,
            }
            save_file(state, tmp, metadata=metadata)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report = getattr(model, "load_report", None)
    detail = f"; {report}" if report is not None else ""
    print(
        f"wrote {out}: {args.model} with {model.num_classes} classes, {len(state)} tensors, "
        f"{out.stat().st_size / 1e6:.1f} MB{detail}"
    )
    return EXIT_OK


def _check_num_classes(checkpoint: str, network: str, expected: int) -> None:
    """``--num-classes`` is what the user expects the checkpoint to hold: say so if it does not."""
    from architectures._tf import checkpoint_num_classes

    from ..checkpoint import open_checkpoint
    from ..convert import build_skeleton

    stored = checkpoint_num_classes(build_skeleton(network, expected), open_checkpoint(checkpoint))
    if stored is not None and stored != expected:
        raise UsageError(
            f"--num-classes {expected}, but the classifier of {checkpoint} has {stored} classes; "
            "leave --num-classes out to take the checkpoint's"
        )


def _cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_tf_checkpoint

    network = args.name
    existing = _checkpoint_files(Path(args.output), args.format)
    if existing and not args.overwrite:
        names = ", ".join(p.name for p in existing)
        raise FileExistsError(f"a checkpoint exists at {args.output} ({names}): pass --overwrite")
    if args.weights == PRETRAINED:
        from ..pretrained import released_model_info

        network = released_model_info(args.name).architecture
    model = load_model(args)
    written = export_tf_checkpoint(
        model,
        network,
        args.output,
        format=args.format,
        overwrite=args.overwrite,
        global_step=args.global_step,
    )
    print(
        f"wrote {written}: {network} with {model.num_classes} classes as a TF "
        f"{args.format.upper()} checkpoint"
    )
    return EXIT_OK


def _checkpoint_files(prefix: Path, format: str) -> list[Path]:
    """The files of a checkpoint at ``prefix``: the V1 file, or the V2 index and data shards."""
    if format == "v1":
        return [prefix] if prefix.exists() else []
    index = prefix.with_name(prefix.name + ".index")
    shards = sorted(prefix.parent.glob(glob.escape(prefix.name) + ".data-*"))
    return ([index] if index.exists() else []) + shards

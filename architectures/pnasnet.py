"""PNASNet-5 Mobile (224) and Large (331), ported from TF-slim.

Paper: Liu, Zoph, Neumann, Shlens, Hua, Li, Fei-Fei, Yuille, Huang & Murphy, "Progressive Neural
Architecture Search", ECCV 2018, https://arxiv.org/abs/1712.00559.
Slim source: tensorflow/models ``research/slim/nets/nasnet/pnasnet.py`` (``build_pnasnet_mobile``,
``build_pnasnet_large``) with the ``nasnet.py``/``nasnet_utils.py`` of the same 2019-04 snapshot.
Checkpoints: ``pnasnet-5_mobile_2017_12_13`` (224x224) and ``pnasnet-5_large_2017_12_13``
(331x331, top-1 82.9), TF V2 (``model.ckpt.index`` + data): 1001 classes (0 = background),
"inception" preprocessing (x / 255, central crop, resize, (x - 0.5) * 2).

Layout (slim's ``_build_pnasnet_base``): NASNet's ImageNet stem (``conv0`` 3x3/2 VALID +
``conv0_bn``, stem cells ``cell_stem_0/1`` at 1/4 and 1/2 of the filters) but with the one
PNASNet cell everywhere: there are no separate reduction cells, the cells ``cell_<i>`` at
``num_cells / 3`` and ``2 num_cells / 3`` run with stride 2 and double the filters. The aux head
``aux_<k>`` hangs on the cell before the second strided one; ``final_layer`` is relu → global
average → dropout → ``FC``. End points: ``Stem``, ``Cell_<i>``, ``AuxLogits``, ``global_pool``,
``Logits``, ``Predictions``.

Slim quirks reproduced here:

* every cell reads ``prev`` = the output two cells back (``skip_reduction_layer_input=1``),
  brought to the cell's size by a factorized reduction or a ``prev_1x1`` projection; the stem's
  odd filter counts (PNASNet-Mobile: 13, 27) give the reduction's second path the extra filter.
* a ``max_pool_3x3`` on an input with another channel count is followed by ``1x1`` + ``bn_1``,
  and ``none`` in a strided cell becomes relu → strided ``1x1`` → ``bn_1``.
* 'SAME' padding as in TF (asymmetric on even maps at stride 2).
* the aux head is in the checkpoints although slim builds it only for training: built and
  loaded here, returned with ``aux_logits=True`` in training mode. Its ``Conv`` covers the
  pooled map of the default size (4x4 Mobile, 6x6 Large); other sizes raise ``ValueError`` when
  the aux head runs (see :mod:`architectures.nasnet`). PNASNet-5 Large's published checkpoint
  lacks the head's ``aux_bn0``/``aux_bn1`` (tensorflow/models #3822, #8643): it loads without
  the head (an optional head, see :func:`architectures._tf.load_tf_weights`).
* drop path (training only, off by default), scaled by depth and training progress as in slim.
"""

from __future__ import annotations

from ._nasnet_utils import CellNetwork, CellSpec, calc_reduction_layers
from ._registry import register_model

__all__ = ["PNASNet", "pnasnet_large", "pnasnet_mobile"]

# --------------------------------------------------------------------------- the searched cell
# State 0 = x after the cell's 1x1, 1 = prev, 2.. = the combinations (see _nasnet_utils).

PNASNET_CELL = CellSpec(  # PNasNetNormalCell (PNASNet-5)
    combinations=(
        (("separable_5x5_2", 1), ("max_pool_3x3", 1)),
        (("separable_7x7_2", 0), ("max_pool_3x3", 0)),
        (("separable_5x5_2", 0), ("separable_3x3_2", 0)),
        (("separable_3x3_2", 4), ("max_pool_3x3", 0)),
        (("separable_3x3_2", 1), ("none", 0)),
    ),
    concat=(2, 3, 4, 5, 6),
)

# --------------------------------------------------------------------------- the model


class PNASNet(CellNetwork):
    """PNASNet-5 for ImageNet as slim builds it (``mobile_imagenet_config`` /
    ``large_imagenet_config``).

    Args:
        num_cells: cells after the stem, strided ones included (9 Mobile, 12 Large).
        num_conv_filters: filters of the first cells (54 Mobile, 216 Large).
        stem_multiplier: ``conv0`` has ``32 * stem_multiplier`` filters (1 Mobile, 3 Large).
        image_size: default input size; sizes the aux head's ``Conv`` (224 / 331).
        num_classes: classes of ``final_layer/FC`` and the aux ``FC`` (1001 released).
        aux_logits: in training mode return ``(logits, aux_logits)``.
        drop_rate: dropout before ``FC`` in training (slim: keep_prob 0.5).
        drop_path_keep_prob: drop-path keep probability of the last cell in training; 1.0 = off
            (slim trains Large with 0.6, Mobile with 1.0).
    """

    def __init__(
        self,
        *,
        num_cells: int,
        num_conv_filters: int,
        stem_multiplier: float,
        image_size: int,
        num_classes: int = 1001,
        aux_logits: bool = False,
        drop_rate: float = 0.5,
        drop_path_keep_prob: float = 1.0,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            num_conv_filters=num_conv_filters,
            stem_multiplier=stem_multiplier,
            image_size=image_size,
            drop_rate=drop_rate,
            drop_path_keep_prob=drop_path_keep_prob,
            aux_logits=aux_logits,
        )
        self.add_imagenet_stem(PNASNET_CELL)  # nasnet._imagenet_stem with the PNASNet cell
        reduction_indices = calc_reduction_layers(num_cells, 2)
        aux_cell = reduction_indices[1] - 1
        scaling = 1.0
        for i in range(num_cells):
            strided = i in reduction_indices
            if strided:
                scaling *= 2
            self.add_cell(
                f"cell_{i}",
                PNASNET_CELL,
                filter_size=self.filters(scaling),
                stride=2 if strided else 1,
                end_point=f"Cell_{i}",
            )
            if i == aux_cell:
                self.add_aux_head(f"cell_{i}")
        self.add_final_layer()


# --------------------------------------------------------------------------- TF-name mapping
# Nothing family-specific: as for NASNet (module names are the TF scopes; the shared modules in
# _nasnet_utils map ``1x1`` and their scope-less wrappers with ``tf_scopes``).

# --------------------------------------------------------------------------- constructors


@register_model
def pnasnet_mobile(**kwargs) -> PNASNet:
    """PNASNet-5 Mobile, 224x224, 1001 classes."""
    config = dict(num_cells=9, num_conv_filters=54, stem_multiplier=1.0)
    return PNASNet(**config, image_size=224, **kwargs)


@register_model
def pnasnet_large(**kwargs) -> PNASNet:
    """PNASNet-5 Large, 331x331, 1001 classes."""
    config = dict(num_cells=12, num_conv_filters=216, stem_multiplier=3.0)
    return PNASNet(**config, image_size=331, **kwargs)

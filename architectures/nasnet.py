"""NASNet-A Mobile (224) and Large (331), ported from TF-slim.

Paper: Zoph, Vasudevan, Shlens & Le, "Learning Transferable Architectures for Scalable Image
Recognition", CVPR 2018, https://arxiv.org/abs/1707.07012.
Slim source: tensorflow/models ``research/slim/nets/nasnet/nasnet.py`` (``build_nasnet_mobile``,
``build_nasnet_large``) and ``nasnet_utils.py``, 2017-11 snapshot.
Checkpoints: ``nasnet-a_mobile_04_10_2017`` (224x224) and ``nasnet-a_large_04_10_2017``
(331x331, top-1 82.7), TF V2 (``model.ckpt.index`` + data): 1001 classes (0 = background),
"inception" preprocessing (x / 255, central crop, resize, (x - 0.5) * 2).

Layout (slim's ``_build_nasnet_base``): ``conv0`` 3x3/2 VALID + ``conv0_bn`` (no activation),
two stride-2 stem cells ``cell_stem_0/1`` (reduction cells at 1/4 and 1/2 of the filters), then
``num_cells`` normal cells ``cell_<i>`` with a stride-2 ``reduction_cell_<j>`` inserted before
cells ``num_cells / 3`` and ``2 num_cells / 3``, each doubling the filters; the aux head
``aux_<k>`` hangs on the last cell before the second reduction; ``final_layer`` is relu →
global average → dropout → ``FC``.

Slim quirks reproduced here:

* every cell reads the previous output and the one before (``prev``); ``prev`` is brought to
  the cell's size by a factorized reduction (two 1x1 convs on the even and odd pixel grids) or
  a ``prev_1x1`` projection. NASNet-Large feeds the first cell after a reduction cell with the
  output from *before* the reduction cell's input (``skip_reduction_layer_input=1``); Mobile with
  the reduction cell's input.
* 'SAME' padding everywhere except ``conv0``: asymmetric (bottom/right) for the stride-2 ops on
  even maps, average pools count only real pixels.
* the released checkpoints hold the training-time aux head although slim builds it only for
  ``is_training=True``; it is built and loaded here and returned with ``aux_logits=True`` in
  training mode. Its ``Conv`` kernel covers the whole 5x5/3-pooled map of the default size
  (4x4 for Mobile, 6x6 for Large): it accepts inputs whose stride-16 map is 14..16 (Mobile,
  e.g. 211..258) resp. 20..22 (Large, 307..354) pixels and raises ``ValueError`` otherwise.
  Some copies of NASNet-A Large's checkpoint lack the head's ``aux_bn0``/``aux_bn1``
  (tensorflow/models #2648): it then loads without the head (an optional head, see
  :func:`architectures._tf.load_tf_weights`); its ``FC`` is read as ``FC`` or, as in the
  2017-11 re-upload, ``fully_connected``.
* drop path (training only, off by default): slim's keep probability scaled by depth and by
  training progress (:meth:`~architectures._nasnet_utils.CellNetwork.set_drop_path_progress`).
"""

from __future__ import annotations

from ._nasnet_utils import CellNetwork, CellSpec, calc_reduction_layers
from ._registry import register_model

__all__ = ["NASNet", "nasnet_large", "nasnet_mobile"]

# --------------------------------------------------------------------------- the searched cells
# State 0 = x after the cell's 1x1, 1 = prev, 2.. = the combinations (see _nasnet_utils).

NORMAL_CELL = CellSpec(  # NasNetANormalCell
    combinations=(
        (("separable_5x5_2", 0), ("separable_3x3_2", 1)),
        (("separable_5x5_2", 1), ("separable_3x3_2", 1)),
        (("avg_pool_3x3", 0), ("none", 1)),
        (("avg_pool_3x3", 1), ("avg_pool_3x3", 1)),
        (("separable_3x3_2", 0), ("none", 0)),
    ),
    concat=(1, 2, 3, 4, 5, 6),
)

REDUCTION_CELL = CellSpec(  # NasNetAReductionCell, also the two stem cells
    combinations=(
        (("separable_5x5_2", 0), ("separable_7x7_2", 1)),
        (("max_pool_3x3", 0), ("separable_7x7_2", 1)),
        (("avg_pool_3x3", 0), ("separable_5x5_2", 1)),
        (("none", 3), ("avg_pool_3x3", 2)),
        (("separable_3x3_2", 2), ("max_pool_3x3", 0)),
    ),
    concat=(3, 4, 5, 6),
)

# --------------------------------------------------------------------------- the model


class NASNet(CellNetwork):
    """NASNet-A for ImageNet as slim builds it (``mobile_imagenet_config`` /
    ``large_imagenet_config``).

    Args:
        num_cells: normal cells (12 Mobile, 18 Large).
        num_conv_filters: filters of the first normal cells (44 Mobile, 168 Large).
        stem_multiplier: ``conv0`` has ``32 * stem_multiplier`` filters (1 Mobile, 3 Large).
        skip_reduction_layer_input: see the module docstring (0 Mobile, 1 Large).
        image_size: default input size; sizes the aux head's ``Conv`` (224 / 331).
        num_classes: classes of ``final_layer/FC`` and the aux ``FC`` (1001 released).
        aux_logits: in training mode return ``(logits, aux_logits)``.
        drop_rate: dropout before ``FC`` in training (slim: keep_prob 0.5).
        drop_path_keep_prob: drop-path keep probability of the last cell in training; 1.0 = off
            (slim trains Large with 0.7, Mobile with 1.0).
    """

    def __init__(
        self,
        *,
        num_cells: int,
        num_conv_filters: int,
        stem_multiplier: float,
        skip_reduction_layer_input: bool,
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
        self.add_imagenet_stem(REDUCTION_CELL)  # _imagenet_stem: two reduction cells
        reduction_indices = calc_reduction_layers(num_cells, 2)
        aux_cell = reduction_indices[1] - 1
        scaling = 1.0
        for i in range(num_cells):
            prev_offset = 2
            if i in reduction_indices:
                scaling *= 2
                j = reduction_indices.index(i)
                self.add_cell(
                    f"reduction_cell_{j}",
                    REDUCTION_CELL,
                    filter_size=self.filters(scaling),
                    stride=2,
                    end_point=f"Reduction_Cell_{j}",
                )
                # Large: prev = the output from before the reduction cell's input
                prev_offset = 3 if skip_reduction_layer_input else 2
            self.add_cell(
                f"cell_{i}",
                NORMAL_CELL,
                filter_size=self.filters(scaling),
                stride=1,
                prev_offset=prev_offset,
                end_point=f"Cell_{i}",
            )
            if i == aux_cell:
                self.add_aux_head(f"cell_{i}")
        self.add_final_layer()


# --------------------------------------------------------------------------- TF-name mapping
# Nothing family-specific: module names are the TF scopes (``cell_0.comb_iter_0.left.
# separable_5x5_1.depthwise.weight`` → ``cell_0/comb_iter_0/left/separable_5x5_1/
# depthwise_weights``); the shared modules map ``1x1`` and the scope-less wrappers with
# ``tf_scopes`` (see _nasnet_utils), ``final_layer/FC`` is an ``nn.Linear`` ([in, out] → FC).

# --------------------------------------------------------------------------- constructors


@register_model
def nasnet_mobile(**kwargs) -> NASNet:
    """NASNet-A Mobile, 224x224, 1001 classes."""
    config = dict(num_cells=12, num_conv_filters=44, stem_multiplier=1.0)
    return NASNet(**config, skip_reduction_layer_input=False, image_size=224, **kwargs)


@register_model
def nasnet_large(**kwargs) -> NASNet:
    """NASNet-A Large, 331x331, 1001 classes."""
    config = dict(num_cells=18, num_conv_filters=168, stem_multiplier=3.0)
    return NASNet(**config, skip_reduction_layer_input=True, image_size=331, **kwargs)

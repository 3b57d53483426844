"""``EMOSSDHead``: mmdet's ``SSDHead`` with the mmdet 3.3.0 inference bug worked around.

In mmdet 3.3.0 ``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls``, which
``SSDHead`` never sets (its loss is computed inline), so the first val/test step of any
SSD / SSDLite model raises ``AttributeError: 'SSDHead' object has no attribute
'loss_cls'`` (mmdet issues 11063, 11305, 11780; fix PR 11524 unmerged). This subclass only
adds ``loss_cls = None``: same parameters, same state_dict keys, same losses and outputs,
so checkpoints move freely between ``SSDHead`` and ``EMOSSDHead``.

Registered under a new name in mmengine's root ``MODELS`` registry, where the
``EMOSSDHead`` look-up of any scope (mmdet's included) finds it and, on first use, imports
this module (:mod:`emo.registry`); mmdet's own ``SSDHead`` is left untouched. Without
mmdet installed nothing is registered and ``import emo`` works.
"""
from mmengine.registry import MODELS

try:
    from mmdet.models.dense_heads import SSDHead
except ImportError:  # mmdet is optional: classification / segmentation only
    SSDHead = None

__all__ = []

if SSDHead is not None:

    @MODELS.register_module()
    class EMOSSDHead(SSDHead):
        """``SSDHead`` that can predict (see the module docstring); use it as
        ``bbox_head=dict(type='EMOSSDHead', ...)`` with ``SSDHead``'s arguments."""

        # Read by BaseDenseHead._predict_by_feat_single (custom_cls_channels check);
        # SSD scores are a plain softmax over num_classes + 1 channels.
        loss_cls = None

    __all__.append('EMOSSDHead')

"""Core ML: an EMO classifier as an ``.mlpackage`` (ML program) that takes an image.

coremltools converts on Linux; running the package (``MLModel.predict``) needs macOS,
and was not done here: the tests check the conversion and the package's interface
(inputs, outputs, class labels) by loading its spec.

The config's normalisation is part of the package. ``ct.ImageType`` applies one scale
to every channel (``scale * pixel + bias[c]``), which cannot express mmpretrain's
per-channel std, so :class:`NormalizedClassifier` does ``(x - mean) / std`` as its first
(elementwise) ops on the 0-255 RGB image, and the image input has scale 1 and no bias.
The outputs are the class probabilities (softmax of the logits, as mmpretrain's
``ClsHead.predict``) and, through ``ct.ClassifierConfig``, the top class label.
"""
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .program import export_program

__all__ = ['NormalizedClassifier', 'export_coreml']


class NormalizedClassifier(nn.Module):
    """0-255 RGB image (B, 3, H, W) -> class probabilities (B, num_classes):
    ``softmax(model((x - mean) / std, mode='tensor'))`` for an mmpretrain classifier."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        return torch.softmax(self.model((x - self.mean) / self.std, mode='tensor'), dim=1)


def _preprocessor_stats(model: nn.Module):
    """(mean, std, to_rgb) of an mmpretrain ``ClsDataPreprocessor``."""
    pre = model.data_preprocessor
    if not getattr(pre, '_enable_normalize', False):
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), bool(getattr(pre, 'to_rgb', False))
    mean = [float(v) for v in pre.mean.flatten()]
    std = [float(v) for v in pre.std.flatten()]
    return mean, std, bool(getattr(pre, 'to_rgb', False))


def _without_aliases(program):
    """``program`` with its ``aten.alias`` nodes (identities, e.g. of eval-mode
    dropout) bypassed: coremltools 9's torch.export frontend has no converter for them
    ("Unsupported fx node alias"), and its TorchScript frontend fails on EMO's shape
    arithmetic."""
    graph = program.graph_module.graph
    for node in list(graph.nodes):
        if node.op == 'call_function' and node.target == torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    program.graph_module.recompile()
    return program


def export_coreml(model: nn.Module,
                  path: str,
                  shape: Tuple[int, int],
                  classes: Optional[Sequence[str]] = None,
                  metadata: Optional[dict] = None) -> str:
    """Convert the mmpretrain classifier ``model`` (eval / deploy form; changed in place
    by :func:`prepare_for_export`) to the ML program ``path`` (``.mlpackage``): input
    ``image`` (H x W = ``shape``, 0-255), outputs ``classLabel_probs`` (class ->
    probability) and ``classLabel`` (the top class). ``classes`` default to ``class_0 ...``;
    ``metadata`` strings go to the package's user-defined metadata. Returns ``path``.

    The image is RGB when the config converts BGR to RGB (``to_rgb=True``, the usual
    mmpretrain setting for images loaded by OpenCV); otherwise the package takes BGR."""
    import coremltools as ct

    if not str(path).endswith('.mlpackage'):
        raise ValueError(f'{path}: a Core ML ML program is saved as a .mlpackage')
    mean, std, to_rgb = _preprocessor_stats(model)
    wrapper = NormalizedClassifier(model, mean, std)
    num_classes = int(model.head.num_classes)
    classes = list(classes) if classes else [f'class_{i}' for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f'{len(classes)} class names for a {num_classes}-class model')
    h, w = (int(s) for s in shape)
    program = _without_aliases(
        export_program(wrapper, shape, dynamic_batch=False).run_decompositions({}))
    image = ct.ImageType(name='image', shape=(1, 3, h, w), scale=1.0,
                         bias=[0.0, 0.0, 0.0],
                         color_layout=ct.colorlayout.RGB if to_rgb else ct.colorlayout.BGR)
    mlmodel = ct.convert(program, inputs=[image], convert_to='mlprogram',
                         classifier_config=ct.ClassifierConfig(classes),
                         compute_precision=ct.precision.FLOAT32,
                         minimum_deployment_target=ct.target.iOS16)
    mlmodel.short_description = 'EMO image classifier (emo, OpenMMLab 2.0)'
    for key, value in (metadata or {}).items():
        mlmodel.user_defined_metadata[str(key)] = str(value)
    mlmodel.save(path)
    if not osp.isdir(path):
        raise RuntimeError(f'coremltools did not write {path}')
    return path

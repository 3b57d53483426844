"""Task wrappers: a built OpenMMLab model as a module (B, 3, H, W) -> tensors, which every
exporter of :mod:`emo.deployment` takes, and the comparison of an exported file's outputs
with the model's.

* :class:`ClassifierExport`  (mmpretrain ``ImageClassifier``) -> logits (B, num_classes);
* :class:`SegmentorExport`   (mmseg ``EncoderDecoder``, whole image) -> logits
  (B, num_classes, H, W) at the input size;
* :class:`DetectorExport`    (mmdet single-stage detectors: SSD, RetinaNet) -> the raw
  head outputs, ``cls_score_i`` (B, A_i * C, H_i, W_i) then ``bbox_pred_i``
  (B, A_i * 4, H_i, W_i) for each level i; NMS stays outside the graph.

What stays outside the exported graph: image loading, resizing and normalisation (the
config's test pipeline and data_preprocessor), softmax (classification), the resize to
the original image and argmax (segmentation), box decoding and NMS (detection). See
:mod:`emo.deployment.inference` for that side. :func:`verify_outputs` compares a file's
outputs with the model's (:func:`reference_outputs`) within the derived float32 bound.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..apis.builder import task_of

__all__ = [
    'ClassifierExport', 'SegmentorExport', 'DetectorExport', 'export_wrapper',
    'AdaptiveAvgPool2dExport', 'dynamic_adaptive_pools', 'reference_outputs',
    'verify_outputs'
]


class _TaskExport(nn.Module):
    """What the task wrappers share: ``dynamic_axes`` for the exporters, from
    ``output_names()`` and ``_output_hw`` (the H, W symbols of an output map, None for
    an output without them)."""

    task = ''
    dynamic_hw = True  # the default of dynamic_axes

    def output_names(self) -> List[str]:
        raise NotImplementedError

    def _output_hw(self, name: str):
        return None

    def dynamic_axes(self, input_name='input', dynamic_hw=None):
        """``{name: {axis: symbol}}`` as ``torch.onnx.export`` takes it: the batch of the
        input and every output, with ``dynamic_hw`` (default: the wrapper's) H and W of
        the input and of every output map."""
        dynamic_hw = self.dynamic_hw if dynamic_hw is None else dynamic_hw
        axes = {input_name: {0: 'batch'}}
        if dynamic_hw:
            axes[input_name].update({2: 'height', 3: 'width'})
        for name in self.output_names():
            axes[name] = {0: 'batch'}
            hw = self._output_hw(name)
            if dynamic_hw and hw:
                axes[name].update({2: hw[0], 3: hw[1]})
        return axes


class ClassifierExport(_TaskExport):
    """mmpretrain ``ImageClassifier``: (B, 3, H, W) -> logits (B, num_classes).

    The normalised image in, the head's ``cls_score`` out (before softmax, which
    mmpretrain's ``ClsHead.predict`` applies)."""

    task = 'classification'

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')

    dynamic_hw = False

    def output_names(self):
        return ['logits']


def _pool_matrix(n, size: int, ref: torch.Tensor):
    """(size, n) averaging matrix of adaptive pooling: row i averages the inputs
    floor(i*n/size) .. ceil((i+1)*n/size) - 1, as ``nn.AdaptiveAvgPool`` does."""
    i = torch.arange(size, device=ref.device)
    start = torch.div(i * n, size, rounding_mode='floor')
    end = torch.div((i + 1) * n + size - 1, size, rounding_mode='floor')
    j = torch.arange(n, device=ref.device)
    mask = ((j[None] >= start[:, None]) & (j[None] < end[:, None])).to(ref.dtype)
    return mask / mask.sum(1, keepdim=True)


class AdaptiveAvgPool2dExport(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as ``P_h @ x @ P_w^T`` with averaging matrices built from
    the input size: (B, C, H, W) -> (B, C, h, w), same values.

    The ONNX exporter writes ``adaptive_avg_pool2d`` only for a known input size (or a
    1x1 output), which fixes H and W of the graph; this form keeps them dynamic."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = ((output_size, output_size) if isinstance(output_size, int)
                            else tuple(output_size))

    def forward(self, x):
        H, W = x.shape[-2:]
        oh, ow = (H if s is None else s for s in self.output_size) if None in \
            self.output_size else self.output_size
        return _pool_matrix(H, oh, x) @ x @ _pool_matrix(W, ow, x).transpose(0, 1)


def dynamic_adaptive_pools(module: nn.Module) -> int:
    """Replace, in place, every ``nn.AdaptiveAvgPool2d`` of ``module`` with a fixed output
    size other than 1x1 (PSPNet's pyramid pooling) by :class:`AdaptiveAvgPool2dExport`;
    returns how many were replaced."""
    count = 0
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.AdaptiveAvgPool2d):
            size = child.output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            if size == (1, 1) or None in size:
                continue
            parent = module.get_submodule(name.rsplit('.', 1)[0]) if '.' in name else module
            setattr(parent, name.rsplit('.', 1)[-1], AdaptiveAvgPool2dExport(size))
            count += 1
    return count


class SegmentorExport(_TaskExport):
    """mmseg ``EncoderDecoder`` in whole-image mode: (B, 3, H, W) -> logits (B, C, H, W).

    Backbone (+ neck) -> decode head -> bilinear resize to the input size with the
    head's ``align_corners``, as ``decode_head.predict`` does. The auxiliary head is not
    used. The label map is ``logits.argmax(1)`` (after resizing to the original image,
    as ``EncoderDecoder.postprocess_result`` does). Adaptive average pools with an output
    other than 1x1 (PSPNet) are replaced in ``model``, in place, by
    :class:`AdaptiveAvgPool2dExport` (same values), which keeps H and W dynamic
    (``dynamic_pools=False`` keeps them: then export with a static H, W)."""

    task = 'segmentation'

    def __init__(self, model: nn.Module, dynamic_pools: bool = True):
        super().__init__()
        self.model = model
        if dynamic_pools:
            dynamic_adaptive_pools(model)

    def forward(self, x):
        logits = self.model.decode_head.forward(self.model.extract_feat(x))
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=self.model.decode_head.align_corners)

    def output_names(self):
        return ['seg_logits']

    def _output_hw(self, name):
        return 'height', 'width'  # the input's size


class DetectorExport(_TaskExport):
    """mmdet single-stage detector: (B, 3, H, W) -> ``cls_score_0..L-1`` (B, A*C, H_i,
    W_i), ``bbox_pred_0..L-1`` (B, A*4, H_i, W_i): the raw outputs of ``bbox_head``,
    before anchors, box decoding and NMS (``bbox_head.predict_by_feat`` does those)."""

    task = 'detection'

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_levels = len(model.bbox_head.prior_generator.strides)

    def forward(self, x):
        cls_scores, bbox_preds = self.model(x, mode='tensor')[:2]
        return tuple(cls_scores) + tuple(bbox_preds)

    def output_names(self):
        return ([f'cls_score_{i}' for i in range(self.num_levels)] +
                [f'bbox_pred_{i}' for i in range(self.num_levels)])

    def _output_hw(self, name):
        level = name.rsplit('_', 1)[1]
        return f'height_{level}', f'width_{level}'


@torch.no_grad()
def reference_outputs(model: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """What the PyTorch model computes for the exported graph's input ``x`` (B, 3, H, W),
    through the libraries' own calls, in the wrappers' output order: the classifier's
    ``mode='tensor'`` logits, the segmentor's ``encode_decode`` (whole-image logits at the
    input size), the detector's ``mode='tensor'`` head outputs (all cls_scores, then all
    bbox_preds)."""
    task = task_of(model)
    if task == 'segmentation':
        metas = [dict(img_shape=tuple(x.shape[2:]), pad_shape=tuple(x.shape[2:]))] * len(x)
        return [model.encode_decode(x, metas)]
    out = model(x, mode='tensor')
    if task == 'classification':
        return [out]
    return list(out[0]) + list(out[1])


def verify_outputs(model: nn.Module, outputs: Sequence,
                   x: torch.Tensor) -> Tuple[float, float, int]:
    """Compare an exported file's ``outputs`` for the input ``x`` with what ``model``
    computes (:func:`reference_outputs`; e.g. the training form, before
    re-parameterization): each output within the derived float32 bound of
    :mod:`emo.utils.numerics`, ``TAIL * EPS32 * sqrt(n) * max|output|``, ``n`` counted on
    the model's run at batch 1. Returns ``(max |difference|, bound, n)`` of the output
    nearest to its bound; the caller decides (``difference > bound``: the file does not
    compute the model's function)."""
    from ..utils.numerics import accumulation_length, float32_bound
    refs = reference_outputs(model, x)
    if len(outputs) != len(refs):
        raise ValueError(f'{len(outputs)} outputs, the model has {len(refs)}')
    n = accumulation_length(reference_outputs, model, x[:1])
    worst = (0.0, 1.0)
    for out, ref in zip(outputs, refs):
        out = torch.as_tensor(out)
        if out.shape != ref.shape:
            raise ValueError(f'output of shape {tuple(out.shape)}, the model gives '
                             f'{tuple(ref.shape)}')
        diff = (out.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
        bound = float32_bound(ref, n)
        if diff / bound >= worst[0] / worst[1]:
            worst = diff, bound
    return worst[0], worst[1], n


def export_wrapper(model: nn.Module) -> nn.Module:
    """The task wrapper (:class:`ClassifierExport`, :class:`SegmentorExport` or
    :class:`DetectorExport`) of a built model, in eval mode."""
    cls = dict(classification=ClassifierExport, segmentation=SegmentorExport,
               detection=DetectorExport)[task_of(model)]
    return cls(model).eval()

"""ONNX export and ONNX Runtime sessions for EMO models of every task.

``export_onnx`` writes any ``nn.Module`` that maps an image batch (B, 3, H, W) to tensors;
the task wrappers turn a built OpenMMLab model into such a module:

* :class:`ClassifierExport`  (mmpretrain ``ImageClassifier``) -> logits (B, num_classes);
* :class:`SegmentorExport`   (mmseg ``EncoderDecoder``, whole image) -> logits
  (B, num_classes, H, W) at the input size;
* :class:`DetectorExport`    (mmdet single-stage detectors: SSD, RetinaNet) -> the raw
  head outputs, ``cls_score_i`` (B, A_i * C, H_i, W_i) then ``bbox_pred_i``
  (B, A_i * 4, H_i, W_i) for each level i; NMS stays outside the graph.

What stays outside ONNX: image loading, resizing and normalisation (the config's test
pipeline and data_preprocessor), softmax (classification), the resize to the original
image and argmax (segmentation), box decoding and NMS (detection). See
:mod:`emo.deployment.inference` for that side.

Two exporters: PyTorch's ``torch.export``-based one (``torch.onnx.export(...,
dynamo=True)``, opset 18), the default wherever only the batch axis is dynamic (for EMO
it cannot keep H and W dynamic: see :mod:`emo.deployment.program`); and the TorchScript
one (``dynamo=False``, the default for dynamic H and W), which records the shape
arithmetic as graph ops, so H and W stay dynamic (EMO pads its maps
to whole attention windows without a branch on the size, so a graph traced at any size
runs at every other).
"""
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..apis.builder import task_of
from .program import batch_dim

__all__ = [
    'export_onnx', 'ort_session', 'ClassifierExport', 'SegmentorExport', 'DetectorExport',
    'export_wrapper', 'read_metadata', 'AdaptiveAvgPool2dExport', 'dynamic_adaptive_pools',
    'reference_outputs'
]


def export_onnx(module: nn.Module,
                path: str,
                inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
                input_names: Sequence[str] = ('input', ),
                output_names: Optional[Sequence[str]] = None,
                dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None,
                opset_version: Optional[int] = None,
                metadata: Optional[Dict[str, str]] = None,
                dynamo: Optional[bool] = None) -> str:
    """Export ``module`` (put in eval mode) to ``path`` and check it with ``onnx.checker``.

    Args:
        module: maps ``inputs`` (e.g. one (B, 3, H, W) tensor) to a tensor or a tuple /
            list of tensors (nested lists are flattened in order).
        path: the ``.onnx`` file to write (folders are created).
        inputs: example input(s) the graph is traced with.
        input_names / output_names: graph input / output names.
        dynamic_axes: ``{name: {axis: 'symbol'}}`` as ``torch.onnx.export`` takes it,
            e.g. ``{'input': {0: 'batch', 2: 'height', 3: 'width'}}``.
        opset_version: ONNX opset (default 18 with ``dynamo``, 17 without).
        metadata: strings stored in the model's ``metadata_props`` (read back with
            :func:`read_metadata`).
        dynamo: True: the ``torch.export``-based exporter (``torch.onnx.export(...,
            dynamo=True)``, needs ``onnxscript``); False: the TorchScript one; None
            (default): dynamo unless ``dynamic_axes`` frees an axis other than the batch
            (for EMO, torch.export cannot keep H and W dynamic: see
            :mod:`emo.deployment.program`).

    Returns:
        str: ``path``.
    """
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    module.eval()  # the exporter restores the wrapper's mode recursively: set it here
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if dynamo is None:
        dynamo = not any(set(axes) - {0} for axes in (dynamic_axes or {}).values())
    if dynamo:
        _export_dynamo(module, path, tuple(inputs), input_names, output_names,
                       dynamic_axes or {}, opset_version or 18)
    else:
        with warnings.catch_warnings(), torch.no_grad():
            # TracerWarnings on shape arithmetic and the legacy-exporter notice
            warnings.simplefilter('ignore')
            torch.onnx.export(
                module, tuple(inputs), path, dynamo=False, input_names=list(input_names),
                output_names=None if output_names is None else list(output_names),
                dynamic_axes=dynamic_axes, opset_version=opset_version or 17,
                do_constant_folding=True)
    import onnx
    if metadata:
        model = onnx.load(path)
        for key, value in metadata.items():
            model.metadata_props.add(key=str(key), value=str(value))
        onnx.save(model, path)
    onnx.checker.check_model(path, full_check=True)
    return path


def _export_dynamo(module, path, inputs, input_names, output_names, dynamic_axes,
                   opset_version):
    """``torch.onnx.export(..., dynamo=True)`` with the axes of ``dynamic_axes`` as
    ``torch.export.Dim`` (one per symbol name; an example batch of 1 is repeated to 2:
    ``torch.export`` specializes axes of size 1)."""
    dims = {}
    shapes = []
    for name, x in zip(input_names, inputs):
        axes = dynamic_axes.get(name) or {}
        shapes.append({a: dims.setdefault(sym, batch_dim() if a == 0 else
                                          torch.export.Dim(str(sym), min=2))
                       for a, sym in axes.items()} or None)
    inputs = tuple(x.expand(2, *x.shape[1:]).contiguous() if s and 0 in s and
                   x.shape[0] == 1 else x for x, s in zip(inputs, shapes))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            program = torch.onnx.export(
                module, inputs, dynamo=True, input_names=list(input_names),
                output_names=None if output_names is None else list(output_names),
                dynamic_shapes=tuple(shapes) if any(shapes) else None,
                opset_version=opset_version, optimize=True, verbose=False)
    except Exception as e:
        if any(s and set(s) - {0} for s in shapes):
            raise ValueError(
                f'{path}: the dynamo ONNX exporter could not keep H and W dynamic '
                f'({type(e).__name__}); for EMO, torch.export cannot (see '
                'emo.deployment.program). Fix them or use the TorchScript exporter '
                '(dynamo=False, --legacy-exporter)') from e
        raise
    program.save(path)
    import onnx
    graph_inputs = {i.name: i for i in onnx.load(path, load_external_data=False).graph.input}
    for name, axes in zip(input_names, shapes):
        dims = graph_inputs[name].type.tensor_type.shape.dim
        fixed = sorted(a for a in (axes or {}) if not dims[a].dim_param)
        if fixed:
            raise ValueError(
                f'{path}: the dynamo ONNX exporter fixed the axes {fixed} of {name!r} that '
                'were asked to be dynamic (torch.export specialized them; for EMO\'s H and '
                'W it cannot do otherwise, see emo.deployment.program). Fix them or use '
                'the TorchScript exporter (dynamo=False, --legacy-exporter)')


def ort_session(path: str, threads: Optional[int] = None, spinning: bool = True):
    """An ``onnxruntime.InferenceSession`` of ``path`` on CPU, graph optimisation ALL;
    ``threads`` sets the intra-op thread count (None: onnxruntime's default).
    ``spinning=False`` stops idle worker threads from busy-waiting after each run (they
    would take the CPU from whatever runs next in the process, e.g. other models timed
    in turn)."""
    import onnxruntime as ort

    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX model not found: {path}')
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        opts.add_session_config_entry('session.inter_op.allow_spinning', '0')
    return ort.InferenceSession(path, sess_options=opts, providers=['CPUExecutionProvider'])


def read_metadata(path_or_session) -> Dict[str, str]:
    """The ``metadata_props`` written by :func:`export_onnx` (a path or a session)."""
    if isinstance(path_or_session, str):
        import onnx
        model = onnx.load(path_or_session, load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    return dict(path_or_session.get_modelmeta().custom_metadata_map)


class ClassifierExport(nn.Module):
    """mmpretrain ``ImageClassifier``: (B, 3, H, W) -> logits (B, num_classes).

    The normalised image in, the head's ``cls_score`` out (before softmax, which
    mmpretrain's ``ClsHead.predict`` applies)."""

    task = 'classification'

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')

    def output_names(self):
        return ['logits']

    def dynamic_axes(self, input_name='input', dynamic_hw=False):
        axes = {input_name: {0: 'batch'}, 'logits': {0: 'batch'}}
        if dynamic_hw:
            axes[input_name].update({2: 'height', 3: 'width'})
        return axes


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


class SegmentorExport(nn.Module):
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

    def dynamic_axes(self, input_name='input', dynamic_hw=True):
        axes = {input_name: {0: 'batch'}, 'seg_logits': {0: 'batch'}}
        if dynamic_hw:
            axes[input_name].update({2: 'height', 3: 'width'})
            axes['seg_logits'].update({2: 'height', 3: 'width'})
        return axes


class DetectorExport(nn.Module):
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

    def dynamic_axes(self, input_name='input', dynamic_hw=True):
        axes = {input_name: {0: 'batch'}}
        if dynamic_hw:
            axes[input_name].update({2: 'height', 3: 'width'})
        for name in self.output_names():
            level = name.rsplit('_', 1)[1]
            axes[name] = {0: 'batch'}
            if dynamic_hw:
                axes[name].update({2: f'height_{level}', 3: f'width_{level}'})
        return axes


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

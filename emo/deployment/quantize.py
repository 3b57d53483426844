"""Post-training static INT8 quantization of EMO models, and fp32-vs-INT8 evaluation.

Calibration images come from a data set the user names (a split of the config, a folder,
a list file) and go through the config's own test pipeline and ``data_preprocessor``, as
at inference. Each backend quantizes with its own tool:

* ONNX Runtime: ``onnxruntime.quantization.quantize_static``, QDQ format, per-channel
  weights (:func:`quantize_onnxruntime`);
* OpenVINO: NNCF's ``nncf.quantize`` on the converted deploy form (:func:`quantize_openvino`);
* ExecuTorch: torchao's PT2E flow with XNNPACK's quantizer, lowered to XNNPACK
  (:func:`quantize_executorch`).

:func:`compare_on_test_set` runs the fp32 and INT8 forms of a model on the config's test
set with the config's ``test_evaluator`` and the same pre/post-processing.
"""
import collections
import copy
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from emo.apis import build_model_from_cfg, inference_pipeline_cfg

__all__ = [
    'calibration_images', 'calibration_inputs', 'quantize_onnxruntime', 'ort_int8_ops',
    'float_ops_onnx', 'quantize_openvino', 'openvino_model', 'float_ops_openvino',
    'quantize_executorch', 'float_ops_executorch', 'compare_on_test_set', 'IMG_EXTENSIONS'
]

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


def _split_dataset_cfg(cfg: Config, split: str):
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise KeyError(f'{cfg.filename}: no {split}_dataloader.dataset to calibrate on')
    return loader.dataset


def _describe(ds_cfg) -> str:
    while 'dataset' in ds_cfg:
        ds_cfg = ds_cfg.dataset
    parts = [f'{k}={ds_cfg[k]!r}' for k in ('type', 'data_root', 'ann_file', 'data_prefix')
             if ds_cfg.get(k)]
    return ', '.join(parts)


def calibration_images(cfg: Config, data: str = 'val', num: int = 32) -> List[str]:
    """``num`` image files to calibrate on, spread evenly over the named data set.

    Args:
        cfg: the model's config.
        data: ``'train'``, ``'val'`` or ``'test'`` (that dataloader's data set of
            ``cfg``), a folder (its images, recursively, sorted) or a text file (one
            image path a line, relative to the file's folder unless absolute).
        num: how many images (all when the set has fewer); evenly spaced indices, so a
            set sorted by class contributes every class.

    Raises ``ValueError`` naming the data set or file when it yields no image.
    """
    if num < 1:
        raise ValueError(f'the calibration set needs at least one image, got num={num}')
    if data in ('train', 'val', 'test'):
        from mmengine.registry import init_default_scope
        import importlib
        init_default_scope(cfg.default_scope)
        datasets = importlib.import_module(f'{cfg.default_scope}.registry').DATASETS
        ds_cfg = _split_dataset_cfg(cfg, data)
        where = f'the {data} set of {cfg.filename} ({_describe(ds_cfg)})'
        try:
            dataset = datasets.build(copy.deepcopy(ds_cfg))
        except (FileNotFoundError, OSError, RuntimeError) as e:  # mmpretrain: RuntimeError
            raise ValueError(f'the calibration set is empty or unreadable: {where}: '
                             f'{e}') from e
        n = len(dataset)
        paths = [] if n == 0 else [
            dataset.get_data_info(int(i))['img_path']
            for i in np.unique(np.linspace(0, n - 1, min(num, n)).round().astype(int))]
    elif osp.isdir(data):
        where = f'the folder {data}'
        paths = sorted(
            osp.join(root, f) for root, _, files in os.walk(data) for f in files
            if f.lower().endswith(IMG_EXTENSIONS))
        if paths:
            paths = [paths[int(i)] for i in np.unique(
                np.linspace(0, len(paths) - 1, min(num, len(paths))).round().astype(int))]
    elif osp.isfile(data):
        where = f'the list file {data}'
        with open(data) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
        paths = [p if osp.isabs(p) else osp.join(osp.dirname(data), p) for p in lines][:num]
        missing = [p for p in paths if not osp.isfile(p)]
        if missing:
            raise ValueError(f'{where}: {len(missing)} listed images do not exist, e.g. '
                             f'{missing[0]}')
    else:
        raise ValueError(f'calibration data {data!r} does not exist: expected train, '
                         'val, test, a folder of images or a list file')
    if not paths:
        raise ValueError(f'the calibration set is empty: {where} has no images'
                         + (f' (extensions {", ".join(IMG_EXTENSIONS)})'
                            if osp.isdir(data) else ''))
    return paths


@torch.no_grad()
def calibration_inputs(cfg: Config, images: Sequence[str],
                       model: Optional[torch.nn.Module] = None) -> List[torch.Tensor]:
    """Each image through the config's test pipeline (``LoadAnnotations`` dropped) and
    the model's ``data_preprocessor``: a list of normalised (1, 3, H, W) inputs, one per
    image (sizes may differ between images where the pipeline keeps the aspect ratio)."""
    model = build_model_from_cfg(cfg) if model is None else model
    pipeline = Compose(inference_pipeline_cfg(cfg))
    inputs = []
    for path in images:
        data = pseudo_collate([pipeline(dict(img_path=path))])
        inputs.append(model.data_preprocessor(data, False)['inputs'].float())
    return inputs


# ---------------------------------------------------------------- ONNX Runtime
def ort_int8_ops() -> set:
    """ONNX op types that onnxruntime's QDQ quantizer handles and its CPU provider runs
    in INT8 (as ``QLinear*`` / ``QGemm`` kernels or INT8 pass-through of data moves)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    return set(QDQRegistry) | set(QLinearOpsRegistry)


# ops that move or select data: INT8 in, INT8 out without arithmetic
_DATA_MOVES = {'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten', 'Slice', 'Split',
               'Gather', 'Concat', 'Pad', 'MaxPool', 'Identity', 'Shape', 'Constant',
               'Cast', 'Resize', 'DepthToSpace', 'SpaceToDepth', 'Expand', 'Tile'}


def float_ops_onnx(path: str) -> Dict[str, int]:
    """Op types that compute in float in a QDQ ONNX model, with their counts: every
    node with a float output, other than Q/DQ and data moves, that has an input not produced by a
    ``DequantizeLinear`` (constants and shape tensors aside) or an output not consumed
    by a ``QuantizeLinear``."""
    import onnx
    model = onnx.shape_inference.infer_shapes(onnx.load(path, load_external_data=False))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(graph.value_info) + list(graph.output)}
    consts = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    counts = collections.Counter()
    for n in graph.node:
        if n.op_type in ('QuantizeLinear', 'DequantizeLinear') or n.op_type in _DATA_MOVES:
            continue
        if n.op_type.startswith('QLinear') or n.op_type in ('QGemm', 'MatMulInteger',
                                                             'ConvInteger'):
            continue
        if types.get(n.output[0], onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
            continue  # shape arithmetic
        ins = [i for i in n.input if i and i not in consts and
               producer.get(i) is not None and producer[i].op_type != 'Constant']
        dq_in = all(producer[i].op_type == 'DequantizeLinear' for i in ins)
        q_out = all(c.op_type == 'QuantizeLinear' for o in n.output for c in consumers[o])
        if not (dq_in and q_out and ins):
            counts[n.op_type] += 1
    return dict(counts.most_common())


class _Reader:
    """onnxruntime ``CalibrationDataReader`` over a list of (1, 3, H, W) tensors."""

    def __init__(self, name: str, inputs: Iterable[torch.Tensor]):
        self.name, self.inputs = name, list(inputs)
        self.it = iter(self.inputs)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x.numpy().astype(np.float32)}

    def rewind(self):
        self.it = iter(self.inputs)


ORT_TYPES = dict(uint8='QUInt8', int8='QInt8')
ORT_METHODS = dict(minmax='MinMax', entropy='Entropy', percentile='Percentile')
ORT_DEFAULT_OPS = ('Conv', 'MatMul', 'Gemm')


def quantize_onnxruntime(model_fp32: str,
                         out: str,
                         inputs: Sequence[torch.Tensor],
                         calibrate_method: str = 'minmax',
                         activation_type: str = 'uint8',
                         weight_type: str = 'int8',
                         per_channel: bool = True,
                         reduce_range: bool = False,
                         op_types: Optional[Sequence[str]] = ORT_DEFAULT_OPS,
                         exclude_nodes: Sequence[str] = (),
                         fuse: bool = True,
                         work_dir: Optional[str] = None) -> str:
    """Static INT8 QDQ model of the fp32 ONNX file ``model_fp32``, calibrated on ``inputs``.

    Steps: ``quant_pre_process`` (onnx shape inference and the basic graph rewrites
    onnxruntime recommends; its symbolic shape inference is skipped: it fails on EMO's
    shape arithmetic), then with ``fuse`` onnxruntime's extended CPU fusions (x *
    sigmoid(x) -> ``QuickGelu``, ``Gelu``, ``LayerNormalization``, MatMul + scale), so an
    activation kept in float costs one DequantizeLinear/QuantizeLinear pair and not one
    per consumer, then ``quantize_static``.

    Args:
        model_fp32: the fp32 ``.onnx`` (e.g. from :func:`emo.deployment.export_onnx`).
        out: the INT8 ``.onnx`` to write.
        inputs: calibration inputs (1, 3, H, W) (:func:`calibration_inputs`).
        calibrate_method: 'minmax', 'entropy' or 'percentile' (99.999%).
        activation_type / weight_type: 'uint8' or 'int8'. The default U8S8 is the fast
            combination of onnxruntime's x86 kernels (measured here, AVX-512 VNNI: S8S8
            ran 1.8x slower).
        per_channel: one weight scale per output channel.
        reduce_range: 7-bit weights. On CPUs without VNNI (AVX2, plain AVX-512)
            onnxruntime's U8S8 kernels add pairs of u8 x s8 products into int16
            (``vpmaddubsw``), which can saturate with 8-bit weights (onnxruntime's docs);
            with 7-bit weights it cannot, and the model computes the same on every x86
            CPU. Off by default (onnxruntime's default): measured on the demo detector
            with VNNI, 7-bit weights cost 1.9 mAP where 8-bit ones cost 1.0
            (docs/quantization.md); use it for models that must run on CPUs without VNNI.
        op_types: op types to quantize (default Conv, MatMul, Gemm: the others are cheap
            and their INT8 forms cost fidelity; see docs/quantization.md); None: every
            op type onnxruntime can quantize. An op type that onnxruntime cannot run in
            INT8 raises ``ValueError`` naming it.
        exclude_nodes: node names to keep in float.
        fuse: apply the extended fusions before quantizing (the result then needs
            onnxruntime's CPU provider, which has those fused kernels).
        work_dir: where the intermediate models go (default: next to ``out``).

    Returns:
        str: ``out``.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not osp.isfile(model_fp32):
        raise FileNotFoundError(f'ONNX model not found: {model_fp32}')
    if not len(inputs):
        raise ValueError('no calibration inputs')
    for name, value, choices in (('calibrate_method', calibrate_method, ORT_METHODS),
                                 ('activation_type', activation_type, ORT_TYPES),
                                 ('weight_type', weight_type, ORT_TYPES)):
        if value not in choices:
            raise ValueError(f'{name} must be one of {sorted(choices)}, got {value!r}')
    model_ops = collections.Counter(n.op_type for n in onnx.load(
        model_fp32, load_external_data=False).graph.node)
    if op_types is not None:
        unknown = sorted(set(op_types) - ort_int8_ops())
        if unknown:
            raise ValueError(
                f'onnxruntime cannot quantize {", ".join(unknown)} (no INT8 kernel: it '
                f'would run in float between DequantizeLinear and QuantizeLinear); it '
                f'quantizes {", ".join(sorted(ort_int8_ops()))}')
        if not set(op_types) & set(model_ops):
            raise ValueError(f'{model_fp32} has none of the op types to quantize '
                             f'({", ".join(op_types)}); its ops: {dict(model_ops)}')
    work_dir = work_dir or osp.dirname(osp.abspath(out))
    os.makedirs(work_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(out))[0]
    pre = osp.join(work_dir, f'{stem}.pre.onnx')
    quant_pre_process(model_fp32, pre, skip_symbolic_shape=True)
    if fuse:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = pre
        # Conv + activation and MatMul + transpose/scale fusions would hide Conv and
        # MatMul from the quantizer (FusedConv, FusedMatMul): left out
        ort.InferenceSession(pre, opts, providers=['CPUExecutionProvider'],
                             disabled_optimizers=['ConvActivationFusion',
                                                  'MatMulScaleFusion',
                                                  'MatmulTransposeFusion'])
    input_name = onnx.load(pre, load_external_data=False).graph.input[0].name
    quantize_static(
        pre, out, _Reader(input_name, inputs), quant_format=QuantFormat.QDQ,
        op_types_to_quantize=None if op_types is None else list(op_types),
        per_channel=per_channel, reduce_range=reduce_range,
        activation_type=getattr(QuantType, ORT_TYPES[activation_type]),
        weight_type=getattr(QuantType, ORT_TYPES[weight_type]),
        nodes_to_exclude=list(exclude_nodes) or None,
        calibrate_method=getattr(CalibrationMethod, ORT_METHODS[calibrate_method]),
        extra_options=dict(CalibMovingAverage=False))
    os.remove(pre)
    # metadata of the fp32 export (task, classes, ...) is kept for the inferencer
    src = onnx.load(model_fp32, load_external_data=False)
    if src.metadata_props:
        q = onnx.load(out)
        have = {p.key for p in q.metadata_props}
        for p in src.metadata_props:
            if p.key not in have:
                q.metadata_props.add(key=p.key, value=p.value)
        q.metadata_props.add(key='quantization', value='int8 static QDQ (onnxruntime)')
        onnx.save(q, out)
    return out


# ---------------------------------------------------------------- OpenVINO
def quantize_openvino(model_fp32: str,
                      out: str,
                      inputs: Sequence[torch.Tensor],
                      transformer: bool = False,
                      ignored_types: Sequence[str] = (),
                      fast_bias_correction: bool = True,
                      overflow_fix: str = 'enable') -> str:
    """Static INT8 OpenVINO model (``.xml`` + ``.bin``) of ``model_fp32`` (an ``.onnx``
    or OpenVINO ``.xml``), calibrated on ``inputs`` with NNCF's ``nncf.quantize``.

    Args:
        transformer: ``nncf.ModelType.TRANSFORMER``, NNCF's scheme for attention models
            (SmoothQuant on MatMuls, other quantizer placement). Off by default:
            measured on the demo classifier it drops top-1 to chance, where the default
            scheme keeps it (docs/quantization.md).
        ignored_types: OpenVINO op types to keep in float (``nncf.IgnoredScope(types=)``),
            e.g. ``MatMul``; a type the model does not have raises ``ValueError``.
        fast_bias_correction: NNCF's default bias correction (False: the slower full
            one).
        overflow_fix: NNCF's ``OverflowFix``: 'enable' (default here) quantizes every
            weight to 7 bits, so that the u8 x s8 pair sums of CPUs without VNNI
            (``vpmaddubsw`` on AVX2 and plain AVX-512) cannot saturate their int16 and the
            model computes the same on every x86 CPU; 'first_layer' (NNCF's default) does
            so for the first layer only, 'disable' for none. Measured on the demo probe
            (tests/test_deployment/test_quantize.py) with OpenVINO's kernels at AVX2
            (``ONEDNN_MAX_CPU_ISA=AVX2``): NNCF's default raised the INT8 error by half
            and flipped decisions that the 7-bit weights keep; on this VNNI machine the
            7-bit weights cost about 10% more error (docs/quantization.md).

    The model is quantized with the dynamic shapes it was exported with (NNCF's
    statistics fail on EMO's attention reshapes once the shapes are made static).
    """
    import nncf
    import openvino as ov

    if not osp.isfile(model_fp32):
        raise FileNotFoundError(f'model not found: {model_fp32}')
    if not len(inputs):
        raise ValueError('no calibration inputs')
    model = ov.Core().read_model(model_fp32)
    types = collections.Counter(op.get_type_name() for op in model.get_ops())
    missing = sorted(set(ignored_types) - set(types))
    if missing:
        raise ValueError(f'{model_fp32} has no {", ".join(missing)} op to keep in float; '
                         f'its op types: {", ".join(sorted(types))}')
    fixes = dict(enable=nncf.OverflowFix.ENABLE, first_layer=nncf.OverflowFix.FIRST_LAYER,
                 disable=nncf.OverflowFix.DISABLE)
    if overflow_fix not in fixes:
        raise ValueError(f'overflow_fix must be one of {sorted(fixes)}, got {overflow_fix!r}')
    kwargs = dict(model_type=nncf.ModelType.TRANSFORMER) if transformer else {}
    kwargs['advanced_parameters'] = nncf.AdvancedQuantizationParameters(
        overflow_fix=fixes[overflow_fix])
    if ignored_types:
        kwargs['ignored_scope'] = nncf.IgnoredScope(types=list(ignored_types))
    quantized = nncf.quantize(
        model, nncf.Dataset([x.numpy().astype(np.float32) for x in inputs]),
        subset_size=len(inputs), fast_bias_correction=fast_bias_correction, **kwargs)
    quantized.set_rt_info('int8 static (nncf)', ['model_info', 'quantization'])
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    ov.save_model(quantized, out, compress_to_fp16=False)
    return out


def openvino_model(path: str, threads: Optional[int] = None):
    """``path`` compiled for the CPU in float32 precision (INT8 layers stay INT8)."""
    import openvino as ov
    config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    return ov.Core().compile_model(path, 'CPU', config)


def float_ops_openvino(compiled) -> Dict[str, int]:
    """Layer types that compute in float in a compiled OpenVINO model (its runtime
    graph's ``runtimePrecision``), with their counts; data moves, reorders, I/O and
    the FakeQuantize (quantize) layers aside."""
    counts = collections.Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info['layerType'].astype(str)
        prec = info['runtimePrecision'].astype(str)
        if kind in ('Input', 'Output', 'Reorder', 'Const', 'Reshape', 'Transpose',
                    'Concatenation', 'Split', 'Gather', 'StridedSlice', 'ShapeOf', 'Pad',
                    'FakeQuantize'):
            continue
        if prec.lower() in ('f32', 'fp32', 'f16', 'bf16'):
            counts[kind] += 1
    return dict(counts.most_common())


# ---------------------------------------------------------------- ExecuTorch
def _requantize_pads(gm: torch.fx.GraphModule) -> int:
    """Give every zero ``pad`` that reads a dequantized tensor a quantize/dequantize pair
    on its output with the input's parameters; returns how many.

    XNNPACK's quantizer leaves ``pad`` unannotated; the partitioner then hands XNNPACK a
    pad with an INT8 input and a float output, which it refuses when the program loads
    ("Failed to create StaticConstantPad node ... xnn_status_invalid_parameter", EMO's
    window padding). Zero padding of an INT8 tensor is exact (0 is the zero point), so
    the pair changes no value and makes the pad an INT8 -> INT8 data move."""
    qd = torch.ops.quantized_decomposed
    aten = torch.ops.aten
    count = 0
    for node in list(gm.graph.nodes):
        if node.target not in (aten.pad.default, aten.constant_pad_nd.default):
            continue
        src = node.args[0]
        mode = node.args[2] if len(node.args) > 2 and node.target == aten.pad.default \
            else 'constant'
        value = node.args[-1] if len(node.args) > (3 if node.target == aten.pad.default
                                                    else 2) else 0
        if (getattr(src, 'target', None) is not qd.dequantize_per_tensor.default
                or mode != 'constant' or value not in (None, 0, 0.0)):
            continue
        qparams = tuple(src.args[1:])
        with gm.graph.inserting_after(node):
            q = gm.graph.call_function(qd.quantize_per_tensor.default, (node, ) + qparams)
        with gm.graph.inserting_after(q):
            dq = gm.graph.call_function(qd.dequantize_per_tensor.default, (q, ) + qparams)
        node.replace_all_uses_with(dq)
        q.args = (node, ) + qparams
        count += 1
    gm.recompile()
    return count


# ops that move or select data without arithmetic (INT8 in, INT8 out in XNNPACK)
_ET_DATA_MOVES = {'view', 'reshape', '_unsafe_view', 'permute', 'transpose', 't',
                  'squeeze', 'unsqueeze', 'flatten', 'slice', 'split', 'split_with_sizes',
                  'cat', 'clone', 'contiguous', 'expand', 'pad', 'constant_pad_nd',
                  'max_pool2d', 'getitem', 'sym_size', 'select', 'alias', 'dropout',
                  'flatten.using_ints', 'unflatten', 'chunk', 'narrow', 'as_strided',
                  '_guards_fn'}


# activations XNNPACK's quantizer fuses into the preceding convolution / linear
_FUSED_ACTS = {'relu', 'relu_', 'hardtanh', 'hardtanh_'}
_ANCHORS = {'conv2d', 'linear', 'add', 'add_', 'mul', 'mul_'}


def _name(node) -> str:
    return getattr(node.target, '__name__', str(node.target)).split('.')[0]


def _float_ops_pt2e(gm: torch.fx.GraphModule) -> Dict[str, int]:
    """Ops of a converted PT2E graph that compute in float, with their counts: every
    op other than quantize/dequantize and data moves that has an input not produced by
    a dequantize or an output not consumed only by quantizes (the rule of
    :func:`float_ops_onnx`; a convolution, linear, add or mul followed by a ReLU /
    hardtanh and then a quantize is one fused INT8 op)."""
    qd_names = ('quantize_per_tensor', 'dequantize_per_tensor', 'quantize_per_channel',
                'dequantize_per_channel')
    counts = collections.Counter()
    for n in gm.graph.nodes:
        if n.op != 'call_function':
            continue
        name = getattr(n.target, '__name__', str(n.target)).split('.')[0]
        if name in qd_names or name in _ET_DATA_MOVES or name.startswith('sym_'):
            continue
        val = n.meta.get('val')
        if isinstance(val, torch.Tensor) and not val.is_floating_point():
            continue
        ins = [a for a in n.all_input_nodes if a.op == 'call_function']
        if name in _FUSED_ACTS and len(ins) == 1 and _name(ins[0]) in _ANCHORS:
            ins = [a for a in ins[0].all_input_nodes if a.op == 'call_function']
        dq_in = ins and all(_name(a).startswith('dequantize') for a in ins)
        q_out = n.users and all(
            _name(u).startswith('quantize') or (
                name in _ANCHORS and _name(u) in _FUSED_ACTS and u.users
                and all(_name(v).startswith('quantize') for v in u.users))
            for u in n.users)
        if not (dq_in and q_out):
            counts[name] += 1
    return dict(counts.most_common())


def quantize_executorch(module: torch.nn.Module,
                        out: str,
                        inputs: Sequence[torch.Tensor],
                        shape: Sequence[int],
                        metadata: Optional[Dict[str, str]] = None,
                        per_channel: bool = True,
                        max_batch: int = 32,
                        float_types: Optional[Sequence[type]] = None) -> str:
    """Static INT8 ExecuTorch program (``.pte``, XNNPACK delegate) of ``module`` (a task
    wrapper, :func:`emo.deployment.export_wrapper`; changed in place), calibrated on
    ``inputs`` (1, 3, H, W) at H, W = ``shape``.

    torchao's PT2E flow with ExecuTorch's ``XNNPACKQuantizer`` (symmetric INT8 weights,
    per output channel with ``per_channel``; affine INT8 activations; it quantizes
    convolutions, linears, adds, muls, concatenations and average pooling):
    :func:`~emo.deployment.executorch.xnnpack_friendly` and ``torch.export`` (dynamic
    batch up to ``max_batch``; batch 1 fixed for ``max_batch=1``, which lowers in
    about half the time into fewer XNNPACK partitions), ``prepare_pt2e``, a forward
    pass per input, ``convert_pt2e``, zero pads kept INT8 (:func:`_requantize_pads`),
    ``torch.export`` again and :func:`~emo.deployment.executorch.lower_to_xnnpack`.

    ``float_types``: module types kept in float (``XNNPACKQuantizer.set_module_type(t,
    None)``); default the channel LayerNorms (:class:`ChannelLayerNorm`): quantizing
    their mean/variance convolutions cost the demo classifier 3 top-1 points (86.0 vs
    88.0, fp32 89.0; docs/quantization.md).

    Writes ``out`` and ``<out>.json`` (the sidecar :class:`ExecuTorchModel` reads:
    ``metadata``, shape, batch, outputs, plus ``float_ops``, the ops computing in
    float, and ``undelegated_ops``, those outside XNNPACK); returns ``out``.
    """
    import json

    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .executorch import (ChannelLayerNorm, lower_to_xnnpack, undelegated_ops,
                             xnnpack_friendly)
    from .program import batch_dim, export_program

    if not str(out).endswith('.pte'):
        raise ValueError(f'{out}: an ExecuTorch program file ends with .pte')
    if not len(inputs):
        raise ValueError('no calibration inputs')
    shape = tuple(int(s) for s in shape)
    wrong = [tuple(x.shape) for x in inputs if tuple(x.shape[2:]) != shape]
    if wrong:
        raise ValueError(f'calibration inputs must be (1, 3, {shape[0]}, {shape[1]}) (the '
                         f'exported size; ExecuTorch programs have fixed H, W), got '
                         f'{wrong[0]}')
    xnnpack_friendly(module)
    dynamic = max_batch > 1
    program = export_program(module, shape, dynamic_batch=dynamic, max_batch=max_batch)
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=per_channel))
    for t in (ChannelLayerNorm, ) if float_types is None else float_types:
        quantizer.set_module_type(t, None)
    prepared = prepare_pt2e(program.module(), quantizer)
    with torch.no_grad():
        for x in inputs:
            prepared(x.float())
    converted = convert_pt2e(prepared)
    _requantize_pads(converted)
    float_ops = _float_ops_pt2e(converted)
    example = torch.cat([inputs[0].float()] * (2 if dynamic else 1))
    with torch.no_grad():
        program = torch.export.export(
            converted, (example, ),
            dynamic_shapes=({0: batch_dim(max_batch)}, ) if dynamic else None)
    manager = lower_to_xnnpack(program)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'wb') as f:
        manager.write_to_file(f)
    side = dict(metadata or {}, shape=json.dumps(list(shape)),
                max_batch=json.dumps(max_batch),
                num_outputs=json.dumps(len(program.graph_signature.user_outputs)),
                quantization='int8 static PT2E (XNNPACKQuantizer'
                + (', per-channel weights)' if per_channel else ')'),
                float_ops=json.dumps(float_ops),
                undelegated_ops=json.dumps(undelegated_ops(manager)))
    with open(out + '.json', 'w') as f:
        json.dump(side, f, indent=1)
    return out


def float_ops_executorch(path: str) -> Dict[str, int]:
    """The ops of an INT8 ``.pte`` (:func:`quantize_executorch`) that compute in float
    (from its sidecar), with their counts; ops that run outside XNNPACK, in
    ExecuTorch's portable kernels, are added as ``'portable:<op>'``."""
    import json

    from .executorch import read_sidecar
    side = read_sidecar(path)
    if 'float_ops' not in side:
        raise ValueError(f'{path}.json has no float_ops: not written by quantize_executorch')
    ops = json.loads(side['float_ops'])
    for name in json.loads(side.get('undelegated_ops', '[]')):
        if name in ('alloc', 'sym_size.int') or name.startswith('executorch_prim'):
            continue  # memory planning and shape arithmetic
        ops[f'portable:{name}'] = ops.get(f'portable:{name}', 0) + 1
    return ops


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def compare_on_test_set(cfg: Config, inferencers: Dict[str, object],
                        num: Optional[int] = None) -> Dict[str, dict]:
    """Evaluate several runtime forms of one model on the config's test set.

    Every image is loaded and pre-processed once (the test dataloader and the
    ``data_preprocessor``); each inferencer (an object with ``model``, ``forward(inputs)
    -> list of tensors`` and ``postprocess(outputs, data_samples)``, e.g.
    :class:`emo.deployment.ONNXInferencer`) runs it and its predictions go to its own
    copy of the config's ``test_evaluator``.

    Args:
        cfg: the config.
        inferencers: ``{name: inferencer}``.
        num: evaluate the first ``num`` batches only (testing; COCO's mAP counts the
            images left out as missed).

    Returns:
        ``{name: metrics}``; for classification every entry but the first also has
        ``'agreement/top1'``: the percentage of test images where its top-1 class is the
        first inferencer's.
    """
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    init_default_scope(cfg.default_scope)
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg)
    first = next(iter(inferencers.values()))
    evaluators, labels = {}, collections.defaultdict(list)
    for name in inferencers:
        evaluators[name] = Evaluator(copy.deepcopy(cfg.test_evaluator))
        evaluators[name].dataset_meta = loader.dataset.metainfo
    seen = 0
    for i, data in enumerate(loader):
        if num is not None and i >= num:
            break
        data = first.model.data_preprocessor(data, False)
        seen += len(data['data_samples'])
        for name, inf in inferencers.items():
            samples = inf.postprocess(inf.forward(data['inputs']),
                                      copy.deepcopy(data['data_samples']))
            evaluators[name].process(samples, data)
            if hasattr(samples[0], 'pred_label'):
                labels[name].extend(int(s.pred_label[0]) for s in samples)
    if not seen:
        raise ValueError(f'the test set of {cfg.filename} is empty')
    results = {name: {k: float(v) if isinstance(v, (int, float, np.number)) else v
                      for k, v in ev.evaluate(seen).items()}
               for name, ev in evaluators.items()}
    names = list(inferencers)
    if labels:
        ref = np.array(labels[names[0]])
        for name in names[1:]:
            results[name]['agreement/top1'] = float(
                100.0 * (np.array(labels[name]) == ref).mean())
    return results

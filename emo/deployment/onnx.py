"""The ``onnxruntime`` backend: ONNX export, ONNX Runtime sessions and runtime model, and
static INT8 quantization with ``onnxruntime.quantization``.

``export_onnx`` writes any ``nn.Module`` that maps an image batch (B, 3, H, W) to tensors
(the task wrappers of :mod:`emo.deployment.wrappers` turn a built OpenMMLab model into
one); :class:`ORTModel` runs the file (:class:`~emo.deployment.registry.RuntimeModel`);
:func:`quantize_onnxruntime` writes its QDQ INT8 form.

Two exporters: PyTorch's ``torch.export``-based one (``torch.onnx.export(...,
dynamo=True)``, opset 18), the default wherever only the batch axis is dynamic (for EMO
it cannot keep H and W dynamic: see :mod:`emo.deployment.program`); and the TorchScript
one (``dynamo=False``, the default for dynamic H and W), which records the shape
arithmetic as graph ops, so H and W stay dynamic (EMO pads its maps
to whole attention windows without a branch on the size, so a graph traced at any size
runs at every other).
"""
import collections
import os
import os.path as osp
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from .program import batch_dim
from .registry import ExportSpec, ModelFileError, RuntimeModel
# the task wrappers lived here before emo.deployment.wrappers: still importable from here
from .wrappers import (AdaptiveAvgPool2dExport, ClassifierExport,  # noqa: F401
                       DetectorExport, SegmentorExport, dynamic_adaptive_pools,
                       export_wrapper, reference_outputs, verify_outputs)

__all__ = [
    'export_onnx', 'ort_session', 'read_metadata', 'ORTModel', 'export_file',
    'check_onnx_file', 'quantize_onnxruntime', 'quantize_file', 'ort_int8_ops',
    'float_ops_onnx'
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


def check_onnx_file(path: str, error: Exception = None):
    """A :class:`~emo.deployment.registry.ModelFileError` naming ``path`` and what is
    wrong with it when it is not a whole ONNX model (``error``: what the runtime said);
    returns None for a readable model."""
    import onnx
    if osp.isdir(path):
        raise ModelFileError(path, 'is a folder, not an ONNX model file')
    size = osp.getsize(path)
    if size == 0:
        raise ModelFileError(path, 'is empty (0 bytes), not an ONNX model; export it again')
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelFileError(
            path, f'is not an ONNX model, or a truncated one ({size} bytes; the protobuf '
            f'does not parse: {type(e).__name__}); export it again') from None
    if not model.graph.node:
        raise ModelFileError(path, f'holds no ONNX graph ({size} bytes): not an ONNX '
                             'model file, or a truncated one; export it again')
    if error is not None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ''
        raise ModelFileError(path, f'ONNX Runtime cannot load it ({type(error).__name__}: '
                             f'{first}); export it again')


def ort_session(path: str, threads: Optional[int] = None, spinning: bool = True):
    """An ``onnxruntime.InferenceSession`` of ``path`` on CPU, graph optimisation ALL;
    ``threads`` sets the intra-op thread count (None: onnxruntime's default).
    ``spinning=False`` stops idle worker threads from busy-waiting after each run (they
    would take the CPU from whatever runs next in the process, e.g. other models timed
    in turn). A file that is not a whole ONNX model is a
    :class:`~emo.deployment.registry.ModelFileError` (:func:`check_onnx_file`)."""
    import onnxruntime as ort

    if not osp.isfile(path):
        if osp.isdir(path):
            check_onnx_file(path)
        raise FileNotFoundError(f'ONNX model not found: {path}')
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        opts.add_session_config_entry('session.inter_op.allow_spinning', '0')
    try:
        return ort.InferenceSession(path, sess_options=opts,
                                    providers=['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph
        check_onnx_file(path, e)
        raise


def read_metadata(path_or_session) -> Dict[str, str]:
    """The ``metadata_props`` written by :func:`export_onnx` (a path or a session)."""
    if isinstance(path_or_session, str):
        import onnx
        model = onnx.load(path_or_session, load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    return dict(path_or_session.get_modelmeta().custom_metadata_map)


class ORTModel(RuntimeModel):
    """An ONNX file in an onnxruntime session (:func:`ort_session`); calling it with a
    float32 batch (B, 3, H, W) returns the outputs as tensors. The runtime model of the
    ``onnxruntime`` backend (:class:`~emo.deployment.registry.RuntimeModel`)."""

    backend = 'onnxruntime'

    def __init__(self, path: str, threads: Optional[int] = None, spinning: bool = True):
        self.path, self.threads = path, threads
        self.session = ort_session(path, threads, spinning=spinning)
        self.metadata = read_metadata(self.session)
        self.output_names = [o.name for o in self.session.get_outputs()]
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        dims = list(graph_input.shape)
        fixed = len(dims) == 4 and all(isinstance(d, int) for d in dims[2:])
        self.input_hw = tuple(dims[2:]) if fixed else None
        self.max_batch = None
        self.fixed_batch = dims[0] if dims and isinstance(dims[0], int) else None

    def check_input(self, x: torch.Tensor):
        super().check_input(x)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            from .registry import InputSizeError
            raise InputSizeError(f'{self.path} takes batches of exactly '
                                 f'{self.fixed_batch} images (a fixed batch axis), got '
                                 f'{x.shape[0]}')

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        self.check_input(x)
        outs = self.session.run(None, {self.input_name: x.numpy().astype(np.float32)})
        return [torch.from_numpy(o) for o in outs]


def export_file(module: nn.Module, path: str, spec: ExportSpec) -> str:
    """The ``onnxruntime`` backend's exporter (:class:`~emo.deployment.registry.
    ExportSpec`): a task wrapper with its output names and dynamic axes (batch; H and W
    with ``spec.dynamic_hw``), any other module with fixed axes, traced at batch
    ``spec.options['batch_size']`` (default 1; ``max_batch`` when the batch is fixed).
    Options ``opset`` and ``dynamo`` as :func:`export_onnx` takes them (default: the
    TorchScript exporter for dynamic H, W, else the torch.export-based one)."""
    opts = spec.options
    batch = opts.get('batch_size') or (1 if spec.dynamic_batch else spec.max_batch)
    names = module.output_names() if hasattr(module, 'output_names') else None
    axes = None
    if spec.dynamic_batch and hasattr(module, 'dynamic_axes'):
        axes = module.dynamic_axes(dynamic_hw=spec.dynamic_hw)
    dynamo = opts.get('dynamo')
    if dynamo is None and names is not None:
        dynamo = not spec.dynamic_hw
    return export_onnx(module, path, torch.randn(batch, 3, *spec.shape), output_names=names,
                       dynamic_axes=axes, opset_version=opts.get('opset'),
                       metadata=spec.metadata or None, dynamo=dynamo)


# ---------------------------------------------------------------- INT8
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


def quantize_file(model: nn.Module, stem: str, inputs: Sequence[torch.Tensor],
                  spec: ExportSpec, options: dict):
    """The ``onnxruntime`` backend's quantizer: ``<stem>_fp32.onnx`` (dynamic batch; H and
    W dynamic with ``spec.dynamic_hw``) and its QDQ INT8 form ``<stem>_int8.onnx``
    (:func:`quantize_onnxruntime`; ``options``: ``calib_method``, ``activation_type``,
    ``weight_type``, ``reduce_range``, ``ort_ops``, ``["all"]`` for every type);
    returns (fp32, INT8, ops kept in float)."""
    from .wrappers import export_wrapper
    fp32 = export_file(export_wrapper(model), f'{stem}_fp32.onnx', spec)
    ops = options.get('ort_ops')
    ops = None if ops == ['all'] else (ops or ORT_DEFAULT_OPS)
    int8 = quantize_onnxruntime(
        fp32, f'{stem}_int8.onnx', inputs,
        calibrate_method=options.get('calib_method') or 'minmax',
        activation_type=options.get('activation_type') or 'uint8',
        weight_type=options.get('weight_type') or 'int8',
        reduce_range=bool(options.get('reduce_range')), op_types=ops)
    return fp32, int8, float_ops_onnx(int8)

"""The ``executorch`` backend: ExecuTorch with the XNNPACK delegate, ``.pte`` files, running
them from Python, and static INT8 programs (torchao PT2E, :func:`quantize_executorch`).

:func:`export_executorch` takes a task wrapper (:mod:`emo.deployment.wrappers`), exports it
with :func:`emo.deployment.program.export_program` (dynamic batch, fixed H and W),
lowers it with ``to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])``
and writes the ``.pte`` (plus ``<file>.json`` with the task, class names and shape, as
the ONNX file keeps them in its metadata). :class:`ExecuTorchModel` runs it through
``executorch.runtime.Runtime`` after checking the file's header
(:func:`check_pte_file`: a foreign or truncated file is a named error, where the runtime
would abort the process on a file without the ExecuTorch identifier).

What makes EMO lower, and lower whole (outputs unchanged up to float rounding):

* parameters in the NCHW memory format (:func:`prepare_for_export`): XNNPACK's
  ``ChannelsLastTaggedReshapePass`` failed on the channels_last weights that EMO's
  ``channels_last=True`` option makes ("Expected ... to be NCHW");
* channel LayerNorms as convolutions (:func:`xnnpack_friendly`): XNNPACK has no
  layer norm, so ``native_layer_norm`` ran in ExecuTorch's portable (single-thread,
  unvectorised) kernels between two permutes and cut the graph into many delegates;
  :class:`ChannelLayerNorm` computes the same normalisation over channels with 1x1
  convolutions (the channel mean), which XNNPACK runs;
* scaled dot-product attention as ``bmm -> softmax -> bmm`` (:func:`sdpa_as_bmm`):
  the default decomposition adds an all-masked-row guard (``where(isinf)``) that
  XNNPACK cannot take; without a mask the guard never fires;
* no early decomposition of ``linear``, and parameter reshapes folded into constants
  (``constant_prop_pass``), so the attention's ``qk`` projection (a 1x1 conv weight
  used as a linear map) has the static weight XNNPACK's GEMM wants.
"""
import collections
import copy
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .program import batch_dim, export_program
from .registry import MAX_BATCH, ExportSpec, ModelFileError, RuntimeModel

__all__ = [
    'ChannelLayerNorm', 'xnnpack_friendly', 'sdpa_as_bmm', 'export_executorch',
    'ExecuTorchModel', 'read_sidecar', 'lower_to_xnnpack', 'undelegated_ops', 'set_threads',
    'check_pte_file', 'export_file', 'quantize_executorch', 'float_ops_executorch',
    'quantize_file'
]


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of (B, C, H, W), in NCHW, from convolutions:
    ``d = x - mean_c(x)``, ``y = d * rsqrt(mean_c(d * d) + eps) * weight + bias``, the
    channel means as a 1x1 convolution with weights 1/C. The same function as
    ``F.layer_norm`` over the channels (biased variance, eps inside the root)."""

    def __init__(self, num_channels: int, eps: float, weight=None, bias=None):
        super().__init__()
        self.eps = float(eps)
        self.register_buffer('avg', torch.full((1, num_channels, 1, 1), 1.0 / num_channels))
        self.weight = None if weight is None else nn.Parameter(
            weight.detach().clone().view(-1, 1, 1), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(
            bias.detach().clone().view(-1, 1, 1), requires_grad=False)

    @classmethod
    def from_layer_norm(cls, ln: nn.LayerNorm):
        (channels, ) = ln.normalized_shape
        return cls(channels, ln.eps, ln.weight, ln.bias)

    def forward(self, x, data_format: str = 'channel_first'):
        """``data_format='channel_last'`` (mmpretrain's LayerNorm2d call on (B, H, W, C),
        e.g. in ConvNeXt blocks): plain ``F.layer_norm`` over the last axis."""
        if data_format == 'channel_last':
            flat = (lambda t: None if t is None else t.flatten())
            return F.layer_norm(x, x.shape[-1:], flat(self.weight), flat(self.bias),
                                self.eps)
        d = x - F.conv2d(x, self.avg)
        y = d * torch.rsqrt(F.conv2d(d * d, self.avg) + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


def _channel_layer_norm(module: nn.Module) -> Optional[nn.LayerNorm]:
    """The ``nn.LayerNorm`` over channels that ``module`` applies to an NCHW map, or None:
    EMO's ``LayerNorm2d`` (``.norm``) and mmpretrain's ``LayerNorm2d`` (LN2d)."""
    from ..models.utils.irmb import LayerNorm2d
    if isinstance(module, LayerNorm2d):
        return module.norm
    try:
        from mmpretrain.models.utils import LayerNorm2d as MMPretrainLN2d
    except ImportError:  # pragma: no cover - mmpretrain is a dependency
        return None
    if type(module) is MMPretrainLN2d:
        return module
    return None


def xnnpack_friendly(module: nn.Module) -> int:
    """Replace, in place, every channel LayerNorm of an NCHW map (EMO's and mmpretrain's
    ``LayerNorm2d``) with the equivalent :class:`ChannelLayerNorm`; returns how many.

    mmpretrain's ``LayerNorm2d`` also has a ``channel_last`` mode (ConvNeXt blocks, e.g.
    in EdgeNeXt): :class:`ChannelLayerNorm` computes it with ``F.layer_norm``."""
    count = 0
    for name, child in list(module.named_modules()):
        ln = _channel_layer_norm(child)
        if ln is None or not name:
            continue
        parent_name, _, attr = name.rpartition('.')
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, ChannelLayerNorm.from_layer_norm(ln))
        count += 1
    return count


def sdpa_as_bmm(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
    """``aten.scaled_dot_product_attention`` (no mask, no dropout) as
    ``softmax(q * scale @ k^T) @ v`` with 3-d ``bmm``: (B, h, N, d) -> (B, h, N, d_v)."""
    if attn_mask is not None or is_causal or dropout_p or enable_gqa:
        raise NotImplementedError('sdpa_as_bmm: only unmasked, dropout-free attention')
    s = q.shape[-1]**-0.5 if scale is None else scale
    B, h, N, d = q.shape
    q3 = q.reshape(B * h, N, d)
    k3 = k.reshape(B * h, k.shape[2], d)
    v3 = v.reshape(B * h, v.shape[2], v.shape[3])
    a = torch.softmax(torch.bmm(q3 * s, k3.transpose(1, 2)), dim=-1)
    return torch.bmm(a, v3).view(B, h, N, v.shape[3])


def lower_to_xnnpack(program):
    """An ExportedProgram -> ExecuTorch program manager with the XNNPACK delegate
    (the SDPA decomposition and constant folding of the module docstring)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import \
        XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    aten = torch.ops.aten
    program = program.run_decompositions({aten.scaled_dot_product_attention.default:
                                          sdpa_as_bmm})
    # fold reshapes of parameters into constants, but not the transposes that
    # XNNPACK's linear pattern matches (a folded weight transpose breaks it)
    program = constant_prop_pass(program, custom_skip_targets={
        aten.permute.default, aten.t.default, aten.transpose.int, aten.expand.default})
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return edge.to_executorch()


def export_executorch(module: nn.Module,
                      path: str,
                      shape: Tuple[int, int],
                      dynamic_batch: bool = True,
                      max_batch: int = MAX_BATCH,
                      metadata: Optional[Dict[str, str]] = None,
                      friendly: bool = True) -> str:
    """Export ``module`` (B, 3, H, W) -> tensors to the ``.pte`` file ``path`` for
    ExecuTorch's XNNPACK backend, at H, W = ``shape``, batch dynamic up to ``max_batch``
    (the runtime plans memory for that batch). ``module`` is changed in place
    (:func:`prepare_for_export`, and :func:`xnnpack_friendly` unless
    ``friendly=False``). ``metadata`` (strings) goes to ``<path>.json`` with the
    shape, the output count and the operators left outside XNNPACK
    (:func:`undelegated_ops`); returns ``path``."""
    if not str(path).endswith('.pte'):
        raise ValueError(f'{path}: an ExecuTorch program file ends with .pte')
    if friendly:
        xnnpack_friendly(module)
    dynamic_batch = dynamic_batch and max_batch > 1
    # ExecuTorch plans memory for the example's sizes: an example batch below
    # ``max_batch`` makes larger inputs fail ("set_inputs() ... failed with error 0x10")
    example = torch.randn(max_batch if dynamic_batch else 1, 3, *shape)
    program = export_program(module, shape, dynamic_batch=dynamic_batch,
                             max_batch=max_batch, example=example)
    manager = lower_to_xnnpack(program)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:
        manager.write_to_file(f)
    side = dict(metadata or {}, shape=json.dumps(list(shape)),
                max_batch=json.dumps(max_batch if dynamic_batch else 1),
                num_outputs=json.dumps(len(program.graph_signature.user_outputs)),
                portable_ops=json.dumps(undelegated_ops(manager)))
    with open(path + '.json', 'w') as f:
        json.dump(side, f, indent=1)
    return path


def read_sidecar(path: str) -> Dict[str, str]:
    """The metadata :func:`export_executorch` wrote next to ``path`` (``{}`` if none)."""
    side = path + '.json'
    if not osp.isfile(side):
        return {}
    with open(side) as f:
        return json.load(f)


def check_pte_file(path: str) -> int:
    """Check that ``path`` is a whole ExecuTorch program: the flatbuffer file identifier
    ``ET..`` at bytes 4-8 and, when the extended header ``eh00`` follows, a file as long
    as the program and segments it records. A :class:`~emo.deployment.registry.
    ModelFileError` names the file and what is wrong; returns the file's size.

    ExecuTorch's loader logs the identifier of a foreign file, and a non-UTF-8 one
    aborts the process (a C++ ``terminate`` on a ``UnicodeDecodeError``): the check
    comes first."""
    if osp.isdir(path):
        raise ModelFileError(path, 'is a folder, not an ExecuTorch program (.pte) file')
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(40)
    ident = head[4:8]
    if len(head) < 8 or ident[:2] != b'ET' or not ident[2:].isdigit():
        raise ModelFileError(
            path, f'is not an ExecuTorch program: no ExecuTorch flatbuffer identifier '
            f'(ET..) at bytes 4-8 ({size} bytes; got {ident!r}); export it again with '
            'tools/deployment/export.py --backend executorch')
    if head[8:12] == b'eh00' and len(head) >= 32:
        length = int.from_bytes(head[12:16], 'little')
        program = int.from_bytes(head[16:24], 'little')
        base = int.from_bytes(head[24:32], 'little')
        data = int.from_bytes(head[32:40], 'little') if length >= 32 and len(head) >= 40 \
            else 0
        need = max(program, base + data if base else 0)
        if size < need:
            raise ModelFileError(path, f'is truncated: {size} bytes, its header records '
                                 f'{need} (program and data segments); export it again')
    return size


class ExecuTorchModel(RuntimeModel):
    """A ``.pte`` file loaded with ``executorch.runtime.Runtime``; calling it with a
    float32 batch (B, 3, H, W) returns the program's outputs as a list of tensors. The
    runtime model of the ``executorch`` backend (:class:`~emo.deployment.registry.
    RuntimeModel`: the export size and largest batch come from the sidecar).

    Args:
        path (str): the ``.pte`` file.
        threads (int | None): XNNPACK threads. ExecuTorch has one threadpool per
            process: setting it affects every loaded program (None: leave it).
    """

    backend = 'executorch'

    def __init__(self, path: str, threads: Optional[int] = None, spinning: bool = True):
        if not osp.isfile(path) and not osp.isdir(path):
            raise FileNotFoundError(f'ExecuTorch program not found: {path}')
        check_pte_file(path)
        from executorch.runtime import Runtime
        if threads is not None:
            set_threads(threads)
        self.path, self.threads = path, threads
        self.metadata = read_sidecar(path)
        meta = self.metadata
        self.output_names = json.loads(meta.get('output_names', 'null')) or []
        self.input_hw = tuple(json.loads(meta['shape'])) if meta.get('shape') else None
        self.max_batch = json.loads(meta['max_batch']) if meta.get('max_batch') else None
        try:
            self.program = Runtime.get().load_program(path)
            self.method = self.program.load_method('forward')
        except RuntimeError as e:
            raise ModelFileError(path, f'ExecuTorch cannot load it ({e}): a damaged or '
                                 'truncated program; export it again') from None

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        self.check_input(x)
        outs = self.method.execute([x.float().contiguous()])
        return [o.clone() for o in outs]


def set_threads(threads: int):
    """Size ExecuTorch's (process-wide) threadpool."""
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    _unsafe_reset_threadpool(int(threads))


def undelegated_ops(manager) -> List[str]:
    """The operators of a lowered program (:func:`lower_to_xnnpack`) that run outside
    XNNPACK, in ExecuTorch's portable kernels, as sorted names."""
    graph = manager.exported_program().graph_module.graph
    names = {getattr(n.target, '__name__', str(n.target)) for n in graph.nodes
             if n.op == 'call_function'}
    return sorted(n for n in names if n not in ('executorch_call_delegate', 'getitem'))


# ---------------------------------------------------------------- INT8
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
                        max_batch: int = MAX_BATCH,
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
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

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
    example = torch.cat([inputs[0][:1].float()] * (2 if dynamic else 1))  # batch 2 or 1
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
    side = read_sidecar(path)
    if 'float_ops' not in side:
        raise ValueError(f'{path}.json has no float_ops: not written by quantize_executorch')
    ops = json.loads(side['float_ops'])
    for name in json.loads(side.get('undelegated_ops', '[]')):
        if name in ('alloc', 'sym_size.int') or name.startswith('executorch_prim'):
            continue  # memory planning and shape arithmetic
        ops[f'portable:{name}'] = ops.get(f'portable:{name}', 0) + 1
    return ops


def export_file(module: nn.Module, path: str, spec: ExportSpec) -> str:
    """The ``executorch`` backend's exporter: :func:`export_executorch` at ``spec.shape``,
    the batch dynamic up to ``spec.max_batch`` (fixed for 1), ``spec.metadata`` in the
    sidecar."""
    return export_executorch(module, path, spec.shape, max_batch=spec.max_batch,
                             metadata=spec.metadata)


def quantize_file(model: nn.Module, stem: str, inputs: Sequence[torch.Tensor],
                  spec: ExportSpec, options: dict):
    """The ``executorch`` backend's quantizer: ``<stem>_fp32.pte`` and its INT8 form
    ``<stem>_int8.pte`` (:func:`quantize_executorch`) at ``spec.shape``, batch up to
    ``spec.max_batch``; returns (fp32, INT8, ops kept in float or outside XNNPACK)."""
    from .wrappers import export_wrapper
    wrapper = export_wrapper(model)
    fp32 = export_executorch(copy.deepcopy(wrapper), f'{stem}_fp32.pte', spec.shape,
                             max_batch=spec.max_batch, metadata=spec.metadata)
    int8 = quantize_executorch(wrapper, f'{stem}_int8.pte', inputs, spec.shape,
                               metadata=spec.metadata, max_batch=spec.max_batch)
    return fp32, int8, float_ops_executorch(int8)

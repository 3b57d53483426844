"""ExecuTorch with the XNNPACK backend: ``.pte`` files and running them from Python.

:func:`export_executorch` takes a task wrapper (:mod:`emo.deployment.onnx`), exports it
with :func:`emo.deployment.program.export_program` (dynamic batch, fixed H and W),
lowers it with ``to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])``
and writes the ``.pte`` (plus ``<file>.json`` with the task, class names and shape, as
the ONNX file keeps them in its metadata). :class:`ExecuTorchModel` runs it through
``executorch.runtime.Runtime``.

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
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .program import export_program

__all__ = [
    'ChannelLayerNorm', 'xnnpack_friendly', 'sdpa_as_bmm', 'export_executorch',
    'ExecuTorchModel', 'read_sidecar', 'lower_to_xnnpack', 'undelegated_ops', 'set_threads'
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
                      max_batch: int = 32,
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


class ExecuTorchModel:
    """A ``.pte`` file loaded with ``executorch.runtime.Runtime``; calling it with a
    float32 batch (B, 3, H, W) returns the program's outputs as a list of tensors.

    Args:
        path (str): the ``.pte`` file.
        threads (int | None): XNNPACK threads. ExecuTorch has one threadpool per
            process: setting it affects every loaded program (None: leave it).
    """

    def __init__(self, path: str, threads: Optional[int] = None):
        if not osp.isfile(path):
            raise FileNotFoundError(f'ExecuTorch program not found: {path}')
        from executorch.runtime import Runtime
        if threads is not None:
            set_threads(threads)
        self.path = path
        self.metadata = read_sidecar(path)
        self.program = Runtime.get().load_program(path)
        self.method = self.program.load_method('forward')

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        meta = self.metadata
        if meta.get('shape') and list(x.shape[2:]) != json.loads(meta['shape']):
            raise ValueError(f'{self.path} takes H, W = {json.loads(meta["shape"])}, '
                             f'got an input of shape {tuple(x.shape)}')
        if meta.get('max_batch') and x.shape[0] > json.loads(meta['max_batch']):
            raise ValueError(f'{self.path} takes at most {meta["max_batch"]} images a '
                             f'batch, got {x.shape[0]}')
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

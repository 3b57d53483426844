"""The ``openvino`` backend: the deploy form as OpenVINO IR (``.xml`` + ``.bin``), compiled
for CPU, and its static INT8 form (NNCF, :func:`quantize_openvino`).

:func:`export_openvino` converts with ``openvino.convert_model`` either a task wrapper
(through :func:`emo.deployment.program.export_program`: dynamic batch, fixed H and W)
or an ONNX file (keeping its dynamic axes, e.g. H and W of a graph from the TorchScript
exporter), and saves the IR in float32 (``compress_to_fp16=False``; OpenVINO's default
would store fp16 weights). Metadata strings go to the IR's ``rt_info`` under ``emo``.
:func:`compile_openvino` compiles it for the CPU with ``INFERENCE_PRECISION_HINT=f32``
(the CPU plugin would otherwise run bf16 where the CPU has it). :class:`OpenVINOModel`
is the backend's runtime model; a file OpenVINO cannot read (a truncated ``.xml``, a
missing or short ``.bin``) is a named :class:`~emo.deployment.registry.ModelFileError`.
"""
import collections
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from .program import export_program
from .registry import MAX_BATCH, ExportSpec, ModelFileError, RuntimeModel

__all__ = ['export_openvino', 'compile_openvino', 'OpenVINOModel', 'read_rt_metadata',
           'read_openvino', 'export_file', 'quantize_openvino', 'openvino_model',
           'float_ops_openvino', 'quantize_file']


def export_openvino(source: Union[nn.Module, str],
                    path: str,
                    shape: Optional[Tuple[int, int]] = None,
                    dynamic_batch: bool = True,
                    metadata: Optional[Dict[str, str]] = None,
                    max_batch: int = MAX_BATCH) -> str:
    """Write the OpenVINO IR ``path`` (``.xml``, weights in ``.bin`` beside it) of
    ``source``: a module (B, 3, H, W) -> tensors, exported at H, W = ``shape`` (changed
    in place by :func:`prepare_for_export`; the batch dynamic up to ``max_batch``), or
    the path of an ``.onnx`` file. Returns ``path``."""
    import openvino as ov

    if not str(path).endswith('.xml'):
        raise ValueError(f'{path}: an OpenVINO IR file ends with .xml')
    if isinstance(source, str):
        if not osp.isfile(source):
            raise FileNotFoundError(f'ONNX model not found: {source}')
        model = ov.convert_model(source)
    else:
        if shape is None:
            raise ValueError('export_openvino: a module needs the input shape (H, W)')
        # a dynamic batch of at most 1 is batch 1 (torch.export refuses Dim(min=1, max=1))
        model = ov.convert_model(export_program(source, shape, max_batch=max_batch,
                                                dynamic_batch=dynamic_batch and max_batch > 1))
    for key, value in (metadata or {}).items():
        model.set_rt_info(str(value), ['emo', str(key)])
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    ov.save_model(model, path, compress_to_fp16=False)
    return path


def read_rt_metadata(model) -> Dict[str, str]:
    """The metadata :func:`export_openvino` stored (an ``openvino.Model``)."""
    if not model.has_rt_info(['emo']):
        return {}
    return {str(k): str(v) for k, v in model.get_rt_info(['emo']).value.items()}


def read_openvino(path: str):
    """``openvino.Core().read_model(path)`` (an ``.xml`` IR or an ``.onnx`` file); a file
    it cannot read is a :class:`~emo.deployment.registry.ModelFileError` naming it (and
    the ``.bin`` of an IR)."""
    import openvino as ov
    if osp.isdir(path):
        raise ModelFileError(path, 'is a folder, not an OpenVINO model file')
    if not osp.isfile(path):
        raise FileNotFoundError(f'OpenVINO model not found: {path}')
    try:
        return ov.Core().read_model(path)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        said = lines[-1] if lines else type(e).__name__
        what = (f'the IR or its weights {osp.splitext(path)[0]}.bin are damaged, '
                'truncated or missing' if path.endswith('.xml') else
                'not a model OpenVINO reads, or a truncated one')
        raise ModelFileError(path, f'OpenVINO cannot read it: {what} ({said}); export it '
                             'again') from None


def compile_openvino(path: str, threads: Optional[int] = None, latency: bool = True):
    """``openvino.Core().compile_model`` of the IR (or ONNX) file ``path`` on the CPU in
    float32 (INT8 layers stay INT8); ``threads`` caps the inference threads, ``latency``
    picks the LATENCY performance hint (else THROUGHPUT)."""
    import openvino as ov

    config = {'INFERENCE_PRECISION_HINT': 'f32',
              'PERFORMANCE_HINT': 'LATENCY' if latency else 'THROUGHPUT'}
    if threads is not None:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    return ov.Core().compile_model(read_openvino(path), 'CPU', config)


#: the name before :func:`compile_openvino` served every OpenVINO file
openvino_model = compile_openvino


class OpenVINOModel(RuntimeModel):
    """An OpenVINO IR (or ONNX) file compiled for the CPU (:func:`compile_openvino`);
    calling it with a float32 batch (B, 3, H, W) returns the outputs as tensors. The
    runtime model of the ``openvino`` backend (:class:`~emo.deployment.registry.
    RuntimeModel`)."""

    backend = 'openvino'

    def __init__(self, path: str, threads: Optional[int] = None, spinning: bool = True):
        self.path, self.threads = path, threads
        self.compiled = compile_openvino(path, threads)
        if path.endswith('.onnx'):
            from .onnx import read_metadata
            self.metadata = read_metadata(path)
        else:
            self.metadata = read_rt_metadata(read_openvino(path))
        import json
        self.output_names = json.loads(self.metadata.get('output_names', 'null')) or [
            next(iter(o.get_names()), str(i)) for i, o in enumerate(self.compiled.outputs)]
        shape = self.compiled.inputs[0].get_partial_shape()
        fixed = shape.rank.is_static and len(shape) == 4 and all(
            shape[i].is_static for i in (2, 3))
        self.input_hw = (shape[2].get_length(), shape[3].get_length()) if fixed else None
        batch = shape[0] if shape.rank.is_static else None
        self.max_batch = (batch.get_max_length() if batch is not None and
                          batch.get_max_length() > 0 else None)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        self.check_input(x)
        results = self.request.infer([x.float().contiguous().numpy()])
        return [torch.from_numpy(results[o].copy()) for o in self.compiled.outputs]


def export_file(module: nn.Module, path: str, spec: ExportSpec) -> str:
    """The ``openvino`` backend's exporter: :func:`export_openvino` of ``module`` at
    ``spec.shape``, the batch dynamic up to ``spec.max_batch``, or of the ONNX file
    ``spec.options['source']`` (keeping its dynamic axes)."""
    return export_openvino(spec.options.get('source') or module, path, spec.shape,
                           metadata=spec.metadata, max_batch=spec.max_batch)


# ---------------------------------------------------------------- INT8


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
    model = read_openvino(model_fp32)
    if model_fp32.endswith('.onnx'):
        from .onnx import read_metadata
        metadata = read_metadata(model_fp32)
    else:
        metadata = read_rt_metadata(model)
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
    # the fp32 file's metadata (task, classes, output names) for DeployInferencer
    for key, value in dict(metadata, quantization='int8 static (nncf)').items():
        quantized.set_rt_info(str(value), ['emo', str(key)])
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    ov.save_model(quantized, out, compress_to_fp16=False)
    return out


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


def quantize_file(model: nn.Module, stem: str, inputs: Sequence[torch.Tensor],
                  spec: ExportSpec, options: dict):
    """The ``openvino`` backend's quantizer: the fp32 ONNX export ``<stem>_fp32.onnx``
    (the ``onnxruntime`` exporter: NNCF quantizes the dynamic shapes it keeps), its IR
    ``<stem>_fp32.xml`` with the metadata, and the INT8 IR ``<stem>_int8.xml``
    (:func:`quantize_openvino`; ``options``: ``ov_transformer``, ``ov_ignore``,
    ``ov_overflow_fix``); returns (fp32 IR, INT8 IR, layer types computing in float)."""
    from . import onnx as onnx_backend
    from .wrappers import export_wrapper
    onnx_path = onnx_backend.export_file(export_wrapper(model), f'{stem}_fp32.onnx', spec)
    fp32 = export_openvino(onnx_path, f'{stem}_fp32.xml', metadata=spec.metadata)
    int8 = quantize_openvino(fp32, f'{stem}_int8.xml', inputs,
                             transformer=bool(options.get('ov_transformer')),
                             ignored_types=options.get('ov_ignore') or (),
                             overflow_fix=options.get('ov_overflow_fix') or 'enable')
    return fp32, int8, float_ops_openvino(compile_openvino(int8))

"""OpenVINO: the deploy form as OpenVINO IR (``.xml`` + ``.bin``), compiled for CPU.

:func:`export_openvino` converts with ``openvino.convert_model`` either a task wrapper
(through :func:`emo.deployment.program.export_program`: dynamic batch, fixed H and W)
or an ONNX file (keeping its dynamic axes, e.g. H and W of a graph from the TorchScript
exporter), and saves the IR in float32 (``compress_to_fp16=False``; OpenVINO's default
would store fp16 weights). Metadata strings go to the IR's ``rt_info`` under ``emo``.
:func:`compile_openvino` compiles it for the CPU with ``INFERENCE_PRECISION_HINT=f32``
(the CPU plugin would otherwise run bf16 where the CPU has it).
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .program import export_program

__all__ = ['export_openvino', 'compile_openvino', 'OpenVINOModel', 'read_rt_metadata']


def export_openvino(source: Union[nn.Module, str],
                    path: str,
                    shape: Optional[Tuple[int, int]] = None,
                    dynamic_batch: bool = True,
                    metadata: Optional[Dict[str, str]] = None) -> str:
    """Write the OpenVINO IR ``path`` (``.xml``, weights in ``.bin`` beside it) of
    ``source``: a module (B, 3, H, W) -> tensors, exported at H, W = ``shape`` (changed
    in place by :func:`prepare_for_export`), or the path of an ``.onnx`` file. Returns
    ``path``."""
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
        model = ov.convert_model(export_program(source, shape, dynamic_batch=dynamic_batch))
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


def compile_openvino(path: str, threads: Optional[int] = None, latency: bool = True):
    """``openvino.Core().compile_model`` of the IR (or ONNX) file ``path`` on the CPU in
    float32; ``threads`` caps the inference threads, ``latency`` picks the LATENCY
    performance hint (else THROUGHPUT)."""
    import openvino as ov

    if not osp.isfile(path):
        raise FileNotFoundError(f'OpenVINO model not found: {path}')
    config = {'INFERENCE_PRECISION_HINT': 'f32',
              'PERFORMANCE_HINT': 'LATENCY' if latency else 'THROUGHPUT'}
    if threads is not None:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    core = ov.Core()
    return core.compile_model(core.read_model(path), 'CPU', config)


class OpenVINOModel:
    """An OpenVINO IR (or ONNX) file compiled for the CPU (:func:`compile_openvino`);
    calling it with a float32 batch (B, 3, H, W) returns the outputs as tensors."""

    def __init__(self, path: str, threads: Optional[int] = None):
        import openvino as ov
        self.path = path
        self.compiled = compile_openvino(path, threads)
        self.metadata = read_rt_metadata(ov.Core().read_model(path))
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        results = self.request.infer([x.float().contiguous().numpy()])
        return [torch.from_numpy(results[o].copy()) for o in self.compiled.outputs]

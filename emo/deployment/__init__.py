"""Deployment of EMO models: export to ONNX (ONNX Runtime), ExecuTorch (XNNPACK),
OpenVINO and Core ML, INT8 quantization, and one inferencer that runs any exported file
with the config's pre- and post-processing (``tools/deployment/export.py``,
``tools/deployment/inference.py``). Models are built with :mod:`emo.apis`. The
runtimes are imported when used."""
from .inference import BACKENDS, DeployInferencer, ONNXInferencer, ORTModel, load_runtime
from .onnx import (AdaptiveAvgPool2dExport, ClassifierExport, DetectorExport,
                   SegmentorExport, dynamic_adaptive_pools, export_onnx, export_wrapper,
                   ort_session, read_metadata, reference_outputs, verify_outputs)
from .program import export_program, prepare_for_export

__all__ = [
    'export_onnx', 'ort_session', 'ClassifierExport', 'SegmentorExport', 'DetectorExport',
    'export_wrapper', 'read_metadata', 'AdaptiveAvgPool2dExport', 'dynamic_adaptive_pools',
    'reference_outputs', 'ONNXInferencer', 'DeployInferencer', 'ORTModel', 'load_runtime',
    'BACKENDS', 'export_program', 'prepare_for_export', 'verify_outputs'
]

"""Deployment of EMO models: ONNX export and ONNX Runtime inference
(``tools/deployment/pytorch2onnx.py``, ``tools/deployment/onnx_inference.py``). Models are
built with :mod:`emo.apis`."""
from .inference import ONNXInferencer
from .onnx import (AdaptiveAvgPool2dExport, ClassifierExport, DetectorExport,
                   SegmentorExport, dynamic_adaptive_pools, export_onnx, export_wrapper,
                   ort_session, read_metadata, reference_outputs)

__all__ = [
    'export_onnx', 'ort_session', 'ClassifierExport', 'SegmentorExport', 'DetectorExport',
    'export_wrapper', 'read_metadata', 'AdaptiveAvgPool2dExport', 'dynamic_adaptive_pools',
    'reference_outputs', 'ONNXInferencer'
]

"""Deployment of EMO models: ONNX export and ONNX Runtime inference
(``tools/deployment/pytorch2onnx.py``, ``tools/deployment/onnx_inference.py``)."""
from .onnx import (AdaptiveAvgPool2dExport, ClassifierExport, DetectorExport,
                   SegmentorExport, dynamic_adaptive_pools, dynamic_trace_shape, export_onnx,
                   export_wrapper, ort_session, read_metadata, reference_outputs,
                   reparameterize, task_of)
from .inference import (ONNXInferencer, build_model_from_cfg, dataset_meta,
                        default_shape, inference_pipeline_cfg)

__all__ = [
    'export_onnx', 'ort_session', 'ClassifierExport', 'SegmentorExport', 'DetectorExport',
    'export_wrapper', 'task_of', 'reparameterize', 'dynamic_trace_shape', 'read_metadata',
    'AdaptiveAvgPool2dExport', 'dynamic_adaptive_pools', 'reference_outputs',
    'ONNXInferencer', 'build_model_from_cfg', 'dataset_meta', 'default_shape',
    'inference_pipeline_cfg'
]

"""Deployment of EMO models: export to ONNX (ONNX Runtime), ExecuTorch (XNNPACK),
OpenVINO and Core ML, INT8 quantization, and one inferencer that runs any exported file
with the config's pre- and post-processing (``tools/deployment/export.py``,
``tools/deployment/inference.py``). Models are built with :mod:`emo.apis`.

Each runtime is one module (:mod:`.onnx`, :mod:`.executorch`, :mod:`.openvino`,
:mod:`.coreml`) and one entry of the registry :data:`BACKENDS` (:mod:`.registry`, which
states the runtime protocol); the runtime packages are imported when used."""
from .inference import DeployInferencer, ONNXInferencer
from .onnx import ORTModel, export_onnx, ort_session, read_metadata
from .prepare import export_metadata, export_size, prepare_model
from .program import export_program, prepare_for_export
from .registry import (BACKENDS, MAX_BATCH, Backend, ExportSpec, InputSizeError,
                       ModelFileError, RuntimeModel, backend_for_file, get_backend,
                       load_runtime, register_backend)
from .wrappers import (AdaptiveAvgPool2dExport, ClassifierExport, DetectorExport,
                       SegmentorExport, dynamic_adaptive_pools, export_wrapper,
                       reference_outputs, verify_outputs)

__all__ = [
    'export_onnx', 'ort_session', 'ClassifierExport', 'SegmentorExport', 'DetectorExport',
    'export_wrapper', 'read_metadata', 'AdaptiveAvgPool2dExport', 'dynamic_adaptive_pools',
    'reference_outputs', 'ONNXInferencer', 'DeployInferencer', 'ORTModel', 'load_runtime',
    'BACKENDS', 'export_program', 'prepare_for_export', 'verify_outputs', 'Backend',
    'ExportSpec', 'InputSizeError', 'ModelFileError', 'RuntimeModel', 'backend_for_file',
    'get_backend', 'register_backend', 'MAX_BATCH', 'prepare_model', 'export_size',
    'export_metadata'
]

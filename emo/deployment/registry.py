"""The registry of deployment backends and the protocol of their runtime models.

Every runtime this project deploys to is one module of :mod:`emo.deployment` and one
:class:`Backend` entry in :data:`BACKENDS`; ``tools/deployment/export.py``,
``inference.py``, ``quantize.py``, ``tools/analysis/benchmark.py`` and
:class:`~emo.deployment.DeployInferencer` take their choices from the registry and
dispatch through it, so adding a runtime touches that module, one entry here and one
test file (docs/deployment.md, "Adding a runtime").

An entry names its module and the attributes in it (resolved on first use, so that
``import emo.deployment`` imports no runtime package):

* ``runtime``: a class implementing :class:`RuntimeModel`: built from ``(path,
  threads=None, spinning=True)`` (``spinning=False``: idle worker threads must not
  busy-wait after a run; runtimes whose threads do not spin ignore it), it checks the
  file (a missing, truncated or foreign file is a :class:`ModelFileError`), and maps
  a normalised float32 batch (B, 3, H, W) to a list of tensors; it has ``metadata``
  (the strings stored at export, the schema of
  :func:`emo.deployment.prepare.export_metadata`), ``output_names``, ``threads``, and
  ``input_hw`` / ``max_batch`` (None: dynamic) that :meth:`RuntimeModel.check_input`
  enforces with an :class:`InputSizeError`;
* ``exporter``: ``(module, path, spec: ExportSpec) -> path``, ``module`` a task wrapper
  (:mod:`emo.deployment.wrappers`) or any module (B, 3, H, W) -> tensors;
* ``quantizer`` (optional): ``(model, stem, inputs, spec, options) -> (fp32 file, INT8
  file, {op type kept in float: count})``, ``model`` the deploy form, ``inputs`` the
  calibration inputs (:mod:`emo.deployment.quantize`), ``options`` the tool's options.
"""
import importlib
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..apis.builder import TASKS as SCOPE_TASKS

__all__ = [
    'Backend', 'BACKENDS', 'register_backend', 'get_backend', 'backend_for_file',
    'load_runtime', 'RuntimeModel', 'ExportSpec', 'ModelFileError', 'InputSizeError',
    'RuntimeUnavailable', 'MAX_BATCH', 'TASKS', 'backend_names'
]

#: the one default largest batch of an exported file (ExecuTorch plans its memory for it)
MAX_BATCH = 32
#: every task the export wrappers take (those of :data:`emo.apis.builder.TASKS`)
TASKS = tuple(SCOPE_TASKS.values())


class ModelFileError(ValueError):
    """An exported model file that is missing, truncated or not what its extension says;
    the message names the file and what is wrong with it."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f'{path}: {problem}')


class InputSizeError(ValueError):
    """An input the exported file cannot take (its fixed H, W or its largest batch)."""


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run the file on this system (e.g. Core ML off macOS)."""


@dataclass
class ExportSpec:
    """What an exporter is asked for.

    Attributes:
        shape: input (H, W) to export at.
        max_batch: largest batch the file takes.
        dynamic_batch: False: the file may fix the batch at ``max_batch`` (ONNX does;
            ExecuTorch and OpenVINO keep it dynamic up to ``max_batch``).
        dynamic_hw: dynamic H and W (ONNX through the TorchScript exporter, and
            OpenVINO converted from such a file); the others fix them at ``shape``.
        metadata: strings stored in the file (:func:`~emo.deployment.prepare.
            export_metadata`).
        options: backend options (ONNX: ``opset``, ``dynamo``, ``batch_size``;
            OpenVINO: ``source``, an ONNX file to convert instead of the module).
    """
    shape: Tuple[int, int]
    max_batch: int = MAX_BATCH
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    metadata: Dict[str, str] = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Backend:
    """One deployment backend (see the module docstring for the protocol).

    Attributes:
        name: the name tools take (``--backend``).
        extensions: file extensions its runtime loads; the first is what its exporter
            writes and what selects it by file name.
        module: the module that says everything about it.
        runtime / exporter / quantizer: attribute names in ``module`` (None: none).
        package: the distribution whose version the benchmark reports.
        tasks: the tasks its exporter takes.
        summary: one line for ``--help``.
        aliases: other names tools accept for it.
        dynamic_hw: its exporter can keep H and W dynamic (``ExportSpec.dynamic_hw``).
        options: the export tool's options its exporter reads (``ExportSpec.options``).
    """
    name: str
    extensions: Tuple[str, ...]
    module: str
    runtime: Optional[str]
    exporter: Optional[str]
    quantizer: Optional[str] = None
    package: str = ''
    tasks: Tuple[str, ...] = TASKS
    summary: str = ''
    aliases: Tuple[str, ...] = ()
    dynamic_hw: bool = False
    options: Tuple[str, ...] = ()

    def _attr(self, name: Optional[str], what: str) -> Callable:
        if name is None:
            raise NotImplementedError(f'backend {self.name!r} has no {what}')
        return getattr(importlib.import_module(self.module), name)

    @property
    def extension(self) -> str:
        return self.extensions[0]

    def load(self, path: str, threads: Optional[int] = None, **kwargs) -> 'RuntimeModel':
        """The runtime model of the file ``path`` (:class:`RuntimeModel`)."""
        if not osp.exists(path):
            raise FileNotFoundError(f'exported model not found: {path}')
        return self._attr(self.runtime, 'runtime')(path, threads=threads, **kwargs)

    def export(self, module: torch.nn.Module, path: str, spec: ExportSpec) -> str:
        if not str(path).endswith(self.extension):
            raise ValueError(f'{path}: a {self.name} file ends with {self.extension}')
        return self._attr(self.exporter, 'exporter')(module, path, spec)

    def quantize(self, model, stem: str, inputs: Sequence[torch.Tensor], spec: ExportSpec,
                 options: Optional[dict] = None):
        return self._attr(self.quantizer, 'quantizer')(model, stem, inputs, spec,
                                                       dict(options or {}))

    def version(self) -> Optional[str]:
        """The installed version of the backend's package (None: not installed)."""
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(self.package)
        except PackageNotFoundError:
            return None


#: name -> :class:`Backend`, in the order tools list them
BACKENDS: Dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` to :data:`BACKENDS` (a name or a primary extension taken twice is
    an error); returns it."""
    names = set(backend_names(True))
    if {backend.name, *backend.aliases} & names:
        raise KeyError(f'backend {backend.name!r} (or an alias) is registered already')
    taken = {b.extension: b.name for b in BACKENDS.values()}
    if backend.extension in taken:
        raise KeyError(f'{backend.extension} files are {taken[backend.extension]!r} files')
    BACKENDS[backend.name] = backend
    return backend


def backend_names(aliases: bool = False) -> List[str]:
    """The registered names (and their aliases), for ``choices=``."""
    return list(BACKENDS) + ([a for b in BACKENDS.values() for a in b.aliases]
                             if aliases else [])


def get_backend(name: str) -> Backend:
    """The backend of a name or an alias."""
    for backend in BACKENDS.values():
        if name == backend.name or name in backend.aliases:
            return backend
    raise ValueError(f'unknown backend {name!r}; choose from {backend_names(True)}')


def backend_for_file(path: str) -> Backend:
    """The backend whose exporter writes files like ``path`` (by the extension)."""
    for backend in BACKENDS.values():
        if str(path).endswith(backend.extension):
            return backend
    raise ValueError(f'{path}: cannot tell the runtime from the extension '
                     f'{osp.splitext(str(path))[1]!r}; expected one of '
                     f'{sorted(b.extension for b in BACKENDS.values())}')


def load_runtime(path: str, threads: Optional[int] = None,
                 backend: Optional[str] = None) -> 'RuntimeModel':
    """The runtime model of an exported file, by its extension (or ``backend``, e.g.
    'openvino' for an ``.onnx`` file); see :class:`RuntimeModel`."""
    if not osp.exists(path):
        raise FileNotFoundError(f'exported model not found: {path}')
    found = get_backend(backend) if backend else backend_for_file(path)
    if not str(path).endswith(found.extensions):
        raise ValueError(f'{path}: the {found.name} runtime loads '
                         f'{", ".join(found.extensions)} files')
    return found.load(path, threads)


class RuntimeModel:
    """The protocol of a runtime model (and the base of this project's): an exported
    file loaded in its runtime; calling it with a normalised float32 batch (B, 3, H, W)
    returns the outputs as a list of tensors, in the file's output order.

    Attributes:
        backend: the registry name.
        path: the file.
        metadata: the strings stored at export (``{}`` for a file without them).
        output_names: the outputs' names.
        threads: the runtime's threads (None: its default).
        input_hw: the fixed (H, W) of the file, None when dynamic.
        max_batch: the largest batch it takes, None when unbounded.
    """
    backend: str = ''
    path: str = ''
    metadata: Dict[str, str] = {}
    output_names: List[str] = []
    threads: Optional[int] = None
    input_hw: Optional[Tuple[int, int]] = None
    max_batch: Optional[int] = None

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        raise NotImplementedError

    def check_input(self, x: torch.Tensor):
        """An :class:`InputSizeError` naming the file's size and how to choose another
        when it cannot take ``x``."""
        if x.dim() != 4:
            raise InputSizeError(f'{self.path} takes a (B, 3, H, W) batch, got an input '
                                 f'of shape {tuple(x.shape)}')
        if self.input_hw is not None and tuple(x.shape[2:]) != tuple(self.input_hw):
            h, w = x.shape[2:]
            raise InputSizeError(
                f'{self.path} takes H, W = {list(self.input_hw)}, got an input of shape '
                f'{tuple(x.shape)}: export it again at {h}x{w} (--shape {h} {w}) or '
                f'make the config\'s test pipeline produce {self.input_hw[0]}x'
                f'{self.input_hw[1]}')
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            raise InputSizeError(
                f'{self.path} takes at most {self.max_batch} images a batch, got '
                f'{x.shape[0]}: export it again with --max-batch {x.shape[0]} or run '
                'smaller batches')


def _builtin_backends():
    ours = 'emo.deployment.'
    for backend in (
            Backend('onnxruntime', ('.onnx', ), ours + 'onnx', 'ORTModel', 'export_file',
                    'quantize_file', 'onnxruntime', aliases=('onnx', ), dynamic_hw=True,
                    options=('batch_size', 'opset', 'dynamo'),
                    summary='ONNX (.onnx) in ONNX Runtime, CPU'),
            Backend('executorch', ('.pte', ), ours + 'executorch', 'ExecuTorchModel',
                    'export_file', 'quantize_file', 'executorch',
                    summary='ExecuTorch program (.pte), XNNPACK delegate'),
            Backend('openvino', ('.xml', '.onnx'), ours + 'openvino', 'OpenVINOModel',
                    'export_file', 'quantize_file', 'openvino', options=('source', ),
                    summary='OpenVINO IR (.xml + .bin), float32, CPU; also runs .onnx'),
            Backend('inductor', ('.pt2', ), ours + 'inductor', 'InductorModel',
                    'export_file', None, 'torch', aliases=('aoti', ),
                    summary='AOTInductor package (.pt2): the graph compiled by '
                    'PyTorch\'s Inductor (freezing), CPU'),
            Backend('coreml', ('.mlpackage', ), ours + 'coreml', 'CoreMLModel',
                    'export_file', None, 'coremltools', tasks=('classification', ),
                    summary='Core ML ML program (.mlpackage), classifiers; runs on '
                    'macOS only')):
        register_backend(backend)


_builtin_backends()

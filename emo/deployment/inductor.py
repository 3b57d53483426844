"""Inductor, PyTorch's compiler, as an inference form: compiled in the process
(``torch.compile``) or ahead of time into a file (the ``inductor`` backend, ``.pt2``).

The ``inductor`` backend of :mod:`emo.deployment.registry`: :func:`export_file`
``torch.export``-s the module (:func:`emo.deployment.program.export_program`: batch
dynamic up to ``spec.max_batch``, H, W fixed) and compiles it with AOTInductor
(``torch._inductor.aoti_compile_and_package``, freezing on) into a ``.pt2`` package: a
shared library of the generated C++ kernels and the frozen weights, with the export
metadata; :class:`InductorModel` loads it (``torch._inductor.aoti_load_package``) and runs
it on torch's intra-op threads. ``tools/deployment/export.py --backend inductor``,
``inference.py``, the benchmark and :class:`~emo.deployment.DeployInferencer` take it.

:func:`compile_for_inference` compiles a module for inference the way this project times
and tests it: Inductor with ``freezing`` (parameters become constants of the graph, so
the deploy form's folded weights are prepacked for oneDNN / MKL and conv + activation
pairs fuse), one static graph per input shape (``dynamic=False``: a new batch size or
H, W compiles a new graph; after torch's recompile limit, 8 shapes by default, further
shapes run eagerly). Automatic dynamic shapes are off on purpose: with them a second
input size makes the EMO graph recompile with symbolic H and W, a compile that did not
finish in 5 minutes on a 2-core CPU.

:func:`compile_model` does it in place for an OpenMMLab model (what ``tools/test.py
--compile`` uses): its ``extract_feat`` (backbone
and neck) and its head's ``forward`` are compiled, the pre- and post-processing (data
samples, NMS, resizing) stay eager, and the state dict keeps its keys.

Freezing reads the weights when a shape is first compiled (the first call): load the
checkpoint before the first forward (mmengine's test loop does), and compile again after
changing weights. Freezing applies without autograd only (``torch.no_grad()`` /
``torch.inference_mode()``); with autograd the graph is compiled without it.
Training is compiled by mmengine itself: the config's ``compile`` option (True or
``torch.compile`` kwargs) compiles ``model.train_step`` (the optimizer step stays eager:
:class:`emo.engine.hooks.EagerOptimStepHook`).
"""
import json
import os.path as osp
import zipfile
from typing import List, Optional

import torch
import torch.nn as nn

from .registry import ExportSpec, ModelFileError, RuntimeModel

__all__ = ['compile_for_inference', 'compile_model', 'INDUCTOR_OPTIONS', 'InductorModel',
           'export_inductor', 'export_file']

#: the Inductor settings of every compiled inference form of this project
INDUCTOR_OPTIONS = dict(freezing=True)
#: prefix of this project's metadata keys in a ``.pt2`` package (AOTInductor adds its own)
META_PREFIX = 'emo.'


def _compile(fn, dynamic: bool, options: Optional[dict], **kwargs):
    return torch.compile(fn, backend='inductor', dynamic=dynamic,
                         options={**INDUCTOR_OPTIONS, **(options or {})}, **kwargs)


def compile_for_inference(module: nn.Module, dynamic: bool = False,
                          options: Optional[dict] = None, **kwargs):
    """``torch.compile(module)`` with Inductor, :data:`INDUCTOR_OPTIONS` (freezing) and
    one static graph per input shape (see the module docstring); returns the compiled
    module (``OptimizedModule``; its ``_orig_mod`` is ``module``, whose state dict is
    unchanged). ``options`` add Inductor settings, ``kwargs`` go to ``torch.compile``."""
    return _compile(module, dynamic, options, **kwargs)


#: the heads whose ``forward`` maps features to the raw outputs (mmpretrain, mmdet, mmseg)
HEADS = ('head', 'bbox_head', 'decode_head')


def compile_model(model: nn.Module, dynamic: bool = False,
                  options: Optional[dict] = None) -> nn.Module:
    """Compile an OpenMMLab model (classifier, detector, segmentor, or one wrapped by
    mmengine for distributed runs) in place for inference: its ``extract_feat`` (backbone
    and neck) and its head's ``forward`` become Inductor graphs, one per input shape;
    data samples and post-processing stay eager. Returns ``model``.

    A model without ``extract_feat`` is an error (compile other modules with
    :func:`compile_for_inference`)."""
    from mmengine.model import is_model_wrapper
    inner = model.module if is_model_wrapper(model) else model
    if not callable(getattr(inner, 'extract_feat', None)):
        raise TypeError(f'compile_model: {type(inner).__name__} has no extract_feat(); an '
                        'OpenMMLab classifier, detector or segmentor was expected (compile '
                        'other modules with compile_for_inference)')
    inner.extract_feat = _compile(inner.extract_feat, dynamic, options)
    for name in HEADS:
        head = getattr(inner, name, None)
        if isinstance(head, nn.Module):
            head.forward = _compile(head.forward, dynamic, options)
    return model


# ---------------------------------------------------------------- AOTInductor files


def export_inductor(module: nn.Module, path: str, shape, max_batch: int = 32,
                    dynamic_batch: bool = True, metadata: Optional[dict] = None,
                    options: Optional[dict] = None) -> str:
    """AOTInductor package ``path`` (``.pt2``) of ``module`` (B, 3, H, W) -> tensors at
    H, W = ``shape``, the batch dynamic in [1, ``max_batch``] (``dynamic_batch=False``:
    fixed at ``max_batch``), compiled with :data:`INDUCTOR_OPTIONS` (+ ``options``);
    ``metadata`` (str -> str) is stored in the package. Returns ``path``."""
    from .program import export_program
    if not str(path).endswith('.pt2'):
        raise ValueError(f'{path}: an AOTInductor package ends with .pt2')
    example = torch.randn(max_batch if not dynamic_batch else min(2, max_batch), 3, *shape)
    program = export_program(module, tuple(shape), dynamic_batch=dynamic_batch and
                             max_batch > 1, max_batch=max_batch, example=example)
    meta = {META_PREFIX + k: str(v) for k, v in (metadata or {}).items()}
    meta[META_PREFIX + 'shape'] = json.dumps([int(s) for s in shape])
    meta[META_PREFIX + 'max_batch'] = json.dumps(int(max_batch))
    meta[META_PREFIX + 'dynamic_batch'] = json.dumps(bool(dynamic_batch and max_batch > 1))
    configs = {**INDUCTOR_OPTIONS, **(options or {}), 'aot_inductor.metadata': meta}
    return torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                    inductor_configs=configs)


def export_file(module: nn.Module, path: str, spec: ExportSpec) -> str:
    """The ``inductor`` backend's exporter: :func:`export_inductor` at ``spec.shape``, the
    batch dynamic up to ``spec.max_batch`` (fixed when ``spec.dynamic_batch`` is False)."""
    return export_inductor(module, path, spec.shape, max_batch=spec.max_batch,
                           dynamic_batch=spec.dynamic_batch, metadata=spec.metadata)


class InductorModel(RuntimeModel):
    """A ``.pt2`` AOTInductor package loaded with ``torch._inductor.aoti_load_package``;
    calling it with a float32 batch (B, 3, H, W) returns the outputs as a list of tensors.
    The runtime model of the ``inductor`` backend (:class:`~emo.deployment.registry.
    RuntimeModel`).

    Args:
        path (str): the ``.pt2`` file.
        threads (int | None): torch's intra-op threads (process-wide; None: leave them).
        spinning: unused (the kernels run on torch's OpenMP pool).
    """

    backend = 'inductor'

    def __init__(self, path: str, threads: Optional[int] = None, spinning: bool = True):
        if not osp.isfile(path):
            raise FileNotFoundError(f'AOTInductor package not found: {path}')
        if not zipfile.is_zipfile(path):
            raise ModelFileError(path, 'is not an AOTInductor package (a .pt2 zip archive '
                                 'that export.py --backend inductor writes); it may be '
                                 'truncated: export it again')
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.path, self.threads = path, threads
        try:
            self.model = torch._inductor.aoti_load_package(path)
            stored = self.model.get_metadata()
        except (RuntimeError, KeyError, zipfile.BadZipFile) as e:
            raise ModelFileError(path, f'AOTInductor cannot load it ({e}); export it again '
                                 'with this torch') from None
        self.metadata = {k[len(META_PREFIX):]: v for k, v in stored.items()
                         if k.startswith(META_PREFIX)}
        meta = self.metadata
        self.output_names = json.loads(meta.get('output_names', 'null')) or []
        self.input_hw = tuple(json.loads(meta['shape'])) if meta.get('shape') else None
        self.max_batch = json.loads(meta['max_batch']) if meta.get('max_batch') else None
        self.fixed_batch = self.max_batch if meta.get('dynamic_batch') == 'false' else None

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        self.check_input(x)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            from .registry import InputSizeError
            raise InputSizeError(f'{self.path} was compiled for batch {self.fixed_batch}, '
                                 f'got {x.shape[0]}: export it again with a dynamic batch')
        with torch.inference_mode():
            outs = self.model(x.float().contiguous())
        outs = [outs] if isinstance(outs, torch.Tensor) else list(outs)
        return [o.clone() for o in outs]

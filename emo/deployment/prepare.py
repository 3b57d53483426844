"""What every export shares: the model's preparation, the export size, the metadata.

* :func:`prepare_model`: the config's model with its checkpoint, in eval mode, its
  training form kept for verification when asked, re-parameterized
  (:func:`emo.apis.reparameterize_model`: every module with ``switch_to_deploy()``);
* :func:`export_size`: the one rule for the size a file is exported at;
* :func:`export_metadata`: the one schema of the strings stored in every file type
  (ONNX ``metadata_props``, the ExecuTorch sidecar ``<file>.json``, the OpenVINO IR's
  ``rt_info``, Core ML's user-defined metadata), all JSON-encoded but ``task`` and
  ``config``:

  ========================  =====================================================
  ``task``                  'classification', 'detection' or 'segmentation'
  ``config``                the config file's name
  ``output_names``          the graph's outputs, in order
  ``shape``                 the (H, W) exported at (traced at, when H, W are dynamic)
  ``dynamic_hw``            whether H and W are dynamic
  ``reparameterized``       whether the deploy form was exported
  ``classes``               class names (checkpoint's ``dataset_meta``, else the
                            config's data set), when known
  ========================  =====================================================

  Backends add their own keys (ExecuTorch: ``max_batch``, ``num_outputs``,
  ``portable_ops``; INT8 files: ``quantization``, ``float_ops``).
"""
import copy
import json
import os.path as osp
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ['Prepared', 'prepare_model', 'export_size', 'export_metadata']


class Prepared(NamedTuple):
    model: nn.Module  # eval mode, re-parameterized unless asked not to be
    reference: Optional[nn.Module]  # the training form (eval), when asked for
    meta: dict  # dataset_meta: the checkpoint's over the config's
    task: str
    reparameterized: bool


def prepare_model(cfg, checkpoint: Optional[str] = None, reparam: bool = True,
                  reference: bool = False, allow_partial: bool = False,
                  log=print) -> Prepared:
    """The model of ``cfg`` (a Config) as the export tools take it: weights from
    ``checkpoint`` (every tensor the model uses must be in it unless ``allow_partial``:
    :func:`emo.apis.load_weights`; None: random weights, said through ``log``), eval
    mode, a copy of the training form when ``reference`` (for ``--verify``), then
    re-parameterized unless ``reparam=False``."""
    from ..apis.builder import (build_model_from_cfg, dataset_meta, load_weights,
                                reparameterize_model, task_of)
    if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')  # before building
    model = build_model_from_cfg(cfg)
    meta = dataset_meta(cfg)
    if checkpoint:
        meta.update(load_weights(model, checkpoint, allow_partial=allow_partial))
    elif log:
        log('no checkpoint given: exporting randomly initialised weights')
    model.eval()
    # the training form is copied before anything is changed
    ref = copy.deepcopy(model) if reference else None
    reparameterized = bool(reparam) and reparameterize_model(model) > 0
    if log:
        log(f'model re-parameterized (switch_to_deploy): {reparameterized}')
    return Prepared(model, ref, meta, task_of(model), reparameterized)


def export_size(cfg, shape: Optional[Sequence[int]] = None,
                inputs: Optional[Sequence[torch.Tensor]] = None) -> Tuple[int, int]:
    """The (H, W) to export at: ``shape`` when given, else the size the config's test
    pipeline makes every image (:func:`emo.apis.builder.pipeline_shape`), else the size
    of the calibration ``inputs`` when they share one, else
    :func:`emo.apis.default_shape` (the segmentor's crop size, a keep-ratio resize's
    scale, 224x224)."""
    from ..apis.builder import default_shape, pipeline_shape
    if shape:
        shape = tuple(int(s) for s in shape)
        return shape * 2 if len(shape) == 1 else shape
    fixed = pipeline_shape(cfg)
    if fixed:
        return fixed
    sizes = {tuple(x.shape[2:]) for x in inputs or ()}
    if len(sizes) == 1:
        return sizes.pop()
    return tuple(default_shape(cfg))


def export_metadata(wrapper: nn.Module, config, shape: Sequence[int],
                    classes: Optional[Sequence[str]] = None, reparameterized: bool = True,
                    dynamic_hw: bool = False, **extra) -> dict:
    """The metadata of the module docstring for the task wrapper ``wrapper`` exported
    from ``config`` (a Config or a file name) at ``shape``; ``extra`` values are stored
    JSON-encoded."""
    name = getattr(config, 'filename', config)
    metadata = dict(task=wrapper.task, config=osp.basename(str(name)),
                    output_names=json.dumps(list(wrapper.output_names())),
                    shape=json.dumps([int(s) for s in shape]),
                    dynamic_hw=json.dumps(bool(dynamic_hw)),
                    reparameterized=json.dumps(bool(reparameterized)))
    if classes:
        metadata['classes'] = json.dumps(list(classes))
    metadata.update({k: json.dumps(v) for k, v in extra.items()})
    return metadata

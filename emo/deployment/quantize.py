"""Calibration for post-training static INT8 quantization, and fp32-vs-INT8 evaluation.

Calibration images come from a data set the user names (a split of the config, a folder,
a list file) and go through the config's own test pipeline and ``data_preprocessor``, as
at inference. Each backend quantizes with its own tool, in its own module (the
registry's ``quantizer``, :mod:`emo.deployment.registry`):

* ONNX Runtime: ``onnxruntime.quantization.quantize_static``, QDQ format, per-channel
  weights (:func:`emo.deployment.onnx.quantize_onnxruntime`);
* OpenVINO: NNCF's ``nncf.quantize`` on the converted deploy form
  (:func:`emo.deployment.openvino.quantize_openvino`);
* ExecuTorch: torchao's PT2E flow with XNNPACK's quantizer, lowered to XNNPACK
  (:func:`emo.deployment.executorch.quantize_executorch`).

(Those names are importable from here too.) :func:`compare_on_test_set` runs the fp32
and INT8 forms of a model, each through a :class:`~emo.deployment.DeployInferencer`, on
the config's test set with the config's ``test_evaluator``.
"""
import collections
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from ..apis.builder import build_model_from_cfg, dataset_cfgs, inference_pipeline_cfg
from ..apis.launch import fix_dataloader
# each backend's quantizer lives beside its exporter; the names stay importable here
from .executorch import float_ops_executorch, quantize_executorch  # noqa: F401
from .onnx import float_ops_onnx, ort_int8_ops, quantize_onnxruntime  # noqa: F401
from .openvino import float_ops_openvino, openvino_model, quantize_openvino  # noqa: F401

__all__ = [
    'calibration_images', 'calibration_inputs', 'quantize_onnxruntime', 'ort_int8_ops',
    'float_ops_onnx', 'quantize_openvino', 'openvino_model', 'float_ops_openvino',
    'quantize_executorch', 'float_ops_executorch', 'compare_on_test_set', 'IMG_EXTENSIONS',
    'evenly_spaced'
]

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


def _split_dataset_cfg(cfg: Config, split: str):
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise KeyError(f'{cfg.filename}: no {split}_dataloader.dataset to calibrate on')
    return loader.dataset


def _describe(ds_cfg) -> str:
    ds_cfg = next(dataset_cfgs(ds_cfg, leaves=True))
    parts = [f'{k}={ds_cfg[k]!r}' for k in ('type', 'data_root', 'ann_file', 'data_prefix')
             if ds_cfg.get(k)]
    return ', '.join(parts)


def evenly_spaced(n: int, num: int) -> List[int]:
    """``min(num, n)`` indices of ``range(n)`` spread evenly from the first to the last
    (so a set sorted by class contributes every class)."""
    if n <= 0:
        return []
    return [int(i) for i in np.unique(np.linspace(0, n - 1, min(num, n)).round())]


def calibration_images(cfg: Config, data: str = 'val', num: int = 32) -> List[str]:
    """``num`` image files to calibrate on, spread evenly over the named data set.

    Args:
        cfg: the model's config.
        data: ``'train'``, ``'val'`` or ``'test'`` (that dataloader's data set of
            ``cfg``), a folder (its images, recursively, sorted) or a text file (one
            image path a line, relative to the file's folder unless absolute).
        num: how many images (all when the set has fewer); evenly spaced indices, so a
            set sorted by class contributes every class.

    Raises ``ValueError`` naming the data set or file when it yields no image.
    """
    if num < 1:
        raise ValueError(f'the calibration set needs at least one image, got num={num}')
    if data in ('train', 'val', 'test'):
        from mmengine.registry import init_default_scope
        import importlib
        init_default_scope(cfg.default_scope)
        datasets = importlib.import_module(f'{cfg.default_scope}.registry').DATASETS
        ds_cfg = _split_dataset_cfg(cfg, data)
        where = f'the {data} set of {cfg.filename} ({_describe(ds_cfg)})'
        try:
            dataset = datasets.build(copy.deepcopy(ds_cfg))
        except (FileNotFoundError, OSError, RuntimeError) as e:  # mmpretrain: RuntimeError
            raise ValueError(f'the calibration set is empty or unreadable: {where}: '
                             f'{e}') from e
        paths = [dataset.get_data_info(i)['img_path'] for i in evenly_spaced(len(dataset), num)]
    elif osp.isdir(data):
        where = f'the folder {data}'
        paths = sorted(
            osp.join(root, f) for root, _, files in os.walk(data) for f in files
            if f.lower().endswith(IMG_EXTENSIONS))
        paths = [paths[i] for i in evenly_spaced(len(paths), num)]
    elif osp.isfile(data):
        where = f'the list file {data}'
        with open(data) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
        paths = [p if osp.isabs(p) else osp.join(osp.dirname(data), p) for p in lines][:num]
        missing = [p for p in paths if not osp.isfile(p)]
        if missing:
            raise ValueError(f'{where}: {len(missing)} listed images do not exist, e.g. '
                             f'{missing[0]}')
    else:
        raise ValueError(f'calibration data {data!r} does not exist: expected train, '
                         'val, test, a folder of images or a list file')
    if not paths:
        raise ValueError(f'the calibration set is empty: {where} has no images'
                         + (f' (extensions {", ".join(IMG_EXTENSIONS)})'
                            if osp.isdir(data) else ''))
    return paths


@torch.no_grad()
def calibration_inputs(cfg: Config, images: Sequence[str],
                       model: Optional[torch.nn.Module] = None) -> List[torch.Tensor]:
    """Each image through the config's test pipeline (``LoadAnnotations`` dropped) and
    the model's ``data_preprocessor``: a list of normalised (1, 3, H, W) inputs, one per
    image (sizes may differ between images where the pipeline keeps the aspect ratio)."""
    model = build_model_from_cfg(cfg) if model is None else model
    pipeline = Compose(inference_pipeline_cfg(cfg))
    inputs = []
    for path in images:
        data = pseudo_collate([pipeline(dict(img_path=path))])
        inputs.append(model.data_preprocessor(data, False)['inputs'].float())
    return inputs


@torch.no_grad()
def compare_on_test_set(cfg: Config, inferencers: Dict[str, object],
                        num: Optional[int] = None) -> Dict[str, dict]:
    """Evaluate several runtime forms of one model on the config's test set.

    Every image is loaded and pre-processed once (the test dataloader and the
    ``data_preprocessor``); each inferencer (an object with ``model``, ``forward(inputs)
    -> list of tensors`` and ``postprocess(outputs, data_samples)``, e.g.
    :class:`emo.deployment.ONNXInferencer`) runs it and its predictions go to its own
    copy of the config's ``test_evaluator``.

    Args:
        cfg: the config.
        inferencers: ``{name: inferencer}``.
        num: evaluate the first ``num`` batches only (testing; COCO's mAP counts the
            images left out as missed).

    Returns:
        ``{name: metrics}``; for classification every entry but the first also has
        ``'agreement/top1'``: the percentage of test images where its top-1 class is the
        first inferencer's.
    """
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(fix_dataloader(copy.deepcopy(cfg.test_dataloader)))
    first = next(iter(inferencers.values()))
    evaluators, labels = {}, collections.defaultdict(list)
    for name in inferencers:
        evaluators[name] = Evaluator(copy.deepcopy(cfg.test_evaluator))
        evaluators[name].dataset_meta = loader.dataset.metainfo
    seen = 0
    for i, data in enumerate(loader):
        if num is not None and i >= num:
            break
        data = first.model.data_preprocessor(data, False)
        seen += len(data['data_samples'])
        for name, inf in inferencers.items():
            samples = inf.postprocess(inf.forward(data['inputs']),
                                      copy.deepcopy(data['data_samples']))
            evaluators[name].process(samples, data)
            if hasattr(samples[0], 'pred_label'):
                labels[name].extend(int(s.pred_label[0]) for s in samples)
    if not seen:
        raise ValueError(f'the test set of {cfg.filename} is empty')
    results = {name: {k: float(v) if isinstance(v, (int, float, np.number)) else v
                      for k, v in ev.evaluate(seen).items()}
               for name, ev in evaluators.items()}
    names = list(inferencers)
    if labels:
        ref = np.array(labels[names[0]])
        for name in names[1:]:
            results[name]['agreement/top1'] = float(
                100.0 * (np.array(labels[name]) == ref).mean())
    return results


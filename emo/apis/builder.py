"""Building models from configs: the one place every tool and test builds a model.

* :func:`build_model_from_cfg`: ``cfg.model`` as mmengine's Runner builds it (the top-level
  ``data_preprocessor`` merged, under the config's default scope), without reading any
  ``Pretrained`` file, in eval or train mode, optionally with a checkpoint loaded and
  re-parameterized for inference;
* :func:`reparameterize_model`: one walk that switches every module with a
  ``switch_to_deploy()`` (EMO's backbone, mmpretrain's RepVGG / MobileOne, ...) to its
  inference form (timm's ``reparameterize_model``, mmpretrain's convention);
* what a config says about its data: :func:`default_shape` (the size it evaluates at),
  :func:`dataset_meta` (class names, palette), :func:`inference_pipeline_cfg` (its test
  pipeline without annotations, as the inferencers use it).
"""
import copy
import importlib
import os.path as osp
from typing import Iterator, List, Optional, Tuple, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

__all__ = ['build_model_from_cfg', 'load_weights', 'reparameterize_model', 'default_shape',
           'pipeline_shape', 'dataset_meta', 'inference_pipeline_cfg', 'task_of', 'TASKS',
           'dataset_cfgs']

#: the task of each default scope
TASKS = dict(mmpretrain='classification', mmdet='detection', mmseg='segmentation')


def _without_pretrained(cfg: dict) -> dict:
    """``cfg`` with ``Pretrained`` init_cfgs (weight files) dropped at the model and the
    backbone level; other init_cfgs (a head's normal init) stay."""
    cfg = copy.deepcopy(cfg)

    def pretrained(init_cfg):
        cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)

    if pretrained(cfg.get('init_cfg')):
        cfg.pop('init_cfg')
    if isinstance(cfg.get('backbone'), dict) and pretrained(cfg.backbone.get('init_cfg')):
        cfg.backbone = dict(cfg.backbone, init_cfg=None)
    return cfg


def build_model_from_cfg(cfg: Union[str, Config],
                         mode: str = 'eval',
                         checkpoint: Optional[str] = None,
                         deploy: bool = False,
                         strict: bool = False,
                         allow_partial: bool = False) -> nn.Module:
    """The model of ``cfg`` (a Config or a config file).

    Args:
        cfg: the config; ``model`` and, when present, the top-level
            ``data_preprocessor`` (merged as the Runner merges it) and ``default_scope``.
        mode: ``'eval'`` or ``'train'``, the mode the model is returned in.
        checkpoint: weights to load (:func:`load_weights`: every tensor the model uses
            must be in it); the checkpoint's ``meta.dataset_meta`` becomes
            ``model.dataset_meta``. ``Pretrained`` files of the config are never read.
        deploy: re-parameterize for inference (:func:`reparameterize_model`) after
            loading.
        strict: also every checkpoint key must be one of the model's.
        allow_partial: load a checkpoint that fills only part of the model (the rest
            keeps its initialisation; the log says which): see :func:`load_weights`.
    """
    if mode not in ('eval', 'train'):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = _without_pretrained(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg)
    if checkpoint:
        meta = load_weights(model, checkpoint, strict=strict, allow_partial=allow_partial)
        if meta:
            model.dataset_meta = meta
    if deploy:
        reparameterize_model(model)
    return model.train(mode == 'train')


def load_weights(model: nn.Module, checkpoint: str, strict: bool = False,
                 allow_partial: bool = False) -> dict:
    """Load ``checkpoint`` into ``model`` on the CPU, for evaluation, inference or
    export; returns its ``meta.dataset_meta`` (``{}`` when it has none).

    The file is read by mmengine's ``CheckpointLoader`` (local files: the safe loader,
    :func:`emo.engine.safe_io.load_from_local`) and checked by
    :func:`emo.models.utils.state_dict.fit_checkpoint` (official EMO files converted;
    other shapes, a file that fits nothing and, unless ``allow_partial``, a file that
    leaves any tensor the model uses unfilled are errors naming the keys and the config
    the file belongs to: :class:`~emo.engine.safe_io.IncompleteCheckpointError`).
    ``strict``: keys of the file that the model does not have are an error too.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmengine.runner.checkpoint import load_state_dict

    from emo.models.utils.state_dict import fit_checkpoint
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = fit_checkpoint(model, ckpt, checkpoint, complete=True,
                           allow_partial=allow_partial)
    load_state_dict(model, state, strict=strict)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return dict((meta or {}).get('dataset_meta') or {})


def reparameterize_model(model: nn.Module) -> int:
    """Switch every module of ``model`` that has ``switch_to_deploy()`` to its inference
    form, in place (outermost first: a module's switch covers its children). Returns how
    many were switched (0: nothing to re-parameterize)."""
    switched, done = 0, []
    for name, module in model.named_modules():
        if any(name.startswith(d + '.') for d in done):
            continue  # inside a module already switched
        if callable(getattr(module, 'switch_to_deploy', None)):
            module.switch_to_deploy()
            done.append(name)
            switched += 1
    return switched


def task_of(model: nn.Module) -> str:
    """'classification', 'segmentation' or 'detection' for a built OpenMMLab model."""
    if hasattr(model, 'decode_head'):
        if type(model).__name__ != 'EncoderDecoder':
            raise TypeError(f'only mmseg EncoderDecoder segmentors are supported, got '
                            f'{type(model).__name__}')
        return 'segmentation'
    if hasattr(model, 'bbox_head'):
        if hasattr(model, 'rpn_head') or hasattr(model, 'roi_head'):
            raise TypeError(f'only single-stage detectors are supported, got '
                            f'{type(model).__name__}')
        return 'detection'
    if hasattr(model, 'head') and hasattr(model, 'backbone'):
        return 'classification'
    raise TypeError(f'cannot tell the task of {type(model).__name__}: expected an '
                    'mmpretrain ImageClassifier, an mmseg EncoderDecoder or an mmdet '
                    'single-stage detector')


def _wrapped(ds) -> list:
    """The data sets ``ds`` wraps: from a config's keys, or a built data set's attributes."""
    if isinstance(ds, dict):
        return list(ds.get('datasets') or []) + ([ds['dataset']] if ds.get('dataset') else [])
    inner = getattr(ds, 'dataset', None)
    return list(getattr(ds, 'datasets', None) or []) + ([inner] if inner is not None else [])


def dataset_cfgs(ds, leaves: bool = False) -> Iterator:
    """A data set and every data set it wraps (``dataset`` of RepeatDataset,
    ClassBalancedDataset & co., ``datasets`` of ConcatDataset), outermost first;
    ``leaves``: only the data sets that wrap none. ``ds`` is a data set config (a dict) or
    a built data set: the one unroller of wrapped data sets."""
    todo = [ds]
    while todo:
        ds = todo.pop(0)
        if ds is None or (isinstance(ds, dict) and not ds):
            continue
        inner = _wrapped(ds)
        if not (leaves and inner):
            yield ds
        todo[:0] = inner


def _test_dataset_cfg(cfg: Config) -> dict:
    """The (first) data set that the test dataloader's wrappers hold."""
    return next(dataset_cfgs(cfg.test_dataloader.dataset, leaves=True))


def inference_pipeline_cfg(cfg: Config) -> List[dict]:
    """The test pipeline of ``cfg`` without ``LoadAnnotations`` (as the inferencers do)."""
    pipeline = cfg.get('test_pipeline') or _test_dataset_cfg(cfg).get('pipeline')
    if not pipeline:
        raise KeyError(f'{cfg.filename}: no test_pipeline / test_dataloader pipeline')
    return [copy.deepcopy(t) for t in pipeline if t['type'] != 'LoadAnnotations']


def default_shape(cfg: Config) -> Tuple[int, int]:
    """(H, W) the config evaluates at: the classifier's centre crop, the detector's
    resize scale (W, H in the config), the segmentor's crop size; else 224x224."""
    scope = cfg.get('default_scope')
    if scope == 'mmseg' and cfg.get('crop_size'):
        return tuple(cfg.crop_size)
    if not (cfg.get('test_pipeline') or cfg.get('test_dataloader')):
        return (224, 224)
    for t in inference_pipeline_cfg(cfg):
        if scope == 'mmpretrain' and t['type'] == 'CenterCrop':
            size = t['crop_size']
            return (size, size) if isinstance(size, int) else tuple(size[::-1])
        if scope == 'mmdet' and t['type'] == 'Resize':
            w, h = t['scale']
            return (h, w)
    return (224, 224)


def pipeline_shape(cfg: Config) -> Optional[Tuple[int, int]]:
    """(H, W) at which the config's test pipeline leaves every image, when it fixes one:
    the last centre crop or fixed-scale resize (``keep_ratio=False``; W, H in the
    config) with no keep-ratio or edge resize after it; None otherwise (e.g. a
    keep-ratio resize, or no resize: the images keep their own sizes)."""
    if not (cfg.get('test_pipeline') or cfg.get('test_dataloader')):
        return None
    size = None
    for t in inference_pipeline_cfg(cfg):
        if t['type'] == 'CenterCrop' and t.get('crop_size') is not None:
            crop = t['crop_size']
            size = (crop, crop) if isinstance(crop, int) else tuple(crop[::-1])
        elif t['type'] == 'Resize' and t.get('scale') is not None:
            scale = t['scale']
            fixed = not t.get('keep_ratio', False)
            size = ((scale, scale) if isinstance(scale, int) else tuple(scale[::-1])) \
                if fixed else None
        elif t['type'] in ('ResizeEdge', 'RandomResize', 'RandomChoiceResize',
                           'FixShapeResize', 'Pad'):
            size = None
    return tuple(int(s) for s in size) if size else None


def dataset_meta(cfg: Config) -> dict:
    """``dataset_meta`` of the test set: its ``metainfo`` over the dataset class's
    ``METAINFO`` (e.g. COCO's 80 classes); ``{}`` when neither names classes."""
    ds = _test_dataset_cfg(cfg)
    # the library's own registry imports its datasets module (the root one does not)
    datasets = importlib.import_module(f'{cfg.default_scope}.registry').DATASETS
    meta = copy.deepcopy(getattr(datasets.get(ds.type), 'METAINFO', None) or {})
    meta.update(ds.get('metainfo') or {})
    return meta

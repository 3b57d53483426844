"""EMO by name in mmpretrain, and pretrained weights by URL (mmpretrain's ``ModelHub``).

* :func:`register_models`: the classifiers of ``model-index.yml`` (every metafile entry
  whose config is under ``configs/classification/``) join mmpretrain's ``ModelHub``, so
  ``mmpretrain.list_models('*emo*')``, ``get_model(name, pretrained=True)``,
  ``ImageClassificationInferencer(name, pretrained=True)`` and ``inference_model(name,
  ...)`` find them. ``import emo`` calls it when ``mmpretrain.apis`` is imported
  (:mod:`emo.lazy`). The detection and segmentation entries stay out: no weights were
  released for them and mmpretrain builds classifiers only.
* :func:`load_from_http`: mmengine's ``http://`` / ``https://`` checkpoint scheme
  (installed by :mod:`emo.patches`): the file is downloaded once into mmengine's
  download cache (``<torch hub dir>/checkpoints``, ``$TORCH_HOME``), under a name that
  keeps the URL apart (the four official files are all called ``net.pth``), then read
  by the safe local loader (``weights_only=True`` and an allow-list; mmengine's own
  loader unpickles downloads with ``weights_only=False``). An unreachable URL is a
  :class:`WeightsDownloadError` that names it and says how to pass a local file.
* :func:`load_checkpoint`: mmengine's ``load_checkpoint`` (what ``get_model``, the
  inferencers and mmdet / mmseg's ``init_*`` call) with the official EMO layouts fitted
  first by the project's loud loader (:func:`emo.models.utils.state_dict.fit_checkpoint`:
  converted key by key, a file that fits nothing or a tensor of another shape is an
  error naming the keys); every other checkpoint goes to mmengine unchanged.
"""
import hashlib
import logging
import os
import os.path as osp
import urllib.error
from collections import OrderedDict

__all__ = ['register_models', 'mim_root', 'load_from_http', 'load_checkpoint',
           'cached_file', 'WeightsDownloadError', 'TASK_DIR']

#: the configs folder whose metafile entries are mmpretrain models
TASK_DIR = 'configs/classification/'


class WeightsDownloadError(OSError):
    """A checkpoint URL could not be downloaded (the message names it)."""


def mim_root():
    """The folder with ``model-index.yml``, ``configs/`` and ``tools/``: ``emo/.mim``
    (package data in a wheel; links to the clone's own in the clone)."""
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')


_registered = []


def register_models(model_hub=None):
    """Register the EMO classifiers of ``model-index.yml`` with mmpretrain's
    ``ModelHub`` (once; the configs resolve under :func:`mim_root`). Returns their
    names."""
    if _registered:
        return list(_registered)
    from modelindex.load_model_index import load
    if model_hub is None:
        from mmpretrain.apis.model import ModelHub as model_hub
    root = mim_root()
    index = load(osp.join(root, 'model-index.yml'))
    index.build_models_with_collections()
    for metainfo in index.models:
        if not (metainfo.config or '').startswith(TASK_DIR):
            continue
        name = metainfo.name.lower()
        if name in model_hub._models_dict:
            raise ValueError(f'{osp.join(root, "model-index.yml")}: model name {name!r} '
                             f'is taken already ({model_hub._models_dict[name].filepath})')
        metainfo.config = model_hub._expand_config_path(metainfo, root)
        model_hub._models_dict[name] = metainfo
        _registered.append(name)
    return list(_registered)


def cached_file(url, model_dir=None):
    """Where :func:`load_from_http` keeps ``url``: ``<model_dir or torch hub
    dir/checkpoints>/<stem>-<8 hex digits of the URL's SHA-256><ext>``."""
    import torch
    from urllib.parse import urlparse
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    stem, ext = osp.splitext(osp.basename(urlparse(url).path) or 'checkpoint')
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return osp.join(model_dir, f'{stem}-{digest}{ext}')


def _download(url, path, progress):
    import torch
    os.makedirs(osp.dirname(path), exist_ok=True)
    try:
        # to a temporary file in the same folder, then renamed: never half a file
        torch.hub.download_url_to_file(url, path, progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, 'reason', None) or e
        raise WeightsDownloadError(
            f'cannot download the checkpoint {url}: {reason}. Download it yourself '
            f'(e.g. on a machine with access) and pass the file instead: '
            f"get_model(name, pretrained='path/to/file.pth'), tools/test.py CONFIG "
            f'path/to/file.pth, or put it at {path} (the download cache).') from e


def load_from_http(filename, map_location=None, model_dir=None, progress=None):
    """mmengine's http(s) checkpoint scheme: download once into the cache
    (:func:`cached_file`; rank 0 first in a distributed run), then the safe loader."""
    from mmengine.dist import barrier, get_dist_info

    from emo.engine.safe_io import load_from_local
    if progress is None:
        progress = os.environ.get('LOCAL_RANK', '0') == '0' and os.isatty(2)
    path = cached_file(filename, model_dir)
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(path):
        _download(filename, path, progress)
    if world_size > 1:
        barrier()
        if not osp.isfile(path):
            _download(filename, path, False)
    return load_from_local(path, map_location=map_location)


def _drop_mismatched_head(model, state, name, logger):
    """Classifier-head tensors of another shape (another ``num_classes``, as for
    fine-tuning) are left out with a warning, as timm does for ``pretrained=True``."""
    from mmengine.logging import print_log
    own = model.state_dict()
    drop = [k for k, v in state.items() if k.startswith('head.') and k in own
            and tuple(own[k].shape) != tuple(getattr(v, 'shape', ()))]
    for k in drop:
        print_log(f'{name}: {k} {tuple(state[k].shape)} does not fit the model\'s '
                  f'{tuple(own[k].shape)} (another num_classes); left at its '
                  'initialisation', logger=logger or 'current', level=logging.WARNING)
        del state[k]


def fit_official(model, checkpoint, name, logger=None):
    """``checkpoint`` (loaded; changed in place) fitted to ``model`` when it is an
    official EMO file or trainer checkpoint: for a model with ``backbone.*`` keys
    converted to mmpretrain names, for a bare backbone the classifier-only keys left
    out; then checked (:func:`~emo.models.utils.state_dict.check_fit`). Returns True
    when the checkpoint was official, False (untouched) otherwise."""
    from mmengine.logging import print_log

    from emo.models.utils.state_dict import (OFFICIAL_HEAD, check_fit, fit_checkpoint,
                                             is_official_layout, official_to_mmpretrain,
                                             unwrap_official_trainer)
    log = logger or 'current'
    unwrap_official_trainer(checkpoint, name, log)
    if not is_official_layout(checkpoint):
        return False
    own = model.state_dict()
    if any(k.startswith('stage0.') for k in own):  # the backbone itself
        extra = [k for k in checkpoint if k not in own
                 and (k in OFFICIAL_HEAD or k.startswith('norm.'))]
        for k in extra:
            del checkpoint[k]
        print_log(f'{name}: an official EMO checkpoint for the backbone; left out its '
                  f'classifier-only keys {sorted(extra)}', logger=log, level=logging.INFO)
        check_fit(model, checkpoint, name)
        return True
    converted = official_to_mmpretrain(checkpoint)
    print_log(f'{name}: an official EMO checkpoint; converted its {len(converted)} keys '
              'to mmpretrain names (backbone.*, head.fc.*)', logger=log, level=logging.INFO)
    _drop_mismatched_head(model, converted, name, logger)
    checkpoint.clear()
    checkpoint.update(state_dict=OrderedDict(converted), meta=dict())
    fit_checkpoint(model, checkpoint, name, logger=log)
    return True


def load_checkpoint(model, filename, map_location=None, strict=False, logger=None,
                    revise_keys=[(r'^module\.', '')]):  # noqa: B006 (mmengine's signature)
    """mmengine's ``load_checkpoint`` with the official EMO layouts fitted first
    (:func:`fit_official`); returns the checkpoint, as mmengine's does."""
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
    checkpoint = _load_checkpoint(filename, map_location, logger)
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f'No state_dict found in checkpoint file {filename}')
    fit_official(model, checkpoint, filename, logger)
    return _load_checkpoint_to_model(model, checkpoint, strict, logger, revise_keys)

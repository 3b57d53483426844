"""How EMO state dicts look and how they fit a model.

The official checkpoints (``EMO_1M/net.pth`` ...) are plain state dicts of the classifier:
``stage0.*`` ... ``stage4.*``, ``norm.*``, ``head.*``. mmpretrain / mmdet / mmseg
checkpoints hold ``{'state_dict': {'backbone.*': ..., ...}, 'meta': ...}``. This module is
the one place that knows both layouts and checks a state dict against a model: the
backbone's ``init_cfg=dict(type='Pretrained')`` (:func:`load_backbone_checkpoint`) and the
runner's ``load_from`` / ``--resume`` / ``tools/test.py CKPT``
(:class:`~emo.engine.hooks.CheckpointFitHook`, through :func:`fit_checkpoint`) use it.

The official EMO code copies whatever keys match and reports nothing, so a wrapped or
prefixed file silently loads nothing. Here every key is accounted for: what was loaded,
what was ignored on purpose (the classifier head, the final norm for downstream use),
what is missing and what is unexpected, by name; a file that fits nothing, or whose
tensors have other shapes than the model's (another variant), is an error.
"""
import logging
from collections import OrderedDict

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

OFFICIAL_HEAD = ('head.weight', 'head.bias')
OFFICIAL_PREFIXES = ('stage0.', 'stage1.', 'stage2.', 'stage3.', 'stage4.', 'norm.')


def strip_module_prefix(state_dict):
    """Keys without the leading ``module.`` that (Distributed)DataParallel adds."""
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in state_dict.items())


def unwrap_state_dict(checkpoint):
    """The tensors of a checkpoint: a plain state_dict or one under 'state_dict',
    'model' or 'module'; a leading 'module.' (DataParallel) is stripped."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'checkpoint is a {type(checkpoint).__name__}, not a dict')
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return strip_module_prefix(checkpoint)


def is_official_layout(checkpoint):
    """True for an official EMO file (``EMO_1M/net.pth``): a plain state_dict with the
    classifier's keys (``stage0.*`` ... ``stage4.*``, ``norm.*``, ``head.*``)."""
    if not isinstance(checkpoint, dict) or 'state_dict' in checkpoint or not checkpoint:
        return False
    keys = list(checkpoint)
    return (all(isinstance(k, str) for k in keys)
            and any(k.startswith('stage0.') for k in keys)
            and all(k.startswith(OFFICIAL_PREFIXES) or k in OFFICIAL_HEAD for k in keys))


def official_to_mmpretrain(state_dict):
    """Official EMO classifier keys -> mmpretrain ``ImageClassifier`` keys
    (``backbone.*`` and ``head.fc.*``)."""
    out = OrderedDict()
    for k, v in state_dict.items():
        if k.startswith(('backbone.', 'head.fc.')):
            raise ValueError(f'key {k!r} is already in mmpretrain format')
        out[f'head.fc.{k[5:]}' if k in OFFICIAL_HEAD else f'backbone.{k}'] = v
    return out


def _fmt(keys, limit=20):
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def check_fit(model, state_dict, name, file_keys=None, hint=''):
    """The keys of ``state_dict`` that ``model`` has, all of the model's shape.

    Raises ``ValueError`` naming ``name`` (the file) when no key fits the model (the
    message shows ``file_keys``, default the keys of ``state_dict``, and ends with
    ``hint``), or when tensors of common keys have other shapes (another variant or
    number of classes), with the keys and both shapes.
    """
    own = model.state_dict()
    common = [k for k in state_dict if k in own]
    if not common:
        file_keys = list(state_dict if file_keys is None else file_keys)
        raise ValueError(
            f'{name}: no tensor fits {type(model).__name__}. The file has '
            f'{len(file_keys)} keys (e.g. {_fmt(file_keys[:5])}); the model '
            f'expects e.g. {_fmt(list(own)[:5])}.' + (f' {hint}' if hint else ''))
    bad = [f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
           for k in common if hasattr(state_dict[k], 'shape')
           and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(
            f'{name}: {len(bad)} tensors do not fit the model (their shapes do not fit: '
            f'another variant or number of classes?): ' + '; '.join(bad[:10])
            + (f' ... (+{len(bad) - 10} more)' if len(bad) > 10 else ''))
    return common


def fit_checkpoint(model, checkpoint, name, logger='current'):
    """Make a loaded runner checkpoint fit ``model`` (in place) or fail naming what does
    not: an official EMO file is converted to mmpretrain keys (and the log says so),
    then :func:`check_fit`. Missing and unexpected keys are left to mmengine, which
    warns about them by name."""
    if is_official_layout(checkpoint):
        converted = official_to_mmpretrain(checkpoint)
        checkpoint.clear()
        checkpoint['state_dict'] = converted
        checkpoint['meta'] = dict()
        print_log(f'{name}: an official EMO checkpoint; converted its {len(converted)} '
                  f'keys to mmpretrain names (backbone.*, head.fc.*)', logger=logger,
                  level=logging.INFO)
    state = checkpoint.get('state_dict', checkpoint)
    if isinstance(state, dict):
        check_fit(model, strip_module_prefix(state), name)


def match_backbone_state_dict(model, state_dict, prefix=None):
    """Select the backbone's tensors from ``state_dict``.

    ``prefix`` (e.g. 'backbone.') picks and strips the keys under it; None detects it:
    'backbone.' when such keys exist (mmpretrain / mmdet / mmseg checkpoints), else the
    official layout. Returns ``(selected, ignored)`` where ``ignored`` are keys that
    belong to other parts (head, neck, a final norm the backbone does not have).
    """
    if prefix is None:
        prefix = 'backbone.' if any(k.startswith('backbone.') for k in state_dict) else ''
    own = set(model.state_dict())
    selected, ignored = OrderedDict(), []
    for k, v in state_dict.items():
        if not k.startswith(prefix):
            ignored.append(k)
            continue
        name = k[len(prefix):]
        if name not in own and (name in OFFICIAL_HEAD or name.startswith('norm.')):
            ignored.append(k)  # classifier-only parts (head, final norm)
        else:
            selected[name] = v
    return selected, ignored


def load_backbone_checkpoint(model, filename, prefix=None, map_location='cpu',
                             strict=False, logger='current'):
    """Load ``filename`` into ``model`` and report every key by name.

    Raises ``ValueError`` when no tensor fits, or when shapes differ, and with
    ``strict=True`` when anything is missing or unexpected. Returns the report dict.
    """
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    state_dict = unwrap_state_dict(checkpoint)
    selected, ignored = match_backbone_state_dict(model, state_dict, prefix)
    own = model.state_dict()
    loaded = check_fit(model, selected, filename, file_keys=state_dict, hint=(
        'Is it an EMO checkpoint of this arch? Set init_cfg prefix= if its keys carry '
        'another prefix.'))
    missing = [k for k in own if k not in selected]
    unexpected = [k for k in selected if k not in own]
    if strict and (missing or unexpected):
        raise ValueError(f'{filename}: strict load failed; missing keys: '
                         f'{_fmt(missing)}; unexpected keys: {_fmt(unexpected)}')
    model.load_state_dict(OrderedDict((k, selected[k]) for k in loaded), strict=False)
    print_log(f'Loaded {len(loaded)}/{len(own)} tensors of {type(model).__name__} from '
              f'{filename}' + (f'; ignored {len(ignored)} keys of other parts: '
                               f'{_fmt(ignored, 8)}' if ignored else ''),
              logger=logger, level=logging.INFO)
    if missing:
        print_log(f'{filename}: missing keys (left at their initialisation): '
                  f'{_fmt(missing)}', logger=logger, level=logging.WARNING)
    if unexpected:
        print_log(f'{filename}: unexpected keys (not loaded): {_fmt(unexpected)}',
                  logger=logger, level=logging.WARNING)
    return dict(loaded=loaded, missing=missing, unexpected=unexpected, ignored=ignored)

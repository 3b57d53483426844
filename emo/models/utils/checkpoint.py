"""Loading EMO weights: official files, mmpretrain classifier checkpoints, backbones.

The official EMO code copies whatever keys match and reports nothing, so a wrapped or
prefixed file silently loads nothing. Here every key is accounted for: what was loaded,
what was ignored on purpose (the classifier head, the final norm for downstream use),
what is missing and what is unexpected, by name; a file that fits nothing is an error.
"""
import logging
from collections import OrderedDict

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

OFFICIAL_HEAD = ('head.weight', 'head.bias')


def unwrap_state_dict(checkpoint):
    """The tensors of a checkpoint: a plain state_dict or one under 'state_dict',
    'model' or 'module'; a leading 'module.' (DataParallel) is stripped."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'checkpoint is a {type(checkpoint).__name__}, not a dict')
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in checkpoint.items())


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
    loaded = [k for k in selected if k in own]
    missing = [k for k in own if k not in selected]
    unexpected = [k for k in selected if k not in own]
    if not loaded:
        raise ValueError(
            f'{filename}: no tensor fits {type(model).__name__}. The file has '
            f'{len(state_dict)} keys (e.g. {_fmt(list(state_dict)[:5])}); the model '
            f'expects e.g. {_fmt(list(own)[:5])}. Is it an EMO checkpoint of this arch? '
            f'Set init_cfg prefix= if its keys carry another prefix.')
    bad_shapes = [f'{k}: file {tuple(selected[k].shape)} vs model {tuple(own[k].shape)}'
                  for k in loaded if selected[k].shape != own[k].shape]
    if bad_shapes:
        raise ValueError(f'{filename}: shapes do not fit (wrong arch?): '
                         + '; '.join(bad_shapes[:10]))
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

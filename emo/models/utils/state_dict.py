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
    'model', 'module' or 'net' (the official EMO / EMOv2 trainer's file, whose 'net_E'
    is the EMA copy); a leading 'module.' (DataParallel) is stripped."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'checkpoint is a {type(checkpoint).__name__}, not a dict')
    for key in ('state_dict', 'model', 'module', 'net'):
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


def unwrap_official_trainer(checkpoint, name, logger='current'):
    """An official trainer's checkpoint (``{'net': state_dict, 'net_E': EMA copy,
    'optimizer': ...}``, the EMO / EMOv2 ``ckpt.pth`` files) becomes, in place, its
    ``'net'`` state dict (what the official test command loads); True if it was one."""
    if not (isinstance(checkpoint, dict) and 'state_dict' not in checkpoint
            and is_official_layout(checkpoint.get('net'))):
        return False
    net = checkpoint['net']
    checkpoint.clear()
    checkpoint.update(net)
    print_log(f"{name}: an official trainer checkpoint; using its 'net' weights",
              logger=logger, level=logging.INFO)
    return True


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


def may_be_absent(model, key):
    """True for a tensor of ``model`` that a checkpoint may leave out when the model is
    evaluated, run or exported, because nothing in its test-mode forward reads it:

    - ``*.num_batches_tracked``: BatchNorm's step counter (used only in training, and
      only with ``momentum=None``);
    - ``auxiliary_head.*`` of a segmentor: mmseg's ``EncoderDecoder`` uses its auxiliary
      head for the training loss only (``predict`` runs the decode head).

    The data preprocessors of mmpretrain, mmdet and mmseg keep their mean / std as
    non-persistent buffers (not in any state dict), and EMO, SSDLite and DeepLabv3 have
    no other such tensors, so everything else must come from the checkpoint."""
    if key.endswith('.num_batches_tracked'):
        return True
    return key.startswith('auxiliary_head.') and hasattr(model, 'decode_head')


def _config_literals(text):
    """The top-level ``name = literal`` assignments of a config's ``pretty_text``
    (``meta.cfg`` of an mmengine checkpoint), read with ``ast`` (nothing in the text is
    run: the file may come from anywhere); ``dict(...)`` calls count as literals."""
    import ast

    def value(node):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict' \
                and not node.args:
            return {kw.arg: value(kw.value) for kw in node.keywords if kw.arg}
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)
                    if k is not None}
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
                and isinstance(node.operand, ast.Constant) \
                and isinstance(node.operand.value, (int, float)):
            value_ = node.operand.value
            return -value_ if isinstance(node.op, ast.USub) else value_
        return None  # anything else (names, calls, lambdas) is not read

    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = value(node.value)
    return out


def _find_config(name):
    """``configs/**/<name>.py`` of this checkout, or None (an installed package has no
    configs folder)."""
    import glob
    import os.path as osp
    root = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__))))), 'configs')
    found = sorted(glob.glob(osp.join(root, '**', f'{name}.py'), recursive=True))
    return osp.relpath(found[0]) if found else None


def checkpoint_origin(meta):
    """What a checkpoint's ``meta`` says about the run that saved it, as a sentence:
    the config's name (from ``meta.experiment_name``, ``<config>_<timestamp>``), its
    path in ``configs/`` when this checkout has it, and the model it describes
    (``meta.cfg``: scope, model type, backbone, number of classes). '' when the
    checkpoint records none of it (official EMO files, plain state dicts)."""
    import re
    if not isinstance(meta, dict):
        return ''
    parts, where = [], ''
    experiment = meta.get('experiment_name')
    if isinstance(experiment, str) and experiment:
        config = re.sub(r'_\d{8}_\d{6}$', '', experiment)
        path = _find_config(config)
        where = (f'it was saved by a run of the config {config!r}'
                 + (f' ({path})' if path else '') + f' (meta.experiment_name: {experiment})')
    cfg = _config_literals(meta['cfg']) if isinstance(meta.get('cfg'), str) else {}
    model = cfg.get('model') if isinstance(cfg.get('model'), dict) else {}
    if model:
        backbone = model.get('backbone') if isinstance(model.get('backbone'), dict) else {}
        head = next((model[k] for k in ('head', 'decode_head', 'bbox_head')
                     if isinstance(model.get(k), dict)), {})
        def words(*values):  # what the text states (values it computes are None)
            return ' '.join(str(v) for v in values if isinstance(v, (str, int)))

        parts = [words(cfg.get('default_scope'), model.get('type')) or 'model',
                 words('backbone', backbone.get('type'), backbone.get('arch'))
                 if words(backbone.get('type')) else '',
                 words(head.get('num_classes'), 'classes')
                 if words(head.get('num_classes')) else '']
        parts = [p for p in parts if p]
    if not (where or parts):
        return ''
    text = where or 'its meta.cfg describes'
    if parts:
        text += (': ' if where else ' ') + 'an ' + ', '.join(parts) + ' (meta.cfg)'
    return text[0].upper() + text[1:] + '.'


def check_complete(model, state_dict, name, meta=None, allow_partial=False,
                   logger='current'):
    """Every tensor of ``model`` is in ``state_dict``, except those that
    :func:`may_be_absent` allows; returns the keys left out that way.

    Otherwise raises :class:`~emo.engine.safe_io.IncompleteCheckpointError` naming
    ``name`` (the file), the missing keys and, from ``meta``, the config the checkpoint
    belongs to (:func:`checkpoint_origin`). ``allow_partial=True`` loads it anyway: the
    same report is logged as a warning, and the missing tensors keep their
    initialisation.
    """
    from emo.engine.safe_io import IncompleteCheckpointError
    own = model.state_dict()
    absent = [k for k in own if k not in state_dict]
    allowed = [k for k in absent if may_be_absent(model, k)]
    missing = [k for k in absent if k not in allowed]
    if allowed and (allow_partial or not missing):
        print_log(f'{name}: {len(allowed)} tensors that the model does not use in test '
                  f'mode are not in the checkpoint (kept at their initialisation): '
                  f'{_fmt(allowed, 8)}', logger=logger, level=logging.INFO)
    if not missing:
        return allowed
    modules, parts = OrderedDict(), OrderedDict()
    for k in missing:
        modules.setdefault(k.rsplit('.', 1)[0], []).append(k)
        words = k.split('.')
        part = '.'.join(words[:2] if words[0] == 'backbone' and len(words) > 2 else words[:1])
        parts[part] = parts.get(part, 0) + 1
    origin = checkpoint_origin(meta)
    text = (f'{name}: the checkpoint fills only part of {type(model).__name__}: '
            f'{len(missing)} of its {len(own)} tensors are not in the file '
            f'({len(own) - len(absent)} are): '
            + ', '.join(f'{p}.* ({n})' for p, n in parts.items())
            + f'; modules: {_fmt(modules, 12)}; missing keys: {_fmt(missing)}. '
            + (origin + ' ' if origin else 'The checkpoint records no config. ')
            + 'Is it the checkpoint of this config?')
    if not allow_partial:
        raise IncompleteCheckpointError(
            text + ' A result of this model would not measure the checkpoint; to use it '
            'anyway (the missing tensors stay at their random initialisation), pass '
            '--allow-partial (allow_partial=True).')
    print_log(f'{text} --allow-partial: loading it anyway; the missing tensors stay at '
              f'their random initialisation, so results of this model do not measure '
              f'the checkpoint.', logger=logger, level=logging.WARNING)
    return allowed


def fit_checkpoint(model, checkpoint, name, complete=False, allow_partial=False,
                   logger='current'):
    """Make a loaded checkpoint fit ``model`` (in place) or fail naming what does not:
    an official EMO file is converted to mmpretrain keys (and the log says so), then
    :func:`check_fit` (shapes; a file that fits nothing) and, with ``complete=True``
    (evaluation, inference, export, resuming), :func:`check_complete` (every tensor the
    model uses is in the file, unless ``allow_partial``). Without ``complete``
    (``load_from`` for fine-tuning) missing and unexpected keys are left to mmengine,
    which warns about them by name. Returns the (possibly converted) state dict."""
    if not isinstance(checkpoint, dict):
        from emo.engine.safe_io import CheckpointError
        raise CheckpointError(f'{name}: not a checkpoint: the file holds a '
                              f'{type(checkpoint).__name__}, not a dict of tensors')
    unwrap_official_trainer(checkpoint, name, logger)
    if is_official_layout(checkpoint):
        converted = official_to_mmpretrain(checkpoint)
        checkpoint.clear()
        checkpoint['state_dict'] = converted
        checkpoint['meta'] = dict()
        print_log(f'{name}: an official EMO checkpoint; converted its {len(converted)} '
                  f'keys to mmpretrain names (backbone.*, head.fc.*)', logger=logger,
                  level=logging.INFO)
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise TypeError(f'{name}: the checkpoint\'s state_dict is a '
                        f'{type(state).__name__}, not a dict')
    state = strip_module_prefix(state)
    check_fit(model, state, name)
    if complete:
        check_complete(model, state, name, checkpoint.get('meta'), allow_partial, logger)
    return state


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

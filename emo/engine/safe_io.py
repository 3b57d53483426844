"""Checkpoint files read safely and written whole (what the state dict inside must look
like is :mod:`emo.models.utils.state_dict`'s business).

Reading: every local checkpoint mmengine reads (``load_from``, ``--resume``,
``tools/test.py CKPT``, ``init_cfg=dict(type='Pretrained')``) goes through
:func:`load_from_local`, which :mod:`emo.patches` registers at ``import emo`` as
mmengine's loader for local paths.
It calls ``torch.load(weights_only=True)`` whatever torch's default (torch < 2.6 defaults to
``False``), with an allow-list (:data:`SAFE_GLOBALS`) of exactly what mmengine, mmpretrain,
mmdet and mmseg checkpoints hold besides tensors and builtins: numpy arrays, dtypes and
scalars (message hub, ``meta``) and mmengine's ``HistoryBuffer`` (message hub) with the
statistics methods it pickles by reference. A file whose pickle names anything else (say,
``os.system`` in a ``__reduce__``) is refused before anything runs, with an error naming
the file and the global; empty, truncated and corrupt files are errors that say so.

Writing: :mod:`emo.patches` makes :class:`AtomicLocalBackend` mmengine's local file
backend; it writes to a temporary file in the same folder and renames it into place, so
a run killed while saving leaves either the old file or the new one, never half a file.
:class:`SafeCheckpointHook` (used instead of ``CheckpointHook``) removes old checkpoints
only once the new one is complete, and :func:`resolve_resume` makes ``--resume`` skip an
incomplete newest checkpoint with a warning and take the newest complete one.
"""
import glob
import logging
import os
import os.path as osp
import pickle
import re
import uuid
import zipfile
from contextlib import contextmanager

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.registry import HOOKS


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot or must not be loaded; the message names it."""


class IncompleteCheckpointError(CheckpointError):
    """A checkpoint that fills only part of the model it is loaded into (tensors the
    model needs are not in the file): the message names the file, the missing keys and,
    when the file records it, the config it belongs to."""


_BUFFER_METHODS = {'min', 'max', 'current', 'mean'}  # what HistoryBuffer.__init__ registers


def _history_buffer_method(obj, name):
    """``getattr`` restricted to what a pickled ``HistoryBuffer`` needs: its statistics
    methods (``min``, ``max``, ``current``, ``mean`` and registered ones), which pickle
    saves as ``getattr(HistoryBuffer, 'mean')``. Anything else is refused."""
    if obj is HistoryBuffer and name in _BUFFER_METHODS | set(obj._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint (only '
        f'HistoryBuffer statistics methods are)')


# Registered under the name pickle uses, for torch's name lookup (``__module__`` plus
# ``__name__`` on torch 2.5, ``__qualname__`` on newer torch).
_history_buffer_method.__module__ = 'builtins'
_history_buffer_method.__name__ = _history_buffer_method.__qualname__ = 'getattr'


def _numpy_globals():
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    names = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    if hasattr(np, '_core'):
        # numpy 2 moved numpy.core to numpy._core: checkpoints written under numpy 1 name
        # these two by their old module (torch allows a global under an explicit name)
        names += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
                  (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    # numpy >= 1.25 pickles some dtypes through their classes (numpy.dtypes.Float32DType)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        names += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return names


#: Everything besides tensors and builtins that the checkpoints of this stack hold
#: (found with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on checkpoints of
#: the three demo configs: mmpretrain with EMA, mmdet, mmseg). :func:`load_from_local`
#: allows them for its own call; :mod:`emo.patches` adds them to torch's global list.
SAFE_GLOBALS = [HistoryBuffer, _history_buffer_method] + _numpy_globals()


def safe_global_names():
    """The names pickle refers to :data:`SAFE_GLOBALS` by (``module.qualname``, or the
    explicit name of an ``(object, name)`` entry)."""
    return {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
            for g in SAFE_GLOBALS}


def _unsafe_global(message, filename):
    """The global torch refused, from its message (or, on newer torch, the file)."""
    found = re.search(r'GLOBAL (\S+)', message)
    if found:
        return found.group(1)
    find = getattr(torch.serialization, 'get_unsafe_globals_in_checkpoint', None)
    if find is not None:
        try:
            allowed = safe_global_names()
            return ', '.join(g for g in find(filename) if g not in allowed) or None
        except Exception:  # noqa: BLE001  (the file is broken in another way too)
            return None
    return None


def _unpickler_reason(message):
    """The line of torch's weights-only message that says what went wrong."""
    found = re.search(r'WeightsUnpickler error:\s*(.+)', message)
    return found.group(1).strip() if found else message.strip().splitlines()[0]


def checkpoint_problem(filename):
    """Why ``filename`` is not a complete ``torch.save`` file, or None when it is: empty,
    truncated (no zip directory at its end) or corrupt (a member fails its CRC).
    Legacy (non-zip) pickles are not checked here and return None."""
    size = osp.getsize(filename)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(filename, 'rb') as f:
        head = f.read(4)
    if head != b'PK\x03\x04':
        return None  # torch's legacy format (or not a checkpoint): torch.load decides
    try:
        with zipfile.ZipFile(filename) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        return (f'the file is truncated or corrupt ({size} bytes; it is not a complete '
                f'torch.save archive: {e})')
    if bad is not None:
        return f'the file is corrupt (archive member {bad} fails its CRC check)'
    return None


def load_from_local(filename, map_location=None):
    """Load a local checkpoint with ``torch.load(weights_only=True)`` and the allow-list.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError`, naming
    the file, for an empty / truncated / corrupt file or one whose pickle would call a
    global outside the allow-list (nothing from the file runs).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    problem = checkpoint_problem(filename)
    if problem:
        raise CheckpointError(f'{filename}: cannot load the checkpoint: {problem}')
    # allowed for this call only (torch's context removes what it added on exit)
    missing = [g for g in SAFE_GLOBALS if g not in torch.serialization.get_safe_globals()]
    try:
        with torch.serialization.safe_globals(missing):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        name = _unsafe_global(str(e), filename)
        if name:
            raise CheckpointError(
                f'{filename}: refused to load: its pickle calls {name}, which is not on '
                f'the allow-list of what checkpoints hold (tensors, numpy arrays, '
                f'mmengine HistoryBuffer; emo.engine.safe_io.SAFE_GLOBALS), so loading '
                f'it could run code from the file. If you trust the file and the type '
                f'belongs in a checkpoint, add it with '
                f'torch.serialization.add_safe_globals.') from None
        raise CheckpointError(f'{filename}: not a readable checkpoint (corrupt pickle: '
                              f'{_unpickler_reason(str(e))})') from None
    except Exception as e:  # noqa: BLE001  (EOFError, RuntimeError, KeyError ...)
        raise CheckpointError(f'{filename}: not a readable checkpoint (truncated or '
                              f'corrupt: {type(e).__name__}: {e})') from None


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend, but ``put`` writes a temporary file in the target's
    folder and renames it into place: readers see the old file or the new one, whole."""

    def put(self, obj, filepath):
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        tmp = osp.join(folder, f'.{osp.basename(filepath)}.{os.getpid()}.'
                               f'{uuid.uuid4().hex[:8]}.tmp')  # same permissions as open()
        try:
            with open(tmp, 'xb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that removes checkpoints beyond ``max_keep_ckpts`` (and the
    previous best) only after the new checkpoint and ``last_checkpoint`` are written, so
    a run killed while saving keeps its previous checkpoint (mmengine removes first)."""

    @contextmanager
    def _deferred_removals(self):
        backend, removals = self.file_backend, []
        backend.remove = removals.append  # shadows the method for this call only
        try:
            yield
        finally:
            del backend.remove
        for path in removals:  # reached only when the save succeeded
            if backend.isfile(path):
                backend.remove(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._deferred_removals():
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics):
        with self._deferred_removals():
            super()._save_best_checkpoint(runner, metrics)


def use_safe_checkpoint_hook(cfg):
    """Swap the config's ``default_hooks.checkpoint`` ``CheckpointHook`` for
    :class:`SafeCheckpointHook` (same arguments)."""
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook['type'] = 'SafeCheckpointHook'


def _step(path):
    found = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(found.group(1)) if found else -1


def resolve_resume(cfg, logger='current'):
    """For ``resume=True`` without a file (``--resume`` alone): the checkpoint to resume,
    i.e. the one ``last_checkpoint`` names when it is complete, else the newest complete
    ``*.pth`` of the work dir, with a warning naming each incomplete file skipped. Sets
    ``cfg.load_from`` to it; raises :class:`CheckpointError` when checkpoints exist but
    none is complete (nothing is started over silently)."""
    if not cfg.get('resume') or cfg.get('load_from'):
        return None
    work_dir = cfg.work_dir
    candidates = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named:
            candidates.append(named)
    others = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=lambda p: (
        osp.getmtime(p), _step(p)), reverse=True)
    candidates += [p for p in others if p not in candidates]
    if not candidates:
        return None  # nothing saved yet: mmengine starts from scratch
    skipped = []
    for path in candidates:
        problem = 'missing' if not osp.isfile(path) else checkpoint_problem(path)
        if problem is None:
            for bad, why in skipped:
                print_log(f'--resume: skipped {bad}: {why}', logger=logger,
                          level=logging.WARNING)
            if skipped:
                print_log(f'--resume: resuming from {path}, the newest complete checkpoint',
                          logger=logger, level=logging.WARNING)
            cfg.load_from = path
            return path
        skipped.append((path, problem))
    raise CheckpointError(f'--resume: no complete checkpoint in {work_dir}: '
                          + '; '.join(f'{p}: {w}' for p, w in skipped))


def _plain(value):
    """``value`` with tuples as lists and ConfigDicts as dicts (as a config's text reads)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _identity(cfg):
    """What names a model in a config (a dict or Config): scope, model type, backbone
    type and arch, each head's type and number of classes."""
    model = cfg.get('model') if isinstance(cfg.get('model'), dict) else {}
    out = {'default_scope': cfg.get('default_scope'), 'model.type': model.get('type')}
    for part in ('backbone', 'neck', 'head', 'decode_head', 'auxiliary_head', 'bbox_head'):
        sub = model.get(part)
        if isinstance(sub, dict):
            for key in ('type', 'arch', 'num_classes'):
                if key in sub:
                    out[f'model.{part}.{key}'] = _plain(sub[key])
    return out


def _optimizer_groups(state):
    """``[n_params of each group]`` of an optimizer state dict (None when it is not one
    optimizer's state, e.g. an ``OptimWrapperDict``)."""
    groups = state.get('param_groups') if isinstance(state, dict) else None
    if not isinstance(groups, list):
        return None
    return [len(g.get('params', [])) if isinstance(g, dict) else 0 for g in groups]


def resume_mismatches(cfg, checkpoint, model=None):
    """Why ``checkpoint`` (a loaded runner checkpoint) is not one to resume ``cfg``
    from, as a list of sentences (``[]``: it fits): the config it records names another
    model (scope, model / backbone / head types, arch, classes), its weights are not
    exactly the model's tensors (missing, unexpected, other shapes), or its optimizer
    has other parameter groups than ``cfg.optim_wrapper`` builds. ``model``: the model
    of ``cfg`` (built here, in train mode, when not given; nothing is read or written)."""
    from mmengine.optim import build_optim_wrapper

    from emo.apis.builder import build_model_from_cfg
    from emo.models.utils.state_dict import _config_literals, _fmt, unwrap_state_dict
    out = []
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    if isinstance(meta.get('cfg'), str):
        recorded, current = _identity(_config_literals(meta['cfg'])), _identity(cfg)

        def shown(k):  # a part's arch / classes only where both configs have the part
            part = k.rsplit('.', 1)[0] + '.type'
            return k.endswith('.type') or k == 'default_scope' or (
                part in recorded and part in current)

        diff = [f'{k}: checkpoint {recorded.get(k, "none")!r} vs config '
                f'{current.get(k, "none")!r}'
                for k in sorted(set(recorded) | set(current), key=lambda k: (
                    k.count('.'), k)) if recorded.get(k) != current.get(k) and shown(k)]
        if diff:
            out.append('the config it records describes another model (' + '; '.join(diff)
                       + ')')
    if model is None:
        model = build_model_from_cfg(cfg, mode='train')
    own = model.state_dict()
    try:
        state = unwrap_state_dict(checkpoint)
    except TypeError as e:
        return out + [str(e)]
    missing = [k for k in own if k not in state and not k.endswith('.num_batches_tracked')]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
              for k in own if k in state and hasattr(state[k], 'shape')
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing:
        out.append(f'{len(missing)} of the model\'s {len(own)} tensors are not in it: '
                   f'{_fmt(missing, 10)}')
    if unexpected:
        out.append(f'{len(unexpected)} of its tensors are not the model\'s: '
                   f'{_fmt(unexpected, 10)}')
    if shapes:
        out.append(f'{len(shapes)} tensors have other shapes: ' + '; '.join(shapes[:5])
                   + (f' ... (+{len(shapes) - 5} more)' if len(shapes) > 5 else ''))
    saved = _optimizer_groups(checkpoint.get('optimizer'))
    if saved is not None and cfg.get('optim_wrapper'):
        import copy
        wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        built = [len(g['params']) for g in wrapper.optimizer.param_groups]
        if saved != built:
            out.append(f'its optimizer has {len(saved)} parameter groups '
                       f'({sum(saved)} parameters), the config\'s optim_wrapper builds '
                       f'{len(built)} ({sum(built)} parameters)'
                       + ('' if len(saved) != len(built) else
                          ': the groups hold other numbers of parameters'))
    return out


def check_resume(cfg, logger='current'):
    """``--resume``: refuse, before anything is built or written, a checkpoint that does
    not belong to ``cfg`` (:func:`resume_mismatches`), with a :class:`CheckpointError`
    naming the file, every mismatch and the config the file records. The file is the
    one ``--resume PATH`` names, or the one :func:`resolve_resume` picks; nothing to
    resume (no checkpoint yet) passes. Returns the checkpoint's path or None."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from emo.models.utils.state_dict import checkpoint_origin
    if not cfg.get('resume'):
        return None
    path = resolve_resume(cfg, logger=logger) or cfg.get('load_from')
    if not path:
        return None
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'--resume {path}: not a runner checkpoint (a '
                              f'{type(checkpoint).__name__})')
    mismatches = resume_mismatches(cfg, checkpoint)
    if not mismatches:
        return path
    origin = checkpoint_origin(checkpoint.get('meta'))
    config = osp.basename(getattr(cfg, 'filename', None) or '') or 'this config'
    raise CheckpointError(
        f'--resume {path}: the checkpoint does not belong to {config}: '
        + '; '.join(mismatches) + '. ' + (origin + ' ' if origin else '')
        + 'Nothing was built or written. Resume with a checkpoint of this config; to '
        'start a new training from these weights, pass load_from=PATH '
        '(--cfg-options load_from=PATH) without --resume.')

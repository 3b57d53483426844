"""Every change ``emo`` makes to another library's behaviour, in one place.

``import emo`` calls :func:`install_lazily` (each patch when its library is imported)
unless the environment variable ``EMO_NO_PATCHES`` is set to anything but ``''`` or
``'0'`` before the import; :func:`apply` installs them all now (idempotent),
:func:`revert` undoes them in a running process. The implementations live where they
belong (:mod:`emo.engine.safe_io`, :mod:`emo.engine.loading`, :mod:`emo.utils.flops`,
:mod:`emo.apis.hub`); only the act of installing them is here. What is patched, and why:

1. ``checkpoint_loader``: mmengine's loader for local paths
   (``CheckpointLoader.register_scheme('')``) becomes
   :func:`emo.engine.safe_io.load_from_local`: ``torch.load(weights_only=True)`` with an
   allow-list whatever torch's default, and named errors for empty, truncated, corrupt
   or code-running files. Every checkpoint mmengine reads passes there (``load_from``,
   ``--resume``, ``tools/test.py CKPT``, ``init_cfg=dict(type='Pretrained')``).
2. ``file_backend``: mmengine's ``'local'`` file backend becomes
   :class:`emo.engine.safe_io.AtomicLocalBackend` (temporary file + rename), so a run
   killed while saving leaves the old checkpoint or the new one, never half a file.
3. ``torch_safe_globals``: torch's weights-only allow-list gets
   :data:`emo.engine.safe_io.SAFE_GLOBALS` (numpy arrays / dtypes / scalars, mmengine's
   ``HistoryBuffer``), so a plain ``torch.load(path)`` (weights-only by default since
   torch 2.6) reads the checkpoints mmengine writes.
4. ``image_errors``: mmcv's ``LoadImageFromFile.transform`` raises
   :class:`emo.engine.loading.ImageLoadError` naming the file when an image cannot be
   decoded (mmcv asserts, or lets through a decoder error that names no file).
5. ``pillow_16bit``: ``mmcv.image.io._pillow2array`` scales 16-bit images to 8 bits (as
   cv2 does) instead of clipping them to white.
6. ``sdpa_flops``: mmengine's default FLOP handles (``complexity_analysis.
   _DEFAULT_SUPPORTED_FLOP_OPS``, private) get ``aten::scaled_dot_product_attention``,
   so mmdet's and mmseg's own FLOP tools count EMO's attention.
   (:func:`emo.utils.model_complexity` sets the handle itself and needs no patch.)
7. ``http_checkpoints``: mmengine's ``http://`` / ``https://`` checkpoint scheme becomes
   :func:`emo.apis.hub.load_from_http`: downloaded once into mmengine's cache under a
   name that keeps URLs apart (the official files are all ``net.pth``), then read by the
   safe loader (mmengine's unpickles downloads with ``weights_only=False``); an
   unreachable URL is a named error that says how to pass a local file.
8. ``official_checkpoints``: mmengine's ``load_checkpoint`` (``mmpretrain.get_model``,
   the inferencers, mmdet's / mmseg's ``init_*``) becomes
   :func:`emo.apis.hub.load_checkpoint`: an official EMO file or trainer checkpoint is
   fitted to the model by the project's loud loader first (converted, checked by
   name); any other checkpoint loads as before.

Each patch is installed when the library it changes is imported (``import emo`` imports
none of them: :data:`TRIGGERS`, :mod:`emo.lazy`), at once for those imported already.

Where ``emo`` is not involved the libraries behave as before: the same checkpoints load
to the same values, the same images decode to the same arrays, models without SDPA get
the same FLOP counts (``tests/test_patches.py``). Without the patches, mmengine reads and
writes checkpoints its own way (on torch >= 2.6 it cannot read its own checkpoints with
``HistoryBuffer`` s), broken images raise the decoders' errors, 16-bit PNGs turn white
under Pillow, and mmengine's FLOP counter skips SDPA; the backbone, the configs, the
hooks and the tools work otherwise unchanged.
"""
import torch

__all__ = ['apply', 'revert', 'applied', 'PATCHES', 'TRIGGERS']

PATCHES = ('checkpoint_loader', 'file_backend', 'torch_safe_globals', 'image_errors',
           'pillow_16bit', 'sdpa_flops', 'http_checkpoints', 'official_checkpoints')

#: the module whose import installs each patch (``import emo``: :func:`install_lazily`)
TRIGGERS = {
    'mmengine.runner': ('checkpoint_loader', 'file_backend', 'torch_safe_globals',
                        'http_checkpoints', 'official_checkpoints'),
    'mmcv': ('image_errors', 'pillow_16bit'),
    'mmengine.analysis': ('sdpa_flops', ),
}

_originals = {}  # patch name -> what it replaced; empty when nothing is applied


def applied():
    """The names of the patches in place (a subset of :data:`PATCHES`)."""
    return tuple(name for name in PATCHES if name in _originals)


def install_lazily():
    """Apply each patch when its :data:`TRIGGERS` module is imported (now for those
    imported already); what ``import emo`` does."""
    from emo.lazy import when_imported
    for module, names in TRIGGERS.items():
        when_imported(module, lambda _module, names=names: apply(names))


def apply(names=PATCHES):
    """Install the patches ``names`` (default all) not yet installed (idempotent).
    Returns :func:`applied`."""
    todo = [n for n in names if n not in _originals]
    unknown = set(todo) - set(PATCHES)
    if unknown:
        raise KeyError(f'emo.patches: unknown patches {sorted(unknown)}; '
                       f'choose from {PATCHES}')
    if 'checkpoint_loader' in todo or 'http_checkpoints' in todo:
        from mmengine.runner.checkpoint import CheckpointLoader
    if 'checkpoint_loader' in todo:
        from emo.engine.safe_io import load_from_local
        _originals['checkpoint_loader'] = CheckpointLoader._schemes.get('')
        CheckpointLoader.register_scheme('', load_from_local, force=True)
    if 'file_backend' in todo:
        from mmengine.fileio.backends import register_backend
        from mmengine.fileio.backends.registry_utils import backends, prefix_to_backends

        from emo.engine.safe_io import AtomicLocalBackend
        _originals['file_backend'] = (backends.get('local'), prefix_to_backends.get(''))
        register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    if 'torch_safe_globals' in todo:
        from emo.engine.safe_io import SAFE_GLOBALS
        present = torch.serialization.get_safe_globals()
        _originals['torch_safe_globals'] = [g for g in SAFE_GLOBALS if g not in present]
        torch.serialization.add_safe_globals(_originals['torch_safe_globals'])
    if 'image_errors' in todo:
        from mmcv.transforms import LoadImageFromFile

        from emo.engine.loading import named_errors
        _originals['image_errors'] = LoadImageFromFile.transform
        LoadImageFromFile.transform = named_errors(LoadImageFromFile.transform)
    if 'pillow_16bit' in todo:
        import mmcv.image.io as mmcv_io

        from emo.engine.loading import scale_16bit
        _originals['pillow_16bit'] = mmcv_io._pillow2array
        mmcv_io._pillow2array = scale_16bit(mmcv_io._pillow2array)
    if 'sdpa_flops' in todo:
        from mmengine.analysis import complexity_analysis

        from emo.utils.flops import SDPA_OP, sdpa_flop_jit
        ops = complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS
        _originals['sdpa_flops'] = ops.get(SDPA_OP)
        ops[SDPA_OP] = sdpa_flop_jit
    if 'http_checkpoints' in todo:
        from emo.apis.hub import load_from_http
        _originals['http_checkpoints'] = {p: CheckpointLoader._schemes.get(p)
                                          for p in ('http://', 'https://')}
        CheckpointLoader.register_scheme(['http://', 'https://'], load_from_http,
                                         force=True)
    if 'official_checkpoints' in todo:
        import importlib

        from emo.apis import hub
        # by sys.modules: right after its import the package is not yet an attribute
        runner = importlib.import_module('mmengine.runner')
        _originals['official_checkpoints'] = runner.checkpoint.load_checkpoint
        runner.checkpoint.load_checkpoint = runner.load_checkpoint = hub.load_checkpoint
    return applied()


def revert():
    """Undo every installed patch: the libraries as they were before :func:`apply`."""
    if 'checkpoint_loader' in _originals or 'http_checkpoints' in _originals:
        from mmengine.runner.checkpoint import CheckpointLoader
    if 'checkpoint_loader' in _originals:
        original = _originals.pop('checkpoint_loader')
        if original is None:
            CheckpointLoader._schemes.pop('', None)
        else:
            CheckpointLoader._schemes[''] = original
    if 'file_backend' in _originals:
        from mmengine.fileio.backends.registry_utils import backends, prefix_to_backends
        backend, prefixed = _originals.pop('file_backend')
        for table, key, value in ((backends, 'local', backend),
                                  (prefix_to_backends, '', prefixed)):
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
    if 'torch_safe_globals' in _originals:
        added = _originals.pop('torch_safe_globals')
        kept = [g for g in torch.serialization.get_safe_globals() if g not in added]
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(kept)
    if 'image_errors' in _originals:
        from mmcv.transforms import LoadImageFromFile
        LoadImageFromFile.transform = _originals.pop('image_errors')
    if 'pillow_16bit' in _originals:
        import mmcv.image.io as mmcv_io
        mmcv_io._pillow2array = _originals.pop('pillow_16bit')
    if 'sdpa_flops' in _originals:
        from mmengine.analysis import complexity_analysis

        from emo.utils.flops import SDPA_OP
        original = _originals.pop('sdpa_flops')
        ops = complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS
        if original is None:
            ops.pop(SDPA_OP, None)
        else:
            ops[SDPA_OP] = original
    if 'http_checkpoints' in _originals:
        for prefix, loader in _originals.pop('http_checkpoints').items():
            if loader is None:
                CheckpointLoader._schemes.pop(prefix, None)
            else:
                CheckpointLoader._schemes[prefix] = loader
    if 'official_checkpoints' in _originals:
        import importlib
        runner = importlib.import_module('mmengine.runner')
        runner.checkpoint.load_checkpoint = runner.load_checkpoint = \
            _originals.pop('official_checkpoints')
    return applied()

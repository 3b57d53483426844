"""Run code when another library's module has been imported (a post-import hook).

``import emo`` stays cheap (it imports no task package: mmpretrain, mmdet, mmseg, mmcv's
transforms, mmengine's runner, the deployment runtimes) and still does what it must do to
those libraries when they are used: :func:`when_imported` runs a callback at once when
the module is imported already, else right after the module's code has run (before the
importer gets it back). Used for :mod:`emo.patches` (each patch when the library it
changes is imported) and the ``ModelHub`` registration of the model index
(:mod:`emo.apis.hub`).
"""
import importlib.abc
import importlib.util
import sys
import threading

__all__ = ['when_imported']

_callbacks = {}  # module name -> callbacks not yet run
_lock = threading.RLock()


def when_imported(name, callback):
    """Call ``callback(module)`` once ``name`` is imported: now when it is in
    ``sys.modules`` already, else right after its import. An exception of the callback
    propagates to the import that triggered it (nothing fails silently)."""
    module = sys.modules.get(name)
    if module is not None and not _initializing(module):
        callback(module)
        return
    with _lock:
        _callbacks.setdefault(name, []).append(callback)
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def _initializing(module):
    spec = getattr(module, '__spec__', None)
    return bool(getattr(spec, '_initializing', False))


def _run(name, module):
    with _lock:
        callbacks = _callbacks.pop(name, [])
    for callback in callbacks:
        callback(module)


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the callbacks waiting for it."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _run(module.__name__, module)

    def __getattr__(self, attr):  # get_source, get_filename, is_package, ...
        return getattr(self.loader, attr)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds watched modules with the other finders and wraps their loaders."""

    _busy = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _callbacks or getattr(self._busy, 'on', False):
            return None
        self._busy.on = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec

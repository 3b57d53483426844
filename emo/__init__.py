"""EMO for OpenMMLab 2.0.

Importing this package makes EMO available to mmengine's registries, mmpretrain's model
hub and mmengine's configs, without importing any task package (mmpretrain, mmdet,
mmseg, the deployment runtimes) itself: about as fast as ``import torch``
(README, "Import time").

* The backbones, blocks, hooks and wrappers EMO adds are registered in mmengine's root
  registries, so ``type='EMO'`` builds under the default scopes mmpretrain, mmdet and
  mmseg alike; each module is imported the first time one of its names is looked up
  (:mod:`emo.registry`). Configs load it with
  ``custom_imports = dict(imports=['emo'], allow_failed_imports=False)``.
* ``emo::<task>/<config>.py`` works as a ``_base_`` (mmengine's ``package::`` rule), from
  an installed wheel, an editable install or the clone (:mod:`emo.registry`).
* The classifiers of ``model-index.yml`` join mmpretrain's ``ModelHub`` when
  ``mmpretrain.apis`` is imported: ``get_model('emo-1m_8xb256_in1k', pretrained=True)``
  (:mod:`emo.apis.hub`).
* timm, once imported, has ``emo_1m`` ... ``emo_6m`` (:mod:`emo.timm`).
* :mod:`emo.patches`, every change EMO makes to mmengine, mmcv and torch (safe
  checkpoint loading, safe downloads, official checkpoints by name, atomic saving,
  named image errors, the SDPA FLOP handle), each applied when its library is imported;
  ``EMO_NO_PATCHES=1`` in the environment leaves those libraries untouched.

The subpackages (``emo.models``, ``emo.apis``, ``emo.engine``, ``emo.deployment``, ...)
and the names of ``emo.models`` (``emo.EMO``, ...) are imported on first access.
"""
import importlib
import os

from . import registry  # noqa: F401  (lazy registry entries, the emo scope, emo::)
from .lazy import when_imported
from .version import __version__

__all__ = ['__version__']

if os.environ.get('EMO_NO_PATCHES', '0') in ('', '0'):
    from . import patches
    patches.install_lazily()


def _register_models(_module):
    from .apis.hub import register_models
    register_models()


when_imported('mmpretrain.apis.model', _register_models)
# timm.create_model('emo_1m', ...): emo.timm registers the entry points (light; the
# network is imported when a model is created)
when_imported('timm', lambda _module: importlib.import_module(f'{__name__}.timm'))

_SUBPACKAGES = ('apis', 'deployment', 'engine', 'models', 'patches', 'timm', 'utils',
                'visualization')


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f'{__name__}.{name}')
    if not name.startswith('_'):
        models = importlib.import_module(f'{__name__}.models')
        if name in models.__all__:
            return getattr(models, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

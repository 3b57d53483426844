"""EMO for OpenMMLab 2.0.

Importing this package registers the EMO backbone (and the few helpers EMO adds) in
mmengine's root ``MODELS`` registry, so ``type='EMO'`` builds under the default scopes
mmpretrain, mmdet and mmseg alike. Configs load it with
``custom_imports = dict(imports=['emo'], allow_failed_imports=False)``.
"""
from . import engine  # noqa: F401  (hooks, CPU distributed runs)
from .models import *  # noqa: F401,F403
from .utils import register_flop_handles  # noqa: F401  (adds the SDPA FLOP handle)
from .version import __version__

__all__ = ['__version__']

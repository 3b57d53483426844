"""EMO for OpenMMLab 2.0.

Importing this package registers the EMO backbone (and the few helpers EMO adds) in
mmengine's root ``MODELS`` registry, so ``type='EMO'`` builds under the default scopes
mmpretrain, mmdet and mmseg alike. Configs load it with
``custom_imports = dict(imports=['emo'], allow_failed_imports=False)``.

It also applies :mod:`emo.patches`, every change EMO makes to mmengine, mmcv and torch
(safe checkpoint loading, atomic saving, named image errors, the SDPA FLOP handle);
``EMO_NO_PATCHES=1`` in the environment leaves those libraries untouched.
"""
import os

from . import engine  # noqa: F401  (hooks, CPU distributed runs)
from . import patches
from .models import *  # noqa: F401,F403
from .version import __version__

if os.environ.get('EMO_NO_PATCHES', '0') in ('', '0'):
    patches.apply()

__all__ = ['__version__']

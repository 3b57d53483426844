"""The network: backbones (EMO, EMOv2), blocks and state-dict handling (``utils``), and
the mmdet head fix (``dense_heads``, imported when used: it imports mmdet's models).

Registration is lazy (:mod:`emo.registry`): a config's ``type='EMOSSDHead'`` imports
``emo.models.dense_heads`` on first look-up; ``from emo.models import EMOSSDHead``
works too."""
from .backbones import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .utils import *  # noqa: F401,F403
from .utils import __all__ as _utils

__all__ = list(_backbones) + list(_utils) + ['EMOSSDHead']


def __getattr__(name):
    if name == 'EMOSSDHead':
        from .dense_heads import EMOSSDHead
        return EMOSSDHead
    if name == 'dense_heads':
        import importlib
        return importlib.import_module(f'{__name__}.dense_heads')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

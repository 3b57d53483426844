"""emo's place in mmengine's registries, without importing its modules up front.

1. **Lazy entries.** What emo registers (the backbones and blocks in ``MODELS``, the
   hooks, the model and optim wrappers) lives in modules that import mmengine's model
   and runner code, mmcv's ops and mmdet (seconds of imports). ``import emo`` imports
   none of them: :data:`LAZY` names each entry and its module, and the root registry
   imports that module the first time the name is looked up, from any scope
   (``type='EMO'`` under mmpretrain, mmdet or mmseg; ``MODELS.get('EMO')``;
   ``'EMO' in MODELS``). A module that registers something must be listed here
   (``tests/test_registry.py`` checks that the table names every entry of every emo
   module).
2. **The ``emo`` scope.** A config that inherits ``emo::<task>/<config>.py`` gets
   ``_scope_='emo'`` on the dicts it takes from that file (mmengine's rule for
   ``package::`` bases), and mmengine then builds them in the ``emo`` node of each
   registry (imported from here, ``emo.registry``). emo's configs span three libraries,
   so the ``emo`` nodes build in the scope the config runs under (its
   ``default_scope``: mmpretrain, mmdet or mmseg), and else in the first library that
   has the name.
3. ``emo::`` paths: :data:`mmengine.config.utils.MODULE2PACKAGE` learns ``emo``;
   mmengine finds the configs in ``emo/.mim/configs`` (package data of a wheel, links to
   ``configs/`` in the clone and in an editable install).
"""
import importlib

import mmengine.registry as mm_registry
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import DefaultScope, Registry

__all__ = ['LAZY', 'SCOPE', 'TASK_SCOPES']

SCOPE = 'emo'
#: the libraries emo's configs run under, in the order a name is looked up in when
#: no scope is current
TASK_SCOPES = ('mmpretrain', 'mmdet', 'mmseg')

#: root registry name -> {registered name: module that registers it}
LAZY = {
    'model': {
        'EMO': 'emo.models.backbones.emo',
        'EMOv2': 'emo.models.backbones.emo2',
        'iRMB': 'emo.models.utils.irmb',
        'MetaMobileBlock': 'emo.models.utils.irmb',
        'iiRMB': 'emo.models.utils.i2rmb',
        'EMOSSDHead': 'emo.models.dense_heads.ssd_head',
    },
    'hook': {
        'CheckpointFitHook': 'emo.engine.hooks.checkpoint_fit_hook',
        'DataCheckHook': 'emo.engine.hooks.data_check_hook',
        'StopOnInvalidLossHook': 'emo.engine.hooks.invalid_loss_hook',
        'RNGStateHook': 'emo.engine.hooks.rng_state_hook',
        'SafeCheckpointHook': 'emo.engine.safe_io',
        'EagerOptimStepHook': 'emo.engine.hooks.compile_hook',
    },
    'model_wrapper': {'CPUDistributedDataParallel': 'emo.engine.dist'},
    'optim_wrapper': {'CPUAutocastOptimWrapper': 'emo.engine.optim_wrapper'},
}


class LazyEntries(dict):
    """A registry's ``_module_dict`` that imports the module of a :data:`LAZY` name
    the first time the name is looked up (once: an import error propagates)."""

    def __init__(self, entries, lazy):
        super().__init__(entries)
        self.lazy = dict(lazy)

    def _load(self, key):
        module = self.lazy.pop(key, None) if isinstance(key, str) else None
        if module is not None and not dict.__contains__(self, key):
            importlib.import_module(module)

    def __contains__(self, key):
        self._load(key)
        return dict.__contains__(self, key)

    def __getitem__(self, key):
        self._load(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._load(key)
        return dict.get(self, key, default)


def _root_registries():
    return {reg.name: reg for reg in vars(mm_registry).values()
            if isinstance(reg, Registry) and reg.parent is None and reg.scope == 'mmengine'}


def _outer_scope():
    """The latest default scope that is not ``emo`` (the config's own), or None."""
    for instance in reversed(list(DefaultScope._instance_dict.values())):
        if instance.scope_name != SCOPE:
            return instance.scope_name
    return None


class ScopeRegistry(Registry):
    """The ``emo`` node of a registry: looks names up in the scope the config runs
    under (see the module docstring), then in the task libraries, then in the root."""

    def _task_node(self, scope):
        try:
            importlib.import_module(f'{scope}.registry')
        except ImportError:
            return None
        node = self._get_root_registry()._search_child(scope)
        return node if node is not self else None

    def get(self, key):
        scope = _outer_scope()
        scopes = [scope] if scope not in (None, 'mmengine') else list(TASK_SCOPES)
        for name in scopes:
            node = self._task_node(name)
            found = node.get(key) if node is not None else None
            if found is not None:
                return found
        return super().get(key)


def _install():
    # mmengine resolves ``emo::`` with get_installed_path(MODULE2PACKAGE['emo']): for a
    # name that is no distribution it takes the module's folder (find_spec), which is
    # right in wheel, editable (PEP 660) and clone installs alike; for the distribution
    # 'emo' it would take site-packages/emo, which an editable install does not have.
    MODULE2PACKAGE.setdefault(SCOPE, __name__)
    nodes = {}
    for name, root in _root_registries().items():
        if name in LAZY and not isinstance(root._module_dict, LazyEntries):
            root._module_dict = LazyEntries(root._module_dict, LAZY[name])
        if SCOPE not in root.children:  # locations: this module (else mmengine would
            # call emo.utils.register_all_modules, the pre-``locations`` convention)
            nodes[name] = ScopeRegistry(name, parent=root, scope=SCOPE,
                                        locations=[__name__])
    return nodes


#: the ``emo`` node of each root registry, by registry name
NODES = _install()

"""emo.registry and emo.lazy: ``import emo`` imports no task package and no emo module
that registers anything, yet every entry is found by name from a task scope (the
mmpretrain scope: tests/test_setup.py, the configs' tests); the LAZY table names every
entry emo registers."""
import importlib
import json
import os
import pkgutil
import subprocess
import sys

from helpers import REPO

import emo
from emo.registry import LAZY

# What a fresh ``import emo`` must not import (seconds of imports each; README, "Import
# time"), then look-ups of emo's names from each scope.
FRESH = r'''
import json, sys
import emo
heavy = ['mmpretrain', 'mmdet', 'mmseg', 'mmengine.model', 'mmengine.runner', 'mmcv.cnn',
         'mmcv.transforms', 'onnxruntime', 'openvino', 'executorch', 'coremltools', 'timm',
         'emo.models', 'emo.engine', 'emo.deployment', 'emo.apis']
imported = [m for m in heavy if m in sys.modules]
from mmengine.registry import HOOKS, MODELS, OPTIM_WRAPPERS, DefaultScope
found = {}
# one task scope (each imports its models package on first look-up: seconds); the
# look-up from a child registry reaches the root's lazy entries the same way for all
for scope, names in (('mmdet', ['EMO', 'EMOv2', 'EMOSSDHead', 'CheckpointFitHook',
                                'CPUAutocastOptimWrapper']), ):
    reg = __import__(f'{scope}.registry', fromlist=['x'])
    with DefaultScope.overwrite_default_scope(scope):
        for name in names:
            for r in (reg.MODELS, reg.HOOKS, reg.OPTIM_WRAPPERS):
                cls = r.get(name)
                if cls is not None:
                    found[f'{scope}.{name}'] = cls.__module__
                    break
print(json.dumps(dict(imported=imported, found=found)))
'''


def test_import_emo_is_light_and_finds_every_name_lazily():
    proc = subprocess.run([sys.executable, '-c', FRESH], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['imported'] == []
    assert out['found'] == {
        'mmdet.EMO': 'emo.models.backbones.emo',
        'mmdet.EMOv2': 'emo.models.backbones.emo2',
        'mmdet.EMOSSDHead': 'emo.models.dense_heads.ssd_head',
        'mmdet.CheckpointFitHook': 'emo.engine.hooks.checkpoint_fit_hook',
        'mmdet.CPUAutocastOptimWrapper': 'emo.engine.optim_wrapper'}


def test_lazy_table_names_every_registered_entry():
    """Import every module of emo (not the deployment runtimes' own packages) and
    compare what the root registries hold from emo with the table."""
    from mmengine.registry import Registry
    import mmengine.registry as roots
    skip = ('emo.deployment', 'emo.visualization', 'emo.timm')  # register nothing
    for info in pkgutil.walk_packages(emo.__path__, 'emo.'):
        if not info.name.startswith(skip):
            importlib.import_module(info.name)
    registered = {}
    for reg in vars(roots).values():
        if isinstance(reg, Registry) and reg.parent is None:
            names = {k: v.__module__ for k, v in dict.items(reg._module_dict)
                     if getattr(v, '__module__', '').startswith('emo.')}
            if names:
                registered[reg.name] = names
    assert registered == LAZY

"""Packaging: a wheel built from the clone carries the configs, the tools and the model
index in OpenMMLab's ``.mim`` layout; installed into a temporary folder, it lets a config
in a folder outside the clone inherit ``emo::`` and train (one iteration, demo data)."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

from helpers import REPO

SOURCES = ('emo', 'configs', 'tools', 'requirements', 'setup.py', 'README.md',
           'model-index.yml', 'LICENSE')

USER_SCRIPT = r'''
import json, math, os.path as osp, sys
import emo
from mmengine.config import Config
from mmengine.runner import Runner
cfg = Config.fromfile('my_experiment.py')
cfg.work_dir = 'work_dir'
runner = Runner.from_cfg(cfg)
loader = runner.build_dataloader(cfg.train_dataloader)
optim = runner.build_optim_wrapper(cfg.optim_wrapper)
runner.model.train()
losses = runner.model.train_step(next(iter(loader)), optim)
print(json.dumps(dict(
    emo=emo.__file__, model=type(runner.model).__name__,
    backbone=type(runner.model.backbone).__name__,
    arch_widths=runner.model.backbone.arch['widths'],
    num_classes=runner.model.head.num_classes,
    losses={k: float(v) for k, v in losses.items()})))
'''


def test_wheel_outside_the_clone_inherits_emo_configs_and_trains(tmp_path, demo_data_root):
    src = tmp_path / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in SOURCES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy(path, src / name)
    env = dict(os.environ, PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    pip = [sys.executable, '-m', 'pip', '-q']
    subprocess.run(pip + ['wheel', '--no-deps', '--no-build-isolation', str(src),
                          '-w', str(tmp_path / 'dist')], check=True, env=env, cwd=tmp_path)
    wheel, = (tmp_path / 'dist').glob('emo-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    for path in ('emo/.mim/model-index.yml', 'emo/.mim/configs/classification/metafile.yml',
                 'emo/.mim/configs/demo/emo-1m_demo_cls.py', 'emo/.mim/tools/train.py',
                 'emo/.mim/tools/test.py', 'emo/registry.py'):
        assert path in names, path
    site = tmp_path / 'site'
    subprocess.run(pip + ['install', '--no-deps', '--target', str(site), str(wheel)],
                   check=True, env=env, cwd=tmp_path)

    user = tmp_path / 'my_project'  # the user's own folder: no clone, no configs
    user.mkdir()
    data = osp.join(demo_data_root, 'imagenet')
    (user / 'my_experiment.py').write_text(textwrap.dedent(f'''\
        _base_ = ['emo::demo/emo-1m_demo_cls.py']
        model = dict(head=dict(num_classes=4))
        train_dataloader = dict(batch_size=4, dataset=dict(data_root={data!r}))
        val_dataloader = dict(dataset=dict(data_root={data!r}))
        test_dataloader = val_dataloader
        '''))
    proc = subprocess.run(
        [sys.executable, '-c', USER_SCRIPT], cwd=user, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS='1'), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['emo'].startswith(str(site))  # the wheel's emo, not the clone's
    assert out['model'] == 'ImageClassifier' and out['backbone'] == 'EMO'
    assert out['arch_widths'] == [32, 48, 80, 168] and out['num_classes'] == 4
    assert out['losses'] and all(0 < v < 100 for v in out['losses'].values())


def test_emo_scope_resolves_in_this_install(tmp_path):
    """``emo::`` in this (editable) install: the clone's configs through ``emo/.mim``;
    the dicts taken from an ``emo::`` base build in the config's own scope."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    import emo
    (tmp_path / 'mine.py').write_text(
        "_base_ = ['emo::classification/emo-1m_8xb256_in1k.py']\n"
        "model = dict(head=dict(num_classes=3))\n")
    cfg = Config.fromfile(str(tmp_path / 'mine.py'))
    assert cfg.model._scope_ == 'emo' and cfg.default_scope == 'mmpretrain'
    mim = osp.join(osp.dirname(emo.__file__), '.mim', 'configs')
    assert osp.samefile(osp.join(mim, 'classification'),
                        osp.join(REPO, 'configs', 'classification'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'ImageClassifier' and model.head.num_classes == 3

"""Every config in configs/ loads and its model builds under its own default_scope."""
import glob
import os.path as osp

import pytest
from helpers import REPO
from mmengine.config import Config

from emo.apis import build_model_from_cfg

CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)


def test_config_inventory():
    names = {osp.relpath(p, osp.join(REPO, 'configs')) for p in CONFIGS}
    for v in ('1m', '2m', '5m', '6m'):
        assert f'classification/emo-{v}_8xb256_in1k.py' in names
    assert len([n for n in names if n.startswith('demo/')]) >= 1


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_loads_and_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope in ('mmpretrain', 'mmdet', 'mmseg')
    assert cfg.custom_imports == dict(imports=['emo'], allow_failed_imports=False)
    model = build_model_from_cfg(cfg, mode='train')
    assert type(model.backbone).__name__ in ('EMO', 'EMOv2')
    assert sum(p.numel() for p in model.parameters()) > 0

"""EMOv2 configs: the official recipes, the models they build, and the published
parameter / FLOP counts (the official logs' fvcore tables, resources/Cls/log_train_*.txt,
and the README of zhangzjn/EMOv2)."""
import os.path as osp

import pytest
from helpers import REPO, load_tool
from mmengine.config import Config

pytestmark = pytest.mark.usefixtures('single_thread')

CLS = 'configs/classification/emov2-{}_8xb128_in1k{}.py'
# (params exact as the official logs' tables give them to 4 digits, GFLOPs published)
CLS_COUNTS = {('1m', ''): (1_460_844, 1.461, 0.285), ('2m', ''): (2_384_312, 2.384, 0.487),
              ('5m', ''): (5_126_440, 5.126, 1.035), ('5m', '-512px'): (5_126_440, 5.126, 5.627)}


def load(pattern, *args):
    return Config.fromfile(osp.join(REPO, pattern.format(*args)))


@pytest.mark.parametrize('arch,size', list(CLS_COUNTS), ids=lambda v: v or '224')
def test_classifier_counts_match_the_published_ones(arch, size):
    res = load_tool('tools/analysis/get_flops.py').count(load(CLS, arch, size))
    params, params_m, gflops = CLS_COUNTS[arch, size]
    assert res['shape'] == ((512, 512) if size else (224, 224))
    assert res['params'] == params and round(params / 1e6, 3) == params_m
    assert round(res['flops'] / 1e9, 3) == gflops


def test_classification_recipe():
    cfg = load(CLS, '5m', '')
    assert cfg.model.backbone == dict(type='EMOv2', arch='5m', window_size=7, out_indices=(4, ),
                                      final_norm=True, channels_last=True)
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.optim_wrapper.optimizer.lr == 3e-3  # 1.5e-3 x 1024 / 512, as logged
    warmup, cosine = cfg.param_scheduler
    assert warmup.start_factor * 3e-3 == pytest.approx(5e-7) and warmup.end == 20
    assert cosine.eta_min == 5e-7 and cosine.end == 300
    assert cfg.custom_hooks == [dict(type='EMAHook', momentum=2e-4, priority='ABOVE_NORMAL')]
    big = load(CLS, '5m', '-512px')
    assert big.model.backbone.window_size == 8
    assert big.train_dataloader.dataset.pipeline[1].scale == 512
    assert [t.get('crop_size') for t in big.test_dataloader.dataset.pipeline][2] == 512
    assert load(CLS, '5m', '-256px').test_dataloader.dataset.pipeline[1].scale == 292

"""ImageNet-1K configs: the released recipe and the published counts."""
import os.path as osp

import pytest
from helpers import REPO, load_tool
from mmengine.config import Config

COUNTS = {  # params (exact) and GFLOPs at 224 of the official classifiers
    '1m': (1_361_168, 0.2608), '2m': (2_377_472, 0.4394),
    '5m': (5_108_848, 0.9026), '6m': (6_168_496, 0.9608)}


def load(arch):
    return Config.fromfile(osp.join(REPO, f'configs/classification/emo-{arch}_8xb256_in1k.py'))


@pytest.mark.parametrize('arch', ['1m', '2m', '5m', '6m'])
def test_counts_match_the_official_networks(arch):
    res = load_tool('tools/analysis/get_flops.py').count(load(arch))
    params, gflops = COUNTS[arch]
    assert res['shape'] == (224, 224)
    assert res['params'] == params
    assert res['flops'] / 1e9 == pytest.approx(gflops, rel=0.005)


def test_released_recipe():
    cfg = load('5m')
    assert cfg.model.backbone.arch == '5m' and cfg.model.head.in_channels == 288
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                       mode='original')
    assert cfg.train_dataloader.batch_size == 256 and cfg.auto_scale_lr.base_batch_size == 2048
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 6e-3
    assert opt.optimizer.weight_decay == 0.05
    assert opt.paramwise_cfg == dict(norm_decay_mult=0.0, bias_decay_mult=0.0)
    assert opt.clip_grad == dict(max_norm=5.0)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.convert_to_iter_based) == ('LinearLR', 20, True)
    assert warmup.start_factor * 6e-3 == pytest.approx(1e-6)
    assert (cosine.type, cosine.begin, cosine.end, cosine.eta_min) == \
        ('CosineAnnealingLR', 20, 300, 1e-6)
    assert cosine.convert_to_iter_based
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.custom_hooks == [dict(type='EMAHook', momentum=2e-4, priority='ABOVE_NORMAL')]
    train = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert train == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
                     'PackInputs']  # no RandomErasing / mixup
    ra = cfg.train_dataloader.dataset.pipeline[3]
    assert (ra.magnitude_level, ra.magnitude_std, ra.policies) == (9, 0.5, 'timm_increasing')
    test = cfg.test_dataloader.dataset.pipeline
    assert test[1].type == 'ResizeEdge' and test[1].scale == 256
    assert test[1].interpolation == 'bicubic'
    assert test[2] == dict(type='CenterCrop', crop_size=224)


def test_variant_files_only_state_the_variant():
    for arch in COUNTS:
        with open(osp.join(REPO, f'configs/classification/emo-{arch}_8xb256_in1k.py')) as f:
            code = [line for line in f if line.strip() and not line.startswith('#')]
        assert len(code) <= 3

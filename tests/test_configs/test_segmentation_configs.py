"""The ADE20K segmentation configs (configs/segmentation): recipe, build, published counts."""
import glob
import math
import os.path as osp

import pytest
from helpers import REPO, load_tool
from mmengine.config import Config

from emo.apis import build_model_from_cfg

SEG_DIR = osp.join(REPO, 'configs', 'segmentation')
FAMILIES = ('deeplabv3', 'pspnet')
ARCHS = ('1m', '2m', '5m', '6m')
WIDTHS = {'1m': (80, 168), '2m': (120, 200), '5m': (160, 288), '6m': (160, 320)}
WINDOW = {'1m': 7, '2m': 7, '5m': 16, '6m': 16}
# Published parameter counts (M, whole model incl. the auxiliary head, truncated to one
# decimal) and the mmengine-counter FLOPs (G, 512x512) of the official network in these
# segmentors (shared/docs/emo-reference.md, section 4).
PUBLISHED_PARAMS = {('deeplabv3', '1m'): 5.6, ('deeplabv3', '2m'): 6.9,
                    ('deeplabv3', '5m'): 10.3, ('pspnet', '1m'): 4.3,
                    ('pspnet', '2m'): 5.5, ('pspnet', '5m'): 8.5}
EXACT_PARAMS = {('deeplabv3', '1m'): 5.65, ('deeplabv3', '2m'): 6.97,
                ('deeplabv3', '5m'): 10.36, ('pspnet', '1m'): 4.37,
                ('pspnet', '2m'): 5.56, ('pspnet', '5m'): 8.59}
OFFICIAL_FLOPS = {('deeplabv3', '1m'): 2.56, ('deeplabv3', '2m'): 3.65,
                  ('deeplabv3', '5m'): 6.61, ('pspnet', '1m'): 2.20,
                  ('pspnet', '2m'): 3.25, ('pspnet', '5m'): 6.11}


def cfg_path(family, arch):
    return osp.join(SEG_DIR, f'{family}_emo-{arch}_8xb4-80k_ade20k-512x512.py')


ALL = [(f, a) for f in FAMILIES for a in ARCHS]


def test_config_files_are_the_expected_set():
    # EMO's configs (EMOv2's, ``*_emov2*``, are checked by test_emov2_configs.py)
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(SEG_DIR, '*_emo-*.py')))
    assert names == sorted(osp.basename(cfg_path(f, a)) for f, a in ALL)
    bases = sorted(osp.basename(p)
                   for p in glob.glob(osp.join(SEG_DIR, '_base_', '*_emo_*.py')))
    assert bases == ['deeplabv3_emo_8xb4-80k_ade20k-512x512.py',
                     'pspnet_emo_8xb4-80k_ade20k-512x512.py']
    # DeepLabv3's inherits mmseg's own config; PSPNet's inherits it and swaps the head
    first_lines = {}
    for base in bases:
        with open(osp.join(SEG_DIR, '_base_', base)) as f:
            first_lines[base] = [ln for ln in f if ln.startswith('_base_ = ')]
    assert first_lines[bases[0]][0].startswith("_base_ = 'mmseg::")
    assert first_lines[bases[1]] == [f"_base_ = './{bases[0]}'\n"]


@pytest.mark.parametrize('family,arch', ALL)
def test_recipe(family, arch):
    cfg = Config.fromfile(cfg_path(family, arch))
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['emo'], allow_failed_imports=False)
    model = cfg.model
    assert model.type == 'EncoderDecoder' and model.pretrained is None
    bb = model.backbone
    assert set(bb) == {'type', 'arch', 'out_indices', 'frozen_stages', 'norm_eval',
                       'window_size', 'final_norm', 'init_cfg'}  # no ResNet leftovers
    assert (bb.type, bb.arch, tuple(bb.out_indices)) == ('EMO', arch, (1, 2, 3, 4))
    assert (bb.frozen_stages, bb.norm_eval, bb.final_norm) == (-1, False, False)
    assert bb.window_size == WINDOW[arch]
    assert bb.init_cfg == dict(type='Pretrained',
                               checkpoint=f'checkpoints/EMO_{arch.upper()}/net.pth')
    c3, c4 = WIDTHS[arch]
    head, aux = model.decode_head, model.auxiliary_head
    assert (head.in_channels, head.in_index, head.channels, head.num_classes) == \
        (c4, 3, 256, 150)
    if family == 'deeplabv3':
        assert head.type == 'ASPPHead' and tuple(head.dilations) == (1, 12, 24, 36)
    else:
        assert head.type == 'PSPHead' and tuple(head.pool_scales) == (1, 2, 3, 6)
    assert (aux.type, aux.in_channels, aux.in_index, aux.channels, aux.num_classes) == \
        ('FCNHead', c3, 2, 256, 150)
    assert aux.loss_decode.loss_weight == 0.4 and head.loss_decode.loss_weight == 1.0
    assert head.norm_cfg.type == aux.norm_cfg.type == 'SyncBN'
    assert cfg.sync_bn == 'torch'
    assert model.test_cfg == dict(mode='whole')
    # 80k iterations, 8 x 4 images, AdamW 1.2e-4 wd 0.01 (none on norms), poly 0.9 to 0.
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 80000
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 32
    opt = cfg.optim_wrapper.optimizer
    assert dict(opt) == dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01)
    assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.0)
    assert cfg.param_scheduler == [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0,
                                        end=80000, by_epoch=False)]  # no warm-up
    # Data: the released ADE20K pipeline, single-scale (2048, 512) whole-image test.
    assert tuple(cfg.crop_size) == (512, 512)
    assert tuple(model.data_preprocessor.size) == (512, 512)
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert list(train) == ['LoadImageFromFile', 'LoadAnnotations', 'RandomResize',
                           'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion',
                           'PackSegInputs']
    assert train['LoadAnnotations']['reduce_zero_label'] is True
    assert tuple(train['RandomResize']['scale']) == (2048, 512)
    assert tuple(train['RandomResize']['ratio_range']) == (0.5, 2.0)
    assert tuple(train['RandomCrop']['crop_size']) == (512, 512)
    assert train['RandomCrop']['cat_max_ratio'] == 0.75
    test = {t['type']: t for t in cfg.test_dataloader.dataset.pipeline}
    assert tuple(test['Resize']['scale']) == (2048, 512)
    assert test['LoadAnnotations']['reduce_zero_label'] is True
    assert cfg.test_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.test_evaluator.type == 'IoUMetric'


@pytest.mark.parametrize('family,arch', ALL)
def test_builds(family, arch):
    model = build_model_from_cfg(Config.fromfile(cfg_path(family, arch)), mode='train')
    assert type(model).__name__ == 'EncoderDecoder'
    assert type(model.backbone).__name__ == 'EMO'
    assert model.backbone.out_indices == (1, 2, 3, 4) and not model.backbone.final_norm
    assert not hasattr(model.backbone, 'norm')
    assert model.backbone.window_size == [WINDOW[arch]] * 4
    assert model.decode_head.channels == 256 and model.auxiliary_head.channels == 256
    assert model.data_preprocessor.size == (512, 512)
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen


@pytest.fixture(scope='module')
def get_flops():
    return load_tool('tools/analysis/get_flops.py')


@pytest.mark.parametrize('family,arch', sorted(PUBLISHED_PARAMS))
def test_published_counts(get_flops, family, arch):
    cfg = Config.fromfile(cfg_path(family, arch))
    res = get_flops.count(cfg)
    assert res['shape'] == (512, 512)  # the crop size
    params = res['params'] / 1e6  # whole model, auxiliary head included
    assert math.floor(params * 10) / 10 == PUBLISHED_PARAMS[(family, arch)]
    assert round(params, 2) == EXACT_PARAMS[(family, arch)]
    flops = res['flops'] / 1e9
    assert abs(flops / OFFICIAL_FLOPS[(family, arch)] - 1) < 0.01, flops


def test_6m_is_bigger_than_5m():
    def params(family, arch):
        model = build_model_from_cfg(Config.fromfile(cfg_path(family, arch)), mode='train')
        return sum(p.numel() for p in model.parameters())

    for family in FAMILIES:
        assert params(family, '6m') > params(family, '5m')


def test_demo_config():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'deeplabv3_emo-1m_demo_ade20k.py'))
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.backbone.arch == '1m' and cfg.model.decode_head.type == 'ASPPHead'
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters <= 500
    # `make demo` tests <work_dir>/iter_{max_iters}.pth
    assert cfg.default_hooks.checkpoint.interval == cfg.train_cfg.max_iters
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.param_scheduler[-1]['end'] == cfg.train_cfg.max_iters
    root = 'data/demo/ade/ADEChallengeData2016'
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader'].dataset
        assert ds.data_root == root and ds.type == 'ADE20KDataset'
    assert cfg.model.decode_head.num_classes == 150  # still ADE20K's classes
    assert tuple(cfg.model.data_preprocessor.size) == tuple(cfg.crop_size)

"""COCO detection configs (SSDLite, RetinaNet): the released recipes, the models they
build under mmdet, and the published parameter / FLOP counts."""
import os.path as osp

import pytest
from helpers import REPO, load_tool
from mmengine.config import Config

from emo.apis import build_model_from_cfg

ARCHS = ('1m', '2m', '5m', '6m')
WIDTHS = {'1m': [32, 48, 80, 168], '2m': [32, 48, 120, 200],
          '5m': [48, 72, 160, 288], '6m': [48, 72, 160, 320]}
WINDOW = {'1m': 7, '2m': 7, '5m': 10, '6m': 10}
SSD = 'configs/detection/ssdlite_emo-{}_8xb24-600e_coco.py'
RETINA = 'configs/detection/retinanet_emo-{}_fpn_8xb4-1x_coco.py'
DEMO = 'configs/demo/ssdlite_emo-1m_demo_coco.py'
pytestmark = pytest.mark.usefixtures('single_thread')

# Published parameters (M, truncated to one decimal) and the mmengine-counter GFLOPs of
# the official network in these detectors (reference section 4); no 6M numbers exist.
PUBLISHED = {
    'ssdlite': {'1m': (2.3, 0.62), '2m': (3.3, 1.03), '5m': (6.0, 1.97)},
    'retinanet': {'1m': (10.4, 163.3), '2m': (11.5, 167.4), '5m': (14.4, 178.7)},
}
EXACT_PARAMS_M = {  # the same, to two decimals
    'ssdlite': {'1m': 2.31, '2m': 3.34, '5m': 6.08},
    'retinanet': {'1m': 10.48, '2m': 11.56, '5m': 14.44},
}


def load(pattern, arch):
    return Config.fromfile(osp.join(REPO, pattern.format(arch)))


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def truncated(params):
    return int(params / 1e5) / 10


def check_backbone(cfg, arch, out_indices, frozen_stages):
    bb = cfg.model.backbone
    assert bb.type == 'EMO' and bb.arch == arch and bb.window_size == WINDOW[arch]
    assert tuple(bb.out_indices) == out_indices
    assert bb.frozen_stages == frozen_stages and bb.norm_eval is True
    assert bb.final_norm is False
    # ImageNet weights from the top-level `checkpoint` (official file convention).
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=cfg.checkpoint)
    assert cfg.checkpoint == f'checkpoints/EMO_{arch.upper()}/net.pth'
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['emo'], allow_failed_imports=False)


@pytest.mark.parametrize('arch', ARCHS)
def test_ssdlite_recipe(arch):
    cfg = load(SSD, arch)
    check_backbone(cfg, arch, (3, 4), -1)
    chans = (*WIDTHS[arch][2:], 512, 256, 256, 128)
    neck, head = cfg.model.neck, cfg.model.bbox_head
    assert neck.type == 'SSDNeck' and neck.use_depthwise
    assert tuple(neck.in_channels) == tuple(WIDTHS[arch][2:])
    assert tuple(neck.out_channels) == chans == tuple(head.in_channels)
    assert head.type == 'EMOSSDHead' and head.use_depthwise and head.num_classes == 80
    for part in (neck, head):
        assert part.norm_cfg == dict(type='BN', eps=1e-3, momentum=0.03)
        assert part.act_cfg == dict(type='ReLU6')
    anchors = head.anchor_generator
    assert anchors.strides == [16, 32, 64, 107, 160, 320]
    assert anchors.min_sizes == [48, 100, 150, 202, 253, 304]
    assert anchors.max_sizes == [100, 150, 202, 253, 304, 320]
    assert anchors.ratios == [[2, 3]] * 6
    # 320x320, dataset repeated 5x for 120 epochs, 24 images per GPU.
    assert [t.scale for t in cfg.test_pipeline if t.type == 'Resize'] == [(320, 320)]
    train = cfg.train_dataloader
    assert train.batch_size == 24 and train.dataset.type == 'RepeatDataset'
    assert train.dataset.times == 5
    assert [t.scale for t in train.dataset.dataset.pipeline if t.type == 'Resize'] == \
        [(320, 320)]
    assert {t.type for t in train.dataset.dataset.pipeline} >= {
        'Expand', 'MinIoURandomCrop', 'RandomFlip', 'PhotoMetricDistortion'}
    assert cfg.train_cfg.max_epochs == 120 and cfg.auto_scale_lr.base_batch_size == 192
    opt = cfg.optim_wrapper
    assert opt.optimizer == dict(type='AdamW', lr=1.2e-3, betas=(0.9, 0.999),
                                 weight_decay=0.05)
    assert opt.paramwise_cfg == dict(norm_decay_mult=0.0)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ('LinearLR', False, 500)
    assert (cosine.type, cosine.by_epoch, cosine.end, cosine.eta_min) == \
        ('CosineAnnealingLR', True, 120, 0)


@pytest.mark.parametrize('arch', ARCHS)
def test_retinanet_recipe(arch):
    cfg = load(RETINA, arch)
    check_backbone(cfg, arch, (1, 2, 3, 4), 1)
    neck = cfg.model.neck
    assert neck.type == 'FPN' and list(neck.in_channels) == WIDTHS[arch]
    assert (neck.out_channels, neck.start_level, neck.add_extra_convs, neck.num_outs) == \
        (256, 1, 'on_input', 5)
    assert cfg.model.bbox_head.type == 'RetinaHead'
    assert [t.scale for t in cfg.test_pipeline if t.type == 'Resize'] == [(1333, 800)]
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 32
    assert cfg.train_cfg.max_epochs == 12
    opt = cfg.optim_wrapper
    assert opt.optimizer == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                                 weight_decay=0.05)
    assert opt.paramwise_cfg == dict(norm_decay_mult=0.0)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end, warmup.start_factor) == \
        ('LinearLR', False, 500, 0.001)
    assert (cosine.type, cosine.by_epoch, cosine.end, cosine.eta_min) == \
        ('CosineAnnealingLR', True, 12, 0)


@pytest.mark.parametrize('family,pattern', [('ssdlite', SSD), ('retinanet', RETINA)],
                         ids=['ssdlite', 'retinanet'])
@pytest.mark.parametrize('arch', ARCHS)
def test_builds_with_published_params(family, pattern, arch):
    model = build_model_from_cfg(load(pattern, arch), mode='train')
    assert type(model.backbone).__name__ == 'EMO'
    assert type(model.data_preprocessor).__name__ == 'DetDataPreprocessor'
    assert not hasattr(model.backbone, 'norm')  # final_norm=False
    params = n_params(model)
    if arch in PUBLISHED[family]:
        assert truncated(params) == PUBLISHED[family][arch][0]
        assert round(params / 1e6, 2) == EXACT_PARAMS_M[family][arch]
    else:  # 6M: new, larger than 5M
        assert params > n_params(build_model_from_cfg(load(pattern, '5m'), mode='train'))


def test_ssd_head_can_predict():
    """EMOSSDHead is mmdet's SSDHead plus loss_cls = None (the 3.3.0 predict bug)."""
    model = build_model_from_cfg(load(SSD, '1m'), mode='train')
    from mmdet.models.dense_heads import SSDHead
    assert type(model.bbox_head).__name__ == 'EMOSSDHead'
    assert isinstance(model.bbox_head, SSDHead) and model.bbox_head.loss_cls is None


def test_demo_config():
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    assert cfg.model.backbone.init_cfg is None and cfg.model.backbone.norm_eval is False
    assert cfg.model.bbox_head.num_classes == 3
    classes = ('circle', 'square', 'triangle')
    for ds in (cfg.train_dataloader.dataset.dataset, cfg.val_dataloader.dataset,
               cfg.test_dataloader.dataset):
        assert ds.data_root == 'data/demo/coco/' and ds.metainfo == dict(classes=classes)
    assert cfg.test_evaluator.ann_file == 'data/demo/coco/annotations/instances_val2017.json'
    # one checkpoint, at the end: epoch_{max_epochs}.pth
    assert cfg.default_hooks.checkpoint.interval == cfg.train_cfg.max_epochs
    assert [t.scale for t in cfg.test_pipeline if t.type == 'Resize'] == [(128, 128)]
    # the rest of the model is the EMO-1M SSDLite recipe (from scratch: BN statistics learn)
    base = load(SSD, '1m')
    assert cfg.model.backbone == dict(base.model.backbone, init_cfg=None, norm_eval=False)
    assert cfg.model.neck == base.model.neck
    assert cfg.model.bbox_head == dict(base.model.bbox_head, num_classes=3)
    assert cfg.optim_wrapper.paramwise_cfg == base.optim_wrapper.paramwise_cfg
    assert n_params(build_model_from_cfg(cfg, mode='train')) < n_params(build_model_from_cfg(base, mode='train'))  # 3 classes instead of 80


# mmengine-counter FLOPs within 1% of the official network's (RetinaNet at 800x1333:
# ~15 s per model on one core).
@pytest.mark.parametrize('family,pattern', [('ssdlite', SSD), ('retinanet', RETINA)],
                         ids=['ssdlite', 'retinanet'])
@pytest.mark.parametrize('arch', ['1m', '2m', '5m'])
def test_flops_match_the_official_network(family, pattern, arch):
    res = load_tool('tools/analysis/get_flops.py').count(load(pattern, arch))
    assert res['shape'] == ((320, 320) if family == 'ssdlite' else (800, 1333))
    params, gflops = PUBLISHED[family][arch]
    assert truncated(res['params']) == params
    assert res['flops'] / 1e9 == pytest.approx(gflops, rel=0.01)

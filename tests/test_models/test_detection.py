"""EMO detectors (SSDLite, RetinaNet) as the configs build them: training losses and
gradients, prediction on odd sizes, frozen stages / norm_eval, ImageNet weights."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import InstanceData
from torch.nn.modules.batchnorm import _BatchNorm

import emo.models.backbones.emo as emo_backbone
from emo.models import EMO
from emo.apis.launch import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SSD = osp.join(REPO, 'configs/detection/ssdlite_emo-{}_8xb24-600e_coco.py')
RETINA = osp.join(REPO, 'configs/detection/retinanet_emo-{}_fpn_8xb4-1x_coco.py')
SIZES = [(65, 83), (80, 51)]  # (H, W), odd and different
pytestmark = pytest.mark.usefixtures('single_thread')


def build(cfg, keep_init_cfg=False):
    init_default_scope('mmdet')
    model = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if not keep_init_cfg:
        model.backbone = dict(model.backbone, init_cfg=None)
    return MODELS.build(model)


@pytest.fixture(scope='module', params=['ssdlite', 'retinanet'])
def detector(request):
    torch.manual_seed(0)
    pattern = SSD if request.param == 'ssdlite' else RETINA
    model = build(Config.fromfile(pattern.format('1m')))
    model.init_weights()
    return request.param, model


def make_batch(sizes, seed=0):
    """uint8 images and DetDataSamples with two gt boxes each, as a dataloader gives."""
    from mmdet.structures import DetDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[4.0, 6.0, 4.0 + w / 2, 6.0 + h / 2],
                                 [w / 3, h / 4, w - 2.0, h - 3.0]]),
            labels=torch.tensor([0, 2]))
        inputs[-1][:, 6:6 + h // 2, 4:4 + w // 2] = 255  # something to see in box 1
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def train_step_grads(model, sizes=SIZES):
    """Losses of one training forward (+ backward); the gradients are left in place."""
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(make_batch(sizes), training=True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    return log_vars


def test_training_losses_and_gradients(detector):
    name, model = detector
    log_vars = train_step_grads(model)
    assert {'loss', 'loss_cls', 'loss_bbox'} <= set(log_vars)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), (key, value)
    assert log_vars['loss_cls'] > 0 and log_vars['loss_bbox'] > 0
    # Gradients reach the backbone, down to the first trainable stage.
    first = 0 if name == 'ssdlite' else 2  # RetinaNet: stem + stage 1 frozen
    bb = model.backbone
    for i in range(first, 5):
        grads = [p.grad for p in getattr(bb, f'stage{i}').parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), f'stage{i}'
        assert any(g.abs().sum() > 0 for g in grads), f'stage{i}'
        assert all(torch.isfinite(g).all() for g in grads), f'stage{i}'
    for i in range(first):
        assert all(p.grad is None for p in getattr(bb, f'stage{i}').parameters())


def test_predict_odd_sizes(detector, monkeypatch):
    name, model = detector
    model.eval()
    # untrained scores sit at the priors (SSD 1/81, RetinaNet 0.01): keep every box
    monkeypatch.setitem(model.bbox_head.test_cfg, 'score_thr', 0.0)
    with torch.no_grad():
        results = model.test_step(make_batch(SIZES, seed=1))
    assert len(results) == 2
    max_per_img = model.test_cfg.max_per_img
    for (h, w), res in zip(SIZES, results):
        pred = res.pred_instances
        n = len(pred)
        assert 0 < n <= max_per_img
        assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n, )
        assert ((pred.labels >= 0) & (pred.labels < 80)).all()
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
        boxes = pred.bboxes
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= h).all()
        assert res.ori_shape == (h, w)


def test_stock_ssd_head_cannot_predict_in_mmdet_330():
    """Why EMOSSDHead exists: mmdet 3.3.0's SSDHead fails in predict (no loss_cls).
    Should this start failing, mmdet fixed the bug and the workaround can go."""
    cfg = Config.fromfile(SSD.format('1m'))
    cfg.model.bbox_head.type = 'SSDHead'
    model = build(cfg).eval()
    with torch.no_grad(), pytest.raises(AttributeError, match='loss_cls'):
        model.test_step(make_batch(SIZES[:1]))


def test_retinanet_frozen_stages_and_norm_eval():
    model = build(Config.fromfile(RETINA.format('1m')))
    model.train()
    bb = model.backbone
    for i in range(5):
        stage = getattr(bb, f'stage{i}')
        frozen = i <= 1  # stem and stage 1
        assert all(p.requires_grad is not frozen for p in stage.parameters()), f'stage{i}'
        assert all(m.training is not frozen for m in stage.modules()
                   if not isinstance(m, _BatchNorm)), f'stage{i}'
    # norm_eval: every backbone BatchNorm stays in eval mode (BN of stages 2.. learn their
    # affine parameters but not their statistics); neck and head train.
    bns = [m for m in bb.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert model.neck.training and model.bbox_head.training
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    train_step_grads(model)
    with torch.no_grad():
        for p in model.parameters():  # a plain SGD step on every trainable parameter
            if p.grad is not None:
                p -= 0.1 * p.grad
    after = bb.state_dict()
    for k, v in before.items():
        changed = not torch.equal(v, after[k])
        if k.startswith(('stage0.', 'stage1.')) or 'running_' in k or \
                'num_batches_tracked' in k:
            assert not changed, k  # frozen weights, frozen BN statistics
    assert not torch.equal(before['stage4.1.proj.conv.weight'],
                           after['stage4.1.proj.conv.weight'])


def test_ssdlite_norm_eval_without_frozen_stages():
    model = build(Config.fromfile(SSD.format('2m')))
    model.train()
    assert all(p.requires_grad for p in model.backbone.parameters())
    bns = [m for m in model.backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert model.backbone.stage0.training and model.backbone.stage4.training
    neck_bns = [m for m in model.neck.modules() if isinstance(m, _BatchNorm)]
    assert neck_bns and all(m.training for m in neck_bns)  # the neck's BN learns
    running = [m.running_mean.clone() for m in bns]
    with torch.no_grad():
        model(**model.data_preprocessor(make_batch(SIZES), training=True), mode='loss')
    assert all(torch.equal(r, m.running_mean) for r, m in zip(running, bns))


def official_checkpoint(arch, path, seed=0):
    """An official-format EMO classifier file: plain state_dict, no prefix, with the final
    norm and the 1000-class head; random values so that a load can be seen."""
    torch.manual_seed(seed)
    clf = EMO(arch, final_norm=True)
    state = {k: (v + torch.rand_like(v) if v.is_floating_point() else v)
             for k, v in clf.state_dict().items()}
    width = EMO.arch_settings[arch]['widths'][-1]
    state['head.weight'] = torch.randn(1000, width)
    state['head.bias'] = torch.randn(1000)
    torch.save(state, str(path))
    return state


@pytest.mark.parametrize('pattern,arch', [(RETINA, '1m'), (SSD, '5m')],
                         ids=['retinanet-1m', 'ssdlite-5m'])
def test_imagenet_weights_through_init_cfg(pattern, arch, tmp_path, monkeypatch):
    state = official_checkpoint(arch, tmp_path / 'net.pth')
    assert len(state) == (217 if arch == '1m' else 258)
    # The documented override: --cfg-options model.backbone.init_cfg.checkpoint=PATH
    cfg = load_config(pattern.format(arch),
                      {'model.backbone.init_cfg.checkpoint': str(tmp_path / 'net.pth')})
    reports = []

    def spy(*args, **kwargs):
        reports.append(real(*args, **kwargs))
        return reports[-1]

    real = emo_backbone.load_backbone_checkpoint
    monkeypatch.setattr(emo_backbone, 'load_backbone_checkpoint', spy)
    model = build(cfg, keep_init_cfg=True)
    backbone_keys = set(model.backbone.state_dict())
    model.init_weights()
    assert len(reports) == 1
    report = reports[0]
    assert set(report['loaded']) == backbone_keys
    assert report['missing'] == [] and report['unexpected'] == []
    assert set(report['ignored']) == {'head.weight', 'head.bias', 'norm.norm.weight',
                                      'norm.norm.bias'}
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, state[k]), k

"""EMO segmentors built from configs/segmentation: training, inference, labels, weights."""
import logging
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import emo  # noqa: F401
from emo.models.backbones.emo import EMO

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def cfg_path(family, arch='1m'):
    return osp.join(REPO, 'configs', 'segmentation',
                    f'{family}_emo-{arch}_8xb4-80k_ade20k-512x512.py')


def build(family='deeplabv3', arch='1m', init_cfg=None, **model_options):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(cfg_path(family, arch))
    cfg.merge_from_dict({'model.backbone.init_cfg': init_cfg, **model_options})
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def seg_batch(n, h, w, seed=0):
    """A data-loader style batch: uint8 images and SegDataSamples with labels 0..3 / 255."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        label = torch.randint(0, 4, (1, h, w), generator=g)
        label[:, :2] = 255  # an ignored frame, as reduce_zero_label makes it
        s = SegDataSample(gt_sem_seg=PixelData(data=label))
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('family', ['deeplabv3', 'pspnet'])
def test_training_forward_reaches_backbone(family):
    torch.manual_seed(0)
    # The heads keep SyncBN: without a process group it must fall back to plain BN on CPU.
    model = build(family, **{'model.data_preprocessor.size': (64, 64)}).train()
    assert type(model.decode_head.conv_seg).__name__ == 'Conv2d'
    assert 'SyncBatchNorm' in type(model.auxiliary_head.convs[0].bn).__name__
    data = model.data_preprocessor(seg_batch(2, 64, 56), training=True)
    assert data['inputs'].shape == (2, 3, 64, 64)  # padded to the crop size
    losses = model.loss(**data)
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce', 'aux.acc_seg'}
    loss = losses['decode.loss_ce'] + losses['aux.loss_ce']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = {n: p.grad for n, p in model.backbone.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for name in ('stage0.0.convs.0.0.weight', 'stage2.0.v.conv.weight',
                 'stage3.1.qk.conv.weight', 'stage4.2.proj.conv.weight'):
        assert grads[name].abs().sum() > 0, name
    # BN layers of the backbone are trainable (norm_eval=False): running stats moved.
    bn = model.backbone.stage1[0].norm
    assert bn.training and not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


@pytest.fixture(scope='module')
def model_1m():
    torch.manual_seed(0)
    return build('deeplabv3', '1m').eval()


def test_whole_inference_odd_size(model_1m):
    """ADE20K images are e.g. 500 wide x 375 high: the prediction covers them exactly."""
    data = seg_batch(1, 375, 500)
    with torch.no_grad():
        out = model_1m.test_step(data)
    assert out[0].seg_logits.data.shape == (150, 375, 500)
    assert out[0].pred_sem_seg.data.shape == (1, 375, 500)
    assert int(out[0].pred_sem_seg.data.max()) < 150
    # The model's own tensor forward: decode head logits at stride 32 (ceil).
    inputs = model_1m.data_preprocessor(data)['inputs']
    with torch.no_grad():
        assert model_1m(inputs, mode='tensor').shape == (1, 150, 12, 16)


def test_slide_inference(model_1m):
    data = seg_batch(1, 375, 500, seed=1)
    calls = []
    hook = model_1m.backbone.register_forward_hook(
        lambda m, args, out: calls.append(tuple(args[0].shape)))
    model_1m.test_cfg = ConfigDict(mode='slide', crop_size=(256, 256), stride=(170, 250))
    try:
        with torch.no_grad():
            slide = model_1m.test_step(data)[0]
    finally:
        model_1m.test_cfg = ConfigDict(mode='whole')
        hook.remove()
    # 2 x 2 overlapping 256x256 windows cover the 375x500 image, averaged where they meet.
    assert calls == [(1, 3, 256, 256)] * 4
    assert slide.seg_logits.data.shape == (150, 375, 500)
    assert slide.pred_sem_seg.data.shape == (1, 375, 500)
    assert torch.isfinite(slide.seg_logits.data).all()


def test_reduce_zero_label_through_config_pipeline(demo_data_root):
    """ADE20K convention: label 0 ('other') -> 255 (ignored), k -> k - 1."""
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(cfg_path('deeplabv3'))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = osp.join(demo_data_root, 'ade', 'ADEChallengeData2016')
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 16 and dataset.metainfo['reduce_zero_label']
    for idx in (0, 3):  # a 96x96 and a 96x72 image
        item = dataset[idx]
        raw = cv2.imread(dataset.get_data_info(idx)['seg_map_path'], cv2.IMREAD_UNCHANGED)
        assert raw.min() == 0 and set(np.unique(raw)) <= {0, 1, 2, 3, 4}
        gt = item['data_samples'].gt_sem_seg.data[0].numpy()
        assert gt.shape == raw.shape  # labels stay at the original size
        expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)
        np.testing.assert_array_equal(gt, expected)
        assert (gt == 255).sum() == (raw == 0).sum() > 0
        # The image itself went through the (2048, 512) single-scale resize.
        assert item['inputs'].shape[1] == 512


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_imagenet_weights_load_into_segmentor(tmp_path):
    """An official-format ImageNet file loads into the segmentor's backbone via init_cfg
    (the config's --cfg-options override), with a report of what was used."""
    torch.manual_seed(0)
    classifier = EMO('1m', final_norm=True)
    state = classifier.state_dict()
    g = torch.Generator().manual_seed(1)
    for k, v in state.items():
        if v.is_floating_point():
            state[k] = torch.randn(v.shape, generator=g)
    state['head.weight'] = torch.randn(1000, 168, generator=g)
    state['head.bias'] = torch.randn(1000, generator=g)
    assert len(state) == 217  # the official EMO-1M file has 217 entries
    path = str(tmp_path / 'net.pth')
    torch.save(state, path)

    model = build('deeplabv3', '1m', init_cfg=dict(type='Pretrained', checkpoint=path))
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    own = model.backbone.state_dict()
    assert len(own) == 213
    for k, v in own.items():
        assert torch.equal(v, state[k]), k
    report = '\n'.join(handler.messages)
    assert f'Loaded 213/213 tensors of EMO from {path}' in report
    assert 'ignored 4 keys of other parts: head.bias, head.weight, norm.norm.bias, ' \
        'norm.norm.weight' in report
    assert 'missing keys' not in report and 'unexpected keys' not in report
    # The heads were not touched by the backbone file.
    assert model.decode_head.conv_seg.weight.shape == (150, 256, 1, 1)


def test_imagenet_weights_wrong_file_raises(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save({'model.conv.weight': torch.zeros(3)}, path)
    model = build('pspnet', '1m', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='no tensor fits'):
        model.init_weights()

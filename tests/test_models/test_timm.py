"""emo.timm: timm.create_model('emo_*') is the EMO module with the official layout,
features_only follows the backbone's geometry, pretrained_cfg follows the config's test
pipeline, and timm and mmpretrain give the same logits for the same weights."""
import os.path as osp

import pytest
import timm  # requirements/optional.txt (make install)
import torch
from helpers import REPO

import emo  # noqa: F401  (registers emo_* with timm, imported already)
from emo.models import EMO

CONFIG = osp.join(REPO, 'configs/classification/emo-1m_8xb256_in1k.py')


@pytest.fixture(scope='module')
def official_file(tmp_path_factory):
    """Random weights in the official layout (EMO-1M)."""
    torch.manual_seed(0)
    model = timm.create_model('emo_1m')
    for name, buf in model.named_buffers():
        if name.endswith('running_mean'):
            buf.copy_(torch.randn_like(buf) * 0.1)
        elif name.endswith('running_var'):
            buf.copy_(torch.rand_like(buf) + 0.5)
    path = tmp_path_factory.mktemp('timm') / 'net.pth'
    torch.save(model.state_dict(), path)
    return str(path)


def test_registered_variants_are_emo():
    assert timm.list_models('emo_*') == ['emo_1m', 'emo_2m', 'emo_5m', 'emo_6m']
    for arch in ('1m', '2m', '5m', '6m'):
        model = timm.create_model(f'emo_{arch}', num_classes=7)
        assert isinstance(model, EMO)
        assert model.arch == EMO._parse_arch(arch)
        keys = set(model.state_dict())
        backbone = set(EMO(arch).state_dict())  # the backbone with its final norm
        assert keys - backbone == {'head.weight', 'head.bias'}
        assert model.get_classifier().out_features == 7
        assert model.pretrained_cfg['url'].endswith(f'EMO_{arch.upper()}/net.pth')


@pytest.mark.parametrize('arch', ['1m', '6m'])
def test_features_only_follows_the_backbone_geometry(arch):
    shape = (67, 93)  # odd: every stride-2 layer gives ceil(n / 2)
    backbone = EMO(arch)
    x = torch.randn(1, 3, *shape)
    for out_indices in ((0, 1, 2, 3, 4), (1, 3)):
        model = timm.create_model(f'emo_{arch}', features_only=True,
                                  out_indices=out_indices).eval()
        channels = [backbone.out_channels[i] for i in out_indices]
        reductions = [backbone.strides[i] for i in out_indices]
        assert model.feature_info.channels() == channels
        assert model.feature_info.reduction() == reductions
        with torch.no_grad():
            feats = model(x)
        sizes = backbone.feature_shapes(shape)
        assert [tuple(f.shape) for f in feats] == [
            (1, c, *sizes[i]) for c, i in zip(channels, out_indices)]


def test_resolve_data_config_equals_the_test_pipeline():
    from mmengine.config import Config
    from timm.data import resolve_data_config
    cfg = Config.fromfile(CONFIG)
    steps = {t['type']: t for t in cfg.test_dataloader.dataset.pipeline}
    resize, crop = steps['ResizeEdge'], steps['CenterCrop']
    assert resize['edge'] == 'short'
    data = resolve_data_config({}, model=timm.create_model('emo_1m'))
    assert data['input_size'] == (3, crop['crop_size'], crop['crop_size'])
    assert data['crop_pct'] == pytest.approx(crop['crop_size'] / resize['scale'])
    assert data['crop_mode'] == 'center'
    assert data['interpolation'] == resize['interpolation'] == 'bicubic'
    pre = cfg.data_preprocessor
    assert pre['to_rgb']  # timm's mean / std are RGB on [0, 1]
    assert data['mean'] == pytest.approx([m / 255 for m in pre['mean']])
    assert data['std'] == pytest.approx([s / 255 for s in pre['std']])


def test_timm_and_mmpretrain_logits_equal(official_file):
    from emo.apis import build_model_from_cfg
    reference = build_model_from_cfg(CONFIG, checkpoint=official_file)
    model = timm.create_model('emo_1m', pretrained=True, channels_last=True,
                              pretrained_cfg_overlay=dict(file=official_file)).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x, mode='tensor')
        assert torch.equal(model(x), expected)
        feats = model.forward_features(x)
        assert torch.equal(model.forward_head(feats), expected)
        pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    model.reset_classifier(5)
    assert model.get_classifier().out_features == 5


def test_pretrained_downloads_through_the_hub_cache(official_file, tmp_path):
    """``pretrained=True`` downloads the cfg's URL once into mmengine's cache (a file
    URL here) through the safe loader; another num_classes drops the head."""
    from emo.apis.hub import cached_file
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        url = f'file://{official_file}'
        model = timm.create_model('emo_1m', pretrained=True, num_classes=3,
                                  pretrained_cfg_overlay=dict(url=url))
        assert osp.isfile(cached_file(url))
    finally:
        torch.hub.set_dir(old)
    state = torch.load(official_file, weights_only=True)
    for key, value in model.state_dict().items():
        if not key.startswith('head.'):
            assert torch.equal(value, state[key]), key
    assert model.head.weight.shape == (3, 168)

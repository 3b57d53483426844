"""What a GPU run changes in the configs, built on a CPU: ``tools/train.py --amp``'s optim
wrapper (AmpOptimWrapper on a GPU, bfloat16 autocast here) and the segmentors' SyncBN
(``sync_bn='torch'`` and SyncBN heads: converted in distributed runs, reverted in one)."""
import glob
import os.path as osp

import pytest
import torch
import torch.nn as nn
from helpers import REPO, load_tool
from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper

from emo.apis import build_model_from_cfg
from emo.apis.launch import load_config
from emo.engine import CPUAutocastOptimWrapper

# one config of each recipe family (the variants differ in widths only)
FAMILIES = ['configs/classification/emo-1m_8xb256_in1k.py',
            'configs/classification/emov2-1m_8xb128_in1k.py',
            'configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py',
            'configs/detection/retinanet_emo-1m_fpn_8xb4-1x_coco.py',
            'configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py',
            'configs/segmentation/pspnet_emo-1m_8xb4-80k_ade20k-512x512.py']
SEG = sorted(glob.glob(osp.join(REPO, 'configs', 'segmentation', '*_emo-*.py')))


@pytest.fixture(scope='module')
def train_tool():
    return load_tool('tools/train.py')


@pytest.mark.parametrize('path', FAMILIES, ids=lambda p: osp.basename(p).split('_')[0])
def test_amp_builds(train_tool, path, monkeypatch):
    import mmengine.device
    cfg = load_config(osp.join(REPO, path))
    before = {k: v for k, v in cfg.optim_wrapper.items() if k != 'type'}
    # on a GPU: mmengine's AmpOptimWrapper with dynamic loss scaling
    gpu_cfg = load_config(osp.join(REPO, path))
    monkeypatch.setattr(mmengine.device, 'get_device', lambda: 'cuda')
    train_tool.enable_amp(gpu_cfg)
    assert gpu_cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert gpu_cfg.optim_wrapper.loss_scale == 'dynamic'
    monkeypatch.undo()
    # here (no GPU): bfloat16 autocast, the config's own settings kept; it builds
    train_tool.enable_amp(cfg)
    wrapper_cfg = cfg.optim_wrapper
    assert wrapper_cfg.type == 'CPUAutocastOptimWrapper' and wrapper_cfg.dtype == 'bfloat16'
    assert 'loss_scale' not in wrapper_cfg
    assert {k: v for k, v in wrapper_cfg.items() if k not in ('type', 'dtype')} == before
    model = build_model_from_cfg(cfg, mode='train')
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    assert isinstance(wrapper, CPUAutocastOptimWrapper)
    clip = {k: v for k, v in (before.get('clip_grad') or {}).items() if k != 'type'}
    assert (wrapper.clip_grad_kwargs or {}) == clip  # e.g. the classifiers' max_norm 5


def test_segmentation_configs_sync_bn():
    for path in SEG:
        assert load_config(path).sync_bn == 'torch', path
    cfg = load_config(SEG[0])
    model = build_model_from_cfg(cfg, mode='train')
    heads = [m for n, m in model.named_modules() if 'head' in n]
    assert any(isinstance(m, nn.SyncBatchNorm) for m in heads)  # mmseg's SyncBN heads
    # distributed (what the Runner does with sync_bn='torch'): every BatchNorm synchronised
    synced = convert_sync_batchnorm(model, implementation='torch')
    norms = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    # one process (the Runner reverts them): no SyncBatchNorm left, and it trains on a CPU
    single = revert_sync_batchnorm(synced)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in single.modules())
    x = torch.randn(2, 3, 64, 64)
    out = single(x, mode='tensor')
    out.float().mean().backward()
    assert out.shape[0] == 2 and torch.isfinite(out).all()

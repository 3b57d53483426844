"""emo.engine.dist: distributed runs without CUDA (gloo, DDP without device_ids)."""
import logging
import os

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from emo.engine.dist import CPUDistributedDataParallel, setup_cpu_dist


class LogCapture(logging.Handler):
    """The messages mmengine's current logger emits inside the ``with`` block."""

    def __enter__(self):
        self.messages = []
        self.logger = MMLogger.get_current_instance()
        self.logger.addHandler(self)
        return self.messages

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_other_launchers_are_left_alone():
    cfg = Config(dict(launcher='none', model_wrapper_cfg=None))
    assert setup_cpu_dist(cfg) is False
    assert cfg.model_wrapper_cfg is None


@pytest.fixture
def gloo_world_of_one(monkeypatch):
    """A real gloo process group of one process (what torchrun would set up)."""
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                           MASTER_ADDR='127.0.0.1', MASTER_PORT='29533').items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def test_sync_bn_on_cpu_is_dropped_with_a_warning(gloo_world_of_one):
    cfg = Config(dict(launcher='pytorch', sync_bn='torch'))
    with LogCapture() as messages:
        assert setup_cpu_dist(cfg) is True
    assert cfg.sync_bn is None
    assert any("sync_bn='torch' ignored: SyncBatchNorm needs CUDA" in m for m in messages)


def test_setup_starts_gloo_and_picks_the_cpu_wrapper(gloo_world_of_one):
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True,
                      env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_dist(cfg) is True
    assert torch_dist.is_initialized() and torch_dist.get_backend() == 'gloo'
    assert cfg.env_cfg == dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    assert cfg.model_wrapper_cfg == dict(type='CPUDistributedDataParallel',
                                         broadcast_buffers=False,
                                         find_unused_parameters=True)


def test_cpu_wrapper_drops_device_ids_and_sync_bn(gloo_world_of_one):
    torch_dist.init_process_group('gloo', rank=0, world_size=1)
    module = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4))
    with pytest.raises(ValueError):  # what plain DDP does with the runner's device_ids
        torch.nn.parallel.DistributedDataParallel(nn.Linear(2, 2), device_ids=[0])
    model = CPUDistributedDataParallel(module=module,
                                       device_ids=[int(os.environ['LOCAL_RANK'])])
    assert model.device_ids is None
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    model.train()
    model(torch.randn(2, 3, 4, 4)).sum().backward()  # SyncBN would raise on CPU here
    assert model.module[0].weight.grad is not None

"""Distributed runs on machines without CUDA (gloo), for rehearsing ``dist_train.sh`` /
``dist_test.sh`` on a laptop or a CI runner.

mmengine 0.10.7 cannot do it alone: ``init_dist('pytorch')`` calls
``torch.cuda.set_device`` whatever the backend, and ``Runner.wrap_model`` passes
``device_ids=[LOCAL_RANK]`` to DDP, which DDP rejects for CPU modules. With CUDA present
nothing here changes anything.
"""
import datetime
import os

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS

WRAPPER = 'CPUDistributedDataParallel'


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for a module on the CPU: ``device_ids`` is dropped
    (DDP wants none for CPU modules). SyncBN layers left in the model (e.g. a config's
    ``norm_cfg=dict(type='SyncBN')``) become plain BatchNorm with a warning: torch's and
    mmcv's SyncBN run on GPUs only, so each process normalises over its own batch."""

    def __init__(self, module, device_ids=None, **kwargs):
        names = [type(m).__name__ for m in module.modules()]
        if any(n in ('SyncBatchNorm', 'SyncBN') for n in names):
            print_log('SyncBN needs CUDA: on CPU its layers are plain BatchNorm, each '
                      'process normalising over its own batch', logger='current',
                      level=30)
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=None, **kwargs)


def setup_cpu_dist(cfg):
    """For ``launcher='pytorch'`` without CUDA: start the gloo process group (so that the
    Runner skips mmengine's CUDA-only ``init_dist``) and wrap the model with
    :class:`CPUDistributedDataParallel`. A config's ``sync_bn`` (the segmentation recipes
    set ``'torch'``) is dropped with a warning: SyncBN runs on GPUs only, so each process
    normalises over its own batch, as mmengine does for a single process. Returns whether
    it did anything; with CUDA, or another launcher, it does nothing.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    if cfg.get('sync_bn'):
        print_log(f'sync_bn={cfg.sync_bn!r} ignored: SyncBatchNorm needs CUDA, this machine '
                  f'has none; each process normalises over its own batch',
                  logger='current', level=30)
        cfg.sync_bn = None
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg.env_cfg = env_cfg  # assigned, not set in place: Config copies what it is given
    if not torch_dist.is_initialized():
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
        torch_dist.init_process_group('gloo', rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type=WRAPPER, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', MMDistributedDataParallel):
        wrapper['type'] = WRAPPER
    return True

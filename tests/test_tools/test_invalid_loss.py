"""A diverging run (lr 1e6) stops at the first iteration whose loss is NaN or infinite,
in all three tasks: the process exits non-zero, names the iteration and the loss terms,
and writes no checkpoint of that iteration or later (one is written every iteration)."""
import glob
import os.path as osp
import re

import pytest
from helpers import REPO, run_tool

CASES = {
    'classification': ('configs/demo/emo-1m_demo_cls.py', [
        'train_dataloader.dataset.data_root={root}/imagenet',
        'train_dataloader.dataset.indices=16', 'train_dataloader.batch_size=4',
        'train_cfg.max_epochs=3']),
    'detection': ('configs/demo/ssdlite_emo-1m_demo_coco.py', [
        'train_dataloader.dataset.dataset.data_root={root}/coco/',
        'train_dataloader.dataset.dataset.indices=16', 'train_dataloader.batch_size=4',
        'train_cfg.max_epochs=3']),
    'segmentation': ('configs/demo/deeplabv3_emo-1m_demo_ade20k.py', [
        'train_dataloader.dataset.data_root={root}/ade/ADEChallengeData2016',
        'train_dataloader.dataset.indices=16', 'train_cfg.max_iters=12']),
}
EVERY_ITER = ['optim_wrapper.optimizer.lr=1e6', 'default_hooks.logger.interval=1',
              'default_hooks.checkpoint.by_epoch=False', 'default_hooks.checkpoint.interval=1',
              'default_hooks.checkpoint.max_keep_ckpts=-1']
TERMS = {'classification': ['loss='], 'detection': ['loss_cls=', 'loss_bbox='],
         'segmentation': ['decode.loss_ce=', 'aux.loss_ce=']}


@pytest.mark.parametrize('task', list(CASES))
def test_divergence_stops_the_run(task, demo_data_root, tmp_path):
    config, options = CASES[task]
    work = str(tmp_path / 'work')
    proc = run_tool('tools/train.py', osp.join(REPO, config), '--work-dir', work,
                    '--no-validate', '--cfg-options',
                    *[o.format(root=demo_data_root) for o in options], *EVERY_ITER,
                    check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    found = re.search(r'InvalidLossError: training diverged at iteration (\d+)\b(.*)', log)
    assert found, log[-3000:]
    stop, rest = int(found.group(1)), found.group(2)
    assert all(term in rest for term in TERMS[task]), rest
    assert re.search(r'non-finite .*loss', rest)
    # every iteration before it was logged (with finite losses) and checkpointed ...
    saved = sorted(int(re.search(r'iter_(\d+)\.pth', p).group(1))
                   for p in glob.glob(osp.join(work, 'iter_*.pth')))
    assert saved == list(range(1, stop)), (saved, stop)
    assert stop > 1, 'diverged at once: nothing shows that it stopped *at* the iteration'
    # ... and the diverged iteration itself was stopped before the logger reported it
    assert not re.search(r'\sloss: (nan|inf)', log)

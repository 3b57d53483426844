"""Exact resume: a training run killed (SIGKILL) in the middle of epoch 2 (iteration 6 for
the iteration-based segmentation demo) and resumed with ``tools/train.py --resume`` ends
with bitwise the same weights, EMA weights and optimizer state as the same run left alone
(CPU, one thread, no worker processes).

Tiny settings: 16 images, batch 4 (4 iterations per epoch), 3 epochs (12 iterations), a
checkpoint every epoch (every 4 iterations); the classification demo validates after
every epoch (the resumed run does not repeat the validation after epoch 1, so this also
checks that validation leaves the training random stream alone)."""
import os
import os.path as osp
import signal
import time

import pytest
import torch
from helpers import REPO, assert_nested_equal, run_tool, start_tool

import emo  # noqa: F401  (the checkpoint allow-list for torch.load(weights_only=True))

CLS = 'configs/demo/emo-1m_demo_cls.py'
DET = 'configs/demo/ssdlite_emo-1m_demo_coco.py'
SEG = 'configs/demo/deeplabv3_emo-1m_demo_ade20k.py'
COMMON = ['train_cfg.max_epochs=3', 'default_hooks.checkpoint.interval=1',
          'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.logger.interval=1']


def cls_options(root):
    root = osp.join(root, 'imagenet')
    return COMMON + [
        f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.indices=16',
        'train_dataloader.batch_size=4', f'val_dataloader.dataset.data_root={root}',
        'val_dataloader.dataset.indices=8', f'test_dataloader.dataset.data_root={root}',
        'train_cfg.val_interval=1']


def det_options(root):
    coco = osp.join(root, 'coco') + '/'
    return COMMON + [
        f'train_dataloader.dataset.dataset.data_root={coco}',
        'train_dataloader.dataset.dataset.indices=16', 'train_dataloader.batch_size=4']


def seg_options(root):
    return ['default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=-1', 'train_cfg.max_iters=12',
            f'train_dataloader.dataset.data_root={root}/ade/ADEChallengeData2016',
            'train_dataloader.dataset.indices=16']


def train_until_killed(config, work, extra, options, marker):
    """Start training, SIGKILL it as soon as the log shows ``marker`` (the first
    iteration of epoch 2, or iteration 6 of 12)."""
    os.makedirs(work)
    log = osp.join(work, 'stdout.log')
    proc = start_tool('tools/train.py', config, '--work-dir', work, *extra,
                      '--cfg-options', *options, stdout=log)
    deadline = time.time() + 300
    try:
        while not osp.exists(log) or marker not in open(log).read():
            assert proc.poll() is None, open(log).read()[-3000:]
            assert time.time() < deadline, 'training never reached epoch 2'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return log


def load(path):
    return torch.load(path, map_location='cpu')


OPTIONS = {CLS: cls_options, DET: det_options, SEG: seg_options}
EXTRA = {CLS: [], DET: ['--no-validate'], SEG: ['--no-validate']}
# where to kill, the checkpoint there, the one not yet written, what the resume says,
# the last checkpoint
EPOCHS = ('Epoch(train) [2][1/', 'epoch_1.pth', 'epoch_2.pth', 'resumed epoch: 1, iter: 4',
          'epoch_3.pth')
STEPS = {CLS: EPOCHS, DET: EPOCHS,
         SEG: ('Iter(train) [ 6/12]', 'iter_4.pth', 'iter_8.pth', 'resumed epoch: 0, iter: 4',
               'iter_12.pth')}


@pytest.fixture(scope='module')
def uninterrupted(demo_data_root, tmp_path_factory):
    """config -> (options, work dir of the run left alone), trained once per module."""
    done = {}

    def get(config):
        if config not in done:
            opts = OPTIONS[config](demo_data_root)
            work = str(tmp_path_factory.mktemp('whole'))
            run_tool('tools/train.py', config, '--work-dir', work, *EXTRA[config],
                     '--cfg-options', *opts)
            done[config] = opts, work
        return done[config]
    return get


@pytest.mark.parametrize('config', [CLS, DET, SEG],
                         ids=['classification', 'detection', 'segmentation'])
def test_killed_and_resumed_run_equals_uninterrupted_run(config, uninterrupted, tmp_path):
    opts, whole = uninterrupted(config)
    marker, first, absent, resumed, last = STEPS[config]
    killed = str(tmp_path / 'killed')
    train_until_killed(config, killed, EXTRA[config], opts, marker)
    assert osp.isfile(osp.join(killed, first))
    assert not osp.exists(osp.join(killed, absent))  # killed before the next checkpoint
    proc = run_tool('tools/train.py', config, '--work-dir', killed, '--resume',
                    *EXTRA[config], '--cfg-options', *opts)
    log = proc.stdout + proc.stderr
    assert resumed in log
    assert 'restored the random generators of the resumed checkpoint' in log

    ref, got = load(osp.join(whole, last)), load(osp.join(killed, last))
    assert got['meta']['iter'] == 12
    keys = ['state_dict', 'optimizer'] + (['ema_state_dict'] if config == CLS else [])
    for key in keys:
        assert_nested_equal(ref[key], got[key], key)
    # the weights did move after the resume: the comparison is not of a frozen model
    start = load(osp.join(killed, first))['state_dict']
    assert any(not torch.equal(start[k], got['state_dict'][k]) for k in start)


def test_resume_without_saved_state_differs(uninterrupted, tmp_path):
    """The control: the same resume from a checkpoint stripped of ``rng_state`` (as
    mmengine alone writes them) does not end where the uninterrupted run ends."""
    opts, whole = uninterrupted(CLS)
    resumed = str(tmp_path / 'resumed')
    ckpt = load(osp.join(whole, 'epoch_1.pth'))
    assert len(ckpt.pop('rng_state')) == 1  # one process
    os.makedirs(resumed)
    torch.save(ckpt, osp.join(resumed, 'epoch_1.pth'))
    proc = run_tool('tools/train.py', CLS, '--work-dir', resumed, '--resume',
                    osp.join(resumed, 'epoch_1.pth'), '--cfg-options', *opts)
    assert 'holds no random-generator state' in proc.stdout + proc.stderr
    ref, got = load(osp.join(whole, 'epoch_3.pth')), load(osp.join(resumed, 'epoch_3.pth'))
    assert any(not torch.equal(ref['state_dict'][k], got['state_dict'][k])
               for k in ref['state_dict'])

"""``tools/dist_train.sh`` / ``tools/dist_test.sh`` on a machine without CUDA: 2 processes
talking through gloo (``emo.engine.dist``) train and test as one process does."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from helpers import (EPS32, REPO, accumulation_length, assert_nested_equal, float32_bound,
                     run_tool)
from mmengine.config import Config

import emo  # noqa: F401  (the checkpoint allow-list for torch.load(weights_only=True))
from emo.apis import build_model_from_cfg

CLS = osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py')
DET = osp.join(REPO, 'configs/demo/ssdlite_emo-1m_demo_coco.py')
SEG = osp.join(REPO, 'configs/demo/deeplabv3_emo-1m_demo_ade20k.py')



def run(script, *args, port=None):
    """``bash tools/<script>.sh ...`` (torchrun, with this interpreter) or
    ``python tools/<script>.py ...``, with CUDA hidden: the CPU path, also on a machine
    with GPUs."""
    if script.endswith('.py'):  # forked from the tool server (helpers.run_tool)
        return run_tool(f'tools/{script}', *args, env=dict(CUDA_VISIBLE_DEVICES=''))
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHON=sys.executable, PORT=str(port or 29500),
                                   CUDA_VISIBLE_DEVICES='',
                                   OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def step_config(tmp_path, root):
    """The classification demo with deterministic inputs (no augmentation, no shuffle,
    no drop-path), BatchNorm in eval mode (``norm_eval``) and plain SGD at a constant lr,
    for one step: a DDP step on 2 x 16 images must equal one step on the 32 images."""
    path = tmp_path / 'step_cfg.py'
    path.write_text(f'''
_base_ = {CLS!r}
model = dict(backbone=dict(norm_eval=True, drop_path_rate=0.0))
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data_root={root!r}, pipeline=_base_.test_pipeline))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='SGD', lr=1.0))
param_scheduler = []
train_cfg = dict(max_epochs=1)
custom_hooks = []
default_hooks = dict(checkpoint=dict(interval=1))
''')
    return str(path)


def test_ddp_step_on_two_processes_equals_one_process_step(demo_data_root, tmp_path):
    cfg = step_config(tmp_path, osp.join(demo_data_root, 'imagenet'))
    # every run starts from the same saved weights w0
    torch.manual_seed(0)
    model = build_model_from_cfg(Config.fromfile(cfg), mode='train')
    init = str(tmp_path / 'init.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), init)
    works = {k: str(tmp_path / k) for k in ('ddp', 'one', 'half')}
    run('dist_train.sh', cfg, '2', '--work-dir', works['ddp'], '--no-validate',
         '--cfg-options', 'train_dataloader.dataset.indices=32', f'load_from={init}',
         'train_dataloader.batch_size=16', port=29511)
    run('train.py', cfg, '--work-dir', works['one'], '--no-validate',
             '--cfg-options', 'train_dataloader.dataset.indices=32', f'load_from={init}',
             'train_dataloader.batch_size=32')
    # the control: one step on half of the images
    run('train.py', cfg, '--work-dir', works['half'], '--no-validate',
             '--cfg-options', 'train_dataloader.dataset.indices=16', f'load_from={init}',
             'train_dataloader.batch_size=16')
    ddp, one, half = (torch.load(osp.join(w, 'epoch_1.pth'), map_location='cpu')
                      for w in works.values())
    assert ddp['meta']['iter'] == one['meta']['iter'] == 1
    # SGD at lr 1: w1 = w0 - g. The DDP gradient (the mean of two half-batch means) and
    # the one-process one differ by rounding only: within the derived float32 bound of g
    # (n counted on a forward and backward at the step's batch of 32 at 64x64), plus the
    # rounding of w1 itself
    w0, changed = {k: v.clone() for k, v in model.state_dict().items()}, 0
    x, y = torch.randn(32, 3, 64, 64), torch.randint(0, 4, (32, ))
    model.train()  # as trained: BN frozen (norm_eval)
    n = accumulation_length(
        lambda: torch.nn.functional.cross_entropy(model(x, mode='tensor'), y).backward())
    for key, w1 in one['state_dict'].items():
        if not w1.is_floating_point():
            assert torch.equal(ddp['state_dict'][key], w1), key
            continue
        g = w0[key].double() - w1.double()
        bound = float32_bound(g, n) + EPS32 * w1.abs().max().item()
        assert (ddp['state_dict'][key].double() - w1).abs().max() <= bound, key
        # the control takes another step: beyond rounding somewhere
        changed += bool((half['state_dict'][key].double() - w1).abs().max() > bound)
    assert changed > 0


def random_checkpoint(config, path):
    """A seeded random-initialised model of ``config`` saved as a checkpoint."""
    torch.manual_seed(0)
    model = build_model_from_cfg(Config.fromfile(config), mode='train')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


TEST_CASES = {
    # config, options, the metric key, --out (a .pkl, or a folder of masks for mmseg)
    'classification': (CLS, ['test_dataloader.dataset.data_root={root}/imagenet',
                             'test_dataloader.dataset.indices=25',  # odd: padded to 26
                             'test_dataloader.batch_size=1'],
                       'accuracy/top1', 'preds.pkl'),
    'detection': (DET, ['test_dataloader.dataset.data_root={root}/coco/',
                        'test_dataloader.dataset.indices=7', 'test_dataloader.batch_size=1',
                        'test_evaluator.ann_file={root}/coco/annotations/'
                        'instances_val2017.json'],
                  'coco/bbox_mAP', 'preds.pkl'),
    'segmentation': (SEG, ['test_dataloader.dataset.data_root={root}/ade/'
                           'ADEChallengeData2016', 'test_dataloader.dataset.indices=7',
                           'test_dataloader.batch_size=1'],
                     'mIoU', 'masks'),
}


@pytest.mark.parametrize('task', list(TEST_CASES))
def test_dist_test_on_two_processes_equals_one_process(task, demo_data_root, tmp_path):
    config, options, key, out = TEST_CASES[task]
    options = [o.format(root=demo_data_root) for o in options]
    ckpt = random_checkpoint(config, str(tmp_path / 'model.pth'))
    results = {}
    for n, port in ((1, None), (2, 29520 + len(task))):
        work, dump = str(tmp_path / f'work{n}'), str(tmp_path / f'{n}_{out}')
        args = (ckpt, '--work-dir', work, '--out', dump, '--cfg-options', *options)
        if n == 1:
            run('test.py', config, *args)
        else:
            run('dist_test.sh', config, ckpt, '2', *args[1:], port=port)
        with open(osp.join(work, 'test_metrics.json')) as f:
            metrics = json.load(f)
        if out.endswith('.pkl'):
            with open(dump, 'rb') as f:
                preds = pickle.load(f)
        else:
            preds = {name: open(osp.join(dump, name), 'rb').read()
                     for name in sorted(os.listdir(dump))}
        results[n] = metrics, preds
    (m1, p1), (m2, p2) = results[1], results[2]
    assert key in m1 and m1 == m2
    assert len(p1) == len(p2) == (25 if task == 'classification' else 7)
    # one image per batch in both runs: each prediction is the same computation, so
    # bitwise equal on any CPU (no rounding difference, no near-tie to allow for)
    assert_nested_equal(p1, p2, 'predictions')

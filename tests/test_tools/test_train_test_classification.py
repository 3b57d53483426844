"""tools/train.py + tools/test.py on the demo ImageNet-style folders, in subprocesses."""
import json
import os.path as osp
from helpers import run_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/classification/emo-1m_8xb256_in1k.py'


def run(*args):
    return run_tool(*args, check=False)


def folder_options(root):
    """Point the real ImageNet config at a 4-class folder tree: only the data root, the
    class names and the head width change (plus a tiny schedule for the test)."""
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.dataset.metainfo.classes=[circle,cross,square,triangle]',
                 f'{split}_dataloader.dataset.indices=32',  # a subset: the crops are 224
                 f'{split}_dataloader.batch_size=16', f'{split}_dataloader.num_workers=0']
    opts += ['model.head.num_classes=4', 'val_evaluator.topk=[1]', 'test_evaluator.topk=[1]',
             'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    return opts


def test_train_then_test_on_an_imagenet_style_folder(demo_data_root, tmp_path):
    root = osp.join(demo_data_root, 'imagenet')
    work = str(tmp_path / 'work')
    proc = run('tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
               *folder_options(root))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    assert 'accuracy/top1' in proc.stdout + proc.stderr  # validated after the epoch
    out = str(tmp_path / 'preds.pkl')
    proc = run('tools/test.py', CONFIG, ckpt, '--work-dir', work, '--out', out,
               '--cfg-options', *folder_options(root))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.load(open(osp.join(work, 'test_metrics.json')))
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    assert osp.getsize(out) > 0


def test_missing_data_root_is_a_clear_error(tmp_path):
    proc = run('tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
               f'train_dataloader.dataset.data_root={tmp_path}/nowhere')
    assert proc.returncode != 0
    assert f"train data root '{tmp_path}/nowhere' does not exist" in proc.stderr


def test_get_flops_cli():
    proc = run('tools/analysis/get_flops.py', CONFIG, '--shape', '112', '160')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'input shape: 112x160' in proc.stdout
    assert 'params: 1.3612 M (1361168)' in proc.stdout
    assert '--shape' in run('tools/analysis/get_flops.py', '--help').stdout

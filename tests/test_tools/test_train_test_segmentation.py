"""tools/train.py + tools/test.py on the demo ADE20K-style data (a tiny real run)."""
import glob
import json
import os
import os.path as osp
from helpers import run_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'demo', 'deeplabv3_emo-1m_demo_ade20k.py')


def _run(args, cwd):
    proc = run_tool(*args, cwd=cwd)
    return proc.stdout + proc.stderr


def test_train_then_test(demo_data_root, tmp_path):
    root = osp.join(demo_data_root, 'ade', 'ADEChallengeData2016')
    data = [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]
    work = str(tmp_path / 'train')
    log = _run(['tools/train.py', CONFIG, '--work-dir', work,
                '--cfg-options', *data, 'train_dataloader.batch_size=2',
                'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
                'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
                'default_hooks.checkpoint.interval=3', 'param_scheduler.0.end=3'],
               cwd=str(tmp_path))
    ckpt = osp.join(work, 'iter_3.pth')
    assert osp.isfile(ckpt), sorted(os.listdir(work))
    assert 'Iter(val) [16/16]' in log and 'mIoU' in log  # whole-image validation ran

    # Test with sliding windows, drawing the predictions and dumping the masks.
    test_work = str(tmp_path / 'test')
    log = _run(['tools/test.py', CONFIG, ckpt, '--work-dir', test_work,
                '--show-dir', 'vis', '--out', str(tmp_path / 'masks'),
                '--cfg-options', *data, 'test_dataloader.num_workers=0',
                'model.test_cfg.mode=slide', 'model.test_cfg.crop_size=(128,128)',
                'model.test_cfg.stride=(96,96)'],
               cwd=str(tmp_path))
    with open(osp.join(test_work, 'test_metrics.json')) as f:
        metrics = json.load(f)
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    assert all(isinstance(v, float) and 0 <= v <= 100 for v in metrics.values())
    assert 'mIoU' in log
    # mmseg's visualizer saves under <show_dir>/vis_data/vis_image (show_dir from the cwd)
    drawn = glob.glob(str(tmp_path / 'vis' / 'vis_data' / 'vis_image' / '*.png'))
    assert len(drawn) == 16, drawn[:3]
    masks = glob.glob(str(tmp_path / 'masks' / '*.png'))
    assert len(masks) == 16

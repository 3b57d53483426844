"""Fixtures of the tool tests: tiny real trainings of the three demo configs."""
import os.path as osp

import pytest
from helpers import REPO, run_tool

DEMO = osp.join(REPO, 'configs', 'demo')


def demo_options(task, root):
    """``--cfg-options`` for a tiny run of the ``task`` demo on the demo data in ``root``:
    a few iterations, a validation in the middle and at the end, every iteration logged."""
    if task == 'cls':
        data = osp.join(root, 'imagenet')
        return [f'{s}_dataloader.dataset.data_root={data}' for s in ('train', 'val')] + [
            'train_dataloader.dataset.indices=16', 'train_dataloader.batch_size=8',
            'val_dataloader.dataset.indices=8', 'val_dataloader.batch_size=8',
            'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
            'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=2']
    if task == 'det':
        coco = osp.join(root, 'coco') + '/'
        return [f'train_dataloader.dataset.dataset.data_root={coco}',
                'train_dataloader.dataset.dataset.indices=8', 'train_dataloader.batch_size=4',
                f'val_dataloader.dataset.data_root={coco}', 'val_dataloader.dataset.indices=4',
                f'val_evaluator.ann_file={coco}annotations/instances_val2017.json',
                'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
                'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=2']
    ade = osp.join(root, 'ade', 'ADEChallengeData2016')
    return [f'{s}_dataloader.dataset.data_root={ade}' for s in ('train', 'val')] + [
        'train_dataloader.batch_size=2', 'val_dataloader.dataset.indices=4',
        'train_cfg.max_iters=4', 'train_cfg.val_interval=2', 'param_scheduler.0.end=4',
        'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=4']


DEMO_CONFIGS = dict(cls=osp.join(DEMO, 'emo-1m_demo_cls.py'),
                    det=osp.join(DEMO, 'ssdlite_emo-1m_demo_coco.py'),
                    seg=osp.join(DEMO, 'deeplabv3_emo-1m_demo_ade20k.py'))


@pytest.fixture(scope='session')
def demo_runs(demo_data_root, tmp_path_factory):
    """``{task: work_dir}`` of tiny ``tools/train.py --tensorboard`` runs of the three
    demo configs (classification and detection: 2 epochs of 2 iterations, validated after
    each; segmentation: 4 iterations, validated after 2 and 4)."""
    runs = {}
    for task, config in DEMO_CONFIGS.items():
        work = str(tmp_path_factory.mktemp(f'run_{task}'))
        run_tool('tools/train.py', config, '--work-dir', work, '--tensorboard',
                 '--cfg-options', *demo_options(task, demo_data_root))
        runs[task] = work
    return runs

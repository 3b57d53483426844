"""Fixtures of the tool tests: tiny real trainings of the three demo configs."""
import os.path as osp
from collections.abc import Mapping

import pytest
from helpers import REPO, run_tool, shared_dir

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


class _DemoRuns(Mapping):
    """``{task: work_dir}``, each run trained on first access, once per test run."""

    def __init__(self, data_root, tmp_path_factory):
        self.data_root, self.factory = data_root, tmp_path_factory

    def __getitem__(self, task):
        def train(work):
            run_tool('tools/train.py', DEMO_CONFIGS[task], '--work-dir', work,
                     '--tensorboard', '--cfg-options', *demo_options(task, self.data_root))
        return shared_dir(self.factory, f'run_{task}', train)

    def __iter__(self):
        return iter(DEMO_CONFIGS)

    def __len__(self):
        return len(DEMO_CONFIGS)


@pytest.fixture(scope='session')
def demo_runs(demo_data_root, tmp_path_factory):
    """``{task: work_dir}`` of tiny ``tools/train.py --tensorboard`` runs of the three
    demo configs (classification and detection: 2 epochs of 2 iterations, validated after
    each; segmentation: 4 iterations, validated after 2 and 4). Each is trained when a
    test first reads it, once per test run (shared by the xdist workers)."""
    return _DemoRuns(demo_data_root, tmp_path_factory)

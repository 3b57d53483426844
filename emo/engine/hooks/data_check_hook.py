"""Bad data named before they do harm: COCO categories that the config's classes do not
find, segmentation labels outside ``[0, num_classes)`` other than the ignore index."""
import json

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from ...apis.builder import dataset_cfgs


def check_coco_categories(dataset):
    """mmdet's ``CocoDataset`` keeps the categories of the annotation file whose names are
    in ``metainfo['classes']`` and silently drops the rest: a misspelt or missing class
    gets no annotations and shifts the labels of the others. Raise naming the file and
    the class names it does not have."""
    classes = tuple(dataset.metainfo.get('classes') or ())
    cat_ids = getattr(dataset, 'cat_ids', None)
    if cat_ids is None or len(cat_ids) >= len(classes):
        return
    with open(dataset.ann_file) as f:
        names = {c['name'] for c in json.load(f).get('categories', [])}
    missing = [c for c in classes if c not in names]
    raise ValueError(
        f'{dataset.ann_file}: the config\'s classes {list(missing)} are not among the '
        f'annotation file\'s categories ({sorted(names)}); fix metainfo.classes or the file')


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Check the data sets once (``before_run``) and segmentation labels every batch.

    - COCO data sets: :func:`check_coco_categories`.
    - Segmentation (data samples with ``gt_sem_seg``): every label must be below the
      decode head's ``num_classes`` or equal its ``ignore_index`` (255); otherwise the
      loss indexes out of range (a CUDA assert, or silent garbage). The error names the
      label map (``seg_map_path``) and the values, as they are after ``reduce_zero_label``.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner):
        for name in ('_train_loop', '_val_loop', '_test_loop'):
            loop = getattr(runner, name, None)
            if isinstance(loop, BaseLoop):
                for ds in dataset_cfgs(loop.dataloader.dataset, leaves=True):
                    if hasattr(ds, 'cat_ids') and hasattr(ds, 'ann_file'):
                        check_coco_categories(ds)

    def _check_labels(self, runner, data_batch):
        samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
        if not samples or 'gt_sem_seg' not in samples[0]:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, 'decode_head', None)
        if head is None:
            return
        num_classes = head.num_classes
        ignore = getattr(head, 'ignore_index', 255)
        for sample in samples:
            labels = sample.gt_sem_seg.data
            bad = torch.unique(labels[(labels >= num_classes) & (labels != ignore)])
            if bad.numel():
                path = sample.metainfo.get('seg_map_path', sample.metainfo.get('img_path'))
                raise ValueError(
                    f'{path}: label values {bad.tolist()} are not classes of this model '
                    f'(num_classes={num_classes}, ignore index {ignore}; values as after '
                    f'reduce_zero_label={sample.metainfo.get("reduce_zero_label")})')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._check_labels(runner, data_batch)

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._check_labels(runner, data_batch)

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._check_labels(runner, data_batch)

"""tools/train.py and tools/test.py on the instance segmentation demo (Mask R-CNN +
EMOv2-1M, the two-stage detector EMOv2 was published with): a tiny training on the
generated COCO data with its polygon masks, then a test run that evaluates box and mask
AP and writes the predicted masks."""
import glob
import json
import os.path as osp
import pickle

import pytest
from helpers import REPO, run_tool, shared_dir

CONFIG = osp.join(REPO, 'configs/demo/mask-rcnn_emov2-1m_demo_coco.py')
pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def trained(demo_data_root, tmp_path_factory):
    """One iteration (2 images): (coco root, work dir)."""
    coco = osp.join(demo_data_root, 'coco') + '/'

    def train(work):
        run_tool('tools/train.py', CONFIG, '--work-dir', work, '--no-validate',
                 '--cfg-options', f'train_dataloader.dataset.data_root={coco}',
                 'train_dataloader.dataset.indices=2', 'train_dataloader.batch_size=2',
                 'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
                 'default_hooks.checkpoint.interval=1')
    return coco, shared_dir(tmp_path_factory, 'run_mask_rcnn', train)


def test_training_learns_boxes_and_masks(trained):
    from emo.engine.safe_io import load_from_local
    _, work = trained
    state = load_from_local(osp.join(work, 'epoch_1.pth'), map_location='cpu')
    assert tuple(state['meta']['dataset_meta']['classes']) == ('circle', 'square', 'triangle')
    weights = state['state_dict']
    assert any(k.startswith('backbone.stage4.1.eops.0.qk.') for k in weights)
    assert weights['roi_head.mask_head.conv_logits.weight'].shape[0] == 3
    (log, ) = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(log) as f:
        records = [json.loads(line) for line in f]
    losses = [r for r in records if 'loss' in r]
    assert losses and all(r['loss_mask'] > 0 and r['loss_rpn_cls'] > 0 for r in losses)


def test_test_writes_mask_metrics_and_predictions(trained, tmp_path):
    coco, work = trained
    out = str(tmp_path / 'preds.pkl')
    run_tool('tools/test.py', CONFIG, osp.join(work, 'epoch_1.pth'),
             '--work-dir', str(tmp_path / 'test'), '--out', out, '--cfg-options',
             f'test_dataloader.dataset.data_root={coco}', 'test_dataloader.dataset.indices=2',
             f'test_evaluator.ann_file={coco}annotations/instances_val2017.json')
    with open(osp.join(tmp_path, 'test', 'test_metrics.json')) as f:
        metrics = json.load(f)
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0 and 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 2
    inst = preds[0]['pred_instances']
    # RLE-encoded masks (mmdet's --out format), one per predicted box
    assert len(inst['masks']) == len(inst['bboxes']) == len(inst['labels'])

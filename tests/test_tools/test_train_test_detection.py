"""tools/train.py and tools/test.py on a detection config (the SSDLite demo, tiny run on
the generated COCO data), then mmdet's DetInferencer with the trained checkpoint."""
import glob
import json
import os.path as osp
import pickle

import pytest
from helpers import run_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/demo/ssdlite_emo-1m_demo_coco.py')
CLASSES = ('circle', 'square', 'triangle')
pytestmark = pytest.mark.usefixtures('single_thread')  # DetInferencer


@pytest.fixture(scope='module')
def trained(demo_data_root, tmp_path_factory):
    """One epoch on 8 training images: returns (coco root, work dir, checkpoint)."""
    coco = osp.join(demo_data_root, 'coco') + '/'
    work = str(tmp_path_factory.mktemp('det_train'))
    run_tool('tools/train.py', CONFIG, '--work-dir', work, '--no-validate', '--cfg-options',
             f'train_dataloader.dataset.dataset.data_root={coco}',
             'train_dataloader.dataset.dataset.indices=8', 'train_dataloader.batch_size=4',
             'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1')
    return coco, work, osp.join(work, 'epoch_1.pth')


def test_train_writes_checkpoint(trained):
    from emo.engine.safe_io import load_from_local  # weights_only=True + allow-list
    _, work, ckpt = trained
    assert osp.isfile(ckpt)
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(work, '*.pth'))) == \
        ['epoch_1.pth']
    state = load_from_local(ckpt, map_location='cpu')
    assert state['meta']['epoch'] == 1
    assert tuple(state['meta']['dataset_meta']['classes']) == CLASSES
    assert any(k.startswith('backbone.stage4.') for k in state['state_dict'])
    assert state['state_dict']['bbox_head.cls_convs.0.1.weight'].shape[0] == \
        6 * (len(CLASSES) + 1)  # 6 anchors per location x (3 classes + background)


def test_test_writes_metrics_drawings_and_predictions(trained, tmp_path):
    coco, _, ckpt = trained
    work = str(tmp_path / 'test')
    out = str(tmp_path / 'preds.pkl')
    result = run_tool(
        'tools/test.py', CONFIG, ckpt, '--work-dir', work, '--show-dir', 'vis', '--out', out,
        '--cfg-options', f'test_dataloader.dataset.data_root={coco}',
        'test_dataloader.dataset.indices=4',
        f'test_evaluator.ann_file={coco}annotations/instances_val2017.json')
    with open(osp.join(work, 'test_metrics.json')) as f:
        metrics = json.load(f)
    assert 'coco/bbox_mAP' in metrics and 'coco/bbox_mAP_50' in metrics
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    assert 'test_metrics.json' in result.stdout
    # --show-dir: mmdet draws under <work_dir>/<timestamp>/vis
    drawings = glob.glob(osp.join(work, '*', 'vis', '*.jpg'))
    assert len(drawings) == 4
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4
    for pred in preds:
        assert {'bboxes', 'scores', 'labels'} <= set(pred['pred_instances'])
        assert pred['ori_shape'] == (128, 128)


def test_det_inferencer(trained, tmp_path):
    from mmdet.apis import DetInferencer
    coco, _, ckpt = trained
    image = sorted(glob.glob(osp.join(coco, 'val2017', '*.jpg')))[0]
    inferencer = DetInferencer(model=CONFIG, weights=ckpt, device='cpu',
                               show_progress=False)
    assert tuple(inferencer.model.dataset_meta['classes']) == CLASSES
    out_dir = str(tmp_path / 'inference')
    result = inferencer(image, out_dir=out_dir, no_save_pred=False, pred_score_thr=0.0)
    (pred, ) = result['predictions']
    assert len(pred['bboxes']) == len(pred['scores']) == len(pred['labels']) > 0
    assert all(0 <= label < len(CLASSES) for label in pred['labels'])
    name = osp.splitext(osp.basename(image))[0]
    assert osp.isfile(osp.join(out_dir, 'vis', osp.basename(image)))
    assert osp.isfile(osp.join(out_dir, 'preds', f'{name}.json'))

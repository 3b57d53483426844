"""tools/deployment: pytorch2onnx.py exports a checkpoint, onnx_inference.py runs it on a
demo image, and its predictions equal the PyTorch model's test step on that image."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from helpers import REPO, load_tool, run_tool
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from reference_emo import randomize_
from torch.nn.modules.batchnorm import _BatchNorm

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, dataset_meta, inference_pipeline_cfg

DEMO = dict(cls='configs/demo/emo-1m_demo_cls.py',
            det='configs/demo/ssdlite_emo-1m_demo_coco.py',
            seg='configs/demo/deeplabv3_emo-1m_demo_ade20k.py')
pytestmark = pytest.mark.usefixtures('single_thread')


def demo_image(root, task):
    return dict(cls=osp.join(root, 'imagenet', 'val', 'circle', '000.JPEG'),
                det=osp.join(root, 'coco', 'val2017', '000000010001.jpg'),
                seg=osp.join(root, 'ade', 'ADEChallengeData2016', 'images', 'validation',
                             'ADE_val_00000001.jpg'))[task]


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """task -> (config, checkpoint, onnx file): random weights saved as a checkpoint
    with class names, exported (with --verify) through the tool; one export per task."""
    cache = {}

    def get(task):
        if task not in cache:
            cfg_path = osp.join(REPO, DEMO[task])
            cfg = Config.fromfile(cfg_path)
            model = randomize_(build_model_from_cfg(cfg))
            if task == 'seg':  # BN statistics of a random batch, no classifier bias:
                for m in model.modules():  # several classes in the map, not one
                    if isinstance(m, _BatchNorm):
                        m.momentum = 1.0
                with torch.no_grad():
                    model.train()(torch.randn(4, 3, 96, 96), mode='tensor')
                    model.decode_head.conv_seg.bias.zero_()
            classes = list(dataset_meta(cfg).get('classes') or
                           [f'c{i}' for i in range(cfg.model.head.num_classes)])
            out = tmp_path_factory.mktemp(f'deploy_{task}')
            ckpt = str(out / 'model.pth')
            torch.save(dict(state_dict=model.state_dict(),
                            meta=dict(dataset_meta=dict(classes=classes))), ckpt)
            onnx_file = str(out / 'model.onnx')
            proc = run_tool('tools/deployment/pytorch2onnx.py', cfg_path, ckpt,
                            '--out', onnx_file, '--verify')
            assert 're-parameterized (switch_to_deploy): True' in proc.stdout
            assert proc.stdout.count('verify ') == 2, proc.stdout  # two checked inputs
            cache[task] = cfg_path, ckpt, onnx_file, classes
        return cache[task]
    return get


def pytorch_predict(cfg_path, ckpt, img):
    """The PyTorch prediction for ``img``: the config's test pipeline, then the model's
    ``test_step`` (data_preprocessor + predict), as tools/test.py runs it."""
    from mmengine.runner import load_checkpoint
    cfg = Config.fromfile(cfg_path)
    model = build_model_from_cfg(cfg)
    load_checkpoint(model, ckpt, map_location='cpu')
    data = pseudo_collate([Compose(inference_pipeline_cfg(cfg))(dict(img_path=img))])
    with torch.no_grad():
        return model.eval().test_step(data)[0]


def infer(*args):
    return load_tool('tools/deployment/onnx_inference.py').main([str(a) for a in args])


def test_classification_topk_equals_pytorch(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, classes = exported('cls')
    img, out = demo_image(demo_data_root, 'cls'), tmp_path / 'top.json'
    rows = infer(onnx_file, cfg, img, '--topk', 3, '--out', out)
    expected = pytorch_predict(cfg, ckpt, img).pred_score
    assert [r['label'] for r in rows] == expected.topk(3).indices.tolist()
    np.testing.assert_allclose([r['score'] for r in rows], expected.topk(3).values,
                               atol=1e-5)
    assert rows[0]['class_name'] == classes[rows[0]['label']]  # names from the checkpoint
    assert json.loads(out.read_text())['topk'] == rows


def test_detection_boxes_equal_pytorch(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, _ = exported('det')
    img, out = demo_image(demo_data_root, 'det'), tmp_path / 'boxes.jpg'
    rows = infer(onnx_file, cfg, img, '--pred-score-thr', 0, '--out', out)
    ref = pytorch_predict(cfg, ckpt, img).pred_instances
    assert len(rows) > 0 and abs(len(rows) - len(ref)) <= max(1, len(ref) // 100)
    # each box has its PyTorch twin (same class, score, box); near-equal scores may swap
    # places in the NMS order, so match instead of comparing in order
    matched = 0
    for r in rows:
        same = ((ref.labels == r['label']) & ((ref.scores - r['score']).abs() < 1e-4) &
                ((ref.bboxes - torch.tensor(r['bbox'])).abs().max(1).values < 0.05))
        matched += bool(same.any())
    assert matched / len(rows) >= 0.99
    drawn = mmcv.imread(str(out))
    assert drawn.shape == mmcv.imread(img).shape  # drawn on the original image


def test_segmentation_mask_equals_pytorch(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, _ = exported('seg')
    img, out = demo_image(demo_data_root, 'seg'), tmp_path / 'mask.png'
    mask = infer(onnx_file, cfg, img, '--out', out)
    expected = pytorch_predict(cfg, ckpt, img).pred_sem_seg.data[0].numpy()
    assert mask.shape == expected.shape == mmcv.imread(img).shape[:2]  # original size
    assert len(np.unique(expected)) >= 2
    assert (mask == expected).mean() >= 0.999
    np.testing.assert_array_equal(mmcv.imread(str(out), flag='unchanged'), mask)


def test_bad_inputs_are_named(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, _ = exported('cls')
    with pytest.raises(FileNotFoundError, match='nothere.jpg'):
        infer(onnx_file, cfg, tmp_path / 'nothere.jpg')
    with pytest.raises(ValueError, match='exported for classification'):
        infer(onnx_file, osp.join(REPO, DEMO['det']), demo_image(demo_data_root, 'det'))
    proc = run_tool('tools/deployment/pytorch2onnx.py', cfg, str(tmp_path / 'no.pth'),
                    '--out', str(tmp_path / 'x.onnx'), check=False)
    assert proc.returncode != 0 and 'checkpoint not found' in proc.stderr
    assert 'no.pth' in proc.stderr and not osp.exists(tmp_path / 'x.onnx')

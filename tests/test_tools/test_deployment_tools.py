"""tools/deployment: pytorch2onnx.py exports a checkpoint, inference.py runs it on a
demo image, and its predictions equal the PyTorch model's test step on that image."""
import json
import re
import math
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from helpers import (EPS32, REPO, accumulation_length, assert_close_derived,
                     decisions_equal_outside_ties, detections_equal_outside_ties,
                     float32_bound, load_tool, run_tool)
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


def raw_outputs(cfg_path, ckpt, onnx_file, img):
    """The network's raw outputs for ``img`` from ONNX Runtime (the tool's
    ``ONNXInferencer``) and from the PyTorch model on the same input, each within the
    derived float32 bound (``helpers.float32_bound``, n counted on the PyTorch forward)
    of the other: (inferencer, PyTorch model, data samples, onnx outputs, torch outputs,
    bounds)."""
    from mmengine.runner import load_checkpoint

    from emo.deployment import ONNXInferencer, reference_outputs
    inferencer = ONNXInferencer(onnx_file, cfg_path, threads=1)
    inputs, samples = inferencer.preprocess([img])
    model = build_model_from_cfg(Config.fromfile(cfg_path))
    load_checkpoint(model, ckpt, map_location='cpu')
    model.eval()
    with torch.no_grad():
        expected = reference_outputs(model, inputs)
        n = accumulation_length(reference_outputs, model, inputs)
    got = inferencer.forward(inputs)
    bounds = assert_close_derived(got, expected, n, what='onnx vs pytorch')
    return inferencer, model, samples, got, expected, bounds


def softmax_tolerance(p, logit_bound):
    """How far a softmax score p moves when its logits move by <= ``logit_bound``: the
    log-softmax moves by <= 2 bound, so p by <= p (exp(2 bound) - 1); plus its rounding."""
    return p * math.expm1(2 * logit_bound) + 4 * EPS32


def infer(*args):
    return load_tool('tools/deployment/inference.py').main([str(a) for a in args])


def test_classification_topk_equals_pytorch(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, classes = exported('cls')
    img, out = demo_image(demo_data_root, 'cls'), tmp_path / 'top.json'
    rows = infer(onnx_file, cfg, img, '--topk', 3, '--out', out)
    expected = pytorch_predict(cfg, ckpt, img).pred_score
    _, _, _, _, _, (bound, ) = raw_outputs(cfg, ckpt, onnx_file, img)
    tol = softmax_tolerance(expected, bound)
    top, idx = expected.topk(4)
    scores = torch.tensor([r['score'] for r in rows], dtype=expected.dtype)
    assert ((scores - top[:3]).abs() <= tol[idx[:3]]).all(), (scores, top, tol[idx])
    # each rank holds the same class unless its score is within tolerance of a neighbour
    gaps = (top[:-1] - top[1:]) > tol[idx[:-1]] + tol[idx[1:]]
    assert gaps[0]  # the top-1 is no near-tie: the check below can fail
    for k in range(3):
        if gaps[k] and (k == 0 or gaps[k - 1]):
            assert rows[k]['label'] == idx[k], (k, rows, idx)
    assert rows[0]['class_name'] == classes[rows[0]['label']]  # names from the checkpoint
    assert json.loads(out.read_text())['topk'] == rows


def test_detection_boxes_equal_pytorch(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, _ = exported('det')
    img, out = demo_image(demo_data_root, 'det'), tmp_path / 'boxes.jpg'
    rows = infer(onnx_file, cfg, img, '--pred-score-thr', 0, '--out', out)
    inferencer, model, samples, got, expected, bounds = raw_outputs(cfg, ckpt, onnx_file, img)
    # the tool prints what the inferencer post-processes from ONNX Runtime's outputs
    mine = inferencer.postprocess(got, [s.clone() for s in samples])[0].pred_instances
    assert len(rows) == len(mine) > 0
    for r, score, label, box in zip(rows, mine.scores, mine.labels, mine.bboxes):
        assert r['label'] == label and r['score'] == float(score)
        # the tool rounds coordinates to 2 decimals: within half a unit of the last one
        np.testing.assert_allclose(r['bbox'], box.tolist(), rtol=0, atol=0.005 + 1e-9)
    # and those detections equal PyTorch's outside near-ties (helpers states the rule),
    # compared before the rescale to the original image
    head, levels = model.bbox_head, len(got) // 2
    metas = [dict(s.metainfo, scale_factor=(1.0, 1.0)) for s in samples]
    with torch.no_grad():
        ref = head.predict_by_feat(expected[:levels], expected[levels:],
                                   batch_img_metas=metas, rescale=False)
        mine = head.predict_by_feat(got[:levels], got[levels:], batch_img_metas=metas,
                                    rescale=False)
    detections_equal_outside_ties(head, expected, got, bounds, metas, ref, mine)
    pred = pytorch_predict(cfg, ckpt, img).pred_instances  # tools/test.py's path, rescaled
    assert len(pred) == len(ref[0])
    drawn = mmcv.imread(str(out))
    assert drawn.shape == mmcv.imread(img).shape  # drawn on the original image


def test_segmentation_mask_equals_pytorch(exported, demo_data_root, tmp_path):
    cfg, ckpt, onnx_file, _ = exported('seg')
    img, out = demo_image(demo_data_root, 'seg'), tmp_path / 'mask.png'
    mask = infer(onnx_file, cfg, img, '--out', out)
    expected = pytorch_predict(cfg, ckpt, img)
    assert mask.shape == expected.pred_sem_seg.data[0].shape == mmcv.imread(img).shape[:2]
    assert len(np.unique(expected.pred_sem_seg.data[0].numpy())) >= 2
    # logits at the original size: the bilinear resize is a convex combination, so the
    # raw bound holds for them too (plus the resize's own rounding, 4 terms)
    inferencer, model, samples, got, _, (bound, ) = raw_outputs(cfg, ckpt, onnx_file, img)
    onnx_logits = inferencer.postprocess(got, samples)[0].seg_logits.data
    ref_logits = expected.seg_logits.data
    bound += float32_bound(ref_logits, 4)
    assert (onnx_logits - ref_logits).abs().max() <= bound
    np.testing.assert_array_equal(mask, onnx_logits.argmax(0).numpy())  # the tool's mask
    decisions_equal_outside_ties(onnx_logits, ref_logits, bound, dim=0)
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


def test_export_tool_verifies_within_the_derived_bound(tmp_path):
    """tools/deployment/export.py --backend openvino --verify (random weights): the IR is
    written and both checked batches print their difference next to the derived float32
    bound (``emo.deployment.verify_outputs``), which they are within."""
    out = tmp_path / 'cls.xml'
    proc = run_tool('tools/deployment/export.py', osp.join(REPO, DEMO['cls']), '--backend',
                    'openvino', '--out', str(out), '--verify')
    assert out.is_file() and out.with_suffix('.bin').is_file()
    lines = [line for line in proc.stdout.splitlines() if line.startswith('verify ')]
    assert [line.split(':')[0] for line in lines] == ['verify 1x3x64x64', 'verify 2x3x64x64']
    for line in lines:
        diff, bound = (float(v) for v in re.search(
            r'max abs diff (\S+), derived float32 bound (\S+) \(n=\d+\)', line).groups())
        assert diff <= bound

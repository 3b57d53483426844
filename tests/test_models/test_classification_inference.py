"""Classification inference from Python: mmpretrain's ``get_model(config, pretrained=ckpt)``
and ``ImageClassificationInferencer`` on an EMO config with a checkpoint, checked against
the checkpoint's tensors and a forward pass by hand."""
import glob
import math
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import EPS32, accumulation_length, float32_bound
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.registry import init_default_scope

from emo.apis import build_model_from_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py')
CLASSES = ('circle', 'cross', 'square', 'triangle')
pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """An mmpretrain checkpoint of the demo classifier (random weights, BN statistics
    moved away from their defaults so that a load that skips them would show)."""
    torch.manual_seed(0)
    model = build_model_from_cfg(Config.fromfile(CONFIG), mode='train')
    model.init_weights()
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.normal_(0, 0.1)
            elif name.endswith('running_var'):
                buf.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = str(tmp_path_factory.mktemp('cls_ckpt') / 'emo-1m_demo.pth')
    torch.save(dict(state_dict=state, meta=dict(dataset_meta=dict(classes=list(CLASSES)))),
               path)
    return path, state


@pytest.fixture(scope='module')
def images(demo_data_root):
    """One validation image of each demo class (different file names: the drawings are
    named after them)."""
    return [sorted(glob.glob(osp.join(demo_data_root, 'imagenet', 'val', c, '*.JPEG')))[i]
            for i, c in enumerate(CLASSES)]


def test_get_model_loads_the_checkpoint(checkpoint):
    from mmpretrain import get_model
    path, state = checkpoint
    model = get_model(CONFIG, pretrained=path, device='cpu')
    assert not model.training
    assert type(model.backbone).__name__ == 'EMO'
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert tuple(model._dataset_meta['classes']) == CLASSES  # where get_model keeps it


def manual_scores(model, cfg, image):
    """Softmax of the classifier on ``image`` through the config's test pipeline, and the
    tolerance of each score: the logits' derived float32 bound b (``helpers``; n counted
    on this forward) moves log-softmax by <= 2 b, so p by <= p * (exp(2 b) - 1)."""
    init_default_scope('mmpretrain')
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = default_collate([pipeline(dict(img_path=image))])
    data = model.data_preprocessor(data, training=False)
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')[0]
        n = accumulation_length(model, data['inputs'], mode='tensor')
    p = logits.softmax(-1)
    return p, p * math.expm1(2 * float32_bound(logits, n)) + 4 * EPS32  # + its own rounding


def test_inferencer_matches_a_forward_by_hand(checkpoint, images, tmp_path):
    from mmpretrain import ImageClassificationInferencer, get_model
    path, _ = checkpoint
    inferencer = ImageClassificationInferencer(model=CONFIG, pretrained=path, device='cpu')
    assert tuple(inferencer.classes) == CLASSES
    show_dir = str(tmp_path / 'vis')
    results = inferencer(images, batch_size=2, show_dir=show_dir, rescale_factor=2)
    assert len(results) == len(images)

    model = get_model(CONFIG, pretrained=path, device='cpu')
    cfg = Config.fromfile(CONFIG)
    for image, result in zip(images, results):
        expected, tol = manual_scores(model, cfg, image)
        scores = torch.as_tensor(result['pred_scores'])
        assert scores.shape == (len(CLASSES), )
        assert ((scores - expected).abs() <= tol).all(), (scores, expected, tol)
        # the label is the top score unless the top two are within tolerance
        top2, idx = expected.topk(2)
        assert top2[0] - top2[1] > tol[idx].sum()  # not a near-tie: the check can fail
        assert result['pred_label'] == idx[0]
        assert abs(result['pred_score'] - top2[0]) <= tol[idx[0]]
        assert result['pred_class'] == CLASSES[result['pred_label']]
        drawn = osp.join(show_dir, osp.splitext(osp.basename(image))[0] + '.png')
        assert osp.isfile(drawn)


def test_inferencer_on_arrays_equals_on_files(checkpoint, images):
    """A BGR array (as cv2 reads it) gives the same scores as the file."""
    import mmcv
    from mmpretrain import ImageClassificationInferencer
    path, _ = checkpoint
    inferencer = ImageClassificationInferencer(model=CONFIG, pretrained=path, device='cpu')
    from_files = inferencer(images[:2])
    from_arrays = inferencer([mmcv.imread(p) for p in images[:2]])
    for a, b in zip(from_files, from_arrays):  # the same input tensors: the same scores
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])

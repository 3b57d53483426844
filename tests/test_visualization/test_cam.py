"""emo.visualization.cam: Grad-CAM (the grad-cam package) on the demo classifier.

The model: the demo classifier (EMO-1M, 64x64 images, 4 classes) with the config's random
initialisation (seed 0), the BN statistics of the 100 demo validation images and a head
fitted to them by ridge regression (a linear probe, as test_quantize's), made in a
second. The fully trained demo classifier needs ~5 CPU minutes of training, more than
this file's budget; on it the same measurement gave 67 % of the maxima inside the
object's box against 25.5 % by chance (docs/visualization.md, measured with the trained
`make demo` checkpoint). The object's box is read from the image: the demo shapes are
drawn in a colour at least 80 (of 255) from the background's mean in some channel
(tools/misc/make_demo_data.py), the noise has sigma <= 20, so the pixels more than 40
from the median colour, largest connected part, are the shape.

Chance: a maximum placed uniformly at random falls in the box with the probability of
the box's share of the image (the mean over the images is the chance rate p). "Far more
often than chance": k hits of n have a binomial tail P(X >= k | n, p) below 1e-6.
"""
import glob
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, accumulation_length, float32_bound, shared_dir
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

import emo  # noqa: F401
from emo.apis import build_model_from_cfg
from emo.visualization import (class_activation_maps, default_target_layers, get_layer,
                               load_inputs, load_model)

CONFIG = osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py')
CLASSES = ('circle', 'cross', 'square', 'triangle')
pytestmark = pytest.mark.usefixtures('single_thread')


def object_box(picture):
    """(x0, y0, x1, y1), inclusive, of the demo shape in an RGB picture."""
    img = picture.astype(np.float64)
    far = np.abs(img - np.median(img.reshape(-1, 3), 0)).max(-1) > 40
    _, _, stats, _ = cv2.connectedComponentsWithStats(far.astype(np.uint8))
    x, y, w, h = stats[1 + stats[1:, cv2.CC_STAT_AREA].argmax(), :4]
    return x, y, x + w - 1, y + h - 1


@pytest.fixture(scope='module')
def probe(demo_data_root, tmp_path_factory):
    """(cfg, checkpoint, inputs, pictures, labels) of the linear-probe classifier."""
    cfg = Config.fromfile(CONFIG)
    paths = sorted(glob.glob(osp.join(demo_data_root, 'imagenet', 'val', '*', '*.JPEG')))
    labels = torch.tensor([CLASSES.index(osp.basename(osp.dirname(p))) for p in paths])

    def make(out):
        model = load_model(cfg, 'random')  # the config's initialisation, seed 0
        inputs, _ = load_inputs(cfg, model, paths)
        for m in model.modules():  # BN statistics of these images
            if isinstance(m, _BatchNorm):
                m.momentum = 1.0
        model.train()
        with torch.no_grad():
            model(inputs, mode='tensor')
        model.eval()
        with torch.no_grad():
            feats = model.neck(model.backbone(inputs))[-1]
            a = torch.cat([feats, torch.ones(len(feats), 1)], 1).double()
            target = 4.0 * torch.nn.functional.one_hot(labels, 4).double() - 1
            gram = a.T @ a
            gram += 0.01 * gram.trace() / len(gram) * torch.eye(len(gram), dtype=gram.dtype)
            sol = torch.linalg.solve(gram, a.T @ target).float()
            model.head.fc.weight.copy_(sol[:-1].T)
            model.head.fc.bias.copy_(sol[-1])
        torch.save(dict(state_dict=model.state_dict()), osp.join(out, 'probe.pth'))

    ckpt = osp.join(shared_dir(tmp_path_factory, 'vis_cam_probe', make), 'probe.pth')
    model = build_model_from_cfg(cfg, checkpoint=ckpt)
    inputs, pictures = load_inputs(cfg, model, paths)
    return cfg, ckpt, model, inputs, pictures, labels


def test_default_target_layers():
    model = build_model_from_cfg(Config.fromfile(CONFIG))
    assert default_target_layers(model, (224, 224)) == ['backbone.norm']  # 7x7
    assert default_target_layers(model, (64, 64)) == ['backbone.stage2.-1']  # 8x8
    assert default_target_layers(model, (32, 32)) == ['backbone.stage1.-1']
    assert get_layer(model, 'backbone.stage3.-1') is model.backbone.stage3[-1]
    with pytest.raises(ValueError, match=r"backbone has no 'stage9'; it has \[.*'stage4'"):
        get_layer(model, 'backbone.stage9')
    with pytest.raises(ValueError, match='backbone.stage4 has 3 items'):
        get_layer(model, 'backbone.stage4.3')


def test_gradcam_maximum_falls_in_the_object_box(probe):
    _, _, model, inputs, pictures, labels = probe
    result = class_activation_maps(model, inputs, categories=labels.tolist())
    assert result['layers'] == ['backbone.stage2.-1']
    cams = result['cams']
    assert cams.shape == (len(inputs), 64, 64) and cams.min() >= 0 and cams.max() <= 1
    hits, shares = [], []
    for cam, picture in zip(cams, pictures):
        x0, y0, x1, y1 = object_box(picture)
        y, x = np.unravel_index(cam.argmax(), cam.shape)
        hits.append(x0 <= x <= x1 and y0 <= y <= y1)
        shares.append((x1 - x0 + 1) * (y1 - y0 + 1) / cam.size)
    k, n, chance = int(np.sum(hits)), len(hits), float(np.mean(shares))
    tail = sum(math.comb(n, i) * chance**i * (1 - chance)**(n - i) for i in range(k, n + 1))
    # measured: 51 of the 100 maxima in the box, chance 0.26 (tail 4.4e-8)
    print(f'Grad-CAM maximum in the object box: {k}/{n}, chance {chance:.2f}, '
          f'P(X >= {k}) = {tail:.1e}')
    assert 0.15 < chance < 0.35
    assert tail < 1e-6, (k, n, chance, tail)


def test_deploy_form_gives_the_same_cam(probe):
    cfg, ckpt, model, inputs, _, labels = probe
    deploy = build_model_from_cfg(cfg, checkpoint=ckpt, deploy=True)
    x, cats = inputs[:8], labels[:8].tolist()
    ref = class_activation_maps(model, x, categories=cats)
    got = class_activation_maps(deploy, x, categories=cats)
    n = accumulation_length(lambda: class_activation_maps(model, x, categories=cats))
    # the raw map sum_c w_c A_c (w_c from the gradients) of each form is within the
    # derived bound b of the other; the drawn map is min-max scaled by the range R of
    # the ReLU'd raw map: each of value, min and max moves by <= b, so <= 4 b / R
    for r, g in zip(ref['raw'], got['raw']):
        for i in range(len(x)):
            b = float32_bound(r[i], n)
            assert np.abs(g[i] - r[i]).max() <= b
            relu = np.maximum(r[i], 0)
            span = relu.max() - relu.min()
            assert span > 100 * b  # else the scaled map would say nothing
            assert np.abs(got['cams'][i] - ref['cams'][i]).max() <= 4 * b / span

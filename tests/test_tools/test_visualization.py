"""tools/visualization/{vis_cam,feature_similarity,vis_attention,vis_erf}.py on the tiny
demo classification run (fixture ``demo_runs``) and the demo images: each writes its PNG
and states in its output what the picture shows, checked here (the claims themselves are
tested in tests/test_visualization/)."""
import glob
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from helpers import REPO, run_tool

CLS = osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py')
NO_ATTN = osp.join(REPO, 'configs/classification/ablation/emo-5m_no-attn_8xb256_in1k.py')
TOOLS = ('vis_cam', 'feature_similarity', 'vis_attention', 'vis_erf')


@pytest.fixture(scope='module')
def ckpt(demo_runs):
    return glob.glob(osp.join(demo_runs['cls'], 'epoch_*.pth'))[0]


@pytest.fixture(scope='module')
def images(demo_data_root):
    return osp.join(demo_data_root, 'imagenet', 'val')


def image_of(path):
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100, path
    return img


@pytest.mark.parametrize('tool', TOOLS)
def test_help_names_the_arguments(tool):
    out = run_tool(f'tools/visualization/{tool}.py', '--help').stdout
    assert 'Examples:' in out and '--out' in out


def test_vis_cam_folder(ckpt, images, tmp_path):
    proc = run_tool('tools/visualization/vis_cam.py', CLS, ckpt, osp.join(images, 'cross'),
                    '--max', '3', '--out-dir', tmp_path, '--method', 'gradcam++')
    lines = [line for line in proc.stdout.splitlines() if 'maximum at' in line]
    assert len(lines) == 3 and all('cross/' in line for line in lines)
    image_of(str(tmp_path / 'cam_0.png'))
    proc = run_tool('tools/visualization/vis_cam.py', CLS, ckpt, images, '--out',
                    tmp_path / 'x.png', check=False)
    assert proc.returncode != 0 and 'do not fit one picture' in proc.stderr


def test_feature_similarity_json(ckpt, images, tmp_path):
    out = tmp_path / 'sim.json'
    run_tool('tools/visualization/feature_similarity.py', CLS, ckpt,
             osp.join(images, 'square'), '--max', '2', '--shape', '112', '--block', '3.2',
             '--compare', NO_ATTN, 'random', '--out', tmp_path / 'sim.png', '--out-json', out)
    rows = json.loads(out.read_text())
    assert [r['titles']['attn'] for r in rows] == ['after EW-MHSA (+ v)',
                                                   'after v (no attention)']
    for row in rows:
        assert row['map'] == [7, 7] and row['images'] == 2
        for tap, sim in row['similarity'].items():
            sim = np.array(sim)
            assert sim.shape == (7, 7) and np.array_equal(sim, sim.T), tap
            assert np.array_equal(np.diag(sim), np.ones(7)), tap
    image_of(str(tmp_path / 'sim.png'))


def test_vis_attention(ckpt, images, tmp_path):
    image = osp.join(images, 'circle', '000.JPEG')
    proc = run_tool('tools/visualization/vis_attention.py', CLS, ckpt, image, '--shape',
                    '160', '--pixel', '3', '4', '--out', tmp_path / 'att.png')
    # 160: a 10x10 stage-3 map, padded to 14x14: 2x2 windows of 7x7, pixels 2 apart
    assert 'map 10x10, window grid (7, 7), 2x2 windows' in proc.stdout
    summed = float(proc.stdout.split('sum to ')[1].split(',')[0])
    padding = float(proc.stdout.split('on padding ')[1].split()[0])
    assert abs(summed + padding - 1) < 1e-5 and padding > 0
    image_of(str(tmp_path / 'att.png'))
    proc = run_tool('tools/visualization/vis_attention.py', CLS, ckpt, image, '--block',
                    '3.0', '--out', tmp_path / 'no.png', check=False)
    assert proc.returncode != 0 and 'has no attention; blocks with attention: 3.1' in \
        proc.stderr


def test_vis_erf(ckpt, images, tmp_path):
    out = tmp_path / 'erf.json'
    run_tool('tools/visualization/vis_erf.py', CLS, ckpt, osp.join(images, 'triangle'),
             '--max', '2', '--shape', '160', '--target', '3.1', '--no-attention',
             '--out', tmp_path / 'erf.png', '--out-json', out)
    emo, off = json.loads(out.read_text())
    assert off['label'].endswith('attention off')
    assert off['outside_conv'] == 0 and off['erf_support'] == off['conv_field'] == 139**2
    assert emo['outside_conv'] > 0 and emo['erf_support'] == emo['attention_field']
    image_of(str(tmp_path / 'erf.png'))

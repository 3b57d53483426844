"""emo.apis.hub: the EMO classifiers by name in mmpretrain (list_models, get_model,
the inferencers), weights by URL from a loopback HTTP server (a random checkpoint in the
official layout), the download cache, the named error offline, official files into a
bare backbone."""
import http.server
import os.path as osp
import socket
import threading

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO

import emo  # noqa: F401  (registers the model index when mmpretrain.apis is imported)
from emo.apis import build_model_from_cfg
from emo.apis.hub import WeightsDownloadError, cached_file

NAME = 'emo-1m_8xb256_in1k'
CONFIG = osp.join(REPO, 'configs/classification/emo-1m_8xb256_in1k.py')
METAFILE = osp.join(REPO, 'configs/classification/metafile.yml')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """Serves ``EMO_1M/net.pth`` (random weights, the official layout: a plain state
    dict with ``stage*``, ``norm.*``, ``head.*``) on 127.0.0.1; ``requests`` counts the
    GETs per path."""
    from emo.models.classifier import EMOClassifier
    root = tmp_path_factory.mktemp('hub_files')
    torch.manual_seed(0)
    state = EMOClassifier('1m').state_dict()
    for key, value in state.items():  # BN statistics that are not the identity
        if key.endswith('running_mean'):
            value.copy_(torch.randn_like(value) * 0.1)
        elif key.endswith('running_var'):
            value.copy_(torch.rand_like(value) + 0.5)
    (root / 'EMO_1M').mkdir()
    torch.save(state, root / 'EMO_1M' / 'net.pth')
    requests = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests[self.path] = requests.get(self.path, 0) + 1
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield dict(url=f'http://127.0.0.1:{httpd.server_port}', file=str(root / 'EMO_1M/net.pth'),
               requests=requests)
    httpd.shutdown()


@pytest.fixture
def hub_dir(tmp_path):
    """mmengine's download cache (torch's hub dir) in a fresh folder."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


@pytest.fixture(scope='module')
def reference(server):
    """The classifier with the served file, loaded by the project's loader."""
    return build_model_from_cfg(CONFIG, checkpoint=server['file'])


def logits(model, seed=0):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x, mode='tensor')


def test_list_models_has_the_classifiers_of_the_metafile():
    from mmpretrain import list_models
    from mmpretrain.apis.model import ModelHub
    with open(METAFILE) as f:
        entries = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert {NAME, 'emo-2m_8xb256_in1k', 'emo-5m_8xb256_in1k', 'emo-6m_8xb256_in1k'} <= \
        set(entries)
    assert set(list_models('*emo*')) == set(entries)  # no detector or segmentor
    for name, entry in entries.items():
        meta = ModelHub.get(name)
        assert meta.weights == entry.get('Weights')
        assert meta.config.filename.endswith(entry['Config'])
    official = ModelHub.get(NAME).weights
    assert official.startswith('https://raw.githubusercontent.com/zhangzjn/EMO/')
    assert official.endswith('/resources/EMO_1M/net.pth')


def test_get_model_by_url_equals_the_file_and_uses_the_cache(server, reference, hub_dir):
    from mmpretrain import get_model
    url = f'{server["url"]}/EMO_1M/net.pth'
    before = server['requests'].get('/EMO_1M/net.pth', 0)
    model = get_model(NAME, pretrained=url)
    assert torch.equal(logits(model), logits(reference))
    assert server['requests']['/EMO_1M/net.pth'] == before + 1
    cached = cached_file(url)
    assert osp.dirname(cached) == osp.join(str(hub_dir), 'checkpoints') and osp.isfile(cached)
    again = get_model(NAME, pretrained=url)  # from the cache: no request
    assert server['requests']['/EMO_1M/net.pth'] == before + 1
    assert torch.equal(logits(again, 1), logits(reference, 1))


def test_pretrained_true_downloads_the_metafile_url(server, reference, hub_dir):
    """``pretrained=True`` takes the metafile's URL (mapped to the loopback server as
    mmpretrain's ``url_mapping`` does); a head for 10 classes keeps the backbone."""
    from mmpretrain import get_model
    mapping = (r'https://raw\.githubusercontent\.com/zhangzjn/EMO/[0-9a-f]+/resources/',
               f'{server["url"]}/')
    model = get_model(NAME, pretrained=True, url_mapping=mapping)
    assert torch.equal(logits(model), logits(reference))
    tuned = get_model(NAME, pretrained=True, url_mapping=mapping, head=dict(num_classes=10))
    ref = reference.state_dict()
    for key, value in tuned.state_dict().items():
        if key.startswith('backbone.'):
            assert torch.equal(value, ref[key]), key
    assert tuned.head.fc.weight.shape == (10, 168)


def test_unreachable_url_is_a_named_error(hub_dir):
    from mmpretrain import get_model
    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/EMO_1M/net.pth'
    with pytest.raises(WeightsDownloadError, match=rf'127\.0\.0\.1:{port}/EMO_1M/net\.pth'
                       r'.*pretrained=.*path'):
        get_model(NAME, pretrained=url)
    assert not osp.exists(cached_file(url))  # nothing half-downloaded left behind


def test_inferencers_by_name(server, reference, hub_dir, tmp_path):
    import cv2
    from mmpretrain import ImageClassificationInferencer, inference_model
    image = str(tmp_path / 'image.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (80, 96, 3), np.uint8))
    url = f'{server["url"]}/EMO_1M/net.pth'
    inferencer = ImageClassificationInferencer(NAME, pretrained=url, device='cpu')
    ref = reference.state_dict()
    for key, value in inferencer.model.state_dict().items():
        assert torch.equal(value, ref[key]), key
    result = inferencer(image)[0]
    assert len(result['pred_scores']) == 1000
    again = inference_model(NAME, image, pretrained=url, device='cpu')
    assert np.array_equal(again['pred_scores'], result['pred_scores'])


def test_official_file_into_a_bare_backbone(server):
    """mmengine's load_checkpoint on the backbone itself: the classifier-only keys are
    left out, every backbone tensor is the file's."""
    from mmengine.runner import load_checkpoint

    from emo.models import EMO
    backbone = EMO('1m', final_norm=False)
    load_checkpoint(backbone, server['file'], map_location='cpu')
    state = torch.load(server['file'], weights_only=True)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[key]), key

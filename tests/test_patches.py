"""emo.patches: where EMO is not involved, the patched libraries behave as unpatched
(checkpoints, images, FLOP counts), and ``EMO_NO_PATCHES=1`` / ``revert()`` leave them
untouched."""
import json
import os
import pickle
import subprocess
import sys
from contextlib import contextmanager, nullcontext

import cv2
import mmcv
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import REPO, assert_nested_equal
from mmcv.transforms import LoadImageFromFile
from mmengine.analysis import get_model_complexity_info
from mmengine.runner.checkpoint import CheckpointLoader, save_checkpoint

import emo
from emo import patches


@contextmanager
def unpatched():
    """The libraries as they are without emo, for the duration of the block."""
    assert patches.applied() == patches.PATCHES
    patches.revert()
    try:
        yield
    finally:
        patches.apply()


def test_apply_and_revert_are_idempotent():
    assert patches.applied() == patches.PATCHES  # import emo applied all of them
    assert patches.apply() == patches.PATCHES
    with unpatched():
        assert patches.revert() == ()
    assert patches.applied() == patches.PATCHES


STATE_SCRIPT = r'''
import json, sys
import mmcv.image.io as io
from mmcv.transforms import LoadImageFromFile
from mmengine.analysis import complexity_analysis
from mmengine.fileio.backends.registry_utils import backends, prefix_to_backends
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader
import torch

def state():
    return dict(
        loader=CheckpointLoader._schemes[''].__module__,
        backend=backends['local'].__name__, prefixed=prefix_to_backends[''].__name__,
        transform=hasattr(LoadImageFromFile.transform, '__wrapped__'),
        pillow=hasattr(io._pillow2array, '__wrapped__'),
        sdpa='aten::scaled_dot_product_attention'
             in complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS,
        safe_globals=HistoryBuffer in torch.serialization.get_safe_globals())

before = state()  # mmengine, mmcv and torch as they come
import emo
from mmengine.registry import MODELS
states = dict(before=before, imported=state(), applied=list(emo.patches.applied()))
MODELS.build(dict(type='EMO', arch='1m'))  # the backbone is there either way
emo.patches.apply()
states['apply'] = state()
emo.patches.revert()
states['revert'] = state()
print(json.dumps(states))
'''


def import_states(env):
    proc = subprocess.run([sys.executable, '-c', STATE_SCRIPT], cwd=REPO, text=True,
                          capture_output=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_emo_no_patches_leaves_the_libraries_untouched():
    off = import_states(dict(EMO_NO_PATCHES='1'))
    untouched = dict(loader='mmengine.runner.checkpoint', backend='LocalBackend',
                     prefixed='LocalBackend', transform=False, pillow=False, sdpa=False,
                     safe_globals=False)
    assert off['before'] == untouched
    assert off['imported'] == untouched and off['applied'] == []
    patched = dict(loader='emo.engine.safe_io', backend='AtomicLocalBackend',
                   prefixed='AtomicLocalBackend', transform=True, pillow=True, sdpa=True,
                   safe_globals=True)
    assert off['apply'] == patched
    assert off['revert'] == untouched
    on = import_states({'EMO_NO_PATCHES': '0'})
    assert on['before'] == untouched and on['imported'] == patched
    assert on['applied'] == list(patches.PATCHES) and on['revert'] == untouched


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3)))


def plain_checkpoint():
    """What mmengine's save_checkpoint writes for a model without emo: tensors, an
    optimizer state, builtins in meta."""
    torch.manual_seed(0)
    model = Toy()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optim.step()
    return dict(meta=dict(epoch=3, iter=12, seed=0, experiment_name='toy'),
                state_dict=model.state_dict(), optimizer=optim.state_dict())


def test_a_plain_mmengine_checkpoint_saves_and_loads_the_same(tmp_path):
    ckpt = plain_checkpoint()
    (tmp_path / 'emo').mkdir()
    (tmp_path / 'mmengine').mkdir()
    save_checkpoint(ckpt, str(tmp_path / 'emo' / 'epoch_3.pth'))  # AtomicLocalBackend
    with unpatched():
        save_checkpoint(ckpt, str(tmp_path / 'mmengine' / 'epoch_3.pth'))  # LocalBackend
        plain = {d: CheckpointLoader.load_checkpoint(str(tmp_path / d / 'epoch_3.pth'))
                 for d in ('emo', 'mmengine')}
    safe = {d: CheckpointLoader.load_checkpoint(str(tmp_path / d / 'epoch_3.pth'))
            for d in ('emo', 'mmengine')}
    assert os.listdir(tmp_path / 'emo') == os.listdir(tmp_path / 'mmengine')  # no leftovers
    for loaded in (*plain.values(), *safe.values()):
        assert_nested_equal(loaded, ckpt)  # bitwise, every tensor and value


def test_the_safe_loader_leaves_torch_allow_list_as_it_found_it(tmp_path):
    """emo's loader allows what mmengine checkpoints hold for its own call, patched or
    not, and leaves torch's global allow-list as it was."""
    from mmengine.logging import HistoryBuffer

    from emo.engine.safe_io import load_from_local
    path = str(tmp_path / 'hub.pth')
    hub = dict(meta=dict(scale=np.float32(0.5), palette=np.arange(6).reshape(2, 3)),
               message_hub=dict(log_scalars={'loss': HistoryBuffer([1.0, 2.0], [1, 1])}))
    torch.save(hub, path)
    for patched in (True, False):
        with nullcontext() if patched else unpatched():
            before = torch.serialization.get_safe_globals()
            loaded = load_from_local(path)
            assert set(torch.serialization.get_safe_globals()) == set(before)
            assert loaded['message_hub']['log_scalars']['loss'].mean() == 1.5
            assert np.array_equal(loaded['meta']['palette'], hub['meta']['palette'])
            if patched:  # a plain torch.load reads it too (weights-only by default)
                torch.load(path)
            else:
                with pytest.raises(pickle.UnpicklingError):
                    torch.load(path, weights_only=True)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Ordinary 8-bit images in the formats data sets come in."""
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    files = {}
    for name, img in (('rgb.png', rgb), ('rgb.jpg', rgb), ('gray.png', rgb[..., 0]),
                      ('rgba.png', np.dstack([rgb, rgb[..., :1]]))):
        files[name] = str(folder / name)
        cv2.imwrite(files[name], img)
    files['16bit.png'] = str(folder / '16bit.png')
    cv2.imwrite(files['16bit.png'], rng.integers(0, 65536, (37, 53), dtype=np.uint16))
    return files


def load_all(files):
    out = {}
    for name, path in files.items():
        for backend in ('cv2', 'pillow'):
            for color in ('color', 'grayscale', 'unchanged'):
                t = LoadImageFromFile(color_type=color, imdecode_backend=backend)
                out[name, backend, color] = t(dict(img_path=path))['img']
                out[name, backend, color, 'imfrombytes'] = mmcv.imfrombytes(
                    open(path, 'rb').read(), flag=color, backend=backend)
    return out


def test_images_decode_bitwise_as_in_mmcv(images):
    patched = load_all(images)
    with unpatched():
        plain = load_all(images)
    assert patched.keys() == plain.keys()
    differ = [k for k in plain if plain[k].dtype != patched[k].dtype
              or not np.array_equal(plain[k], patched[k])]
    # the only difference: 16-bit PNGs through Pillow, which mmcv clips to white
    assert sorted(differ) == sorted(
        k for k in plain if k[:2] == ('16bit.png', 'pillow') and k[2] != 'unchanged')
    assert (plain['16bit.png', 'pillow', 'color'] == 255).mean() > 0.99
    assert np.array_equal(patched['16bit.png', 'pillow', 'grayscale'],
                          patched['16bit.png', 'cv2', 'grayscale'])


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(3, 48)

    def forward(self, x):  # (B, 3, H, W) -> (B, H * W, 16)
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v)


def flops(model, shape):
    model.eval()  # (mmpretrain's backbones return None from train())
    with torch.no_grad():
        return get_model_complexity_info(model, input_shape=shape,
                                         show_table=False, show_arch=False)['flops']


def test_flop_counts_without_sdpa_are_unchanged():
    from mmpretrain.models import MobileNetV2
    models = [(Toy(), (3, 32, 32)), (MobileNetV2(widen_factor=0.5), (3, 64, 64))]
    patched = [flops(m, s) for m, s in models]
    with unpatched():
        plain = [flops(m, s) for m, s in models]
        no_sdpa = flops(Attention(), (3, 4, 5))
        # emo's own counter sets the handle itself, patched or not
        counted = emo.utils.model_complexity(Attention().eval(), (4, 5))['flops']
    assert patched == plain and all(f > 0 for f in plain)
    assert no_sdpa == 20 * 3 * 48  # the linear layer only: SDPA is not counted
    # the patch adds exactly q k^T and attn v: 2 * L * S * E multiply-adds
    sdpa = 2 * 20 * 20 * 16
    assert flops(Attention(), (3, 4, 5)) == counted == no_sdpa + sdpa

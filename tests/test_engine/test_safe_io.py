"""emo.engine.safe_io: weights-only loading with an allow-list, clear errors for broken
files, atomic writes, checkpoints kept until their successor is complete, and a resume
that skips an incomplete newest checkpoint."""
import logging
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, save_checkpoint

import emo  # noqa: F401  (registers the loader, the backend, the hooks)
from emo.engine.safe_io import (AtomicLocalBackend, CheckpointError, load_from_local,
                               resolve_resume, safe_global_names)


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.bn(self.linear(torch.stack(inputs)))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyDataset(torch.utils.data.Dataset):
    # what real data sets put in checkpoints' meta.dataset_meta: tuples, lists, numpy
    metainfo = dict(classes=('a', 'b'), palette=np.array([[1, 2, 3], [4, 5, 6]]),
                    scale=np.float32(0.5))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)), data_samples=None)


def run(work_dir, max_epochs=2, hook='SafeCheckpointHook', **kwargs):
    """A real mmengine run: EMA, two param schedulers, the message hub's buffers."""
    runner = Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=2),
                         dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                              T_max=max_epochs)],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        custom_hooks=[dict(type='EMAHook')],
        default_hooks=dict(checkpoint=dict(type=hook, interval=1, max_keep_ckpts=1)),
        default_scope='mmengine', randomness=dict(seed=0), **kwargs)
    runner.train()
    return runner


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp('run')
    runner = run(work)
    return runner, str(work / 'epoch_2.pth')


def test_real_checkpoints_load_weights_only(trained):
    runner, path = trained
    ckpt = load_from_local(path)
    assert {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers',
            'ema_state_dict'} <= set(ckpt)
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer)
    assert loss.mean() == runner.message_hub.get_scalar('train/loss').mean()
    assert loss.statistics('current') == runner.message_hub.get_scalar('train/loss').current()
    np.testing.assert_array_equal(ckpt['meta']['dataset_meta']['palette'],
                                  ToyDataset.metainfo['palette'])
    # the plain torch.load default (weights_only=True on torch >= 2.6) reads it too,
    # and nothing outside the allow-list is in the file
    torch.load(path, weights_only=True)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    allowed = safe_global_names()
    assert set(unsafe) <= allowed, set(unsafe) - allowed


def test_resume_and_load_from_go_through_the_safe_loader(trained, tmp_path, monkeypatch):
    _, path = trained
    calls = []
    load = torch.load
    monkeypatch.setattr(torch, 'load', lambda *a, **k: calls.append(k) or load(*a, **k))
    runner = run(tmp_path, max_epochs=3, resume=True, load_from=path)
    assert runner.epoch == 3 and calls and all(k.get('weights_only') is True for k in calls)
    assert CheckpointLoader._get_checkpoint_loader(path) is load_from_local


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / 'marker'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={'w': torch.zeros(1)}, meta=RunsCode(marker)), path)
    for load in (load_from_local, CheckpointLoader.load_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(path)
        assert path in str(err.value) and 'system' in str(err.value)
        assert 'refused' in str(err.value)
    # the same through a backbone's init_cfg (Pretrained)
    from emo.models import EMO
    with pytest.raises(CheckpointError, match='refused'):
        EMO('1m', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # and the allow-list is not a blank cheque
        torch.load(path, weights_only=True)
    assert not marker.exists()


@pytest.mark.parametrize('kind,words', [
    ('empty', 'empty (0 bytes)'), ('truncated', 'truncated or corrupt'),
    ('corrupt', 'corrupt'), ('garbage', 'not a readable checkpoint')])
def test_broken_files_are_named_errors(trained, tmp_path, kind, words):
    _, good = trained
    data = open(good, 'rb').read()
    path = str(tmp_path / f'{kind}.pth')
    with open(path, 'wb') as f:
        if kind == 'truncated':
            f.write(data[:len(data) // 2])
        elif kind == 'corrupt':  # same size, a stretch of bytes overwritten
            f.write(data[:3000] + bytes(200) + data[3200:])
        elif kind == 'garbage':
            f.write(b'not a checkpoint at all')
    with pytest.raises(CheckpointError) as err:
        load_from_local(path)
    assert path in str(err.value) and words in str(err.value)


def interrupt_writes(monkeypatch, after_bytes=None):
    """Make the next atomic write die after ``after_bytes`` bytes reached the disk
    (half the file when None): a kill in the middle of writing."""
    def die(fd):
        size = os.fstat(fd).st_size
        os.ftruncate(fd, size // 2 if after_bytes is None else after_bytes)
        raise KeyboardInterrupt('killed while writing')
    monkeypatch.setattr(os, 'fsync', die)


def test_a_write_killed_half_way_leaves_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({'w': torch.ones(1000)}, path)
    interrupt_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'w': torch.zeros(1000)}, path)
    assert torch.equal(load_from_local(path)['w'], torch.ones(1000))
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temporary file left behind
    monkeypatch.undo()
    AtomicLocalBackend().put(b'abc', str(tmp_path / 'new' / 'x.bin'))
    assert open(tmp_path / 'new' / 'x.bin', 'rb').read() == b'abc'


def test_a_run_killed_while_saving_keeps_its_previous_checkpoint(tmp_path, monkeypatch):
    """max_keep_ckpts=1: mmengine's CheckpointHook deletes epoch_1.pth before writing
    epoch_2.pth; SafeCheckpointHook deletes it only once epoch_2.pth is complete."""
    saved = []
    real_fsync = os.fsync

    def fsync(fd):
        saved.append(fd)
        if len(saved) == 2:  # the second checkpoint: killed half-way
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            raise KeyboardInterrupt('killed while writing epoch_2.pth')
        real_fsync(fd)
    monkeypatch.setattr(os, 'fsync', fsync)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    monkeypatch.undo()
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == ['epoch_1.pth']
    assert load_from_local(str(tmp_path / 'epoch_1.pth'))['meta']['epoch'] == 1
    assert open(tmp_path / 'last_checkpoint').read().endswith('epoch_1.pth')
    # and --resume continues from it
    cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=None))
    assert resolve_resume(cfg) == str(tmp_path / 'epoch_1.pth')
    assert run(tmp_path, resume=True, load_from=cfg.load_from).epoch == 2


def test_resume_skips_an_incomplete_newest_checkpoint(trained, tmp_path):
    _, good = trained
    data = open(good, 'rb').read()
    for name, blob in (('epoch_1.pth', data), ('epoch_2.pth', data[:len(data) // 3])):
        with open(tmp_path / name, 'wb') as f:
            f.write(blob)
    last = str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(last)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=None))
        assert resolve_resume(cfg) == str(tmp_path / 'epoch_1.pth')
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(r.getMessage() for r in records)
    assert f'skipped {last}' in text and 'truncated' in text
    # an explicit --resume FILE is not second-guessed; no complete file at all is an error
    cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=last))
    assert resolve_resume(cfg) is None and cfg.load_from == last
    os.remove(tmp_path / 'epoch_1.pth')
    with pytest.raises(CheckpointError, match='no complete checkpoint'):
        resolve_resume(Config(dict(work_dir=str(tmp_path), resume=True, load_from=None)))
    # an empty work dir: nothing to resume, mmengine starts from scratch
    empty = tmp_path / 'fresh'
    empty.mkdir()
    assert resolve_resume(Config(dict(work_dir=str(empty), resume=True))) is None


def test_a_checkpoint_written_under_numpy_1_loads(tmp_path):
    """numpy 2 moved ``numpy.core`` to ``numpy._core``; a checkpoint pickled under numpy 1
    names ``numpy.core.multiarray._reconstruct``. Made here by renaming the module in the
    pickle of a numpy-2 checkpoint (protocol 2: GLOBAL 'module\\nname\\n')."""
    import zipfile
    meta = dict(dataset_meta=dict(palette=np.arange(6, dtype=np.uint8).reshape(2, 3)),
                epoch=np.int64(3))
    new, old = tmp_path / 'numpy2.pth', tmp_path / 'numpy1.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), meta=meta), new)
    with zipfile.ZipFile(new) as src, zipfile.ZipFile(old, 'w') as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith('data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
            dst.writestr(item, data)
    ckpt = load_from_local(str(old))
    np.testing.assert_array_equal(ckpt['meta']['dataset_meta']['palette'],
                                  meta['dataset_meta']['palette'])
    assert ckpt['meta']['epoch'] == 3 and torch.equal(ckpt['state_dict']['w'], torch.ones(2))

"""emo.engine.hooks.rng_state_hook: generator states that survive a checkpoint file."""
import random
from types import SimpleNamespace

import numpy as np
import torch

from emo.engine.hooks.rng_state_hook import (RNGStateHook, _RestoreBeforeNext,
                                             get_rng_state, set_rng_state)


def draws():
    return (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    draws()
    path = tmp_path / 'rng.pth'
    torch.save(dict(rng_state=[dict(rng=get_rng_state())]), path)
    expected = draws()
    assert draws() != expected  # the generators moved on
    state = torch.load(path, weights_only=True)['rng_state'][0]['rng']
    set_rng_state(state)
    assert draws() == expected


def test_restore_before_next_lets_the_replayed_batches_through():
    restored = []
    it = _RestoreBeforeNext(iter(range(5)), 2, lambda: restored.append(True))
    assert [next(it), next(it)] == [0, 1] and restored == []
    assert next(it) == 2 and restored == [True]
    assert next(it) == 3 and restored == [True]  # once


class _Logger:
    def __init__(self):
        self.messages = []

    def info(self, msg):
        self.messages.append(msg)

    warning = info


def test_restores_only_when_resuming():
    loader = SimpleNamespace(sampler=SimpleNamespace(seed=7), worker_init_fn=None)
    loop = SimpleNamespace(dataloader=loader)
    runner = SimpleNamespace(_resume=False, logger=_Logger(), train_loop=loop,
                             _train_loop=loop)
    hook = RNGStateHook()
    checkpoint = {}
    torch.manual_seed(0)
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['rng_state'][0]['sampler_seed'] == 7
    expected = torch.rand(2)

    hook.after_load_checkpoint(runner, checkpoint)  # load_from, not a resume
    hook.before_train_epoch(runner)
    assert not torch.equal(torch.rand(2), expected)

    runner._resume = True
    loader.sampler.seed = 99  # a resumed run without a configured seed draws another
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    assert torch.equal(torch.rand(2), expected)
    assert loader.sampler.seed == 7


def test_validation_leaves_the_training_stream_alone():
    runner = SimpleNamespace()
    hook = RNGStateHook()
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    hook.before_val(runner)
    torch.rand(10), np.random.rand(), random.random()
    hook.after_val(runner)
    assert torch.equal(torch.rand(2), expected)

"""emo.engine.hooks.invalid_loss_hook: stop at the iteration whose loss is not finite."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import HOOKS

from emo.engine.hooks.invalid_loss_hook import InvalidLossError, StopOnInvalidLossHook


def runner(iteration=4, epoch=1):
    errors = []
    return SimpleNamespace(iter=iteration, epoch=epoch, train_loop=object(),
                           logger=SimpleNamespace(error=errors.append), errors=errors)


def test_registered_in_the_root_registry():
    assert HOOKS.get('StopOnInvalidLossHook') is StopOnInvalidLossHook


def test_finite_losses_pass():
    hook, r = StopOnInvalidLossHook(), runner()
    hook.after_train_iter(r, 0, outputs=dict(loss=torch.tensor(1.5),
                                             loss_cls=torch.tensor(1.0), acc=torch.tensor(9)))
    assert r.errors == []


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_loss_stops_and_names_iteration_and_terms(bad):
    hook, r = StopOnInvalidLossHook(), runner(iteration=4, epoch=1)
    outputs = dict(loss=torch.tensor(bad), loss_cls=torch.tensor(0.5),
                   loss_bbox=torch.tensor(bad))
    with pytest.raises(InvalidLossError) as info:
        hook.after_train_iter(r, 2, outputs=outputs)
    message = str(info.value)
    assert message.startswith('training diverged at iteration 5 (epoch 2, batch 3)')
    assert f'non-finite loss, loss_bbox (loss={bad}, loss_cls=0.5, loss_bbox={bad})' \
        in message
    assert r.errors == [message]  # also in the log file


def test_interval():
    hook, r = StopOnInvalidLossHook(interval=2), runner(iteration=0)
    hook.after_train_iter(r, 0, outputs=dict(loss=torch.tensor(float('nan'))))  # not due
    r.iter = 1
    with pytest.raises(InvalidLossError):
        hook.after_train_iter(r, 1, outputs=dict(loss=torch.tensor(float('nan'))))

"""Stop training at the first iteration whose loss is NaN or infinite."""
import math

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


class InvalidLossError(RuntimeError):
    """Training diverged: a loss term is NaN or infinite."""


@HOOKS.register_module()
class StopOnInvalidLossHook(Hook):
    """Raise :class:`InvalidLossError` as soon as any loss term of an iteration is NaN or
    infinite, naming the iteration (and epoch) and every loss term.

    One hook for mmpretrain, mmdet and mmseg: it reads the ``log_vars`` that
    ``train_step`` returns (``loss`` and its terms, e.g. ``loss_cls``, ``loss_bbox``,
    ``decode.loss_ce``). It runs before ``CheckpointHook`` and ``EMAHook`` in the same
    iteration, so no checkpoint holding the diverged weights is written. mmdet's own
    ``CheckInvalidLossHook`` checks every 50 iterations by default and only in mmdet.

    Args:
        interval (int): check every ``interval`` iterations. Default 1: stop at the very
            iteration that diverged.
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval=1):
        self.interval = interval

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        values = {k: float(v.detach().float().mean()) if torch.is_tensor(v) else float(v)
                  for k, v in outputs.items()
                  if 'loss' in k and (torch.is_tensor(v) or isinstance(v, (int, float)))}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if not bad:
            return
        where = f'iteration {runner.iter + 1}'
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1}, batch {batch_idx + 1})'
        terms = ', '.join(f'{k}={v}' for k, v in values.items())
        message = (f'training diverged at {where}: non-finite {", ".join(bad)} '
                   f'({terms}); stopped before any checkpoint of this iteration was '
                   f'saved (lower the learning rate or check the data)')
        runner.logger.error(message)
        raise InvalidLossError(message)

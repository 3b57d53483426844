"""Random-generator state in checkpoints, so that ``--resume`` continues the same
random stream as the run that was interrupted.

mmengine (0.10.7) resumes weights, optimizer, schedulers, message hub and (through
``EMAHook``) the EMA weights, and reshuffles the data from ``seed + epoch``
(``DefaultSampler``), but saves no generator state: every random draw after a resume
(augmentations, drop-path, anything using python ``random``, numpy's or torch's global
generator) restarts from the seed. :class:`RNGStateHook` stores those states in the
checkpoint and puts them back when, and only when, a run resumes.
"""
import random
from functools import partial

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

KEY = 'rng_state'


def get_rng_state():
    """The state of python ``random``, numpy's and torch's global generators (and
    CUDA's when initialised), in types that ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state = dict(python=[version, list(internal), py_gauss],
                 numpy=[name, keys.tolist(), pos, has_gauss, gauss],
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Inverse of :func:`get_rng_state` (tensors may come back on any device)."""
    version, internal, py_gauss = state['python']
    random.setstate((version, tuple(internal), py_gauss))
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


class _RestoreBeforeNext:
    """Wraps an iter-based loop's data iterator: lets ``skip`` batches through (the loop
    replays them after a resume), then restores the generators before the next one."""

    def __init__(self, iterator, skip, restore):
        self.iterator, self.skip, self.restore = iterator, skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0 and self.restore is not None:
            self.restore()
            self.restore = None
        self.skip -= 1
        return next(self.iterator)

    def __getattr__(self, name):  # the wrapped iterator's other attributes
        if name == 'iterator':
            raise AttributeError(name)
        return getattr(self.iterator, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random generators' states in every checkpoint; restore them on resume.

    Saved (``checkpoint['rng_state']``): per rank, python ``random``, numpy's and torch's
    global generators (CUDA's too when used), taken when the checkpoint is written, plus
    the training sampler's seed and the data loader's worker seed. Restored only when the
    run resumes (``runner._resume``; loading weights with ``load_from`` restores nothing),
    as late as possible: for epoch-based loops just before the first epoch's data loader
    starts, for iteration-based loops after the loop has replayed the batches already
    trained (mmengine's ``IterBasedTrainLoop`` skips them by loading them).

    Validation is made neutral: the states are put back after each validation, so the
    training stream does not depend on whether (or how often) a run validated, which a
    resumed run cannot repeat.

    Distributed runs gather every rank's states to rank 0 at each epoch end (epoch-based)
    or each checkpoint iteration (iteration-based); a resume with another world size
    warns and keeps the seeded generators.

    Args:
        priority: runs just before ``CheckpointHook`` (``VERY_LOW`` = 90).
    """

    def __init__(self, priority=85):
        self.priority = priority
        self._gathered = None   # all ranks' states, gathered at the last save point
        self._pending = None    # states read from a resumed checkpoint
        self._val_state = None

    # --- saving ---------------------------------------------------------------------
    def _states(self, runner):
        state = dict(rng=get_rng_state())
        loader = getattr(getattr(runner, '_train_loop', None), 'dataloader', None)
        sampler = getattr(loader, 'sampler', None)
        if hasattr(sampler, 'seed'):
            state['sampler_seed'] = sampler.seed
        init_fn = getattr(loader, 'worker_init_fn', None)
        if isinstance(init_fn, partial) and 'seed' in init_fn.keywords:
            state['worker_seed'] = init_fn.keywords['seed']
        return state

    def _gather(self, runner):
        _, world_size = get_dist_info()
        if world_size > 1:
            self._gathered = all_gather_object(self._states(runner))

    def after_train_epoch(self, runner):
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            self._gather(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            for hook in runner.hooks:
                if isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                        self.every_n_train_iters(runner, hook.interval)
                        or self.is_last_train_iter(runner)):
                    self._gather(runner)
                    break

    def before_save_checkpoint(self, runner, checkpoint):
        _, world_size = get_dist_info()
        if world_size > 1 and self._gathered is not None:
            checkpoint[KEY] = self._gathered
        else:
            checkpoint[KEY] = [self._states(runner)]

    # --- restoring ------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint):
        if not getattr(runner, '_resume', False):
            return
        saved = checkpoint.get(KEY)
        if saved is None:
            runner.logger.warning(
                'the resumed checkpoint holds no random-generator state (saved without '
                'RNGStateHook): augmentations after the resume differ from an '
                'uninterrupted run')
            return
        rank, world_size = get_dist_info()
        if len(saved) != world_size:
            runner.logger.warning(
                f'the checkpoint holds the random state of {len(saved)} process(es), '
                f'this run has {world_size}: random draws restart from the seed')
            return
        self._pending = saved[rank]

    def _restore_seeds(self, runner, state):
        loader = runner.train_loop.dataloader
        if 'sampler_seed' in state and hasattr(getattr(loader, 'sampler', None), 'seed'):
            loader.sampler.seed = state['sampler_seed']
        init_fn = getattr(loader, 'worker_init_fn', None)
        if 'worker_seed' in state and isinstance(init_fn, partial):
            loader.worker_init_fn = partial(init_fn.func, *init_fn.args,
                                            **dict(init_fn.keywords,
                                                   seed=state['worker_seed']))

    def _restore_rng(self, runner, state):
        set_rng_state(state['rng'])
        runner.logger.info('restored the random generators of the resumed checkpoint')

    def before_train_epoch(self, runner):
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        self._restore_seeds(runner, state)
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreBeforeNext(
                loop.dataloader_iterator, loop.iter, partial(self._restore_rng, runner, state))
        else:
            self._restore_rng(runner, state)

    # --- validation leaves the training stream alone --------------------------------
    def before_val(self, runner):
        self._val_state = get_rng_state()

    def after_val(self, runner):
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None

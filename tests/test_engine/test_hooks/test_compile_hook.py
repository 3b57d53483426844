"""Training with the config's ``compile`` option (mmengine compiles ``train_step`` with
Inductor; ``EagerOptimStepHook`` keeps the optimizer step out of Dynamo) gives eager's
losses and gradients, within the derived float32 bound (``helpers``: 10 * eps32 *
sqrt(n) * scale, n the accumulation length of one eager training step, forward, loss
and backward).

The runs train with lr = 0: the weights stay the same, so every iteration compares the
compiled forward, loss and backward with eager's at the same weights (on a new batch
each time), and nothing but rounding separates the two runs. The model is the smallest
EMO with every block type (two blocks in each attention stage) at the demo's 64x64:
compiling is slow on a CPU (about a minute for this graph on a loaded 2-core VM).
"""
import copy

import pytest
import torch
from helpers import REPO, accumulation_length, assert_close_derived
from mmengine.config import Config
from mmengine.hooks import Hook

import emo  # noqa: F401
from emo.apis import build_model_from_cfg
from emo.apis.launch import build_runner
from emo.engine.hooks.compile_hook import EagerOptimStepHook

pytestmark = pytest.mark.usefixtures('single_thread')

TINY = dict(depths=[1, 1, 2, 2], widths=[16, 16, 32, 32], exp_ratios=[2.0] * 4,
            dim_heads=[None, None, 16, 16])
ITERS = 3


class Record(Hook):
    """The loss of every iteration and the gradients the first optimizer step sees."""
    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.grads = [], None

    def before_train(self, runner):
        def grab(optimizer, args, kwargs):
            if self.grads is None:
                self.grads = [p.grad.detach().clone() for g in optimizer.param_groups
                              for p in g['params'] if p.grad is not None]
        runner.optim_wrapper.optimizer.register_step_pre_hook(grab)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(outputs['loss'].detach().clone())


def tiny_cfg(root, work_dir, compile):
    cfg = Config.fromfile(f'{REPO}/configs/demo/emo-1m_demo_cls.py')
    cfg.model.backbone.arch = TINY
    cfg.model.head.in_channels = TINY['widths'][-1]
    cfg.train_dataloader.dataset.data_root = f'{root}/imagenet'
    cfg.train_dataloader.batch_size = 4
    cfg.optim_wrapper.optimizer.lr = 0.0
    cfg.param_scheduler = []
    cfg.train_cfg = dict(by_epoch=False, max_iters=ITERS, val_interval=ITERS + 1)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = None
    cfg.custom_hooks = []  # no EMA: nothing but the model trains
    cfg.work_dir = work_dir
    cfg.compile = compile
    return cfg


def train(cfg):
    runner = build_runner(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    return record, runner


@pytest.mark.numerical
def test_compiled_training_equals_eager(demo_data_root, tmp_path):
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    eager, _ = train(tiny_cfg(demo_data_root, str(tmp_path / 'eager'), False))
    counters.clear()
    compiled, runner = train(tiny_cfg(demo_data_root, str(tmp_path / 'compiled'), True))
    assert any(isinstance(h, EagerOptimStepHook) for h in runner.hooks)
    assert counters['stats']['unique_graphs'] > 0  # the step really was compiled
    assert len(eager.losses) == len(compiled.losses) == ITERS

    # n: one eager training step of the same model at the same batch shape
    model = build_model_from_cfg(tiny_cfg(demo_data_root, '', False), mode='train')
    x = torch.randn(4, 3, 64, 64)

    def step():
        loss = model.head.loss(model.extract_feat(x), [
            copy.deepcopy(s) for s in _samples(4)])['loss']
        loss.backward()
        return loss

    n = accumulation_length(step)
    assert_close_derived(torch.stack(compiled.losses), torch.stack(eager.losses), n,
                         what='losses')
    assert len(compiled.grads) == len(eager.grads) > 0
    # each gradient against the scale of all of them (a parameter's gradient sums terms
    # of the whole network's magnitude; one with cancelling terms has a small max)
    scale = max(g.abs().max() for g in eager.grads)
    from emo.utils.numerics import float32_bound
    bound = float32_bound(torch.tensor([scale]), n)
    worst = max((c - e).abs().max().item() for c, e in zip(compiled.grads, eager.grads))
    assert worst <= bound, f'gradients differ by {worst:.3g} > bound {bound:.3g} (n={n})'


def _samples(b):
    from mmpretrain.structures import DataSample
    return [DataSample().set_gt_label(i % 4) for i in range(b)]

"""Training with the config's ``compile`` option (mmengine compiles ``model.train_step``
with ``torch.compile``): the optimizer step runs eagerly.

With torch 2.14.1 and mmengine 0.10.7, Dynamo fails while tracing the optimizer step
that ``train_step`` calls (``optim_wrapper.update_params`` -> ``optimizer.step``):
``InternalTorchDynamoError: AttributeError: 'UserDefinedDictVariable' object has no
attribute 'items'`` (in ``torch/_dynamo/variables/optimizer.py``, ``_set_capturable``), so
``compile=True`` stops every run at its first iteration. :class:`EagerOptimStepHook`
runs the optimizer wrapper's ``step`` outside Dynamo (``torch._dynamo.disable``); the
forward, the loss and the backward stay compiled, which is where the time goes.
``emo.apis.launch.build_runner`` adds it to every config that sets ``compile``.
"""
import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS


def eager_step(optim_wrapper):
    """Make ``optim_wrapper.step`` (each one's, for an ``OptimWrapperDict``) run outside
    Dynamo, in place (idempotent)."""
    wrappers = (optim_wrapper.values() if isinstance(optim_wrapper, OptimWrapperDict)
                else [optim_wrapper])
    for wrapper in wrappers:
        if not getattr(wrapper.step, '_emo_eager', False):
            step = torch._dynamo.disable(wrapper.step)
            step._emo_eager = True
            wrapper.step = step


@HOOKS.register_module()
class EagerOptimStepHook(Hook):
    """Before training, when the config sets ``compile``: the optimizer step runs eagerly
    (:func:`eager_step`)."""
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        if runner.cfg.get('compile'):
            eager_step(runner.optim_wrapper)

"""The runner's checkpoints (``load_from``, ``tools/test.py CKPT``, ``--resume``) fit the
model or fail naming what does not (:func:`emo.models.utils.state_dict.fit_checkpoint`)."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from emo.models.utils.state_dict import fit_checkpoint


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Make a loaded checkpoint fit the model, or fail naming what does not.

    Runs first among the ``after_load_checkpoint`` hooks (``VERY_HIGH`` priority, before
    ``EMAHook``, which needs ``checkpoint['state_dict']``):

    - an official EMO file is converted in place to mmpretrain keys
      (``official_to_mmpretrain``: ``backbone.*``, ``head.fc.*``), and the log says so;
    - tensors whose shapes differ from the model's (another variant, another number of
      classes) are an error naming the keys and both shapes, where mmengine would only
      warn and go on with the rest of the weights;
    - a checkpoint of which no key fits the model is an error;
    - with ``complete=True`` (``tools/test.py``), and always when the runner resumes, a
      checkpoint that leaves any tensor the model uses unfilled is an
      ``IncompleteCheckpointError`` naming the missing keys and the config the file
      belongs to (``emo.models.utils.state_dict.check_complete``); ``allow_partial=True``
      (``tools/test.py --allow-partial``) turns it into a warning with the same report.

    Otherwise (``load_from`` for fine-tuning) keys that are missing or unexpected (e.g. an
    ImageNet classifier loaded into a detector) are left to mmengine, which lists them by
    name as a warning: loading part of a network on purpose is what ``load_from`` is for.

    Args:
        complete: every tensor the model uses must come from the checkpoint.
        allow_partial: with ``complete``, load a partial checkpoint anyway, loudly.
    """

    priority = 'VERY_HIGH'

    def __init__(self, complete: bool = False, allow_partial: bool = False):
        self.complete, self.allow_partial = complete, allow_partial

    def after_load_checkpoint(self, runner, checkpoint):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        resuming = bool(getattr(runner, '_resume', False))
        fit_checkpoint(model, checkpoint, runner._load_from or 'the resumed checkpoint',
                       complete=self.complete or resuming,
                       allow_partial=self.allow_partial and not resuming)

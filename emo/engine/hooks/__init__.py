"""Training hooks EMO adds, registered in mmengine's root ``HOOKS`` registry (so they
build under the mmpretrain, mmdet and mmseg scopes alike)."""
from .invalid_loss_hook import InvalidLossError, StopOnInvalidLossHook  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401
from .checkpoint_fit_hook import CheckpointFitHook  # noqa: F401
from .data_check_hook import DataCheckHook  # noqa: F401
from .compile_hook import EagerOptimStepHook  # noqa: F401

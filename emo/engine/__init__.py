"""Runtime pieces on top of mmengine: hooks, distributed runs without CUDA."""
from .dist import CPUDistributedDataParallel, setup_cpu_dist  # noqa: F401
from .hooks import *  # noqa: F401,F403
# safe loading (weights_only + allow-list), atomic saving, resume fallback
from .safe_io import (CheckpointError, IncompleteCheckpointError,  # noqa: F401
                      load_from_local, resolve_resume, use_safe_checkpoint_hook)
from .loading import ImageLoadError  # noqa: F401  (image errors name the file)
from .optim_wrapper import CPUAutocastOptimWrapper  # noqa: F401  (--amp on a CPU)

from .ssd_head import *  # noqa: F401,F403
from .ssd_head import __all__  # noqa: F401

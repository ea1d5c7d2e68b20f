"""The public API in one module, as ``from dynamodb_cache.api import ...``."""
from . import *  # noqa: F401,F403
from . import __all__  # noqa: F401

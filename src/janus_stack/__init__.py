"""Janus: a self-hosted memory and workflow platform for AI agents.

The public entry points: load ``Settings`` once at the edge, open a
``Janus`` context with them, and use its slots.
"""

from janus_stack.config import Settings, load_settings
from janus_stack.context import Janus
from janus_stack.errors import JanusError

__all__ = ["Janus", "JanusError", "Settings", "load_settings"]
__version__ = "0.1.0"

"""The storage slots. Each subpackage holds one contract and one module per backend."""

from janus_stack.slots.base import Slot, load_backend

__all__ = ["Slot", "load_backend"]

"""The engine-neutral data-path machinery: elements with a drop gate, and their counters. Knows nothing of switching."""

from pyvswitch.pipeline.element import Element

__all__ = ["Element"]

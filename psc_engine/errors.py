"""One exception type for user errors, so the command line can print one line and exit 2.

It is defined in the contract module (protocol.py), which the add-on loads too.
"""
from .protocol import PSCError

__all__ = ["PSCError"]

"""PSC engine: pose -> shape -> content synthesis of a dressed person in new poses.

`from psc_engine import Pipeline` loads torch; `psc_engine.protocol` (the contract with the
add-on) and `psc_engine.errors` do not.
"""
from .errors import PSCError

__version__ = "0.1.0"
__all__ = ["Pipeline", "Frames", "PSCError", "__version__"]


def __getattr__(name):
    """Pipeline and Frames are imported on first use, so importing the package costs nothing."""
    if name in ("Pipeline", "Frames"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'psc_engine' has no attribute {name!r}")

"""PSC engine: pose -> shape -> content synthesis of a dressed person in new poses.

`from psc_engine import Pipeline` loads torch; `psc_engine.protocol` (the contract with the
add-on) and `psc_engine.errors` do not.
"""
import os

# Idle OpenMP threads sleep instead of spinning. torch's OpenMP runtime reads this once, when torch
# is first imported (so only if it was not imported before this package); a value already set
# wins. Spinning threads starve everything else on a shared CPU: with other jobs on these 2 cores
# the chain ran 8x slower spinning (1.3 frames/s against 11), see README "Speed".
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import PSCError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Pipeline", "Frames", "PSCError", "__version__"]


def __getattr__(name):
    """Pipeline and Frames are imported on first use, so importing the package costs nothing."""
    if name in ("Pipeline", "Frames"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'psc_engine' has no attribute {name!r}")

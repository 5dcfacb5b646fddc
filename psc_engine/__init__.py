"""PSC engine: pose -> shape -> content synthesis of a dressed person in new poses."""
from .errors import PSCError
from .pipeline import Frames, Pipeline

__version__ = "0.1.0"
__all__ = ["Pipeline", "Frames", "PSCError", "__version__"]

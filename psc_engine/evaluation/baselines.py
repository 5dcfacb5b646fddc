"""Non-learned baselines for `evaluate`: copy the source image, or warp it piecewise-affinely
(nets/warp.py, which AA-Net built with `warp=True` also reads)."""
from ..nets.warp import ANCHORS, piecewise_affine_warp  # noqa: F401 -- the baselines' API

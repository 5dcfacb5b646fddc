"""PM-Net: the pose manifold. Two reference pose maps and t in [0, 1] -> the in-between pose maps.

A shared encoder maps both references to features; the manifold feature is their mix
(1 - t) f_a + t f_b, refined over a few rounds that each re-mix the refined reference features
and fuse them with the previous round's manifold feature. The decoder's skips are the same
t-mix of the two references' encoder features, so a straight line is the easy answer and the
net learns where the real motion bends away from it.
"""
import torch
import torch.nn as nn

from .layers import LEVELS, Encoder, ResBlock, Up, widths
from ..formats.poses import NUM_JOINTS


class PMNet(nn.Module):
    def __init__(self, base=16, rounds=3):
        super().__init__()
        self.config = {"base": base, "rounds": rounds}
        w = widths(base)
        self.encoder = Encoder(NUM_JOINTS, base)
        self.refine = nn.ModuleList(ResBlock(w[LEVELS]) for _ in range(rounds))
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * w[LEVELS], w[LEVELS], 1), ResBlock(w[LEVELS])) for _ in range(rounds)
        )
        self.ups = nn.ModuleList(Up(w[l + 1], w[l], w[l]) for l in reversed(range(LEVELS)))
        self.head = nn.Conv2d(w[0], NUM_JOINTS, 3, 1, 1)
        nn.init.normal_(self.head.weight, std=1e-3)  # near zero: starts at the line, gradients still flow
        nn.init.zeros_(self.head.bias)

    def forward(self, maps_a, maps_b, t, line_maps):
        """maps_a, maps_b: (B, 18, H, W) reference maps; t: (B,); line_maps: (B, 18, H, W) maps of
        the straight-line pose at t -> (B, 18, H, W) maps in [0, 1]."""
        t = t.to(maps_a.dtype).view(-1, 1, 1, 1)
        fa, fb = self.encoder(maps_a), self.encoder(maps_b)
        mix = [(1 - t) * a + t * b for a, b in zip(fa, fb)]
        a, b, m = fa[LEVELS], fb[LEVELS], mix[LEVELS]
        for refine, fuse in zip(self.refine, self.fuse):
            a, b = refine(a), refine(b)
            m = fuse(torch.cat([m, (1 - t) * a + t * b], 1))
        x = m
        for up, level in zip(self.ups, reversed(range(LEVELS))):
            x = up(x, mix[level])
        return torch.sigmoid(torch.logit(line_maps.clamp(1e-4, 1 - 1e-4)) + self.head(x))


def line_poses(pose_a, pose_b, t):
    """The straight-line pose (1 - t) P_a + t P_b: (B, 18, 2) x2 and (B,) -> (B, 18, 2); a joint
    missing in either reference is missing (NaN propagates)."""
    t = t.reshape(-1, 1, 1)
    return (1 - t) * pose_a + t * pose_b

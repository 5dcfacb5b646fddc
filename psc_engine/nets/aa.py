"""AA-Net: the shape. Source parsing S0 and a target pose -> the target parsing (7-class softmax).

Two encoders: one for the source (S0 one-hot with its pose P0 -- the pose tells the net where
the source's limbs are, which the original had to guess from the parsing alone), one for the
target pose. At the bottleneck, three rounds of adaptive normalisation (the pose features give
a per-pixel scale and shift for the instance-normalised parsing features), each followed by a
residual block, then channel attention and a decoder with the target pose's skips.

The source side does not depend on the target pose: `encode_source` runs once per clip and
`decode` runs per frame, broadcasting the source features over the batch.

Built with `warp=True`, the target side also reads the source parsing warped onto the target
pose (nets/warp.py: piecewise-affine, no learning), one-hot beside the pose maps: a first
guess of the target shape that keeps the photo's own outline (a knee-up crop stays knee-up, a
dress stays a dress), which AA then corrects where the warp tears or folds. `widen` starts such
a net from a trained one without the warp input.
"""
import torch
import torch.nn as nn

from ..formats.images import NUM_CLASSES
from .layers import LEVELS, ChannelAttention, Encoder, ResBlock, Up, widths
from ..formats.poses import NUM_JOINTS


class AdaIN(nn.Module):
    """IN(x) * (1 + gamma(p)) + beta(p), gamma and beta from 1x1 convs of the pose features."""

    def __init__(self, ch):
        super().__init__()
        self.gamma = nn.Conv2d(ch, ch, 1)
        self.beta = nn.Conv2d(ch, ch, 1)

    def forward(self, x, p):
        # F.instance_norm's arithmetic, written out so the result keeps x's channels-last layout
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + 1e-5) * (1 + self.gamma(p)) + self.beta(p)


class AANet(nn.Module):
    def __init__(self, base=16, rounds=3, warp=False):
        super().__init__()
        self.config = {"base": base, "rounds": rounds, **({"warp": True} if warp else {})}
        self.warp = warp
        w = widths(base)
        c = w[LEVELS]
        self.source_encoder = Encoder(NUM_CLASSES + NUM_JOINTS, base)
        self.pose_encoder = Encoder(NUM_JOINTS + (NUM_CLASSES if warp else 0), base, full_res=False)
        self.adain = nn.ModuleList(AdaIN(c) for _ in range(rounds))
        self.shape_res = nn.ModuleList(ResBlock(c) for _ in range(rounds))
        self.pose_res = nn.ModuleList(ResBlock(c) for _ in range(rounds))
        self.attention = ChannelAttention(c)
        self.ups = nn.ModuleList(Up(w[l + 1], w[l] if l else 0, w[l]) for l in reversed(range(LEVELS)))
        self.head = nn.Conv2d(w[0], NUM_CLASSES, 3, 1, 1)

    def encode_source(self, parsing_onehot, pose_maps):
        """(1 or B, 7, H, W), (1 or B, 18, H, W) -> source bottleneck features."""
        return self.source_encoder(torch.cat([parsing_onehot, pose_maps], 1))[LEVELS]

    def decode(self, source, target_maps, warped=None):
        """source: encode_source output (batch 1 broadcasts); target_maps: (B, 18, H, W); warped:
        (B, 7, H, W) the source parsing warped onto the target pose (warp=True only) -> (B, 7, H, W) logits."""
        if self.warp != (warped is not None):
            raise ValueError("this AA-Net " + ("reads" if self.warp else "does not read") + " the warped source parsing")
        p = self.pose_encoder(torch.cat([target_maps, warped], 1) if self.warp else target_maps)
        x = source.expand(p[LEVELS].shape[0], -1, -1, -1)
        q = p[LEVELS]
        for adain, shape_res, pose_res in zip(self.adain, self.shape_res, self.pose_res):
            q = pose_res(q)  # the pose features are refined by their own block each round
            x = shape_res(adain(x, q))
        x = self.attention(x)
        for up, level in zip(self.ups, reversed(range(LEVELS))):
            x = up(x, p[level]) if level else up(x)
        return self.head(x)

    def forward(self, parsing_onehot, source_maps, target_maps, warped=None):
        return self.decode(self.encode_source(parsing_onehot, source_maps), target_maps, warped)

    @torch.no_grad()
    def widen(self, other):
        """Take a trained AANet's weights (without the warp input): every tensor as it is, the pose
        encoder's first conv with zeros on the warp channels, so the widened net starts out
        computing what `other` computes."""
        own = self.state_dict()
        for name, value in other.state_dict().items():
            if own[name].shape == value.shape:
                own[name].copy_(value)
            else:  # the stem's (out, 18 + 7, 3, 3) weight
                own[name].zero_()
                own[name][:, :value.shape[1]].copy_(value)
        return self

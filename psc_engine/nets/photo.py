"""The two nets that read a plain photo, so a user needs nothing else: a keypoint net (18 joint
heatmaps + a visibility score per joint) and a human parser (7 classes).

Both are small U-shaped nets on the engine's building blocks. The keypoint net predicts, per
joint, scores over a 64x64 grid (1/4 resolution) read as a spatial softmax: trained by cross-entropy
against the normalised Gaussian around the true joint, which, unlike a per-pixel L2 on sparse
heatmaps, cannot settle on predicting nothing. The peak-normalised softmax is a heatmap whose log
is the score itself, so the same parabola fit as pose maps decodes it to sub-pixel 256-frame
coordinates. A joint whose visibility score is below 0.5 is written as missing, the way a
detector would not report it. The score has a global part (the whole image's features) and a
local one: the features at the joint's predicted place, pooled by its own softmax -- whether
an eye is seen is decided where the net thinks the eye is.
"""
import torch
import torch.nn as nn

from ..formats.images import NUM_CLASSES
from .layers import LEVELS, ChannelAttention, Encoder, Up, widths
from ..formats.poses import FLIP_PERM, NUM_JOINTS, SIZE, decode_pose_maps

HEATMAP_LEVEL = 2  # 64x64


class KeypointNet(nn.Module):
    def __init__(self, base=16):
        super().__init__()
        self.config = {"base": base}
        w = widths(base)
        self.encoder = Encoder(3, base, full_res=False)
        self.attention = ChannelAttention(w[LEVELS])
        self.ups = nn.ModuleList(Up(w[l + 1], w[l], w[l]) for l in range(LEVELS - 1, HEATMAP_LEVEL - 1, -1))
        self.scores = nn.Conv2d(w[HEATMAP_LEVEL], NUM_JOINTS, 3, 1, 1)
        self.visibility = nn.Linear(w[LEVELS], NUM_JOINTS)
        self.local_visibility = nn.Parameter(torch.zeros(NUM_JOINTS, w[HEATMAP_LEVEL]))  # per joint, over pooled features

    def forward(self, image):
        """(B, 3, 256, 256) in [-1, 1] -> joint scores (B, 18, 64, 64), visibility logits (B, 18)."""
        f = self.encoder(image)
        x = self.attention(f[LEVELS])
        vis = self.visibility(x.mean((2, 3)))
        for up, level in zip(self.ups, range(LEVELS - 1, HEATMAP_LEVEL - 1, -1)):
            x = up(x, f[level])
        scores = self.scores(x)  # (B, 18, h, w)
        where = torch.softmax(scores.detach().flatten(2).float(), -1).to(x.dtype)  # (B, 18, h*w)
        pooled = torch.einsum("bjn,bcn->bjc", where, x.flatten(2))  # (B, 18, C): features at each joint
        return scores, vis + (pooled * self.local_visibility).sum(-1)

    @staticmethod
    def heatmaps(scores):
        """(B, 18, h, w) scores -> the spatial softmax scaled to peak 1 (B, 18, h, w) in (0, 1]."""
        flat = scores.flatten(2).float()  # (B, 18, h*w)
        return torch.exp(flat - flat.amax(-1, keepdim=True)).view_as(scores)

    @torch.inference_mode()
    def predict(self, image, flip=False, with_visibility=False):
        """(B, 3, 256, 256) -> (B, 18, 2) poses in 256-frame pixels, NaN for joints judged not visible
        (with_visibility: and the (B, 18) visibility probabilities).

        flip: also read the mirror image and average the scores with the direct reading's: the
        mirror's scores flipped back, each left joint swapped for its right one (visibility
        logits likewise). Averaging scores, not decoded joints, keeps the stronger of two
        disagreeing peaks instead of their midpoint."""
        b = len(image)
        scores, vis = self(torch.cat([image, image.flip(-1)]) if flip else image)  # flip: photos, then mirrors
        if flip:
            perm = list(FLIP_PERM)
            scores = (scores[:b] + mirror_scores(scores[b:])[:, perm]) / 2
            vis = (vis[:b] + vis[b:][:, perm]) / 2
        poses = decode_pose_maps(self.heatmaps(scores).cpu(), threshold=0.0)
        vis = torch.sigmoid(vis.float()).cpu().numpy()
        poses[vis < 0.5] = float("nan")
        return (poses, vis) if with_visibility else poses


def mirror_scores(scores):
    """(B, J, h, w) scores of a mirrored photo -> the same scores in the photo's frame.

    Cell i of the grid sits at pixel i * s (s = 256 / w), so flipping the grid mirrors about
    pixel (w - 1) * s / 2, not the photo's 127.5: the flipped grid is (s - 1) / s of a cell to
    the left. It is moved back by linear interpolation between neighbouring cells, which moves a
    parabola (a Gaussian's log, what the decoder fits) exactly.
    """
    flipped = scores.flip(-1)
    s = SIZE / scores.shape[-1]
    f = (s - 1) / s  # 0.75 of a cell on the 64x64 grid
    left = torch.cat([flipped[..., :1], flipped[..., :-1]], -1)  # each cell's left neighbour (edge repeated)
    return (1 - f) * flipped + f * left


class ParserNet(nn.Module):
    def __init__(self, base=16):
        super().__init__()
        self.config = {"base": base}
        w = widths(base)
        self.encoder = Encoder(3, base, full_res=True)
        self.attention = ChannelAttention(w[LEVELS])
        self.ups = nn.ModuleList(Up(w[l + 1], w[l], w[l]) for l in reversed(range(LEVELS)))
        self.head = nn.Conv2d(w[0], NUM_CLASSES, 3, 1, 1)

    def forward(self, image):
        """(B, 3, 256, 256) in [-1, 1] -> (B, 7, 256, 256) class logits."""
        f = self.encoder(image)
        x = self.attention(f[LEVELS])
        for up, level in zip(self.ups, reversed(range(LEVELS))):
            x = up(x, f[level])
        return self.head(x)

    @torch.inference_mode()
    def predict(self, image, flip=False):
        """(B, 3, S, S) -> (B, 7, S, S) class scores.

        flip: also parse the mirror image and average the two (mirrored back): the classes have
        no left or right, and the two readings' errors are partly independent (held-out mIoU
        0.742 -> 0.749 for twice the parser's time)."""
        if not flip:
            return self(image)
        scores = self(torch.cat([image, image.flip(-1)]))  # (2B, 7, S, S): the photos, then their mirrors
        return (scores[:len(image)] + scores[len(image):].flip(-1)) / 2

"""Building blocks shared by the three nets: conv + activation, residual blocks, a U-shaped
encoder, up-sampling, flow warping and channel attention.

Resolution levels: level l has 256 / 2**l pixels a side (l = 0..4, bottleneck 16x16); the
channel count at level l is `widths(base)[l]` = base * 2**l, capped at 8 * base.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

LEVELS = 4


def widths(base):
    """Channels at levels 0..4, e.g. base 16 -> [16, 32, 64, 128, 128]."""
    return [base * min(2 ** level, 8) for level in range(LEVELS + 1)]


def conv_act(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.LeakyReLU(0.2, inplace=True))


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))): no normalisation, so a frame's output does not depend on the
    other frames in its batch."""

    def __init__(self, ch):
        super().__init__()
        self.body = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 3, 1, 1)
        )

    def forward(self, x):
        return x + self.body(x)


class Encoder(nn.Module):
    """Input at 256 -> features at levels 0..4 (a list of 5 tensors).

    With full_res=False the stem is a stride-2 conv and level 0 is None: 256x256 convs are the
    most expensive layers, and nets whose decoders take no full-size skip do not need them.
    """

    def __init__(self, cin, base, full_res=True):
        super().__init__()
        w = widths(base)
        self.full_res = full_res
        self.stem = conv_act(cin, w[0]) if full_res else conv_act(cin, w[1], 3, 2)
        first = 0 if full_res else 1
        self.downs = nn.ModuleList(conv_act(w[l], w[l + 1], 3, 2) for l in range(first, LEVELS))
        self.bottleneck = ResBlock(w[LEVELS])

    def forward(self, x):
        feats = [self.stem(x)] if self.full_res else [None, self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        feats[-1] = self.bottleneck(feats[-1])
        return feats


class Up(nn.Module):
    """One decoder level: 1x1 channel reduction at the low resolution, nearest 2x up-sampling,
    a 1x1 fuse with the skips, then one 3x3 conv. Reducing before up-sampling and fusing with
    1x1 convs costs about a third of a 3x3 conv over the concatenation, for the same receptive field.
    """

    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1)
        self.fuse = nn.Conv2d(cout + cskip, cout, 1) if cskip else None
        self.conv = conv_act(cout, cout)

    def forward(self, x, *skips):
        x = F.interpolate(self.reduce(x), scale_factor=2.0, mode="nearest")
        if skips:
            x = F.leaky_relu(self.fuse(torch.cat([x, *skips], 1)), 0.2)
        return self.conv(x)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: re-weight channels by a gate computed from their global mean."""

    def __init__(self, ch, reduction=4):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(ch, ch // reduction), nn.ReLU(inplace=True), nn.Linear(ch // reduction, ch), nn.Sigmoid()
        )

    def forward(self, x):
        return x * self.gate(x.mean((2, 3)))[:, :, None, None]


def base_grid(h, w, device, dtype):
    """(1, H, W, 2) sampling grid of pixel centres in grid_sample's [-1, 1] coordinates."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)[None]


def warp(x, flow):
    """Backward warp: out[p] = x[p + flow[p]].

    x: (B or 1, C, H, W) source features; flow: (B, 2, H, W) offsets (dx, dy) in normalised image
    units (2 = the whole width), so one flow field means the same motion at every level and
    can move a limb across the whole frame, unlike the original's tanh-squashed pixel offsets.
    Sampling is always float32 (coordinates in bfloat16 are off by up to a pixel, and bfloat16
    grid_sample is slow on CPUs); the result comes back in the flow's dtype, the nets' dtype.
    """
    b, _, h, w = flow.shape
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    x = x.float()  # before the expand: a batch-1 source is converted once, not once per frame
    if x.shape[0] != b:
        x = x.expand(b, -1, -1, -1)
    grid = base_grid(h, w, flow.device, torch.float32) + flow.float().permute(0, 2, 3, 1)  # (B, H, W, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(flow.dtype, memory_format=fmt)  # grid_sample writes NCHW; keep the layout the convs are in


def resize_flow(flow, size):
    """Bilinear resize of a normalised flow: values need no rescaling since they are resolution-free."""
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def pixels_to_flow(dx, dy, size=256):
    """A shift in pixels of the 256 frame -> normalised flow units."""
    return 2.0 * dx / size, 2.0 * dy / size


def at_size(images, labels, size):
    """(B, 3, 256, 256) images and (B, 256, 256) labels -> at `size`: the images area-averaged,
    the labels subsampled. One rule for training batches and the Pipeline's reference."""
    if size == images.shape[-1]:
        return images, labels
    return F.interpolate(images, size=(size, size), mode="area"), subsample_labels(labels, size)


def subsample_labels(labels, size):
    """(B, H, W) class labels -> (B, size, size) by taking the centre pixel of each block: hard
    labels at a lower resolution, the same way for training and for inference."""
    step = labels.shape[-1] // size
    return labels[..., step // 2::step, step // 2::step] if step > 1 else labels

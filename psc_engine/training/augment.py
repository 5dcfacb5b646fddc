"""Augmentation that keeps labels right, applied to whole batches in torch.

- Horizontal flip: mirror images and parsings, mirror x and swap each left joint with its right
  twin (a mirrored right wrist is a left wrist); parsing classes stay as they are.
- Small scale and shift: one affine per image; images resampled bilinearly, parsings by nearest
  neighbour, joints by the same affine, so all three stay aligned.
- Garment colour: a hue rotation of the clothing pixels, the same for source and target (it is
  the same garment).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..formats.images import CLOTHING_CLASSES
from ..formats.poses import FLIP_PERM, SIZE


def flip_poses(poses):
    """(B, 18, 2) -> mirrored: x -> 255 - x, each right joint swapped with its left twin."""
    poses = poses[:, list(FLIP_PERM)].clone()
    poses[..., 0] = SIZE - 1 - poses[..., 0]
    return poses


def flip_batch(images, parsings, poses):
    """images (B, 3, H, W), parsings (B, H, W) long, poses (B, 18, 2) -> the mirrored three."""
    return images.flip(-1), parsings.flip(-1), flip_poses(poses)


def flip_some(flip, images, parsings, poses):
    """Mirror the items where the (B,) bool mask `flip` is set; the others stay as they are.
    images may be None (a batch of parsings and poses only)."""
    if images is not None:
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return (images, torch.where(flip[:, None, None], parsings.flip(-1), parsings),
            torch.where(flip[:, None, None], flip_poses(poses), poses))


def random_affines(rng, n, scale=0.08, shift=12.0):
    """n (scale, dx, dy): scale in [1 - scale, 1 + scale] about the centre, shift in pixels."""
    return np.stack([1 + rng.uniform(-scale, scale, n), rng.uniform(-shift, shift, n), rng.uniform(-shift, shift, n)], 1)


def apply_affine(images, parsings, poses, affines):
    """Zoom by s about the frame's centre and shift by (dx, dy) pixels; affines (B, 3) float.
    images may be None (a batch of parsings and poses only)."""
    a = torch.as_tensor(affines, dtype=torch.float32, device=parsings.device)
    s, dx, dy = a[:, 0], a[:, 1], a[:, 2]
    b, h, w = parsings.shape
    # grid_sample maps output coords to input coords: in = (out - shift) / s, in normalised units.
    theta = torch.zeros(b, 2, 3, dtype=a.dtype, device=a.device)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = -dx * 2 / w / s
    theta[:, 1, 2] = -dy * 2 / h / s
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    if images is not None:
        images = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    parsings = F.grid_sample(parsings[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                             align_corners=False)[:, 0].long()
    return images, parsings, affine_poses(poses, a)


def affine_poses(poses, affines):
    """The joints' side of apply_affine: (B, 18, 2) poses, (B, 3) (scale, dx, dy)."""
    a = torch.as_tensor(affines, dtype=poses.dtype)
    c = (SIZE - 1) / 2  # pixel-index coordinates: the centre of the frame is at 127.5
    return (poses - c) * a[:, 0, None, None] + c + a[:, None, 1:3]


def hue_rotation(angle):
    """3x3 matrix rotating RGB about the grey axis (keeps luminance roughly, changes hue)."""
    c, s = math.cos(angle), math.sin(angle)
    k = 1 / 3
    r = math.sqrt(k)
    return torch.tensor([
        [c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s],
        [k * (1 - c) + r * s, c + k * (1 - c), k * (1 - c) - r * s],
        [k * (1 - c) - r * s, k * (1 - c) + r * s, c + k * (1 - c)],
    ])


def jitter_garments(images, parsings, angles):
    """Rotate the hue of clothing pixels by a per-item angle; images in [-1, 1]."""
    mats = torch.stack([hue_rotation(a) for a in angles]).to(images)  # (B, 3, 3)
    rgb01 = (images + 1) / 2
    rotated = torch.einsum("bij,bjhw->bihw", mats, rgb01).clamp(0, 1) * 2 - 1
    cloth = sum(parsings == c for c in CLOTHING_CLASSES)[:, None].to(images.dtype)
    return cloth * rotated + (1 - cloth) * images

"""18-joint poses: the pose CSV of the original release, and Gaussian pose maps.

In memory a pose is a float array (18, 2) of (x, y) pixels in the 256x256 frame, NaN for a
missing joint. On disk (the original's format) each pose is two rows, x then y, each row
`t, v0, ..., v17`, with -1 for a missing joint; files with several poses stack the pairs.
"""
import math
from pathlib import Path

import numpy as np
import torch

from .. import protocol
from ..errors import PSCError
from ..protocol import FLIP_PERM, JOINTS, NUM_JOINTS, SIZE  # noqa: F401 (re-exported for the engine)

# Limbs drawn for a skeleton picture (OpenPose COCO-18 connections).
LIMBS = (
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# Gaussian width of a pose map, in pixels of the 256x256 frame. The original used 100 px, which
# spreads every joint over the whole frame: neighbouring joints blur into each other and a joint
# just outside the frame still lights it up. 6 px keeps joints apart, decodes back to the
# sub-pixel (see `decode_pose_maps` and README "Pose maps"), and is the usual width in
# pose-transfer work at this resolution.
SIGMA = 6.0
# A decoded peak below this counts as a missing joint.
PEAK_THRESHOLD = 0.5


def as_pose_array(pose, name="pose"):
    """Any (18, 2) or (N, 18, 2) array-like -> float32 with NaN for missing (-1 or NaN) joints."""
    arr = np.array(pose, dtype=np.float32)
    if arr.shape[-2:] != (NUM_JOINTS, 2):
        raise PSCError(f"expected shape (..., 18, 2), got {arr.shape}", name)
    missing = np.isnan(arr).any(-1) | (arr == -1).all(-1)
    if not np.isfinite(arr[~missing]).all():
        raise PSCError("joint coordinates must be finite numbers (or -1/NaN for missing)", name)
    arr[missing] = np.nan
    return arr


def read_pose_csv(path):
    """Read a pose CSV -> (ts (P,), poses (P, 18, 2) float32, NaN = missing)."""
    return _as_arrays(*protocol.read_pose_csv(Path(path)))


def parse_pose_csv(text, path):
    """Pose CSV text -> (ts (P,), poses (P, 18, 2) float32, NaN = missing); `path` names it in errors."""
    return _as_arrays(*protocol.parse_pose_csv(text, path))


def _as_arrays(ts, poses):
    nan = (math.nan, math.nan)
    return (np.asarray(ts, dtype=np.float32),
            np.asarray([[nan if p is None else p for p in pose] for pose in poses], dtype=np.float32))


def require_joints(pose, name="pose"):
    """A reference pose must have joints: with none, nothing ties the photo to the targets."""
    if np.isnan(np.asarray(pose, dtype=np.float32)).all():
        raise PSCError("the reference pose has no joints (all are missing)", name)
    return pose


def format_pose_csv(poses, ts=None):
    """(P, 18, 2) poses (NaN = missing) and their t -> CSV text in the original's format."""
    poses = as_pose_array(poses).reshape(-1, NUM_JOINTS, 2)
    ts = np.zeros(len(poses)) if ts is None else np.broadcast_to(np.asarray(ts, float), (len(poses),))
    return protocol.format_pose_csv(_as_lists(poses), [float(t) for t in ts])


def _as_lists(poses):
    """(P, 18, 2) float array, NaN = missing -> protocol poses (lists of (x, y) or None)."""
    return [[None if np.isnan(p).any() else (float(p[0]), float(p[1])) for p in pose] for pose in poses]


def write_pose_csv(path, poses, ts=None):
    """Write poses to a CSV atomically (temp file, then rename)."""
    from .images import atomic_write_bytes

    atomic_write_bytes(path, format_pose_csv(poses, ts).encode())


def flip_pose(pose, width=SIZE):
    """Mirror a pose left-right: x -> width - 1 - x, and swap each right joint with its left twin."""
    pose = np.asarray(pose, dtype=np.float32)
    out = pose[..., FLIP_PERM, :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def pose_maps(poses, size=SIZE, sigma=SIGMA, channels_last=False, dtype=torch.float32):
    """(B, 18, 2) pixel poses (NaN = missing) -> (B, 18, size, size) Gaussian maps, peak 1 at each joint.

    Separable: a row profile times a column profile, so it costs B*18*(2*size) exps plus one
    outer product, cheap enough to build every frame's maps on the fly. channels_last=True
    writes the product straight into NHWC memory (what the inference convs read); `dtype` is
    the product's (the profiles are always float32).
    """
    poses = torch.as_tensor(poses, dtype=torch.float32)
    if poses.dim() == 2:
        poses = poses[None]
    scale = size / SIZE
    xy = poses * scale
    missing = torch.isnan(xy).any(-1)  # (B, 18)
    xy = torch.nan_to_num(xy, nan=-1e4)
    grid = torch.arange(size, dtype=torch.float32, device=xy.device)
    s = sigma * scale
    gx = torch.exp(-((grid - xy[..., 0:1]) ** 2) / (2 * s * s)) * (~missing)[..., None]  # (B, 18, W), 0 if missing
    gy = torch.exp(-((grid - xy[..., 1:2]) ** 2) / (2 * s * s))  # (B, 18, H)
    gx, gy = gx.to(dtype), gy.to(dtype)
    if channels_last:  # (B, H, 1, 18) * (B, 1, W, 18) -> (B, H, W, 18), viewed as (B, 18, H, W)
        gy, gx = gy.transpose(1, 2).contiguous(), gx.transpose(1, 2).contiguous()  # (B, H, 18), (B, W, 18)
        return (gy[:, :, None, :] * gx[:, None, :, :]).permute(0, 3, 1, 2)
    return gy[..., :, None] * gx[..., None, :]  # (B, 18, H, W)


def decode_pose_maps(maps, threshold=PEAK_THRESHOLD):
    """(B, 18, H, W) maps -> (B, 18, 2) pixel poses (NaN where the peak is below threshold).

    Sub-pixel: a Gaussian's log is a parabola, so a 3-point parabola fit through the log of the
    peak and its neighbours (per axis) recovers the centre exactly on clean maps.
    """
    maps = torch.as_tensor(maps).float()
    b, j, h, w = maps.shape
    flat = maps.reshape(b, j, h * w)
    peak, idx = flat.max(-1)  # (B, 18)
    iy, ix = idx // w, idx % w
    logm = torch.log(maps.clamp_min(1e-6))

    def refine(center, lo, hi):
        denom = lo - 2 * center + hi
        off = 0.5 * (lo - hi) / torch.where(denom.abs() < 1e-9, torch.full_like(denom, -1e-9), denom)
        return off.clamp(-0.5, 0.5)

    bi = torch.arange(b)[:, None].expand(b, j)
    ji = torch.arange(j)[None, :].expand(b, j)
    c = logm[bi, ji, iy, ix]
    dx = refine(c, logm[bi, ji, iy, (ix - 1).clamp(0)], logm[bi, ji, iy, (ix + 1).clamp(max=w - 1)])
    dy = refine(c, logm[bi, ji, (iy - 1).clamp(0), ix], logm[bi, ji, (iy + 1).clamp(max=h - 1), ix])
    # No refinement at the border, where a neighbour is missing.
    dx = torch.where((ix == 0) | (ix == w - 1), torch.zeros_like(dx), dx)
    dy = torch.where((iy == 0) | (iy == h - 1), torch.zeros_like(dy), dy)
    xy = torch.stack([ix + dx, iy + dy], -1) * (SIZE / w)
    xy[peak < threshold] = float("nan")
    return xy.numpy()

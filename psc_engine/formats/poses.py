"""18-joint poses: the pose CSV of the original release, and Gaussian pose maps.

In memory a pose is a float array (18, 2) of (x, y) pixels in the 256x256 frame, NaN for a
missing joint. On disk (the original's format) each pose is two rows, x then y, each row
`t, v0, ..., v17`, with -1 for a missing joint; files with several poses stack the pairs.
"""
import csv
import io
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import PSCError

JOINTS = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_JOINTS = len(JOINTS)
# Index permutation that swaps each right joint with its left twin (horizontal flip).
FLIP_PERM = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
# Limbs drawn for a skeleton picture (OpenPose COCO-18 connections).
LIMBS = (
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
SIZE = 256
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


def _parse_rows(text, path):
    """CSV text -> list of float rows; blank lines skipped, BOM and CRLF (or bare CR) tolerated."""
    rows = []
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        parsed = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise PSCError(f"not a readable CSV ({e})", path) from None
    for lineno, row in enumerate(parsed, 1):
        if not row or all(not v.strip() for v in row):
            continue
        if len(row) != NUM_JOINTS + 1:
            raise PSCError(f"line {lineno}: expected 19 values (t and 18 joints), got {len(row)}", path)
        try:
            values = [float(v) for v in row]
        except ValueError:
            raise PSCError(f"line {lineno}: not a number in {row!r}", path) from None
        if not all(math.isfinite(v) for v in values):
            raise PSCError(f"line {lineno}: NaN or infinite value (use -1 for a missing joint)", path)
        rows.append(values)
    return rows


def read_pose_csv(path):
    """Read a pose CSV -> (ts (P,), poses (P, 18, 2) float32, NaN = missing)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PSCError("file not found", path) from None
    except UnicodeDecodeError:
        raise PSCError("not a text CSV file", path) from None
    return parse_pose_csv(text, path)


def parse_pose_csv(text, path):
    """Pose CSV text -> (ts (P,), poses (P, 18, 2) float32, NaN = missing); `path` names it in errors."""
    rows = _parse_rows(text, path)
    if not rows:
        raise PSCError("no poses in file (empty CSV)", path)
    if len(rows) % 2:
        raise PSCError(f"{len(rows)} rows: rows come in x/y pairs, so the count must be even", path)
    arr = np.asarray(rows, dtype=np.float32).reshape(-1, 2, NUM_JOINTS + 1)  # (P, xy, 1+18)
    ts = arr[:, 0, 0]
    if not np.all((ts >= 0) & (ts <= 1)):
        raise PSCError(f"t = {ts[(ts < 0) | (ts > 1)][0]:g} is outside [0, 1]", path)
    poses = arr[:, :, 1:].transpose(0, 2, 1).copy()  # (P, 18, xy)
    poses[(poses == -1).any(-1)] = np.nan
    return ts, poses


def require_joints(pose, name="pose"):
    """A reference pose must have joints: with none, nothing ties the photo to the targets."""
    if np.isnan(np.asarray(pose, dtype=np.float32)).all():
        raise PSCError("the reference pose has no joints (all are missing)", name)
    return pose


def format_pose_csv(poses, ts=None):
    """(P, 18, 2) poses (NaN = missing) and their t -> CSV text in the original's format."""
    poses = as_pose_array(poses)
    poses = poses.reshape(-1, NUM_JOINTS, 2)
    ts = np.zeros(len(poses)) if ts is None else np.broadcast_to(np.asarray(ts, float), (len(poses),))
    lines = []
    for t, pose in zip(ts, poses):
        for axis in range(2):
            vals = ["-1" if np.isnan(v) else f"{v:.3f}" for v in pose[:, axis]]
            lines.append(",".join([f"{t:.4f}"] + vals))
    return "\n".join(lines) + "\n"


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

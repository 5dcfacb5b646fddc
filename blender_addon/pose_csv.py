"""The engine's pose CSV, written and read on the Blender side (no numpy, no engine import).

Each pose is two rows, x then y: `t, v0, ..., v17` in pixels of the 256x256 frame, -1 for a
missing joint. A pose here is a list of 18 (x, y) tuples, or None for a missing joint.
"""
import math
import os

from .joints import NUM_JOINTS


class PoseCSVError(ValueError):
    """A pose CSV the engine would refuse; the message names the file and the line."""


def pose_lines(t, pose):
    """One pose -> its two CSV lines (x row, y row), each ending in a newline."""
    return "".join(",".join([f"{t:.4f}"] + ["-1" if p is None else f"{p[axis]:.2f}" for p in pose]) + "\n"
                   for axis in (0, 1))


def format_poses(poses, ts=None):
    """Poses (and their t, default 0) -> CSV text in the engine's format."""
    ts = [0.0] * len(poses) if ts is None else list(ts)
    return "".join(pose_lines(t, pose) for t, pose in zip(ts, poses))


def write_poses(path, poses, ts=None):
    """Write atomically (temp name, then rename): a reader never sees half a file."""
    tmp = f"{path}.{os.getpid()}.partial"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(format_poses(poses, ts))
    os.replace(tmp, path)


def read_poses(path):
    """CSV -> list of poses. Raises PoseCSVError with the file and line on a malformed file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise PoseCSVError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PoseCSVError(f"{path}: cannot read ({e})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != NUM_JOINTS + 1:
            raise PoseCSVError(f"{path}: line {lineno}: expected 19 values (t and 18 joints), got {len(cells)}")
        try:
            vals = [float(c) for c in cells]
        except ValueError:
            raise PoseCSVError(f"{path}: line {lineno}: not a number") from None
        if not all(math.isfinite(v) for v in vals):
            raise PoseCSVError(f"{path}: line {lineno}: NaN or infinite value (use -1 for missing)")
        rows.append(vals[1:])
    if not rows:
        raise PoseCSVError(f"{path}: no poses in file")
    if len(rows) % 2:
        raise PoseCSVError(f"{path}: {len(rows)} rows; rows come in x/y pairs")
    poses = []
    for xs, ys in zip(rows[0::2], rows[1::2]):
        poses.append([None if (x == -1 or y == -1) else (x, y) for x, y in zip(xs, ys)])
    return poses

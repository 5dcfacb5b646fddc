"""The piecewise-affine warp: a picture of one pose moved onto another, without learning.

The target skeleton's joints (those present in both poses) and fixed anchors on the frame
border are triangulated; each target pixel maps through its triangle's affine map back into
the source: the classic skeleton-driven image warp. It is `evaluate`'s warp baseline, and the
warped source parsing is an input of AA-Net built with `warp=True` (a first guess of the
target shape that AA corrects: on real photos the warp alone scored above the first AA).
"""
from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import map_coordinates
from scipy.spatial import Delaunay

from ..formats.images import NUM_CLASSES

FRAME = 256  # poses and source pictures are in 256-frame pixels
ANCHORS = np.array([[x, y] for x in (0, 127.5, 255) for y in (0, 127.5, 255) if (x, y) != (127.5, 127.5)], np.float64)


@lru_cache(maxsize=4)
def pixel_centres(size):
    """(size * size, 2) float64: the (x, y) centres of a size x size grid's pixels in 256-frame pixels, row by row."""
    c = (np.arange(size) + 0.5) * (FRAME / size) - 0.5
    xs, ys = np.meshgrid(c, c)
    return np.stack([xs.ravel(), ys.ravel()], 1)


def source_coordinates(source_pose, target_pose, size=FRAME):
    """(18, 2) poses -> (2, size, size): for each pixel of a size x size target grid (its centre,
    in 256-frame pixels) the (row, column) of the source pixel it comes from."""
    ok = ~(np.isnan(source_pose).any(-1) | np.isnan(target_pose).any(-1))
    src = np.concatenate([source_pose[ok].astype(np.float64), ANCHORS])
    dst = np.concatenate([target_pose[ok].astype(np.float64), ANCHORS])
    dst, keep = np.unique(dst.round(3), axis=0, return_index=True)  # two joints on one spot break the mesh
    src = src[keep]
    tri = Delaunay(dst, qhull_options="QJ")
    # each triangle's affine map target -> source: src_corners (T, 3, 2) = [dst_corners 1] (T, 3, 3) @ maps (T, 3, 2)
    corners = np.concatenate([dst[tri.simplices], np.ones((len(tri.simplices), 3, 1))], 2)
    maps = np.linalg.solve(corners + 1e-9 * np.eye(3), src[tri.simplices])
    pts = pixel_centres(size)
    simplex = tri.find_simplex(pts)
    m = maps[np.where(simplex < 0, 0, simplex)]  # (P, 3, 2)
    mapped = pts[:, :1] * m[:, 0] + pts[:, 1:] * m[:, 1] + m[:, 2]  # (P, 2) source x, y
    return np.stack([mapped[:, 1].reshape(size, size), mapped[:, 0].reshape(size, size)])


def piecewise_affine_warp(image, source_pose, target_pose, order=1, size=FRAME):
    """(256, 256, 3) uint8 image of source_pose -> the same image moved onto target_pose, at
    size x size. A (256, 256) parsing warps with order=0 (nearest label), so classes never blend."""
    coords = source_coordinates(source_pose, target_pose, size)
    planes = image[..., None] if image.ndim == 2 else image  # (256, 256, C)
    out = np.stack([map_coordinates(planes[..., c].astype(np.float32), coords, order=order, mode="nearest")
                    for c in range(planes.shape[-1])], -1)
    out = out.round().clip(0, 255).astype(np.uint8)
    return out[..., 0] if image.ndim == 2 else out


def warped_onehot(parsing, source_pose, target_poses, size):
    """(256, 256) labels of source_pose, (B, 18, 2) target poses -> (B, 7, size, size) float32
    one-hot of the parsing warped onto each target pose (AA-Net's warp input)."""
    labels = np.stack([piecewise_affine_warp(np.asarray(parsing, np.uint8), source_pose, p, order=0, size=size)
                       for p in np.asarray(target_poses, np.float32)])
    return torch.nn.functional.one_hot(torch.from_numpy(labels).long(), NUM_CLASSES).permute(0, 3, 1, 2).float()

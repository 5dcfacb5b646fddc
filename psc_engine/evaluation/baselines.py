"""Non-learned baselines for `evaluate`: copy the source image, or warp it piecewise-affinely.

The piecewise-affine warp triangulates the target skeleton's joints (those present in both
poses) together with fixed anchors on the frame border, and maps each target pixel through its
triangle's affine map back into the source: the classic skeleton-driven image warp.
"""
import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial import Delaunay

ANCHORS = np.array([[x, y] for x in (0, 127.5, 255) for y in (0, 127.5, 255) if (x, y) != (127.5, 127.5)], np.float64)


def piecewise_affine_warp(image, source_pose, target_pose, order=1):
    """(256, 256, 3) uint8 image of source_pose -> the same image moved onto target_pose.
    A (256, 256) parsing warps with order=0 (nearest label), so classes never blend."""
    ok = ~(np.isnan(source_pose).any(-1) | np.isnan(target_pose).any(-1))
    src = np.concatenate([source_pose[ok].astype(np.float64), ANCHORS])
    dst = np.concatenate([target_pose[ok].astype(np.float64), ANCHORS])
    dst, keep = np.unique(dst.round(3), axis=0, return_index=True)  # two joints on one spot break the mesh
    src = src[keep]
    tri = Delaunay(dst, qhull_options="QJ")
    ys, xs = np.mgrid[0:256, 0:256]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    simplex = tri.find_simplex(pts)
    simplex = np.where(simplex < 0, 0, simplex)
    t = tri.transform[simplex]  # (P, 3, 2): barycentric transform per pixel
    bary2 = np.einsum("pij,pj->pi", t[:, :2], pts - t[:, 2])
    bary = np.concatenate([bary2, 1 - bary2.sum(1, keepdims=True)], 1)  # (P, 3)
    corners = src[tri.simplices[simplex]]  # (P, 3, 2)
    mapped = np.einsum("pk,pkd->pd", bary, corners)
    coords = [mapped[:, 1].reshape(256, 256), mapped[:, 0].reshape(256, 256)]
    planes = image[..., None] if image.ndim == 2 else image  # (256, 256, C)
    out = np.stack([map_coordinates(planes[..., c].astype(np.float32), coords, order=order, mode="nearest")
                    for c in range(planes.shape[-1])], -1)
    out = out.round().clip(0, 255).astype(np.uint8)
    return out[..., 0] if image.ndim == 2 else out

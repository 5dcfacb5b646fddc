"""Small mesh helpers in numpy: normals, sub-meshes, grids and radial extents."""
import numpy as np


def vertex_normals(verts, faces):
    """Area-weighted vertex normals (unit length)."""
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def submesh(faces, vert_mask):
    """Faces whose three corners are all in vert_mask -> (vertex ids, faces re-indexed)."""
    keep = vert_mask[faces].all(1)
    used = np.unique(faces[keep])
    remap = np.full(len(vert_mask), -1, np.int64)
    remap[used] = np.arange(len(used))
    return used, remap[faces[keep]]


def grid_faces(rows, cols, wrap=False):
    """Quads of a rows x cols vertex grid, split into triangles; wrap joins the last column to the first."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    a = r * cols + c
    b = r * cols + (c + 1) % cols
    d = (r + 1) * cols + c
    e = (r + 1) * cols + (c + 1) % cols
    return np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3), np.stack([b, d, e], -1).reshape(-1, 3)])


def radial_extent(points, center_xy, heights, band, angles, spread):
    """Max distance from a vertical axis, per (height, angle) cell, of the points near it.

    points (N, 3); heights (K,); angles (J,) radians around the axis; a point counts for a
    cell when within `band` (m) in height and `spread` (radians) in angle. Empty cells are 0.
    """
    rel = points[:, :2] - center_xy
    r = np.hypot(rel[:, 0], rel[:, 1])
    phi = np.arctan2(rel[:, 1], rel[:, 0])
    out = np.zeros((len(heights), len(angles)))
    for k, z in enumerate(heights):
        near = np.abs(points[:, 2] - z) < band
        if not near.any():
            continue
        dphi = np.abs((phi[near][:, None] - angles[None, :] + np.pi) % (2 * np.pi) - np.pi)
        cand = np.where(dphi < spread, r[near][:, None], 0.0)
        out[k] = cand.max(0)
    return out


def smooth_cols(values, passes=2, wrap=True):
    """Average each cell with its left/right neighbours (a few passes)."""
    v = values.copy()
    for _ in range(passes):
        if wrap:
            v = (np.roll(v, 1, 1) + 2 * v + np.roll(v, -1, 1)) / 4
        else:
            p = np.pad(v, ((0, 0), (1, 1)), mode="edge")
            v = (p[:, :-2] + 2 * v + p[:, 2:]) / 4
    return v

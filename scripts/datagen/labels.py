"""Exact labels: class ids from the flat label pass, and the 18 joints projected through the
camera with a visibility test.

Joint visibility: a ray from the camera to the joint must not hit the body well before the
joint. Joints lie inside the body, so "well before" allows a per-joint depth (about the limb's
radius): the first surface the ray meets may be at most that far in front of the joint. Only
the body mesh occludes (clothes and hair do not): a pose detector still finds a knee under a
skirt or an ear under hair, but not a shoulder on the far side of the chest, nor the face
from behind.
"""
import numpy as np

from .scene import LABEL_RGB

SIZE = 256  # pose CSVs are in pixels of the 256x256 frame whatever the render resolution
# Allowed depth (m) between the first body surface on the ray and the joint, per COCO-18 joint.
JOINT_DEPTH = np.array([0.03, 0.25, 0.09, 0.07, 0.06, 0.09, 0.07, 0.06, 0.12, 0.08, 0.07, 0.12, 0.08, 0.07,
                        0.025, 0.025, 0.04, 0.04])


def decode_labels(rgb):
    """(H, W, 3) uint8 label render -> (H, W) class ids (nearest of the 7 label colours)."""
    bits = (np.asarray(rgb) > 127).astype(np.int64)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    lut = np.zeros(8, np.uint8)
    for k, c in enumerate(LABEL_RGB.astype(int)):
        lut[c[0] * 4 + c[1] * 2 + c[2]] = k
    return lut[code]


def project(scene, cam, points):
    """(N, 3) world points -> (N, 2) pixels in the 256 frame (pixel centres at integers) and depth."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    out = np.array([tuple(world_to_camera_view(scene, cam, Vector(p))) for p in points])
    x = out[:, 0] * SIZE - 0.5
    y = (1.0 - out[:, 1]) * SIZE - 0.5
    return np.stack([x, y], 1), out[:, 2]


def body_bvh(verts, faces):
    from mathutils.bvhtree import BVHTree

    return BVHTree.FromPolygons(verts.tolist(), faces.tolist(), all_triangles=True)


def visible(bvh, origin, joints):
    """Per joint: True unless the body surface is hit more than JOINT_DEPTH in front of it."""
    from mathutils import Vector

    o = Vector(origin)
    vis = np.ones(len(joints), bool)
    for j, p in enumerate(joints):
        d = Vector(p) - o
        dist = d.length
        hit = bvh.ray_cast(o, d.normalized(), dist)
        if hit[0] is not None and hit[3] < dist - JOINT_DEPTH[j]:
            vis[j] = False
    return vis


def joints_2d(scene, cam, bvh, joints3d):
    """(18, 3) world joints -> (18, 2) pixels in the 256 frame, NaN where hidden or outside."""
    xy, depth = project(scene, cam, joints3d)
    vis = visible(bvh, cam.matrix_world.translation, joints3d)
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= SIZE - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= SIZE - 0.5) & (depth > 0)
    xy[~(vis & inside)] = np.nan
    return xy


def format_poses(poses, ts):
    """(P, 18, 2) poses (NaN = missing) and their t -> the original's CSV text, 2 decimals.

    Not psc_engine.poses.format_pose_csv on purpose: that one casts to float32 and writes 3
    decimals, and every rendered sample's bytes (made again from its seed) depend on this one."""
    lines = []
    for t, pose in zip(ts, poses):
        for axis in range(2):
            vals = ["-1" if np.isnan(v) else f"{v:.2f}" for v in pose[:, axis]]
            lines.append(",".join([f"{t:.2f}"] + vals))
    return "\n".join(lines) + "\n"

"""Hair as real geometry: a surface of revolution around the head, cut to a style.

The hair is built once per sample in the rest pose, around a vertical axis through the head.
Each ring (a height) holds columns at angles measured from the back of the head; a column's
radius is the body's own extent there plus the hair's thickness, never narrowing going down,
so hair falls like hair instead of following the neck. The arc of columns is a full circle
above the hairline and leaves the face open below it. Per view the hair moves rigidly with
anny's head bone. Ponytails and buns are extra meshes on the same frame.
"""
import numpy as np

from .geometry import grid_faces, smooth_cols
from .parts import HAIR, Part

HAIR_COLOURS = {  # linear RGB
    "black": (0.012, 0.010, 0.009), "dark_brown": (0.035, 0.020, 0.012), "brown": (0.09, 0.05, 0.025),
    "light_brown": (0.20, 0.12, 0.06), "blond": (0.45, 0.32, 0.16), "auburn": (0.20, 0.06, 0.025),
    "grey": (0.35, 0.34, 0.33),
}
STYLES = ("crop", "short", "bob", "shoulder", "long", "ponytail", "bun")


def sample_hair(rng, shape):
    female = shape["gender"] > 0.5
    p = [0.05, 0.08, 0.2, 0.2, 0.22, 0.15, 0.10] if female else [0.45, 0.35, 0.06, 0.06, 0.04, 0.04, 0.0]
    colours = list(HAIR_COLOURS)
    pc = np.array([0.25, 0.25, 0.18, 0.1, 0.1, 0.06, 0.06 + 0.3 * max(shape["age"] - 0.8, 0)])
    return {
        "style": str(rng.choice(STYLES, p=p)),
        "colour": str(rng.choice(colours, p=pc / pc.sum())),
        "thickness": float(rng.uniform(0.006, 0.016)),
        "volume": float(rng.uniform(0.0, 0.015)),
        "fringe": bool(rng.random() < 0.35),
        "face_open": float(rng.uniform(50, 65)),  # half-angle of the face opening, degrees
        "seed": int(rng.integers(1 << 30)),
    }


def _arc_half_angle(z, m, hair):
    """Half-width (radians) of the hair's arc at height z: full circle on top, open at the face."""
    face = np.pi - np.radians(hair["face_open"])
    hairline = m["eye_z"] + (0.02 if hair["fringe"] else 0.055)
    t = np.clip((hairline - z) / 0.03, 0, 1)
    arc = np.pi * (1 - t) + face * t
    # below the jaw the hair hangs behind the shoulders: the arc narrows to the back
    t2 = np.clip((m["chin_z"] - z) / 0.12, 0, 1)
    return arc * (1 - t2) + np.radians(62) * t2


def _length(hair, m):
    """(end height at the back, end height at the sides) for the style."""
    s = hair["style"]
    if s in ("crop", "ponytail", "bun"):
        return m["ear_z"] - 0.05, m["ear_z"] + 0.035
    if s == "short":
        return m["ear_z"] - 0.07, m["ear_z"] - 0.01
    if s == "bob":
        return m["chin_z"] - 0.01, m["chin_z"] + 0.005
    if s == "shoulder":
        return m["shoulder_z"] - 0.02, m["shoulder_z"] + 0.02
    return m["shoulder_z"] - 0.22, m["shoulder_z"] - 0.15


def _offset_extent(points, center, heights, phis, thick, spread=0.09):
    """Radius of the body grown by a ball of radius thick[k], per (ring height, hair angle).

    A vertex at height dz from the ring adds sqrt(t^2 - dz^2) to its radius, so the result is
    an offset surface all round the head, crown included, not only a horizontal push.
    """
    rel = points[:, :2] - center
    r = np.hypot(rel[:, 0], rel[:, 1])
    ang = np.arctan2(rel[:, 0], rel[:, 1])  # hair angle: 0 at the back (+Y), + towards the left (+X)
    out = np.zeros((len(heights), len(phis)))
    for k, (z, t) in enumerate(zip(heights, thick)):
        dz = points[:, 2] - z
        near = np.abs(dz) < t
        if not near.any():
            continue
        grow = r[near] + np.sqrt(t * t - dz[near] ** 2)
        # near the crown rings are small: gather from a wider angle so no cell is left empty
        wide = float(np.clip(0.015 / max(np.median(r[near]), 1e-3), spread, 1.2))
        d = np.abs((ang[near][:, None] - phis[None, :] + np.pi) % (2 * np.pi) - np.pi)
        out[k] = np.where(d < wide, grow[:, None], 0.0).max(0)
    return out


def hair_geometry(rest_verts, region, rest_joints, hair):
    """Hair vertices, faces and pattern coordinates in the rest pose."""
    j = rest_joints
    head = region == "head"
    m = {
        "eye_z": 0.5 * (j[14, 2] + j[15, 2]), "ear_z": 0.5 * (j[16, 2] + j[17, 2]),
        "shoulder_z": 0.5 * (j[2, 2] + j[5, 2]),
    }
    crown = rest_verts[head, 2].max()
    m["chin_z"] = m["eye_z"] - 0.68 * (crown - m["eye_z"])
    center = np.array([0.5 * (j[16, 0] + j[17, 0]), 0.5 * (j[16, 1] + j[17, 1]) + 0.01])
    end_back, end_side = _length(hair, m)
    th, vol = hair["thickness"], hair["volume"]
    th_top = th + vol
    z_top = crown + th_top - 0.001
    cap = np.linspace(0, 1, 10) ** 1.5 * 0.09
    heights = np.concatenate([z_top - cap, np.linspace(z_top - 0.09, min(end_back, end_side) - 0.005, 33)[1:]])
    rows, cols = len(heights), 56
    # thickness: more volume on top, thin where the hair ends
    up = np.clip((heights - m["ear_z"]) / max(crown - m["ear_z"], 1e-3), 0, 1)
    thick = th + vol * up
    near = np.isin(region, ["head", "neck", "torso"])
    pts = rest_verts[near]
    grid = np.zeros((rows, cols))
    phi = np.zeros((rows, cols))
    for k, z in enumerate(heights):
        half = _arc_half_angle(z, m, hair)
        phi[k] = np.linspace(-half, half, cols)
    # extents on a fixed angle table, then looked up per column
    table = np.linspace(-np.pi, np.pi, 96, endpoint=False)
    outer = _offset_extent(pts, center, heights, table, thick)
    inner = _offset_extent(pts, center, heights, table, np.full(rows, 0.004))
    # smooth round each ring and between rings: sparse vertices near the crown leave notches
    for _ in range(3):
        outer = np.maximum(smooth_cols(outer, 1), outer * 0.97)
        inner = smooth_cols(inner, 1)
    outer[1:-1] = np.maximum(0.25 * outer[:-2] + 0.5 * outer[1:-1] + 0.25 * outer[2:], outer[1:-1] * 0.98)
    idx = np.round((phi + np.pi) / (2 * np.pi) * 96).astype(int) % 96
    ro = np.take_along_axis(outer, idx, 1)
    ri = np.take_along_axis(inner, idx, 1)
    # below the ears hair falls: never closer to the axis than the ring above it
    below = heights < m["ear_z"]
    ro[below] = np.maximum.accumulate(np.maximum(ro[below], ro[~below][-1:] * 0 + 0.03), axis=0)
    ri[below] = np.maximum.accumulate(np.maximum(ri[below], 0.02), axis=0)
    # cut the length: columns at the sides end higher than at the back
    side = np.clip(np.abs(phi) / (np.pi / 2), 0, 1)
    end = end_back + (end_side - end_back) * side ** 1.5
    # taper: thin at the cut ends and at the edges of the face opening, like real hair
    taper = np.clip((heights[:, None] - end) / 0.035, 0.15, 1.0)
    if hair["style"] in ("shoulder", "long", "bob"):
        taper = np.maximum(taper, 0.5)
    edge = np.clip(np.minimum(np.arange(cols), cols - 1 - np.arange(cols)) / 2.0, 0.3, 1.0)
    open_rows = np.array([_arc_half_angle(z, m, hair) < np.pi - 0.01 for z in heights])
    taper = np.where(open_rows[:, None], taper * edge[None], taper)
    rng = np.random.default_rng(hair["seed"])
    wiggle = rng.normal(0, 0.004, cols) * np.clip((m["ear_z"] - heights) / 0.2, 0, 1)[:, None]
    r = ri + (ro - ri) * taper + np.abs(wiggle)
    z = np.maximum(heights[:, None].repeat(cols, 1), end)
    x = center[0] + r * np.sin(phi)
    y = center[1] + r * np.cos(phi)
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    faces = grid_faces(rows, cols)
    uv = np.stack([phi * 0.1, np.zeros_like(phi), z], -1).reshape(-1, 3)
    extra = []
    if hair["style"] == "ponytail":
        extra.append(_tube(center, m, rng, bun=False, crown=crown))
    elif hair["style"] == "bun":
        extra.append(_tube(center, m, rng, bun=True, crown=crown))
    for ev, ef, euv in extra:
        faces = np.concatenate([faces, ef + len(verts)])
        verts = np.concatenate([verts, ev])
        uv = np.concatenate([uv, euv])
    return verts, faces, uv


def _tube(center, m, rng, bun, crown):
    """A ponytail (tapered tube hanging from the back of the head) or a bun (a squashed sphere)."""
    back_y = center[1] + 0.09
    rows, cols = 16, 16
    ang = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    if bun:
        rad = rng.uniform(0.035, 0.05)
        cz = crown - rng.uniform(0.02, 0.06)
        c = np.array([center[0], back_y + rad * 0.3, cz])
        lat = np.linspace(-np.pi / 2, np.pi / 2, rows)
        p = np.stack([np.cos(lat)[:, None] * np.cos(ang)[None] * rad,
                      np.cos(lat)[:, None] * np.sin(ang)[None] * rad * 0.8 + rad * 0.4,
                      np.sin(lat)[:, None].repeat(cols, 1) * rad * 0.85], -1)
    else:
        length = rng.uniform(0.18, 0.32)
        s = np.linspace(0, 1, rows)
        top_z = m["eye_z"] + rng.uniform(0.0, 0.06)
        path = np.stack([np.full(rows, center[0]), back_y + 0.03 + 0.05 * np.sin(s * np.pi / 2),
                         top_z - length * s ** 1.2], -1)
        rad = 0.03 * (1 - 0.7 * s) + 0.006
        c = np.zeros(3)
        p = path[:, None, :] + np.stack([np.cos(ang)[None] * rad[:, None], np.sin(ang)[None] * rad[:, None] * 0.8,
                                         np.zeros((rows, cols))], -1)
    verts = (p + c).reshape(-1, 3)
    uv = np.stack([np.tile(ang, rows) * 0.05, np.zeros(rows * cols), verts[:, 2]], -1)
    return verts, grid_faces(rows, cols, wrap=True), uv


def build_hair(body, rest_verts, rest_joints, rest_bone_poses, hair, material):
    """The hair Part: rest geometry, moved per view by the head bone's rigid motion."""
    from .body import REGIONS

    region = np.array(REGIONS)[body.region]
    verts, faces, uv = hair_geometry(rest_verts, region, rest_joints, hair)
    hb = body.bone("head")
    rest_inv = np.linalg.inv(rest_bone_poses[hb])
    homog = np.concatenate([verts, np.ones((len(verts), 1))], 1)

    def place(view):
        t = view["bone_poses"][hb] @ rest_inv
        return (homog @ t.T)[:, :3]

    return Part("hair", faces, uv, place, material, np.full(len(faces), HAIR))

"""Clothes as real geometry: offset shells of the body for tops, trousers, shorts and shoes,
and a flared ring mesh for skirts and dresses.

A shell is the set of body faces inside a garment's region, pushed out along the posed body's
normals, so it follows every pose exactly. Regions are cut in the body's rest pose (anny's
A-pose) with readable rules: heights for hems and waists, the distance along the arm for
sleeves, a scoop for the neckline.
"""
import numpy as np

from .body import REGIONS
from .geometry import grid_faces, radial_extent, submesh
from .parts import LOWER, SHOES, UPPER, Part
from . import patterns


def sample_outfit(rng, family):
    """What the person wears: garment kinds, cut lengths and a material for each garment."""
    kind = rng.choice(["top_trousers", "top_shorts", "top_skirt", "dress"], p=[0.45, 0.15, 0.17, 0.23])
    top = {
        "sleeve": str(rng.choice(["none", "short", "elbow", "long"], p=[0.15, 0.4, 0.1, 0.35])),
        "neck": str(rng.choice(["round", "v", "high"], p=[0.5, 0.3, 0.2])),
        "neck_depth": float(rng.uniform(0.01, 0.07)),
        "neck_width": float(rng.uniform(0.06, 0.1)),
        "loose": float(rng.uniform(0.0, 0.012)),
        "hem": float(rng.uniform(-0.05, 0.12)),  # fraction of hip->shoulder height
        "material": patterns.sample_material(rng, family, "top"),
    }
    outfit = {"kind": str(kind), "top": top}
    if kind in ("top_trousers", "top_shorts"):
        length = "long" if kind == "top_trousers" else str(rng.choice(["shorts", "knee"], p=[0.6, 0.4]))
        outfit["bottom"] = {
            "length": length,
            "waist": float(rng.uniform(0.17, 0.3)),
            "offset": float(rng.uniform(0.006, 0.012)),
            "flare": float(rng.uniform(0.0, 0.02)),
            "material": patterns.sample_material(rng, family, "bottom"),
        }
        top["hem"] = min(top["hem"], outfit["bottom"]["waist"] - 0.06)
    else:
        outfit["skirt"] = {
            "length": str(rng.choice(["mini", "knee", "midi", "maxi"], p=[0.2, 0.35, 0.3, 0.15])),
            "waist": float(rng.uniform(0.22, 0.34)),
            "flare": float(rng.uniform(0.05, 0.45)),
            "material": top["material"] if kind == "dress" else patterns.sample_material(rng, family, "bottom"),
        }
        if kind == "dress":
            top["hem"] = outfit["skirt"]["waist"] - 0.02
        else:
            top["hem"] = min(top["hem"], outfit["skirt"]["waist"] - 0.04)
    long_trousers = outfit.get("bottom", {}).get("length") == "long"
    outfit["shoes"] = {
        "height": float(rng.uniform(-0.03, 0.03 if long_trousers else 0.07)),
        "material": patterns.sample_material(rng, family, "shoes"),
    }
    return outfit


def sample_photo_outfit(rng, family):
    """The garments of shop photos: dresses of several cuts and lengths, blouses and fitted tops
    over skirts, trousers or shorts, with cloth-like materials (patterns.sample_photo_material)."""
    kind = str(rng.choice(["dress", "top_skirt", "top_trousers", "top_shorts"], p=[0.42, 0.2, 0.28, 0.1]))
    cut = str(rng.choice(["fitted", "tee", "blouse"], p=[0.35, 0.3, 0.35])) if kind != "dress" else "dress"
    sleeves = {"dress": [0.35, 0.3, 0.1, 0.25], "fitted": [0.35, 0.3, 0.05, 0.3], "tee": [0.0, 0.75, 0.1, 0.15],
               "blouse": [0.15, 0.25, 0.2, 0.4]}[cut]
    top = {
        "cut": cut,
        "sleeve": str(rng.choice(["none", "short", "elbow", "long"], p=sleeves)),
        "neck": str(rng.choice(["round", "v", "high"], p=[0.45, 0.35, 0.2])),
        "neck_depth": float(rng.uniform(0.01, 0.09)),
        "neck_width": float(rng.uniform(0.06, 0.11)),
        "loose": float(rng.uniform(0.014, 0.03) if cut == "blouse" else rng.uniform(0.0, 0.007)),
        "hem": float(rng.uniform(-0.12, 0.05) if cut == "blouse" else rng.uniform(-0.02, 0.14)),
        "material": patterns.sample_photo_material(rng, family, "top"),
    }
    outfit = {"kind": kind, "top": top}
    if kind in ("top_trousers", "top_shorts"):
        length = "long" if kind == "top_trousers" else str(rng.choice(["shorts", "knee"], p=[0.65, 0.35]))
        outfit["bottom"] = {
            "length": length,
            "waist": float(rng.uniform(0.17, 0.32)),
            "offset": float(rng.uniform(0.006, 0.014)),
            "flare": float(rng.choice([rng.uniform(0.0, 0.02), rng.uniform(0.02, 0.07)], p=[0.6, 0.4])),
            "material": patterns.sample_photo_material(rng, family, "bottom"),
        }
        top["hem"] = min(top["hem"], outfit["bottom"]["waist"] - 0.06)
    else:
        shape = str(rng.choice(["straight", "a_line", "full"], p=[0.3, 0.45, 0.25]))
        flare = {"straight": (0.0, 0.06), "a_line": (0.08, 0.25), "full": (0.25, 0.5)}[shape]
        outfit["skirt"] = {
            "length": str(rng.choice(["mini", "knee", "midi", "maxi"], p=[0.15, 0.35, 0.35, 0.15])),
            "shape": shape,
            "waist": float(rng.uniform(0.2, 0.34)),
            "flare": float(rng.uniform(*flare)),
            # folds round the hem: count, depth (m at the hem) and phase
            "fold_count": int(rng.integers(5, 13)),
            "fold_depth": float(rng.uniform(0.004, 0.012) + (0.05 if shape == "full" else 0.02) * rng.random()),
            "fold_phase": float(rng.uniform(0, 2 * np.pi)),
            "material": top["material"] if kind == "dress" else patterns.sample_photo_material(rng, family, "bottom"),
        }
        if kind == "dress":
            top["hem"] = outfit["skirt"]["waist"] - 0.02
        else:
            top["hem"] = min(top["hem"], outfit["skirt"]["waist"] - 0.04)
    long_trousers = outfit.get("bottom", {}).get("length") == "long"
    outfit["shoes"] = {
        "height": float(rng.uniform(-0.03, 0.03 if long_trousers else 0.06)),
        "material": patterns.sample_material(rng, family, "shoes"),
    }
    return outfit


class Measures:
    """Rest-pose landmarks of one body, all in metres (anny frame)."""

    def __init__(self, rest_verts, rest_joints, rest_heads, body):
        self.v = rest_verts
        self.region = np.array(REGIONS)[body.region]
        j = rest_joints
        self.shoulder_z = 0.5 * (j[2, 2] + j[5, 2])
        self.hip_z = 0.5 * (j[8, 2] + j[11, 2])
        self.knee_z = 0.5 * (j[9, 2] + j[12, 2])
        self.ankle_z = 0.5 * (j[10, 2] + j[13, 2])
        self.neck_z = rest_heads[body.bone("neck01")][2]
        self.front_y = float(np.median(rest_verts[self.region == "torso", 1]))
        self.torso_h = self.shoulder_z - self.hip_z
        self.arm_t = np.zeros(len(rest_verts))
        for s in "LR":
            a = rest_heads[body.bone(f"upperarm01.{s}")]
            b = rest_heads[body.bone(f"wrist.{s}")]
            on = np.isin(self.region, [f"arm_{s}", f"hand_{s}"])
            axis = b - a
            self.arm_t[on] = (rest_verts[on] - a) @ axis / (axis @ axis)

    def at(self, frac):
        """Height at a fraction of the hip->shoulder distance."""
        return self.hip_z + frac * self.torso_h


def _shell(name, body, mask, offset, material, label, rest):
    idx, faces = submesh(body.faces, mask)
    off = offset[idx] if np.ndim(offset) else np.full(len(idx), offset)

    def place(view):
        return view["verts"][idx] + view["normals"][idx] * off[:, None]

    return Part(name, faces, rest[idx], place, material, np.full(len(faces), label))


def top_mask(m, top):
    reg, v = m.region, m.v
    torso = (reg == "torso") & (v[:, 2] >= m.at(top["hem"]))
    sleeve = {"none": -1.0, "short": 0.3, "elbow": 0.55, "long": 0.97}[top["sleeve"]]
    arms = np.isin(reg, ["arm_L", "arm_R"]) & (m.arm_t < sleeve)
    # Neckline: cut a scoop from the front below the base of the neck.
    x = np.abs(v[:, 0])
    front = v[:, 1] < m.front_y
    depth = top["neck_depth"] if top["neck"] != "high" else 0.0
    w = top["neck_width"]
    if top["neck"] == "v":
        scoop = depth * np.clip(1 - x / w, 0, 1) * 2.0
    else:
        scoop = depth * np.sqrt(np.clip(1 - (x / w) ** 2, 0, 1))
    cut = v[:, 2] > m.neck_z - 0.02 - np.where(front, scoop, 0.0)
    return (torso & ~cut) | arms


def bottom_mask(m, bottom):
    reg, v = m.region, m.v
    hem = {"long": m.ankle_z + 0.05, "knee": m.knee_z - 0.06, "shorts": m.knee_z + 0.14}[bottom["length"]]
    legs = np.isin(reg, ["torso", "leg_L", "leg_R"]) & (v[:, 2] <= m.at(bottom["waist"])) & (v[:, 2] >= hem)
    return legs, hem


def shoe_mask(m, shoes):
    reg, v = m.region, m.v
    return np.isin(reg, ["foot_L", "foot_R"]) | (np.isin(reg, ["leg_L", "leg_R"]) & (v[:, 2] < m.ankle_z + shoes["height"]))


def skirt_part(name, body, m, skirt, label, inner_offset):
    """A flared ring from the waist down, rebuilt around each posed body so legs stay inside."""
    z_top = m.at(skirt["waist"])
    hem = {"mini": m.hip_z - 0.16, "knee": m.knee_z + 0.02, "midi": m.knee_z - 0.17,
           "maxi": m.ankle_z + 0.09}[skirt["length"]]
    rows, cols = 14, 72
    heights = np.linspace(z_top, hem, rows)
    angles = np.linspace(-np.pi, np.pi, cols, endpoint=False)
    faces = grid_faces(rows, cols, wrap=True)
    inside = np.isin(m.region, ["torso", "leg_L", "leg_R"])
    # Rest coordinates for patterns: an unrolled cylinder (arc length, height), flat in y.
    r0 = 0.2
    rest = np.stack([np.cos(angles)[None].repeat(rows, 0) * r0, np.sin(angles)[None].repeat(rows, 0) * r0,
                     heights[:, None].repeat(cols, 1)], -1).reshape(-1, 3)

    def place(view):
        v = view["verts"]
        center = view["pelvis"][:2]
        ext = radial_extent(v[inside], center, heights, 0.03, angles, 0.12)
        ext = np.maximum.accumulate(np.maximum(ext, 0.05), axis=0)  # never tighter going down
        # blur around the ring so the cloth drapes in smooth folds rather than following each leg
        for _ in range(4):
            ext = np.maximum(ext, (np.roll(ext, 1, 1) + np.roll(ext, -1, 1)) / 2)
        drop = z_top - heights
        r = ext + inner_offset + 0.004 + skirt["flare"] * drop[:, None] * (drop[:, None] / max(drop[-1], 1e-3)) ** 0.5
        if "fold_count" in skirt:  # folds that deepen towards the hem (outwards only: legs stay inside)
            wave = 0.5 + 0.5 * np.sin(skirt["fold_count"] * angles + skirt["fold_phase"])
            r = r + skirt["fold_depth"] * (drop / max(drop[-1], 1e-3))[:, None] * wave[None]
        x = center[0] + r * np.cos(angles)[None]
        y = center[1] + r * np.sin(angles)[None]
        z = heights[:, None].repeat(cols, 1)
        return np.stack([x, y, z], -1).reshape(-1, 3)

    return Part(name, faces, rest, place, skirt["material"], np.full(len(faces), label))


def build_garments(body, m, outfit):
    """Outfit -> list of Parts (garments and shoes)."""
    parts = []
    top = outfit["top"]
    bottom_off = outfit.get("bottom", {}).get("offset", 0.008)
    top_off = bottom_off + 0.006 + top["loose"]
    parts.append(_shell("top", body, top_mask(m, top), top_off, top["material"], UPPER, m.v))
    if "bottom" in outfit:
        b = outfit["bottom"]
        mask, hem = bottom_mask(m, b)
        flare = b["flare"] * np.clip(1 - (m.v[:, 2] - hem) / 0.35, 0, 1)
        parts.append(_shell("bottom", body, mask, b["offset"] + flare, b["material"], LOWER, m.v))
    if "skirt" in outfit:
        label = UPPER if outfit["kind"] == "dress" else LOWER
        parts.append(skirt_part("skirt", body, m, outfit["skirt"], label, top_off))
    shoes = outfit["shoes"]
    parts.append(_shell("shoes", body, shoe_mask(m, shoes), 0.011, shoes["material"], SHOES, m.v))
    return parts

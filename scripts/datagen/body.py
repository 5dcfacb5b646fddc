"""The person: anny's body model, a body shape per sample, and a pose per turntable angle.

anny (Apache-2.0 code, CC0 assets) is a MakeHuman-based parametric body. Its world frame:
metres, +Z up, the person faces -Y, +X is the person's LEFT. Poses use anny's "local-ref"
parameterisation: each bone's delta rotation is given in world-aligned axes about the bone's
head, which lets a pose be written as a handful of readable angles.
"""
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# anny bones that carry the 12 limb joints of COCO-18 (see README "Skeleton for the add-on").
ARM_BONES = {"L": ("upperarm01.L", "lowerarm01.L", "wrist.L"), "R": ("upperarm01.R", "lowerarm01.R", "wrist.R")}
LEG_BONES = {"L": ("upperleg01.L", "lowerleg01.L", "foot.L"), "R": ("upperleg01.R", "lowerleg01.R", "foot.R")}

# Held-out body shapes: a box in (weight, muscle) that the train split never samples.
HELDOUT_WEIGHT = (0.56, 0.74)
HELDOUT_MUSCLE = (0.50, 0.72)


@dataclass
class BodyModel:
    """anny plus what the generator derives from it once per process."""
    model: object
    coco: object
    faces: np.ndarray  # (F, 3) int triangles
    bone_labels: list
    dominant_bone: np.ndarray  # (V,) index of the bone with the largest skinning weight
    head_faces: np.ndarray  # (F,) bool: anny's "head" segment without the neck
    region: np.ndarray  # (V,) index into REGIONS
    eye_faces: np.ndarray  # (F,) bool: the visible eyeballs

    def bone(self, name):
        return self.bone_labels.index(name)


REGIONS = ("head", "neck", "torso", "arm_L", "arm_R", "hand_L", "hand_R", "leg_L", "leg_R", "foot_L", "foot_R")


def _region_of(bone):
    if bone in ("head", "eye.L", "eye.R"):
        return "head"
    if bone.startswith("neck"):
        return "neck"
    side = bone[-1]
    if bone.startswith(("upperarm", "lowerarm")):
        return "arm_" + side
    if bone.startswith(("wrist", "finger", "metacarpal")):
        return "hand_" + side
    if bone.startswith(("upperleg", "lowerleg")):
        return "leg_" + side
    if bone.startswith(("foot", "toe")):
        return "foot_" + side
    return "torso"  # root, pelvis, spine, clavicle, shoulder


@lru_cache(maxsize=1)
def load_body_model():
    """Build anny once per process (the first build on a machine takes ~1 min, then it is cached)."""
    import torch
    import anny
    from anny.face_segmentation import get_face_segmentation_mask
    from anny.keypoints import KeypointsRegressor

    torch.set_num_threads(1)
    model = anny.Anny().to(dtype=torch.float32)
    coco = KeypointsRegressor.coco(model)
    faces = np.asarray(model.faces, dtype=np.int64)
    labels = list(model.bone_labels)
    weights = model.vertex_bone_weights.numpy()
    indices = model.vertex_bone_indices.numpy()
    dominant = indices[np.arange(len(indices)), weights.argmax(1)]
    head_seg = get_face_segmentation_mask(model, ["head", "eye_front.L", "eye_front.R"]).numpy()
    region = np.array([REGIONS.index(_region_of(labels[b])) for b in dominant])
    # The face class is the head segment minus the neck skin, which belongs to "skin".
    head_faces = head_seg & (region[faces] == REGIONS.index("head")).all(1)
    eyes = get_face_segmentation_mask(model, ["eye_front.L", "eye_front.R"]).numpy()
    return BodyModel(model, coco, faces, labels, dominant, head_faces, region, eyes)


# ---------------------------------------------------------------- shape

def sample_shape(rng, family):
    """anny phenotype values in [0, 1]. age 2/3 is a young adult, 1 is old; we keep adults."""
    while True:
        shape = {
            "gender": float(rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.7)],
                                       p=[0.45, 0.45, 0.10])),
            "age": float(rng.uniform(0.6, 0.92)),
            "muscle": float(rng.uniform(0.2, 0.85)),
            "weight": float(rng.uniform(0.15, 0.9)),
            "height": float(rng.uniform(0.0, 1.0)),
            "proportions": float(rng.uniform(0.15, 0.85)),
        }
        inside = (HELDOUT_WEIGHT[0] <= shape["weight"] <= HELDOUT_WEIGHT[1]
                  and HELDOUT_MUSCLE[0] <= shape["muscle"] <= HELDOUT_MUSCLE[1])
        if family == "heldout":
            shape["weight"] = float(rng.uniform(*HELDOUT_WEIGHT))
            shape["muscle"] = float(rng.uniform(*HELDOUT_MUSCLE))
            return shape
        if not inside:
            return shape


# ---------------------------------------------------------------- pose

def rotation(axis, degrees):
    """Rotation matrix about a unit axis (right-hand rule)."""
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    a = math.radians(degrees)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * (k @ k)


# Angle names and their per-view wobble amplitude (degrees): a real turn is not rigid.
POSE_ANGLES = {
    "arm_down_L": 3, "arm_down_R": 3, "arm_flex_L": 4, "arm_flex_R": 4, "elbow_L": 5, "elbow_R": 5,
    "leg_out_L": 1.5, "leg_out_R": 1.5, "leg_flex_L": 3, "leg_flex_R": 3, "knee_L": 2, "knee_R": 2,
    "spine_twist": 3, "spine_lean": 1.5, "head_yaw": 5, "head_pitch": 3, "head_roll": 2,
}


def sample_pose(rng):
    """A base pose for the sample plus smooth per-angle wobbles (sin of the turntable angle)."""
    style = rng.choice(["relaxed", "open", "hands_front", "mixed"], p=[0.4, 0.25, 0.15, 0.2])
    base = {}
    for s in "LR":
        kind = style if style != "mixed" else rng.choice(["relaxed", "open", "hands_front"])
        if kind == "relaxed":
            down, flex, elbow = rng.uniform(28, 40), rng.uniform(-12, 8), rng.uniform(0, 30)
        elif kind == "open":
            down, flex, elbow = rng.uniform(8, 28), rng.uniform(-15, 10), rng.uniform(0, 25)
        else:
            down, flex, elbow = rng.uniform(26, 38), rng.uniform(-35, -12), rng.uniform(35, 75)
        base[f"arm_down_{s}"], base[f"arm_flex_{s}"], base[f"elbow_{s}"] = down, flex, elbow
        base[f"leg_out_{s}"] = rng.uniform(-1, 7)
        base[f"leg_flex_{s}"] = rng.uniform(-10, 6)
        base[f"knee_{s}"] = rng.uniform(0, 10)
    base["spine_twist"] = rng.uniform(-6, 6)
    base["spine_lean"] = rng.uniform(-3, 3)
    base["head_yaw"] = rng.uniform(-12, 12)
    base["head_pitch"] = rng.uniform(-8, 6)
    base["head_roll"] = rng.uniform(-4, 4)
    wobble = {k: (amp * rng.uniform(0.4, 1.0), rng.uniform(0, 2 * math.pi), amp * rng.uniform(0, 0.5),
                  rng.uniform(0, 2 * math.pi)) for k, amp in POSE_ANGLES.items()}
    return {"style": str(style), "base": base, "wobble": wobble}


def angles_at(pose, theta_deg):
    """The pose's angles at turntable angle theta: base + a smooth periodic wobble."""
    th = math.radians(theta_deg)
    out = {}
    for k, v in pose["base"].items():
        a1, p1, a2, p2 = pose["wobble"][k]
        out[k] = v + a1 * math.sin(th + p1) + a2 * math.sin(2 * th + p2)
    return out


def _hinge(rest_heads, body, a, b, forward=(0.0, -1.0, 0.0)):
    """Hinge axis of a limb segment a->b: bends so the far end moves forward (-Y)."""
    d = rest_heads[body.bone(b)] - rest_heads[body.bone(a)]
    axis = np.cross(d, forward)
    return axis / np.linalg.norm(axis)


def pose_matrices(body, rest_heads, angles, arm_lift=None):
    """Angles -> (bones, 4, 4) anny local-ref delta transforms."""
    arm_lift = arm_lift or {"L": 0.0, "R": 0.0}
    n = len(body.bone_labels)
    m = np.tile(np.eye(4), (n, 1, 1))

    def put(bone, r):
        m[body.bone(bone), :3, :3] = r

    for s, sign in (("L", 1.0), ("R", -1.0)):
        upper, lower, _ = ARM_BONES[s]
        down = angles[f"arm_down_{s}"] - arm_lift[s]
        # +Y rotation brings the left arm down from anny's A-pose (the right arm mirrors it).
        put(upper, rotation((1, 0, 0), angles[f"arm_flex_{s}"]) @ rotation((0, 1, 0), sign * down))
        put(lower, rotation(_hinge(rest_heads, body, upper, lower), -angles[f"elbow_{s}"]))
        uleg, lleg, _ = LEG_BONES[s]
        put(uleg, rotation((1, 0, 0), angles[f"leg_flex_{s}"]) @ rotation((0, 1, 0), -sign * angles[f"leg_out_{s}"]))
        # The knee bends the shin backwards: the opposite sense to the elbow's forward bend.
        put(lleg, rotation(_hinge(rest_heads, body, uleg, lleg), angles[f"knee_{s}"]))
    put("spine03", rotation((0, 0, 1), angles["spine_twist"]) @ rotation((0, 1, 0), angles["spine_lean"]))
    put("head", rotation((0, 0, 1), angles["head_yaw"]) @ rotation((1, 0, 0), angles["head_pitch"])
        @ rotation((0, 1, 0), angles["head_roll"]))
    return m


# ---------------------------------------------------------------- forward

COCO_TO_OPENPOSE = {  # OpenPose COCO-18 index -> anny COCO label ("right" = the person's right)
    0: "nose", 2: "right_shoulder", 3: "right_elbow", 4: "right_wrist", 5: "left_shoulder",
    6: "left_elbow", 7: "left_wrist", 8: "right_hip", 9: "right_knee", 10: "right_ankle", 11: "left_hip",
    12: "left_knee", 13: "left_ankle", 14: "right_eye", 15: "left_eye", 16: "right_ear", 17: "left_ear",
}


def forward(body, shape, matrices):
    """Pose a batch: shape dict + (B, bones, 4, 4) -> dict of numpy arrays.

    vertices (B, V, 3), joints (B, 18, 3) in OpenPose order (neck = shoulder midpoint),
    bone_poses (B, bones, 4, 4), rest_vertices (V, 3), rest_bone_poses (bones, 4, 4),
    rest_joints (18, 3).
    """
    import torch

    b = len(matrices)
    with torch.no_grad():
        out = body.model(pose_parameters=torch.as_tensor(np.asarray(matrices), dtype=torch.float32),
                         phenotype_kwargs={k: torch.full((b,), float(v)) for k, v in shape.items()})
        kp = body.coco(out).numpy()
        rest_kp = body.coco({"vertices": out["rest_vertices"][:1]}).numpy()[0]

    def to18(k):
        j = np.zeros(k.shape[:-2] + (18, 3), np.float64)
        for i, name in COCO_TO_OPENPOSE.items():
            j[..., i, :] = k[..., body.coco.labels.index(name), :]
        j[..., 1, :] = 0.5 * (j[..., 2, :] + j[..., 5, :])
        return j

    return {
        "vertices": out["vertices"].numpy().astype(np.float64),
        "joints": to18(kp),
        "bone_poses": out["bone_poses"].numpy().astype(np.float64),
        "rest_vertices": out["rest_vertices"][0].numpy().astype(np.float64),
        "rest_bone_poses": out["rest_bone_poses"][0].numpy().astype(np.float64),
        "rest_bone_heads": out["rest_bone_heads"][0].numpy().astype(np.float64),
        "rest_joints": to18(rest_kp),
        "coco": kp,
    }


def arm_penetration(body, verts, side, margin=0.012):
    """How far (m) the forearm/hand of one side reaches into the torso or legs, 0 if clear.

    Binned test: in each (height, depth) cell, the arm's innermost |x| must stay outside the
    body's outermost |x| on that side, plus a margin.
    """
    reg = body.region
    sign = 1.0 if side == "L" else -1.0
    lower = [body.bone(n) for n in body.bone_labels if n.startswith("lowerarm") and n.endswith(side)]
    arm = np.isin(body.dominant_bone, lower) | (reg == REGIONS.index("hand_" + side))
    trunk = np.isin(reg, [REGIONS.index(r) for r in ("torso", "leg_L", "leg_R")])
    x = verts[:, 0] * sign
    trunk &= x > 0
    cell = np.floor(verts[:, 2] / 0.03).astype(int) * 1000 + np.floor(verts[:, 1] / 0.04).astype(int)
    keys, inv = np.unique(cell, return_inverse=True)
    body_max = np.full(len(keys), -np.inf)
    np.maximum.at(body_max, inv[trunk], x[trunk])
    arm_min = np.full(len(keys), np.inf)
    np.minimum.at(arm_min, inv[arm], x[arm])
    depth = body_max + margin - arm_min
    depth = depth[np.isfinite(depth)]
    return float(max(depth.max(initial=0.0), 0.0))

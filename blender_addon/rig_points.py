"""World positions of the 18 joints on an evaluated armature, and which face joints face the camera.

A joint comes from a bone's head or tail, from an object (an empty), or - for the nose, eyes and
ears of a rig without face bones - from the head bone and the way the face points. The face
direction is learnt once from the rest pose (the shoulders give the person's right, the head bone
gives up) and stored in the head bone's own axes, so it turns with the head in every frame.
"""
from dataclasses import dataclass

from mathutils import Vector

from .joints import BODY, FACE_SIDE, JOINTS, LABELS

# Face points from the head bone (its head sits on the neck, its tail at the crown), in head-bone
# lengths along (up, forward, person's right). Measured on Rigify's human meta-rig.
FACE_OFFSETS = {
    "nose": (0.32, 0.86, 0.0),
    "r_eye": (0.56, 0.50, 0.26), "l_eye": (0.56, 0.50, -0.26),
    "r_ear": (0.40, 0.00, 0.46), "l_ear": (0.40, 0.00, -0.46),
}
# Visibility thresholds on dot products with the unit vector from the head to the camera.
NOSE_MIN_FACING = -0.2  # the nose tip stays visible a little past profile
EYE_MIN = 0.1  # eye: facing + 0.6 * its side must point at the camera
EAR_MIN = -0.3  # ear: its side may turn away a little (frontal views show both ears)


class RigError(ValueError):
    """The mapping does not fit the rig well enough to go on; the message lists what and what to do."""


@dataclass
class JointSource:
    kind: str = "BONE"  # BONE, OBJECT, HEAD (from the head bone), NONE (always missing)
    bone: str = ""
    end: str = "HEAD"  # HEAD or TAIL of the bone
    obj: object = None  # a bpy Object for kind OBJECT


@dataclass
class HeadFrame:
    """The head in world space for one frame: centre and unit up / forward / right directions."""
    center: Vector
    up: Vector
    forward: Vector
    right: Vector


# Without these the person cannot be placed or scaled: a rig missing one of them is refused.
TORSO = ("neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip")


def mapping_problems(arm, sources, head_bone):
    """[(joint, what)] for every joint whose bone, object or head bone is missing on this rig."""
    bones = arm.data.bones
    problems = []
    for joint, src in zip(JOINTS, sources):
        if src.kind == "BONE" and src.bone not in bones:
            problems.append((joint, f"bone {src.bone!r} not in the rig" if src.bone else "no bone set"))
        elif src.kind == "OBJECT" and src.obj is None:
            problems.append((joint, "no object set"))
        elif src.kind == "HEAD" and head_bone not in bones:
            problems.append((joint, f"head bone {head_bone!r} not in the rig" if head_bone else "no head bone set"))
    return problems


def check_mapping(arm, sources, head_bone):
    """(usable sources, warning): joints the rig cannot give become missing (NONE) with a warning
    naming them; a missing torso joint (neck, shoulders, hips) raises RigError instead."""
    problems = mapping_problems(arm, sources, head_bone)
    torso = [(j, what) for j, what in problems if j in TORSO]
    if torso:
        raise RigError(f"Rig '{arm.name}' has no bone for " + ", ".join(f"{LABELS[JOINTS.index(j)]} ({w})" for j, w in torso)
                       + ": PSC needs the neck, both shoulders and both hips; pick their bones in the PSC panel "
                       "(Rig > Show joints) or choose another preset")
    if not problems:
        return list(sources), ""
    bad = {j for j, _ in problems}
    usable = [JointSource("NONE") if j in bad else src for j, src in zip(JOINTS, sources)]
    warning = (f"Rig '{arm.name}' has no bone for " + ", ".join(f"{LABELS[JOINTS.index(j)]} ({w})" for j, w in problems)
               + ": written as missing (-1) in every frame; map them in the PSC panel (Rig > Show joints), "
               "or set them to Missing")
    return usable, warning


class RigPoints:
    def __init__(self, arm, sources, head_bone):
        self.sources, self.warning = check_mapping(arm, sources, head_bone)
        self.head_bone = head_bone if head_bone in arm.data.bones else ""
        self.fwd_local = self.right_local = None
        if self.head_bone:
            self._learn_face_direction(arm)

    def _rest_point(self, arm, joint):
        src = self.sources[JOINTS.index(joint)]
        if src.kind != "BONE":
            return None
        b = arm.data.bones[src.bone]
        return b.head_local if src.end == "HEAD" else b.tail_local

    def _learn_face_direction(self, arm):
        bone = arm.data.bones[self.head_bone]
        up = (bone.tail_local - bone.head_local).normalized()
        right = Vector((-1.0, 0.0, 0.0))  # Blender's convention: characters face -Y, their right at -X
        for r, l in (("r_shoulder", "l_shoulder"), ("r_hip", "l_hip")):
            pr, pl = self._rest_point(arm, r), self._rest_point(arm, l)
            if pr is not None and pl is not None and (pr - pl).length > 1e-6:
                right = (pr - pl).normalized()
                break
        right = (right - up * right.dot(up)).normalized()
        forward = up.cross(right)
        to_local = bone.matrix_local.to_3x3().inverted()
        self.fwd_local = to_local @ forward
        self.right_local = to_local @ right

    def _posed_head(self, arm_eval):
        """Head bone in armature space: (origin, length, up, forward, right)."""
        pb = arm_eval.pose.bones[self.head_bone]
        rot = pb.matrix.to_3x3()
        up = pb.tail - pb.head
        return (pb.head.copy(), up.length, up.normalized(),
                (rot @ self.fwd_local).normalized(), (rot @ self.right_local).normalized())

    def head_frame(self, arm_eval, posed=None):
        """The posed head in world space, or None without a head bone."""
        if not self.head_bone:
            return None
        origin, length, up, fwd, right = posed or self._posed_head(arm_eval)
        mw = arm_eval.matrix_world
        m3 = mw.to_3x3()
        return HeadFrame(mw @ (origin + up * (0.5 * length)), (m3 @ up).normalized(),
                         (m3 @ fwd).normalized(), (m3 @ right).normalized())

    def world_points(self, arm_eval, depsgraph):
        """18 world positions (None for NONE joints) and the HeadFrame (or None)."""
        posed = self._posed_head(arm_eval) if self.head_bone else None
        head = self.head_frame(arm_eval, posed)
        mw = arm_eval.matrix_world
        pts = []
        for joint, src in zip(JOINTS, self.sources):
            if src.kind == "BONE":
                pb = arm_eval.pose.bones[src.bone]
                pts.append(mw @ (pb.head if src.end == "HEAD" else pb.tail))
            elif src.kind == "OBJECT":
                pts.append(src.obj.evaluated_get(depsgraph).matrix_world.translation.copy())
            elif src.kind == "HEAD" and posed is not None and joint in FACE_OFFSETS:
                origin, length, up, fwd, right = posed
                a, b, c = FACE_OFFSETS[joint]
                pts.append(mw @ (origin + length * (a * up + b * fwd + c * right)))
            else:
                pts.append(None)
        return pts, head


def face_visible(joint, head, to_camera):
    """Would a 2D detector see this face joint? to_camera: unit vector from the head to the camera.

    Body joints are always visible here; the far eye and ear in profile and the whole face seen
    from behind are not.
    """
    if joint in BODY or head is None:
        return True
    facing = head.forward.dot(to_camera)
    side = FACE_SIDE[joint] * head.right.dot(to_camera)
    if joint == "nose":
        return facing > NOSE_MIN_FACING
    if joint.endswith("_eye"):
        return facing + 0.6 * side > EYE_MIN
    return side > EAR_MIN

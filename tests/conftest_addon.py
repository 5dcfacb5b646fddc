"""Helpers for the add-on tests: the add-on enabled in real bpy, a clean file per test, small rigs.

Imported by tests/test_addon*.py (tests/ is on sys.path under pytest's default import mode).
The rigs are built here, bone by bone, with the naming of Rigify, Mixamo or MakeHuman, so
preset detection is tested on names, not on files.
"""
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402  (comes with bpy)

ADDON = "blender_addon"

# Role -> (head, tail, parent). Person faces -Y, their left at +X, 1.83 m tall, arms in an A-pose.
SKELETON = {
    "hips": ((0, 0, 0.95), (0, 0, 1.10), None),
    "spine": ((0, 0, 1.10), (0, 0, 1.45), "hips"),
    "neck": ((0, 0, 1.45), (0, 0, 1.60), "spine"),
    "head": ((0, 0, 1.60), (0, 0, 1.83), "neck"),
    "upperarm.L": ((0.18, 0, 1.42), (0.30, 0, 1.17), "spine"),
    "forearm.L": ((0.30, 0, 1.17), (0.38, 0, 0.93), "upperarm.L"),
    "hand.L": ((0.38, 0, 0.93), (0.41, 0, 0.84), "forearm.L"),
    "thigh.L": ((0.10, 0, 0.93), (0.10, 0, 0.50), "hips"),
    "shin.L": ((0.10, 0, 0.50), (0.10, 0, 0.08), "thigh.L"),
    "foot.L": ((0.10, 0, 0.08), (0.10, -0.13, 0.02), "shin.L"),
}
for _role in [r for r in SKELETON if r.endswith(".L")]:
    _h, _t, _p = SKELETON[_role]
    SKELETON[_role[:-2] + ".R"] = ((-_h[0], _h[1], _h[2]), (-_t[0], _t[1], _t[2]),
                                   _p[:-2] + ".R" if _p and _p.endswith(".L") else _p)

STYLES = {
    "rigify": {"hips": "spine", "spine": "spine.003", "neck": "spine.004", "head": "spine.006",
               "upperarm": "upper_arm", "forearm": "forearm", "hand": "hand",
               "thigh": "thigh", "shin": "shin", "foot": "foot", "side": ".{S}"},
    "mixamo": {"hips": "mixamorig:Hips", "spine": "mixamorig:Spine", "neck": "mixamorig:Neck",
               "head": "mixamorig:Head", "upperarm": "mixamorig:{Side}Arm", "forearm": "mixamorig:{Side}ForeArm",
               "hand": "mixamorig:{Side}Hand", "thigh": "mixamorig:{Side}UpLeg", "shin": "mixamorig:{Side}Leg",
               "foot": "mixamorig:{Side}Foot", "side": ""},
    "makehuman": {"hips": "root", "spine": "spine03", "neck": "neck01", "head": "head",
                  "upperarm": "upperarm01", "forearm": "lowerarm01", "hand": "wrist",
                  "thigh": "upperleg01", "shin": "lowerleg01", "foot": "foot", "side": ".{S}"},
}


def bone_name(style, role):
    names = STYLES[style]
    base, _, side = role.partition(".")
    if not side:
        return names[base]
    full = {"L": "Left", "R": "Right"}[side]
    return (names[base] + names["side"]).format(S=side, Side=full)


def build_rig(style="rigify", name="Rig", extra_bones=()):
    """An armature in the scene with the style's bone names. extra_bones: (name, head, tail, parent name)."""
    arm = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    for role, (head, tail, _) in SKELETON.items():
        eb = arm.edit_bones.new(bone_name(style, role))
        eb.head, eb.tail = head, tail
    for role, (_, _, parent) in SKELETON.items():
        if parent:
            arm.edit_bones[bone_name(style, role)].parent = arm.edit_bones[bone_name(style, parent)]
    for bname, head, tail, parent in extra_bones:
        eb = arm.edit_bones.new(bname)
        eb.head, eb.tail = head, tail
        if parent:
            eb.parent = arm.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


def add_camera(ortho=False, location=(0.0, -3.6, 0.95), lens=50.0, name="Cam"):
    """A camera looking along +Y at the rig, made the scene camera."""
    data = bpy.data.cameras.new(name)
    data.lens = lens
    if ortho:
        data.type, data.ortho_scale = "ORTHO", 2.4
    cam = bpy.data.objects.new(name, data)
    cam.location = location
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    return cam


def animate_arm_swing(rig, style, frames=10):
    """Keyframes: the left upper arm swings forward and back over `frames` frames."""
    pb = rig.pose.bones[bone_name(style, "upperarm.L")]
    pb.rotation_mode = "XYZ"
    for f, angle in ((1, 0.0), (1 + frames // 2, 0.8), (frames, -0.3)):
        pb.rotation_euler = (angle, 0.0, 0.0)
        pb.keyframe_insert("rotation_euler", frame=f)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, frames


def fresh_file():
    """An empty file with one scene; the add-on stays registered across file loads."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 256
    scene.render.resolution_percentage = 100
    return scene


def enable_addon():
    if ADDON not in bpy.context.preferences.addons:
        addon_utils.enable(ADDON, default_set=True)
    return sys.modules[ADDON]


@pytest.fixture
def addon():
    """The add-on enabled, in a fresh empty file."""
    mod = enable_addon()
    fresh_file()
    yield mod
    job = mod.operators.running_job()
    if job is not None:
        job.cancel(bpy.context)


def write_inputs(folder):
    """A drawn photo, its parsing and pose, from the engine's example helper; returns their paths."""
    from psc_engine.bench import example_inputs
    from psc_engine.images import write_png
    from psc_engine.poses import write_pose_csv

    image, parsing, pose, _ = example_inputs(2)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "I0.png", folder / "S0.png", folder / "P0.csv"
    write_png(paths[0], image)
    write_png(paths[1], parsing)
    write_pose_csv(paths[2], pose[None])
    return tuple(str(p) for p in paths)


def configure(scene, rig, inputs, out_dir, **kw):
    """Point the scene's PSC settings at a rig, the inputs and an output folder."""
    s = scene.psc
    s.armature = rig
    s.image, s.parsing, s.pose_csv = inputs
    s.output_dir = str(out_dir)
    s.reference_frame = scene.frame_start
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def set_prefs(**kw):
    p = bpy.context.preferences.addons[ADDON].preferences
    for k, v in kw.items():
        setattr(p, k, v)
    return p

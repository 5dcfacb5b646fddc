"""Helpers for the add-on tests: the add-on enabled in real bpy, a clean file per test, small rigs.

Imported by tests/test_addon*.py (tests/ is on sys.path under pytest's default import mode).
The rigs are built here, bone by bone, with the naming of Rigify, Mixamo or MakeHuman, so
preset detection is tested on names, not on files.
"""
import math
import sys
import tempfile
import time
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
def private_tmp(tmp_path, monkeypatch):
    """The add-on's temp folder (job folders, an unsaved .blend's `//`) inside this test's tmp_path."""
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def addon(private_tmp):
    """The add-on enabled, in a fresh empty (never saved) file, with a private temp folder."""
    mod = enable_addon()
    fresh_file()
    yield mod
    job = mod.operators.running_job()
    if job is not None:
        job.cancel(bpy.context)


def write_inputs(folder):
    """A drawn photo, its parsing and pose, from the engine's example helper; returns their paths."""
    from psc_engine.evaluation.bench import example_inputs
    from psc_engine.formats.images import write_png
    from psc_engine.formats.poses import write_pose_csv

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


# --- a fake engine and helpers for runs -------------------------------------------------------

FAKE_MAIN = r"""
import json, os, shutil, sys, time
command, args = sys.argv[1], sys.argv[2:]  # python -m psc_engine <command> <args>
def opt(name):
    return args[args.index(name) + 1] if name in args else None
if os.environ.get("PSC_FAKE_LOG"):
    with open(os.environ["PSC_FAKE_LOG"], "w") as f:
        json.dump(sys.argv[1:], f)
if os.environ.get("PSC_FAKE_FAIL"):
    print("Traceback (most recent call last):\n  File 'x.py'\nValueError: boom", file=sys.stderr)
    print("psc: error: " + os.environ["PSC_FAKE_FAIL"], file=sys.stderr)
    sys.exit(2)
delay = float(os.environ.get("PSC_FAKE_DELAY", "0"))
if command == "prepare":  # the photo copied as I0, S0 and overlay; a fixed P0
    out, stem = opt("--out"), opt("--stem")
    time.sleep(delay)
    for sub in ("I0", "S0", "overlay"):
        os.makedirs(os.path.join(out, sub))
        shutil.copy(opt("--image"), os.path.join(out, sub, stem + ".png"))
    os.makedirs(os.path.join(out, "P0"))
    with open(os.path.join(out, "P0", stem + ".csv"), "w") as f:
        f.write("0," + ",".join([str(100 + 7 * i) for i in range(9)] + ["-1"] * 9) + "\n"
                "0," + ",".join([str(60 + 13 * i) for i in range(9)] + ["-1"] * 9) + "\n")
    print("psc: warning: fake photo nets", file=sys.stderr)
    print("prepared " + stem)
    sys.exit(0)
out = opt("--output_dir")
if opt("--poses"):
    n = sum(1 for line in open(opt("--poses")) if line.strip()) // 2
else:
    n = int(opt("--key_frames").split(",")[-1])
os.makedirs(out)
print("loading the nets")
print(json.dumps({"event": "start", "total": n}), flush=True)
for i in range(1, n + 1):
    dst = os.path.join(out, "frame_%05d.png" % i)
    shutil.copy(opt("--image"), dst + ".tmp")
    os.replace(dst + ".tmp", dst)
    print(json.dumps({"event": "frame", "done": i, "total": n, "path": dst}), flush=True)
    time.sleep(delay)
print(json.dumps({"event": "done", "total": n, "output_dir": out}), flush=True)
"""


@pytest.fixture
def prefs_reset(addon):
    yield
    set_prefs(python_path="", engine_dir="", weights_dir="")


@pytest.fixture
def fake_engine(tmp_path, prefs_reset):
    """A stand-in psc_engine package (FAKE_MAIN) set as the engine folder in the preferences."""
    pkg = tmp_path / "fake_engine" / "psc_engine"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(FAKE_MAIN)
    set_prefs(engine_dir=str(pkg.parent))
    return pkg.parent


@pytest.fixture
def scene10(addon, tmp_path):
    """A 10-frame arm swing on a Mixamo-named rig, a camera, drawn inputs, output in tmp/out."""
    scene = bpy.context.scene
    rig = build_rig("mixamo")
    add_camera()
    animate_arm_swing(rig, "mixamo", frames=10)
    inputs = write_inputs(tmp_path / "inputs")
    configure(scene, rig, inputs, tmp_path / "out", batch_size=4)
    return scene


def generate(op="generate_clip"):
    """Run an engine operator (synchronous here); returns (result, the report shown in the panel)."""
    try:
        result = getattr(bpy.ops.psc, op)()
    except RuntimeError:  # background mode raises on an ERROR report
        result = {"CANCELLED"}
    return result, bpy.context.window_manager.psc_run.last_report


def strips(scene=None):
    """The sequencer's strips collection (the scene's sequence editor is created if missing):
    `sequence_editor.strips` from Blender 4.4 on, `sequences` before it (removed in 5.0)."""
    se = (scene or bpy.context.scene).sequence_editor_create()
    return se.strips if bpy.app.version >= (4, 4, 0) else se.sequences


def all_strips():
    """Every strip in the scene's sequencer, [] when it has none (the sequence editor is not created)."""
    return list(strips()) if bpy.context.scene.sequence_editor else []


def psc_strips():
    """The add-on's own strips (tagged `psc_clip`)."""
    return [s for s in all_strips() if s.get("psc_clip")]


def leftovers(root):
    """Anything a cancelled or failed run might have left: output and partial folders, job folders,
    temp files (the add-on's temp folder is private to the test, see private_tmp)."""
    found = [str(p) for p in Path(root).glob("out*")]
    found += [str(p) for p in Path(tempfile.gettempdir()).rglob("*")]
    return found


def run_until_first_frame(tmp_path, timeout=120, budget=0.5):
    """Start a ClipJob and step it until the engine has written its first frame."""
    from blender_addon.clip_job import ClipJob

    job = ClipJob(bpy.context)
    t0 = time.time()
    while not (job.phase == "engine" and job.status.startswith("Frame")):
        assert job.phase in ("project", "engine"), job.error
        job.step(bpy.context, budget=budget, wait=0.1)
        assert time.time() - t0 < timeout
    assert Path(job.partial).is_dir() and list(Path(job.partial).glob("frame_*.png"))
    return job


# --- UI code: drawn against a recording layout (no UI event loop in bpy) -----------------------

ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class RecordingLayout:
    """Checks every prop/operator/icon the UI names exists in this Blender, the way Blender would when drawing."""

    def __init__(self, log):
        self.log = log
        self.alert = False

    def _sub(self, *args, **kw):
        return RecordingLayout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, (type(data).__name__, name)
        assert kw.get("icon", "NONE") in ICONS, kw["icon"]
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kw):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.log.append(("prop_search", name))

    def operator(self, idname, **kw):
        mod, _, op = idname.partition(".")
        assert hasattr(getattr(bpy.types, f"{mod.upper()}_OT_{op}"), "bl_idname"), idname
        assert kw.get("icon", "NONE") in ICONS, kw["icon"]
        self.log.append(("operator", idname))

    def label(self, **kw):
        assert kw.get("icon", "NONE") in ICONS, kw["icon"]
        self.log.append(("label", kw.get("text", "")))

    def progress(self, **kw):
        self.log.append(("progress", kw.get("factor")))

    def separator(self, **kw):
        pass

    def template_icon(self, icon_value, scale=1.0):
        assert isinstance(icon_value, int) and scale > 0
        self.log.append(("template_icon", icon_value))


def draw_panels(mod):
    """Draw both PSC panels against a RecordingLayout; returns the log of what they drew."""
    log = []
    for panel in (mod.panel.PSC_PT_main, mod.panel.PSC_PT_sequencer):
        panel.draw(type("P", (), {"layout": RecordingLayout(log)})(), bpy.context)
    return log

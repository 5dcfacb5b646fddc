"""The Blender add-on in real bpy, without the engine: registration, rig presets, projection,
Export poses, output folders, the sequencer strip and the MP4 render."""
import math
import os

import pytest

from conftest_addon import (ADDON, add_camera, addon, animate_arm_swing, bone_name, build_rig, bpy,  # noqa: F401
                            RecordingLayout, draw_panels, enable_addon, private_tmp, strips)

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

BODY_ROLES = {  # joint -> skeleton role in conftest_addon.SKELETON
    "neck": "neck", "r_shoulder": "upperarm.R", "r_elbow": "forearm.R", "r_wrist": "hand.R",
    "l_shoulder": "upperarm.L", "l_elbow": "forearm.L", "l_wrist": "hand.L", "r_hip": "thigh.R",
    "r_knee": "shin.R", "r_ankle": "foot.R", "l_hip": "thigh.L", "l_knee": "shin.L", "l_ankle": "foot.L",
}


def hand_projection(scene, cam, world):
    """The joint's pixel in the photo frame, computed here from world_to_camera_view."""
    u, v, _ = world_to_camera_view(scene, cam, world)
    r = scene.render
    w, h = r.resolution_x * r.pixel_aspect_x, r.resolution_y * r.pixel_aspect_y
    side = min(w, h)
    return (128 + (u - 0.5) * w * 256 / side - 0.5, 128 - (v - 0.5) * h * 256 / side - 0.5)


def project_now(addon, scene, rig, frame=None):
    s = scene.psc
    track_rig = addon.rig_points.RigPoints(rig, addon.props.joint_sources(s), s.head_bone)
    return addon.projection.pose_at_frame(bpy.context, track_rig, rig, scene.frame_current if frame is None else frame)


# --- registration ---------------------------------------------------------------------------

def test_register_unregister_leaves_nothing(addon):
    classes = [c for m in (addon.props, addon.prefs, addon.operators, addon.panel) for c in m.CLASSES]
    assert all(c.is_registered for c in classes)
    assert hasattr(bpy.types.Scene, "psc") and hasattr(bpy.types.WindowManager, "psc_run")
    import addon_utils

    addon_utils.disable(ADDON, default_set=True)
    try:
        assert not [c for c in classes if c.is_registered]
        assert not [n for n in dir(bpy.types) if n.startswith("PSC_")]
        assert not hasattr(bpy.types.Scene, "psc") and not hasattr(bpy.types.WindowManager, "psc_run")
        assert ADDON not in bpy.context.preferences.addons
        handlers = list(bpy.app.handlers.render_complete) + list(bpy.app.handlers.render_cancel)
        assert not [h for h in handlers if getattr(h, "psc_restore", False)]
        assert not [h for h in bpy.app.handlers.load_pre if h.__module__.startswith(ADDON)]
    finally:
        enable_addon()
    assert hasattr(bpy.types, "PSC_OT_generate_clip")  # registers again cleanly


# --- presets --------------------------------------------------------------------------------

@pytest.mark.parametrize("style,preset", [("rigify", "RIGIFY_META"), ("mixamo", "MIXAMO"), ("makehuman", "MAKEHUMAN")])
def test_preset_detected_from_bone_names(addon, style, preset):
    rig = build_rig(style)
    s = bpy.context.scene.psc
    s.armature = rig  # setting the armature detects the preset
    assert s.preset == preset
    assert s.head_bone == bone_name(style, "head")
    maps = {j.joint: j for j in s.joints}
    for joint, role in BODY_ROLES.items():
        assert (maps[joint].source, maps[joint].bone, maps[joint].end) == ("BONE", bone_name(style, role), "HEAD")
    # No face bones in these rigs: the face joints come from the head bone.
    assert {maps[j].source for j in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")} == {"HEAD"}


def test_presets_on_name_lists(addon):
    presets = addon.presets
    mixamo1 = ["mixamorig1:Hips", "mixamorig1:Neck", "mixamorig1:Head", "mixamorig1:LeftEye"] + [
        f"mixamorig1:{side}{part}" for side in ("Left", "Right") for part in ("Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot")]
    p = presets.detect(mixamo1)
    assert p.id == "MIXAMO"
    head, mapping = presets.resolve(p, mixamo1)
    assert head == "mixamorig1:Head" and mapping["l_eye"] == ("mixamorig1:LeftEye", "HEAD") and mapping["r_eye"] is None
    game = ["pelvis", "neck_01", "head"] + [f"{b}_{s}" for s in "lr" for b in ("upperarm", "lowerarm", "hand", "thigh", "calf", "foot")]
    assert presets.detect(game).id == "GAME_ENGINE"
    assert presets.detect(["Bone", "Bone.001", "head"]) is None


def test_real_rigify_metarig_and_generated_rig(addon):
    import addon_utils

    if addon_utils.enable("rigify", default_set=True) is None:
        pytest.skip("Rigify not available in this bpy")
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.object
    s = bpy.context.scene.psc
    s.armature = meta
    assert s.preset == "RIGIFY_META"
    maps = {j.joint: (j.source, j.bone) for j in s.joints}
    assert maps["nose"] == ("BONE", "nose.002") and maps["l_ear"] == ("BONE", "ear.L") and maps["neck"] == ("BONE", "spine.004")
    bpy.ops.pose.rigify_generate()
    s.armature = bpy.data.objects["rig"]
    assert s.preset == "RIGIFY_RIG"
    maps = {j.joint: (j.source, j.bone) for j in s.joints}
    assert maps["l_shoulder"] == ("BONE", "DEF-upper_arm.L") and maps["r_eye"] == ("BONE", "ORG-eye.R")
    assert s.head_bone == "DEF-spine.006"


# --- projection -----------------------------------------------------------------------------

@pytest.mark.parametrize("ortho,res,aspect", [(False, (256, 256), (1, 1)), (False, (320, 200), (1, 1)),
                                              (True, (200, 300), (2, 1)), (False, (300, 240), (1, 1.5))])
def test_projection_equals_world_to_camera_view(addon, ortho, res, aspect):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = res
    scene.render.resolution_percentage = 50  # must not matter
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = aspect
    rig = build_rig("mixamo")
    rig.location = (0.1, 0.3, -0.05)
    rig.rotation_euler = (0, 0, 0.3)
    cam = add_camera(ortho=ortho)
    scene.psc.armature = rig
    bpy.context.view_layer.update()
    pose = project_now(addon, scene, rig)
    for joint, role in BODY_ROLES.items():
        world = rig.matrix_world @ rig.pose.bones[bone_name("mixamo", role)].head
        got, want = pose[addon.joints.INDEX[joint]], hand_projection(scene, cam, world)
        assert got == pytest.approx(want, abs=1e-4), joint


def test_frame_centre_and_edges(addon):
    f = addon.framing
    assert f.camera_to_photo(0.5, 0.5, 256, 256) == (127.5, 127.5)
    assert f.camera_to_photo(0, 1, 256, 256) == (-0.5, -0.5)
    assert f.camera_to_photo(1, 0, 1920, 1080) == pytest.approx((127.5 + 128 * 1920 / 1080, 255.5))
    fit = f.fit_scale_shift([(0, 0), (10, 0), None], [(5, 5), (25, 5), (1, 1)])
    assert fit == pytest.approx((2.0, 5.0, 5.0))
    assert f.fit_scale_shift([(0, 0), None], [(1, 1), (2, 2)]) is None
    assert f.fit_agreement([(0, 0), (10, 0), (0, 20)], [(5, 5), (25, 5), (5, 45)]) == pytest.approx(1.0)
    # A photo pose upside down against the rig: still framed (positive scale, centroids matched), agreement < 0.
    src, dst = [(0, 0), (10, 0), (0, 20)], [(45, 45), (25, 45), (45, 5)]
    s, dx, dy = f.fit_scale_shift(src, dst)
    assert s == pytest.approx(2.0) and f.fit_agreement(src, dst) < 0
    assert [sum(c) / 3 for c in zip(*f.apply_fit(src, (s, dx, dy)))] == pytest.approx([sum(c) / 3 for c in zip(*dst)])


def test_evaluated_pose_follows_constraints(addon):
    """A Copy Location constraint to an animated empty moves the rig: the depsgraph is evaluated."""
    scene = bpy.context.scene
    rig = build_rig("rigify")
    cam = add_camera()
    empty = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(empty)
    for f, x in ((1, 0.0), (10, 0.5)):
        empty.location = (x, 0, 0.95)
        empty.keyframe_insert("location", frame=f)
    con = rig.pose.bones["spine"].constraints.new("COPY_LOCATION")
    con.target = empty
    scene.psc.armature = rig
    pose = project_now(addon, scene, rig, frame=10)
    neck_rest = rig.matrix_world @ rig.data.bones["spine.004"].head_local
    want = hand_projection(scene, cam, neck_rest + Vector((0.5, 0, 0)))
    assert pose[1] == pytest.approx(want, abs=1e-3)


def test_face_from_head_bone_and_hidden_joints(addon):
    """No face bones: face joints from the head; the far eye and ear vanish in profile, the face from behind."""
    scene = bpy.context.scene
    rig = build_rig("makehuman")
    add_camera()
    scene.psc.armature = rig
    idx = addon.joints.INDEX
    front = project_now(addon, scene, rig)
    assert all(front[idx[j]] is not None for j in ("nose", "r_eye", "l_eye", "r_ear", "l_ear"))
    assert front[idx["r_eye"]][0] < front[idx["nose"]][0] < front[idx["l_eye"]][0]  # person's right on image left
    assert front[idx["nose"]][1] < front[idx["neck"]][1]
    rig.rotation_euler = (0, 0, math.pi / 2)  # the person turns to face +X: right side to the camera
    profile = project_now(addon, scene, rig)
    assert profile[idx["r_ear"]] is not None and profile[idx["r_eye"]] is not None and profile[idx["nose"]] is not None
    assert profile[idx["l_ear"]] is None and profile[idx["l_eye"]] is None
    rig.rotation_euler = (0, 0, math.pi)  # back to the camera
    back = project_now(addon, scene, rig)
    assert back[idx["nose"]] is None and back[idx["r_eye"]] is None and back[idx["l_eye"]] is None
    assert back[idx["neck"]] is not None


# --- export poses ---------------------------------------------------------------------------

def _read_csv(path):
    with open(path) as f:
        return [[float(v) for v in line.split(",")] for line in f if line.strip()]


def test_export_poses_writes_every_frame(addon, tmp_path):
    scene = bpy.context.scene
    rig = build_rig("mixamo")
    cam = add_camera()
    animate_arm_swing(rig, "mixamo", frames=10)
    s = scene.psc
    s.armature, s.pose_source = rig, "RIG"
    out = tmp_path / "poses.csv"
    scene.frame_set(4)
    assert bpy.ops.psc.export_poses(filepath=str(out)) == {"FINISHED"}
    assert scene.frame_current == 4  # the user's frame is put back
    rows = _read_csv(out)
    assert len(rows) == 20 and all(len(r) == 19 for r in rows)
    assert [r[0] for r in rows[::2]] == pytest.approx([i / 9 for i in range(10)], abs=1e-4)
    for i, frame in enumerate(range(1, 11)):
        scene.frame_set(frame)
        for joint, role in BODY_ROLES.items():
            pb = rig.pose.bones[bone_name("mixamo", role)]
            want = hand_projection(scene, cam, rig.matrix_world @ pb.head)
            j = addon.joints.INDEX[joint] + 1
            assert (rows[2 * i][j], rows[2 * i + 1][j]) == pytest.approx(want, abs=0.006), (frame, joint)


def test_export_fits_rig_onto_the_photo_pose(addon, tmp_path):
    """P0 from CSV: a scale and shift maps the reference frame's projection onto P0."""
    scene = bpy.context.scene
    rig = build_rig("rigify")
    add_camera()
    animate_arm_swing(rig, "rigify", frames=6)
    s = scene.psc
    s.armature = rig
    ref = project_now(addon, scene, rig, frame=1)
    p0 = [None if p is None else (0.8 * p[0] + 12.0, 0.8 * p[1] - 7.0) for p in ref]
    addon.contract.protocol.write_pose_csv(str(tmp_path / "P0.csv"), [p0])
    s.pose_source, s.pose_csv, s.reference_frame = "CSV", str(tmp_path / "P0.csv"), 1
    assert bpy.ops.psc.export_poses(filepath=str(tmp_path / "out.csv")) == {"FINISHED"}
    poses = addon.contract.protocol.read_pose_csv(str(tmp_path / "out.csv"))[1]
    later = project_now(addon, scene, rig, frame=4)
    for got, want in zip(poses[0], p0):
        assert (got is None) == (want is None) and (got is None or got == pytest.approx(want, abs=0.01))
    for got, raw in zip(poses[3], later):
        assert got == pytest.approx((0.8 * raw[0] + 12.0, 0.8 * raw[1] - 7.0), abs=0.01)
    # A photo pose upside down against the rig (e.g. a poor estimate): framed anyway, with a warning.
    upside_down = [None if p is None else (255 - p[0], 255 - p[1]) for p in p0]
    rig_points = addon.rig_points.RigPoints(rig, addon.props.joint_sources(s), s.head_bone)
    track = addon.pose_track.PoseTrack(scene, rig_points, rig, range(1, 7), 1, str(tmp_path / "flip.csv"), upside_down)
    while not track.step(bpy.context):
        pass
    (warning,) = track.warnings()
    assert warning.startswith("At the reference frame 1 the rig does not stand like the photo's pose (agreement -1.00")
    assert len(addon.contract.protocol.read_pose_csv(str(tmp_path / "flip.csv"))[1]) == 6


def test_pose_csv_round_trip_matches_engine_reader(addon, tmp_path):
    np = pytest.importorskip("numpy")
    poses_mod = pytest.importorskip("psc_engine.formats.poses")
    pose = [(float(i), 2.0 * i) for i in range(18)]
    pose[3] = None
    addon.contract.protocol.write_pose_csv(str(tmp_path / "p.csv"), [pose, pose], [0.0, 0.5])
    ts, arr = poses_mod.read_pose_csv(tmp_path / "p.csv")
    assert list(ts) == [0.0, 0.5] and np.isnan(arr[0, 3]).all() and arr[1, 5].tolist() == [5.0, 10.0]


def test_keyed_frames_for_pmnet(addon):
    scene = bpy.context.scene
    rig = build_rig("rigify")
    animate_arm_swing(rig, "rigify", frames=10)  # keys at 1, 6, 10
    scene.frame_end = 12
    assert addon.keyframes.keyed_frames([rig], 1, 12) == [1, 6, 10, 12]
    assert addon.keyframes.keyed_frames([rig], 2, 8) == [2, 6, 8]


# --- output folder, strip, MP4 --------------------------------------------------------------

def test_output_folder_never_reuses_a_used_one(addon, tmp_path):
    od = addon.output_dir
    base = tmp_path / "psc" / "Scene"
    assert od.choose_final(str(base), False) == str(base)
    base.mkdir(parents=True)
    assert od.choose_final(str(base), False) == str(base)  # empty folder: fine
    (base / "frame_00001.png").write_bytes(b"x")
    assert od.choose_final(str(base), False) == str(base) + "_001"
    assert od.choose_final(str(base), True) == str(base)
    folder, note = od.default_folder("", "My/Scene")
    assert folder.endswith(os.path.join("psc", "My_Scene")) and "not saved" in note
    folder, note = od.default_folder(str(tmp_path / "shot.blend"), "Scene")
    assert folder == str(tmp_path / "psc" / "Scene") and note == ""


def _fake_frames(folder, n, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    img = bpy.data.images.new("tmp", size, size)
    paths = []
    for i in range(n):
        img.pixels.foreach_set([(i + 1) / n, 0.2, 0.5, 1.0] * size * size)
        p = str(folder / f"frame_{i + 1:05d}.png")
        img.filepath_raw, img.file_format = p, "PNG"
        img.save()
        paths.append(p)
    bpy.data.images.remove(img)
    return paths


def test_strip_replaces_only_its_own(addon, tmp_path):
    scene = bpy.context.scene
    scene.frame_start = 3
    vse = addon.vse
    first = _fake_frames(tmp_path / "a", 5)
    second = _fake_frames(tmp_path / "b", 4)
    user = strips(scene).new_image(name="mine", filepath=first[0], channel=1, frame_start=3)
    vse.add_clip(scene, first, 1, 3)
    strip = vse.add_clip(scene, second, 1, 3)
    own = vse.own_strips(scene)
    assert own == [strip] and len(strip.elements) == 4 and strip.frame_final_start == 3
    assert os.path.normpath(bpy.path.abspath(strip.directory)) == str(tmp_path / "b")
    assert strip.channel == 2  # channel 1 holds the user's strip there
    assert "mine" in [s.name for s in strips(scene)] and user.channel == 1


def test_mp4_render_restores_settings(addon, tmp_path):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    scene.render.filepath = "//keep/"
    frames = _fake_frames(tmp_path / "f", 4)
    addon.vse.add_clip(scene, frames, 1, 1)
    mp4 = str(tmp_path / "clip.mp4")
    addon.vse.render_mp4(scene, mp4, 64, (1, 4), background=True)
    assert os.path.getsize(mp4) > 0
    r = scene.render
    assert (r.resolution_x, r.resolution_y, r.filepath, r.image_settings.file_format) == (640, 480, "//keep/", "PNG")


# --- clear reports --------------------------------------------------------------------------

def _generate_report():
    """Run the operator; in background mode an ERROR report surfaces as RuntimeError."""
    try:
        result = bpy.ops.psc.generate_clip()
    except RuntimeError as e:
        result = {"CANCELLED"}
        assert bpy.context.window_manager.psc_run.last_report in str(e)
    return result, bpy.context.window_manager.psc_run.last_report


@pytest.fixture
def ready_scene(addon, tmp_path):
    """Rig, camera and (drawn) inputs: everything valid, to break one thing per test."""
    scene = bpy.context.scene
    rig = build_rig("mixamo")
    add_camera()
    animate_arm_swing(rig, "mixamo", frames=4)
    s = scene.psc
    s.armature = rig
    for name in ("I0.png", "S0.png"):
        (tmp_path / name).write_bytes(b"not really an image")
    s.image, s.parsing = str(tmp_path / "I0.png"), str(tmp_path / "S0.png")
    s.pose_source = "RIG"
    s.output_dir = str(tmp_path / "out")
    return scene


def test_rig_with_missing_bones(addon, ready_scene, tmp_path, private_tmp):
    """Limb or face joints the rig lacks: written as missing with a warning naming them and their bones.
    A torso joint (neck, shoulders, hips) the rig lacks: an error naming it, nothing written."""
    scene, s = ready_scene, ready_scene.psc
    rig = s.armature
    rig.data.bones["mixamorig:LeftForeArm"].name = "elbow_L"  # renamed after the preset mapped it
    s.joints[addon.joints.INDEX["r_ankle"]].bone = ""  # never mapped
    out = tmp_path / "poses.csv"
    assert bpy.ops.psc.export_poses(filepath=str(out)) == {"FINISHED"}
    poses, idx = addon.contract.protocol.read_pose_csv(str(out))[1], addon.joints.INDEX
    assert len(poses) == 4
    assert all(p[idx["l_elbow"]] is None and p[idx["r_ankle"]] is None for p in poses)
    assert all(p[idx["l_wrist"]] is not None and p[idx["neck"]] is not None for p in poses)
    _, warning = addon.rig_points.check_mapping(rig, addon.props.joint_sources(s), s.head_bone)
    assert warning == (f"Rig '{rig.name}' has no bone for Left elbow (bone 'mixamorig:LeftForeArm' not in the rig), "
                       "Right ankle (no bone set): written as missing (-1) in every frame; map them in the PSC panel "
                       "(Rig > Show joints), or set them to Missing")

    rig.data.bones["mixamorig:Neck"].name = "neck_x"
    result, report = _generate_report()
    assert result == {"CANCELLED"}
    assert report.startswith(f"Rig '{rig.name}' has no bone for Neck (bone 'mixamorig:Neck' not in the rig): "
                             "PSC needs the neck, both shoulders and both hips")
    assert not (tmp_path / "out").exists() and not list(private_tmp.iterdir())


def test_report_no_camera(ready_scene):
    ready_scene.camera = None
    result, report = _generate_report()
    assert result == {"CANCELLED"} and "has no active camera" in report
    empty = bpy.data.objects.new("Marker", None)
    ready_scene.collection.objects.link(empty)
    ready_scene.camera = empty  # Blender allows any object as the scene camera
    result, report = _generate_report()
    assert result == {"CANCELLED"} and "'Marker', is an empty, not a camera" in report


def test_report_missing_photo(ready_scene, tmp_path):
    ready_scene.psc.image = str(tmp_path / "nowhere.jpg")
    result, report = _generate_report()
    assert result == {"CANCELLED"} and "Reference photo not found" in report and "nowhere.jpg" in report


def test_report_no_armature(addon, ready_scene):
    """No armature; an object that is not one (set from Python: the picker offers only armatures);
    an armature of another scene. Each a one-line report; the panel says so too."""
    s = ready_scene.psc
    s.armature = None
    result, report = _generate_report()
    assert result == {"CANCELLED"} and "No armature chosen" in report
    mesh = bpy.data.objects.new("Body", bpy.data.meshes.new("Body"))
    ready_scene.collection.objects.link(mesh)
    s.armature = mesh  # the update callback must not raise
    assert s.detected == "'Body' is not an armature"
    assert ("label", "'Body' is not an armature") in draw_panels(addon)
    result, report = _generate_report()
    assert result == {"CANCELLED"} and report.startswith("'Body' is a mesh, not an armature")
    other = bpy.data.scenes.new("Other")
    elsewhere = bpy.data.objects.new("OtherRig", bpy.data.armatures.new("OtherRig"))
    other.collection.objects.link(elsewhere)
    s.armature = elsewhere
    result, report = _generate_report()
    assert result == {"CANCELLED"} and "Armature 'OtherRig' is not in scene 'Scene'" in report


def test_failure_messages_name_the_fix(addon):
    explain = addon.engine_process.explain_failure
    assert explain(["warning", "psc: error: /a/S0.png: label 9 found"], 2, "py") == "Engine: /a/S0.png: label 9 found"
    torch = explain(["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'torch'"], 1, "/x/python")
    assert "/x/python has no torch" in torch and "Install dependencies" in torch
    assert "cannot find psc_engine" in explain(["No module named 'psc_engine'"], 1, "py")
    assert explain([], -9, "py").startswith("Engine was stopped by signal 9")
    ensure, install = addon.deps.pip_commands("py", "/deps", "CUDA", ["torch==2.13.0"])
    assert install[:4] == ["py", "-m", "pip", "install"] and "--target" in install and "torch==2.13.0" in install
    assert install[install.index("--index-url") + 1].endswith("/cu126")


# --- UI code: drawn against a recording layout (no UI event loop in bpy) -----------------------

def test_panels_and_preferences_draw(addon):
    scene = bpy.context.scene
    rig = build_rig("makehuman")
    scene.psc.armature = rig
    scene.psc.show_mapping = True
    log = []
    for panel in (addon.panel.PSC_PT_main, addon.panel.PSC_PT_sequencer):
        panel.draw(type("P", (), {"layout": RecordingLayout(log)})(), bpy.context)
    assert ("operator", "psc.generate_clip") in log and ("prop_search", "bone") in log
    assert sum(1 for kind, name in log if name == "source") == 18
    prefs = bpy.context.preferences.addons[ADDON].preferences

    class FakePrefs:
        layout = RecordingLayout(log)

        def __getattr__(self, name):
            return getattr(prefs, name)

        bl_rna = prefs.bl_rna

    addon.prefs.PSC_AddonPreferences.draw(FakePrefs(), bpy.context)
    assert ("operator", "psc.install_deps") in log and ("prop", "python_path") in log

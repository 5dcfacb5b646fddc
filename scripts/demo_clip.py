"""The product in one command: a small animated scene turned into a PSC clip.

    python scripts/demo_clip.py                      # with the bpy module (pip install bpy)
    blender --background --python scripts/demo_clip.py -- [options]

Builds a scene from nothing - an armature with Rigify meta-rig bone names, a camera, a person
walking on the spot while turning half round - takes the bundled example photo (its parsing and
pose), runs the add-on's Generate clip, and writes into --out (default out/demo/):
demo.blend (with the strip in the Video Sequencer), psc/Demo/frame_*.png, psc/Demo/Demo.mp4 and
demo_frames.png (the photo, then a few generated frames side by side).
With --photo (any size) the photo is prepared first, as the panel's Prepare button does: its
parsing and pose are estimated and the clip uses them.
"""
import argparse
import glob
import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import batch_clip  # noqa: E402  (same folder)

EXAMPLE = os.path.join(REPO, "psc_engine", "example", "test")

# Rigify meta-rig names, person facing -Y (their left at +X), 1.8 m, arms down.
BONES = [  # name, head, tail, parent
    ("spine", (0, 0.02, 0.95), (0, 0.01, 1.10), None),
    ("spine.001", (0, 0.01, 1.10), (0, 0.0, 1.25), "spine"),
    ("spine.002", (0, 0.0, 1.25), (0, 0.0, 1.38), "spine.001"),
    ("spine.003", (0, 0.0, 1.38), (0, 0.0, 1.47), "spine.002"),
    ("spine.004", (0, 0.0, 1.47), (0, -0.01, 1.56), "spine.003"),
    ("spine.005", (0, -0.01, 1.56), (0, -0.01, 1.60), "spine.004"),
    ("spine.006", (0, -0.01, 1.60), (0, -0.01, 1.80), "spine.005"),
    ("shoulder.L", (0.02, -0.03, 1.44), (0.16, 0.0, 1.44), "spine.003"),
    ("upper_arm.L", (0.18, 0.0, 1.42), (0.24, 0.01, 1.15), "shoulder.L"),
    ("forearm.L", (0.24, 0.01, 1.15), (0.28, -0.03, 0.90), "upper_arm.L"),
    ("hand.L", (0.28, -0.03, 0.90), (0.29, -0.04, 0.80), "forearm.L"),
    ("thigh.L", (0.10, 0.0, 0.93), (0.10, -0.01, 0.51), "spine"),
    ("shin.L", (0.10, -0.01, 0.51), (0.10, 0.02, 0.08), "thigh.L"),
    ("foot.L", (0.10, 0.02, 0.08), (0.10, -0.10, 0.02), "shin.L"),
]
BONES += [(n[:-2] + ".R", (-h[0], h[1], h[2]), (-t[0], t[1], t[2]), p[:-2] + ".R" if p.endswith(".L") else p)
          for n, h, t, p in BONES if n.endswith(".L")]


def example_inputs():
    """The first bundled example (I0, S0, P0 with the same stem), or None."""
    for img in sorted(glob.glob(os.path.join(EXAMPLE, "I0", "*.jpg")) + glob.glob(os.path.join(EXAMPLE, "I0", "*.png"))):
        stem = os.path.splitext(os.path.basename(img))[0]
        parsing, pose = os.path.join(EXAMPLE, "S0", stem + ".png"), os.path.join(EXAMPLE, "P0", stem + ".csv")
        if os.path.isfile(parsing) and os.path.isfile(pose):
            return img, parsing, pose
    return None


def drawn_inputs(folder):
    """Stand-in inputs drawn by the engine's helper, while no example photo is bundled."""
    from psc_engine.evaluation.bench import example_inputs as draw
    from psc_engine.formats.images import write_png
    from psc_engine.formats.poses import write_pose_csv

    image, parsing, pose, _ = draw(2)
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, n) for n in ("I0.png", "S0.png", "P0.csv")]
    write_png(paths[0], image)
    write_png(paths[1], parsing)
    write_pose_csv(paths[2], pose[None])
    return tuple(paths)


def build_scene(frames, fps=12):
    """A fresh file: scene 'Demo', the rig walking on the spot and turning, a camera in front."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Demo"
    scene.render.resolution_x = scene.render.resolution_y = 256
    scene.render.resolution_percentage = 100
    scene.render.fps = fps
    scene.frame_start, scene.frame_end = 1, frames

    arm = bpy.data.armatures.new("DemoRig")
    rig = bpy.data.objects.new("DemoRig", arm)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name, head, tail, _ in BONES:
        eb = arm.edit_bones.new(name)
        eb.head, eb.tail = head, tail
    for name, _, _, parent in BONES:
        if parent:
            arm.edit_bones[name].parent = arm.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")

    # Walk on the spot: arms and legs swing in opposition, two steps per half turn.
    steps = [1 + round(i * (frames - 1) / 4) for i in range(5)]
    for i, f in enumerate(steps):
        swing = 0.45 * (1 if i % 2 else -1) * (0 if i in (0, 4) else 1)
        for bone, sign in (("upper_arm.L", 1), ("upper_arm.R", -1), ("thigh.L", -1), ("thigh.R", 1)):
            pb = rig.pose.bones[bone]
            pb.rotation_mode = "XYZ"
            pb.rotation_euler = (sign * swing, 0.0, 0.0)
            pb.keyframe_insert("rotation_euler", frame=f)
    # Turn half round over the clip (front -> profile -> back).
    rig.rotation_mode = "XYZ"
    for f, angle in ((1, 0.0), (frames, math.pi)):
        rig.rotation_euler = (0.0, 0.0, angle)
        rig.keyframe_insert("rotation_euler", frame=f)

    cam_data = bpy.data.cameras.new("Camera")
    cam = bpy.data.objects.new("Camera", cam_data)
    cam.location = (0.0, -4.2, 0.92)
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene, rig


def contact_sheet(paths, out_path, count=5):
    """The photo, then `count` frames spread over the clip, side by side in one PNG."""
    import bpy
    import numpy as np

    photo, frames = paths[0], paths[1:]
    picks = [frames[round(i * (len(frames) - 1) / max(count - 1, 1))] for i in range(min(count, len(frames)))]
    tiles = []
    for p in [photo] + picks:
        img = bpy.data.images.load(p, check_existing=False)
        w, h = img.size
        px = np.empty(w * h * 4, dtype=np.float32)
        img.pixels.foreach_get(px)
        tiles.append(px.reshape(h, w, 4))
        bpy.data.images.remove(img)
    sheet = np.concatenate(tiles, axis=1)
    out = bpy.data.images.new("psc_sheet", sheet.shape[1], sheet.shape[0], alpha=False)
    out.pixels.foreach_set(sheet.ravel())
    out.filepath_raw, out.file_format = out_path, "PNG"
    out.save()
    bpy.data.images.remove(out)
    return out_path


def main(argv=None):
    ap = argparse.ArgumentParser(prog="demo_clip.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "out", "demo"), help="output folder (default: out/demo)")
    ap.add_argument("--frames", type=int, default=24, help="clip length in frames (default 24)")
    ap.add_argument("--pmnet", action="store_true", help="PM-Net interpolation between the keyframes")
    ap.add_argument("--no-mp4", action="store_true", help="skip the MP4")
    ap.add_argument("--weights", help="engine weights folder (default: the engine's)")
    ap.add_argument("--python", help="engine interpreter (default: this Python)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--photo", help="use this photo of any size instead of the bundled example: prepared first "
                    "(framed, parsing and pose estimated)")
    ap.add_argument("--image", help="use this 256x256 photo instead of the bundled example (with --parsing and --pose)")
    ap.add_argument("--parsing")
    ap.add_argument("--pose")
    args = ap.parse_args(batch_clip.script_argv(__file__) if argv is None else argv)

    import bpy

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.image and not (args.parsing and args.pose):
        ap.error("--image needs --parsing and --pose (or use --photo: they are then estimated)")
    for flag in ("photo", "image", "parsing", "pose"):
        if getattr(args, flag) and not os.path.isfile(getattr(args, flag)):
            ap.error(f"--{flag} {getattr(args, flag)}: no such file")
    if args.photo:
        inputs = None
    elif args.image:
        inputs = (args.image, args.parsing, args.pose)
    else:
        inputs = example_inputs() or drawn_inputs(os.path.join(out, "inputs"))
    scene, rig = build_scene(max(args.frames, 2))
    bpy.context.preferences.filepaths.save_version = 0  # the demo's own file: no demo.blend1 backups beside it
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out, "demo.blend"))
    mod = batch_clip.ensure_addon()
    s = scene.psc
    s.armature = rig  # detects the Rigify meta-rig preset
    s.pose_source, s.reference_frame = "CSV", 1
    s.interpolation = "PMNET" if args.pmnet else "BLENDER"
    s.overwrite, s.make_mp4, s.batch_size, s.channel = True, not args.no_mp4, args.batch_size, 1
    p = batch_clip.addon_prefs(mod)
    if args.weights:
        p.weights_dir = os.path.abspath(args.weights)
    if args.python:
        p.python_path = os.path.abspath(args.python)
    if inputs is None:  # the photo alone: Prepare fills Photo, Parsing and Pose CSV
        s.source_photo = os.path.abspath(args.photo)
        try:
            batch_clip.run_operator(mod, scene, "prepare_photo")
        except RuntimeError as e:
            print(f"psc: error: {e}", file=sys.stderr)
            return 1
        inputs = (s.image, s.parsing, s.pose_csv)
    else:
        s.image, s.parsing, s.pose_csv = (os.path.abspath(p) for p in inputs)
    print(f"psc demo: rig preset {s.detected}, photo {inputs[0]}", flush=True)
    try:
        ok = bpy.ops.psc.generate_clip() == {"FINISHED"}
    except RuntimeError:  # background mode turns the operator's error report into an exception
        ok = False
    if not ok:
        print(f"psc: error: {bpy.context.window_manager.psc_run.last_report}", file=sys.stderr)
        return 1
    result = mod.operators.last_job().result
    bpy.ops.wm.save_mainfile()
    sheet = contact_sheet([inputs[0]] + result["frames"], os.path.join(out, "demo_frames.png"))
    print(f"psc demo: {len(result['frames'])} frames in {result['folder']}")
    if result["mp4"]:
        print(f"psc demo: clip {result['mp4']}")
    print(f"psc demo: scene {bpy.data.filepath} (open it, Video Sequencer), preview {sheet}")
    return 0


if __name__ == "__main__":
    batch_clip.run_main(main)  # the real status under the bpy module too, where bpy's own exit can crash

"""Make a PSC clip from a .blend without the UI.

In Blender:
    blender --background scene.blend --python scripts/batch_clip.py -- \
        --image I0.jpg --parsing S0.png --pose P0.csv [--out DIR] [--mp4] [--save]
With the bpy module (pip install bpy):
    python scripts/batch_clip.py --blend scene.blend --image I0.jpg --parsing S0.png --pose P0.csv [--out DIR]
From the photo alone (any size; its parsing and pose are estimated):
    python scripts/batch_clip.py --blend scene.blend --photo photo.jpg [--out DIR]

Runs the add-on's own operators, synchronously (background mode), so the result is the same as
pressing the buttons: with --photo (or --image given without --parsing, --pose and --pose-from)
first Prepare, which writes I0/S0/P0 and an overlay into //psc/prepared/<stem>/ and points the
scene's settings at them (a --parsing or --pose given as well replaces the estimated one), then
Generate clip: frames in the output folder, a strip in the Video Sequencer.
Uses the installed extension when Blender has it enabled, else the add-on from this checkout.
Exit status: 0 done, 1 failed (the reason on stderr, `psc: error: ...`), 2 bad arguments.
"""
import argparse
import contextlib
import os
import sys
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="batch_clip.py", description="Make a PSC clip from a .blend, headless.")
    ap.add_argument("--blend", help="open this .blend first (needed under plain Python; in Blender pass it before --python)")
    ap.add_argument("--scene", help="scene name (default: the active scene)")
    ap.add_argument("--armature", help="armature object (default: the scene's PSC setting, else its first armature)")
    ap.add_argument("--photo", help="a photo of the person, any size: prepared first (framed to 256x256, parsing "
                    "and pose estimated), like the panel's Prepare button")
    ap.add_argument("--image", help="reference photo I0 (256x256); alone (no --parsing, --pose, --pose-from) "
                    "it is prepared like --photo (add --pose-from csv to keep the scene's pose CSV instead)")
    ap.add_argument("--parsing", help="its parsing S0 (PNG)")
    ap.add_argument("--pose", help="its pose P0 (CSV); omit with --pose-from rig")
    ap.add_argument("--pose-from", choices=("csv", "rig"), default=None,
                    help="P0 from the CSV (default when --pose is given) or from the rig at --reference-frame")
    ap.add_argument("--reference-frame", type=int, help="frame where the rig matches the photo (default: scene start)")
    ap.add_argument("--interpolation", choices=("blender", "pmnet"), help="every frame (blender) or PM-Net between keys")
    ap.add_argument("--out", help="frames folder (default: //psc/<scene>/ next to the .blend)")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out instead of a new numbered folder")
    ap.add_argument("--channel", type=int, help="sequencer channel of the strip")
    ap.add_argument("--mp4", action="store_true", help="also render the sequencer to an MP4 in the frames folder")
    ap.add_argument("--save", action="store_true", help="save the .blend afterwards (with the strip)")
    ap.add_argument("--save-as", help="save the .blend to this path afterwards")
    ap.add_argument("--python", help="engine interpreter (default: the add-on's preference, else this Python)")
    ap.add_argument("--weights", help="engine weights folder")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--batch-size", type=int)
    return ap.parse_args(argv)


def script_argv(script=__file__):
    """Arguments after `--` inside Blender; the usual argv when `script` runs under plain Python."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    running_as_script = os.path.abspath(sys.argv[0]) == os.path.abspath(script)
    return sys.argv[1:] if running_as_script else []


def ensure_addon():
    """The add-on's module: the enabled extension if any, else this checkout's blender_addon."""
    import addon_utils
    import bpy

    for name in bpy.context.preferences.addons.keys():
        if name == "blender_addon" or name.endswith(".psc_blender"):
            return sys.modules[name]
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    mod = addon_utils.enable("blender_addon", default_set=True)
    if mod is None:
        raise RuntimeError(f"could not enable the add-on from {REPO}/blender_addon")
    return mod


def addon_prefs(mod):
    import bpy

    addon = bpy.context.preferences.addons.get(mod.__name__)
    return addon.preferences if addon else mod.prefs.DEFAULTS


def photo_to_prepare(args):
    """The photo to run Prepare on: --photo, or an --image given with nothing else to go with it."""
    if args.photo:
        return args.photo
    if args.image and not (args.parsing or args.pose or args.pose_from):
        return args.image
    return None


def apply_args(args, mod):
    """Copy the command line onto the scene's PSC settings and the add-on preferences."""
    import bpy

    scene = bpy.context.scene
    if args.scene:
        if args.scene not in bpy.data.scenes:
            raise ValueError(f"no scene named {args.scene!r} in the file")
        scene = bpy.data.scenes[args.scene]
    for flag in ("photo", "image", "parsing", "pose"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            raise ValueError(f"--{flag} {path}: no such file")
    s = scene.psc
    if args.armature:
        ob = bpy.data.objects.get(args.armature)
        if ob is None or ob.type != "ARMATURE":
            raise ValueError(f"no armature object named {args.armature!r}")
        s.armature = ob
    elif s.armature is None:
        s.armature = next((o for o in scene.objects if o.type == "ARMATURE"), None)
    if s.armature is None:
        where = f"scene {scene.name!r} of {bpy.data.filepath}" if bpy.data.filepath else "an empty file"
        raise ValueError(f"no armature in {where}: give --blend FILE (a .blend with the animated rig) "
                         "or --armature NAME")
    photo = photo_to_prepare(args)
    if photo:
        s.source_photo = os.path.abspath(photo)
    elif args.image:
        s.image = os.path.abspath(args.image)
    if args.parsing:
        s.parsing = os.path.abspath(args.parsing)
    if args.pose:
        s.pose_csv = os.path.abspath(args.pose)
        s.pose_source = "CSV"
    if args.pose_from:
        s.pose_source = args.pose_from.upper()
    s.reference_frame = args.reference_frame if args.reference_frame is not None else scene.frame_start
    if args.interpolation:
        s.interpolation = "PMNET" if args.interpolation == "pmnet" else "BLENDER"
    if args.out:
        s.output_dir = os.path.abspath(args.out)
    s.overwrite = args.overwrite or s.overwrite
    if args.channel:
        s.channel = args.channel
    s.make_mp4 = args.mp4 or s.make_mp4
    if args.device:
        s.device = args.device
    if args.batch_size:
        s.batch_size = args.batch_size
    p = addon_prefs(mod)
    if args.python:
        p.python_path = os.path.abspath(args.python)
    if args.weights:
        p.weights_dir = os.path.abspath(args.weights)
    return scene


def run_operator(mod, scene, name):
    """Run bpy.ops.psc.<name> on the scene, synchronously; returns its job, or raises RuntimeError with the report."""
    import bpy

    try:
        with bpy.context.temp_override(scene=scene) if scene != bpy.context.scene else contextlib.nullcontext():
            result = getattr(bpy.ops.psc, name)()
    except RuntimeError:  # background mode turns the operator's error report into an exception
        result = {"CANCELLED"}
    job = mod.operators.last_job()
    if result != {"FINISHED"} or job is None or job.phase != "done":
        raise RuntimeError(bpy.context.window_manager.psc_run.last_report or f"{name} failed")
    return job


def run(args):
    """Open, configure, (prepare,) generate, save. Returns the clip job's result (folder, frames, strip, mp4)."""
    import bpy

    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    mod = ensure_addon()
    scene = apply_args(args, mod)
    if photo_to_prepare(args):
        run_operator(mod, scene, "prepare_photo")  # its report is printed by Blender
        s = scene.psc  # the user's own files replace the estimated ones
        if args.parsing:
            s.parsing = os.path.abspath(args.parsing)
        if args.pose:
            s.pose_csv = os.path.abspath(args.pose)
        if args.pose_from:
            s.pose_source = args.pose_from.upper()
    job = run_operator(mod, scene, "generate_clip")
    if args.save_as:
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.save_as))
    elif args.save and bpy.data.filepath:
        bpy.ops.wm.save_mainfile()
    return job.result


def main(argv=None):
    args = parse_args(script_argv() if argv is None else argv)
    try:
        result = run(args)
    except (RuntimeError, ValueError) as e:
        print(f"psc: error: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"psc: {len(result['frames'])} frames in {result['folder']}" +
          (f", clip {result['mp4']}" if result["mp4"] else ""), flush=True)
    return 0


def exit_with(code):
    """Leave with `code`. Inside Blender, a normal exit (none for 0: Blender goes on with its own command
    line). Under the bpy module, Python's own exit tears bpy down, which can crash or hang after all the
    work is done (bpy 4.2.x segfaults, exit 139, once a PropertyGroup with an update callback was
    registered; 4.5.x can hang in ~GlobalState): flush and leave at once."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path:  # the module: no Blender binary behind it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


def run_main(main):
    """Run main() and exit with its status, also when it raised (argparse's SystemExit, a bug)."""
    try:
        code = main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except Exception:
        traceback.print_exc()
        code = 1
    exit_with(code or 0)


if __name__ == "__main__":
    run_main(main)

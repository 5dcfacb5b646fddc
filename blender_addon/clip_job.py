"""One run from the animated rig to a strip: check inputs, project poses, run the engine, place the strip.

The job is a small state machine driven by `step()`, so the same code serves the modal operator
(a little work per timer tick, UI live) and background mode (`run_to_end`, synchronous).
Phases: project -> engine -> done | failed | cancelled. Settings are read once, at the start:
editing the panel during a run does not change that run. The projected poses stream into the
job's pose CSV (pose_track.py), so a 10,000-frame range costs no more memory than 10 frames.
Problems that do not stop the run (joints the rig lacks, frames where the camera sees no joint)
end up in `warnings` and in the final report.
"""
import os
import shutil
import tempfile

import bpy

from . import engine_command, output_dir, prefs, props, vse
from .contract import protocol
from .engine_process import EngineProcess
from .joints import SIZE
from .keyframes import keyed_frames
from .pose_track import FitError, PoseTrack
from .projection import CameraError, scene_camera
from .rig_points import RigError, RigPoints

PROJECT_SHARE = 0.1  # of the progress bar; the engine gets the rest
PREPARE_HINT = ", or pick a photo of any size under 'Photo to prepare' and press Prepare"
POSE_HINT = ", or set Reference pose to From rig"


class ClipError(Exception):
    """A problem the user can fix; the message says what and how."""


def _a(noun):
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun.replace('_', ' ')}"


def existing_file(path, what, setting, hint=""):
    if not path:
        raise ClipError(f"No {what} set: choose it in the PSC panel ({setting}){hint}")
    if path.startswith("//") and not bpy.data.filepath:
        raise ClipError(f"{what.capitalize()} '{path}' is relative to the .blend, but the .blend was never saved: "
                        f"save it, or choose the file again in the PSC panel ({setting})")
    full = os.path.normpath(bpy.path.abspath(path))
    if not os.path.isfile(full):
        raise ClipError(f"{what.capitalize()} not found: {full}. Choose an existing file in the PSC panel ({setting})")
    return full


def read_p0(path):
    try:
        return protocol.read_pose_csv(path)[1][0]
    except protocol.PSCError as e:
        raise ClipError(f"Pose CSV: {e}") from None


def check_rig(context):
    """The armature, the camera and the joint maps; returns RigPoints or raises ClipError."""
    scene, s = context.scene, context.scene.psc
    if s.armature is None:
        raise ClipError("No armature chosen: pick the animated rig in the PSC panel (Armature)")
    if s.armature.type != "ARMATURE":
        raise ClipError(f"'{s.armature.name}' is {_a(s.armature.type.lower())}, not an armature: pick the animated "
                        "rig in the PSC panel (Armature)")
    if scene.objects.get(s.armature.name) != s.armature:
        raise ClipError(f"Armature '{s.armature.name}' is not in scene '{scene.name}': link it into the scene "
                        "or pick another rig in the PSC panel (Armature)")
    try:
        scene_camera(scene)
    except CameraError as e:
        raise ClipError(str(e)) from None
    if not s.joints:
        props.detect_preset(s)
    try:
        return RigPoints(s.armature, props.joint_sources(s), s.head_bone)
    except RigError as e:
        raise ClipError(str(e)) from None


def wanted_frames(scene):
    """Frames to project: every frame, or (PM-Net) the keyed frames plus the range ends."""
    s = scene.psc
    start, end = scene.frame_start, scene.frame_end
    if s.interpolation == "BLENDER":
        return range(start, end + 1)  # a range, not a list: 10,000 frames cost nothing
    if end <= start:
        raise ClipError("PM-Net interpolation needs a frame range of at least two frames")
    objects = [s.armature] + [j.target for j in s.joints if j.source == "OBJECT" and j.target]
    return keyed_frames(objects, start, end)


def engine_setup(context):
    """(interpreter, PYTHONPATH folders, weights folder) for the engine child; ClipError if unusable."""
    p = prefs.get(context)
    python = prefs.interpreter(p)
    if not os.path.isfile(python):
        raise ClipError(f"Engine interpreter not found: {python}. "
                        "Set it in Preferences > Add-ons > PSC for Blender (Engine interpreter)")
    paths = prefs.engine_paths(p)
    weights = engine_command.weights_folder(bpy.path.abspath(p.weights_dir) if p.weights_dir else "", paths[0])
    return python, paths, weights


class ClipJob:
    def __init__(self, context, log=None):
        scene, s = context.scene, context.scene.psc
        self.log = log or (lambda msg: None)
        # Inputs, checked before any work.
        self.image = existing_file(s.image, "reference photo", "Photo", PREPARE_HINT)
        self.parsing = existing_file(s.parsing, "parsing", "Parsing") if s.parsing else None  # else estimated
        self.pose_path = (existing_file(s.pose_csv, "pose CSV", "Pose CSV", PREPARE_HINT + POSE_HINT)
                          if s.pose_source == "CSV" else None)
        rig = check_rig(context)
        self.warnings = [rig.warning] if rig.warning else []
        self.python, self.engine_paths, self.weights = engine_setup(context)
        self.precision = prefs.get(context).precision
        self.device, self.batch_size, self.channel, self.make_mp4 = s.device, s.batch_size, s.channel, s.make_mp4
        self.scene_name = scene.name
        # What to make and where.
        self.frames = wanted_frames(scene)
        self.pmnet = s.interpolation == "PMNET"
        self.n_out = self.frames[-1] - self.frames[0] + 1
        if s.output_dir:
            base, self.note = output_dir.resolve_folder(s.output_dir, bpy.data.filepath)
        else:
            base, self.note = output_dir.default_folder(bpy.data.filepath, scene.name)
        self.final = output_dir.choose_final(base, s.overwrite)
        self.partial = output_dir.partial_folder(self.final)
        p0 = read_p0(self.pose_path) if self.pose_path else None
        # Run state. Nothing is written before this point; the work folder goes on any failure.
        self.engine = self.result = None
        self.workdir = tempfile.mkdtemp(prefix="psc-job-")
        self.targets = os.path.join(self.workdir, "key_poses.csv" if self.pmnet else "poses.csv")
        self.track = PoseTrack(scene, rig, s.armature, self.frames, s.reference_frame, self.targets, p0,
                               times=not self.pmnet)
        self.phase, self.progress, self.status, self.error = "project", 0.0, "Projecting the rig", ""
        self.sync = False  # run_to_end: the MP4 renders before returning
        self.cancel_requested = False  # set by the Cancel button, acted on by the modal operator

    # --- driving -------------------------------------------------------------------------------
    def step(self, context, budget=0.05, wait=0.0):
        """Do a slice of work; returns the phase afterwards."""
        try:
            if self.phase == "project":
                if self.track.step(context, budget):
                    self.warnings += self.track.warnings()
                    self._start_engine()
                else:
                    self.progress = PROJECT_SHARE * self.track.progress
                    self.status = f"Projecting the rig: {self.track.done}/{len(self.frames)} frames"
            elif self.phase == "engine":
                self._follow_engine(context, wait)
        except (ClipError, FitError, OSError) as e:
            self._fail(context, str(e))
        except Exception as e:  # a bug: still stop cleanly and say what happened
            self._fail(context, f"Unexpected error ({type(e).__name__}: {e})")
        return self.phase

    def run_to_end(self, context):
        """Synchronous run (background mode, scripts); returns the final phase."""
        self.sync = True
        last = None
        while self.phase in ("project", "engine"):
            self.step(context, budget=1.0, wait=0.2)
            if self.status != last:
                self.log(self.status)
                last = self.status
        return self.phase

    def cancel(self, context):
        """Stop now: kill the engine, remove its folder; no strip is added."""
        if self.phase not in ("project", "engine"):
            return
        if self.engine is not None:
            self.engine.cancel()
        self.track.abort(context.scene)
        self._cleanup(partial=True)
        self.phase, self.status = "cancelled", "Cancelled"

    # --- phases --------------------------------------------------------------------------------
    def _start_engine(self):
        p0_path = self.pose_path
        if p0_path is None:  # P0 from the rig
            p0_path = os.path.join(self.workdir, "P0.csv")
            protocol.write_pose_csv(p0_path, [self.track.p0])
        output_dir.discard(self.partial)
        keys = [f - self.frames[0] + 1 for f in self.frames] if self.pmnet else None
        cmd = protocol.animate_command(
            self.python, self.image, self.parsing, p0_path, self.partial,
            poses=None if self.pmnet else self.targets, key_poses=self.targets if self.pmnet else None,
            key_frames=keys, weights=self.weights, device=self.device, batch_size=self.batch_size,
            precision=self.precision)
        self.engine = EngineProcess(cmd, env=engine_command.child_env(self.engine_paths), cwd=self.workdir)
        self.phase, self.progress = "engine", PROJECT_SHARE
        self.status = f"Starting the engine ({self.n_out} frames)"

    def _follow_engine(self, context, wait):
        for ev in self.engine.poll(timeout=wait):
            if ev.get("event") == "frame":
                done, total = ev.get("done", 0), max(ev.get("total", 1), 1)
                self.progress = PROJECT_SHARE + (1 - PROJECT_SHARE) * done / total
                self.status = f"Frame {done}/{total}"
            elif ev.get("event") == "start":
                self.status = f"Engine running: 0/{ev.get('total')} frames"
        if not self.engine.finished():
            return
        if self.engine.returncode != 0:
            self._fail(context, self.engine.error_message())
            return
        frames = output_dir.frame_files(self.partial) if os.path.isdir(self.partial) else []
        if len(frames) != self.n_out:
            self._fail(context, f"Engine wrote {len(frames)} frames, expected {self.n_out}")
            return
        self._finish(context)

    def _finish(self, context):
        scene = context.scene
        self.warnings += self.engine.warnings()
        output_dir.promote(self.partial, self.final)
        shutil.copy(self.targets, os.path.join(self.final, os.path.basename(self.targets)))
        self._cleanup(partial=False)
        frames = output_dir.frame_files(self.final)
        strip = vse.add_clip(scene, frames, self.channel, self.frames[0])
        self.result = {"folder": self.final, "frames": frames, "strip": strip.name, "channel": strip.channel,
                       "mp4": None, "note": self.note, "warnings": list(self.warnings)}
        if self.make_mp4:
            mp4 = os.path.join(self.final, output_dir.safe_name(self.scene_name) + ".mp4")
            last = self.frames[0] + len(frames) - 1
            self.result["mp4"] = vse.render_mp4(scene, mp4, SIZE, (self.frames[0], last),
                                                background=bpy.app.background or self.sync)
        self.phase, self.progress = "done", 1.0
        self.status = f"{len(frames)} frames in {self.final}"

    def summary(self):
        """(level, message) for the final report of a finished run."""
        r = self.result
        msg = f"PSC: {len(r['frames'])} frames in {r['folder']}, strip '{r['strip']}' on channel {r['channel']}"
        for extra in [r["note"], *r["warnings"]]:
            if extra:
                msg += f". {extra}"
        return ("WARNING" if r["warnings"] else "INFO"), msg

    def _fail(self, context, message):
        if self.engine is not None and self.engine.proc.poll() is None:
            self.engine.cancel()
        self.track.abort(context.scene)
        self._cleanup(partial=True)
        self.phase, self.error, self.status = "failed", message, message

    def _cleanup(self, partial):
        if partial:
            output_dir.discard(self.partial)
        output_dir.discard(self.workdir)
        self.workdir = None

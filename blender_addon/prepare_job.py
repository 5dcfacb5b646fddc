"""Prepare: a photo of any size -> the engine's I0, S0 and P0, plus an overlay a person can check.

Runs `python -m psc_engine prepare` in the engine's process with the same driving as ClipJob
(step / run_to_end / cancel / summary), so one modal operator and one Cancel button serve both.
The engine writes into `<final>.partial-<pid>`; the folder gets its final name only once all
four files are there, and only then are the panel's Photo, Parsing, Pose CSV and overlay
pointed at them: a failed or cancelled Prepare leaves nothing and changes no setting.

Where: `//psc/prepared/<stem>/`, next to the .blend (a never-saved .blend: under
<temp>/psc_unsaved/, and the report says so). A prepared folder is never overwritten: preparing
the same photo again goes to `<stem>_001`, so a parsing or pose the user edited there is kept.
"""
import os
import tempfile
import time

import bpy

from . import engine_command, output_dir, overlay_preview
from .clip_job import ClipError, engine_setup, existing_file
from .contract import protocol
from .engine_process import EngineProcess

OUTPUTS = (("image", "I0", ".png"), ("parsing", "S0", ".png"), ("pose_csv", "P0", ".csv"), ("overlay", "overlay", ".png"))


class PrepareJob:
    def __init__(self, context, log=None):
        scene, s = context.scene, context.scene.psc
        self.log = log or (lambda msg: None)
        self.photo = existing_file(s.source_photo, "photo to prepare", "Photo to prepare")
        self.python, self.engine_paths, self.weights = engine_setup(context)
        self.stem = output_dir.safe_name(os.path.splitext(os.path.basename(self.photo))[0])
        base, self.note = output_dir.resolve_folder(f"//psc/prepared/{self.stem}", bpy.data.filepath,
                                                    what="the prepared files")
        self.final = output_dir.choose_final(base, False)
        self.partial = output_dir.partial_folder(self.final)
        self.scene_name = scene.name
        self.warnings = []
        self.result = None
        self.phase, self.progress, self.status, self.error = "engine", 0.0, "Preparing the photo", ""
        self.sync = False
        self.cancel_requested = False
        self.started = time.monotonic()
        output_dir.discard(self.partial)
        cmd = protocol.prepare_command(self.python, self.photo, self.partial, self.stem,
                                             weights=self.weights, device=s.device)
        self.engine = EngineProcess(cmd, env=engine_command.child_env(self.engine_paths), cwd=tempfile.gettempdir())

    # --- driving (same interface as ClipJob) ---------------------------------------------------
    def step(self, context, budget=0.05, wait=0.0):
        try:
            if self.phase == "engine":
                self._follow(context, wait)
        except (ClipError, OSError, protocol.PSCError) as e:
            self._fail(str(e))
        except Exception as e:  # a bug: still stop cleanly and say what happened
            self._fail(f"Unexpected error ({type(e).__name__}: {e})")
        return self.phase

    def run_to_end(self, context):
        self.sync = True
        self.log(self.status)
        while self.phase == "engine":
            self.step(context, wait=0.2)
        self.log(self.status)
        return self.phase

    def cancel(self, context):
        if self.phase != "engine":
            return
        self.engine.cancel()
        output_dir.discard(self.partial)
        self.phase, self.status = "cancelled", "Cancelled"

    def summary(self):
        r = self.result
        msg = (f"PSC: photo prepared in {r['folder']} ({r['joints']}/18 joints seen): Photo, Parsing and Pose CSV "
               "now point there; check the overlay in the panel, and replace Parsing or Pose CSV with your own "
               "file if they are wrong")
        for extra in [self.note, *self.warnings]:
            if extra:
                msg += f". {extra}"
        return ("WARNING" if self.warnings else "INFO"), msg

    # --- the run -------------------------------------------------------------------------------
    def _follow(self, context, wait):
        self.engine.poll(timeout=wait)  # prepare prints no progress events; this only paces the loop
        if not self.engine.finished():
            seconds = time.monotonic() - self.started
            self.progress = seconds / (seconds + 5.0)  # a busy indicator: the engine reports no steps here
            self.status = f"Preparing the photo ({seconds:.0f} s)"
            return
        if self.engine.returncode != 0:
            self._fail(self.engine.error_message())
            return
        made = {key: os.path.join(sub, self.stem + ext) for key, sub, ext in OUTPUTS}
        missing = [rel for rel in made.values() if not os.path.isfile(os.path.join(self.partial, rel))]
        if missing:
            self._fail(f"Engine finished but wrote no {missing[0]} in {self.partial}")
            return
        output_dir.promote(self.partial, self.final)
        paths = {key: os.path.join(self.final, rel) for key, rel in made.items()}
        p0 = protocol.read_pose_csv(paths["pose_csv"])[1][0]
        joints = sum(p is not None for p in p0)
        self.warnings += self.engine.warnings()
        if joints < 2:
            self.warnings.append(f"The pose net found {joints} joints in the photo: the rig cannot be fitted onto it; "
                                 "choose your own Pose CSV, or set Reference pose to From rig")
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        s = scene.psc
        s.image, s.parsing, s.pose_csv, s.overlay = paths["image"], paths["parsing"], paths["pose_csv"], paths["overlay"]
        s.pose_source = "CSV"
        overlay_preview.preview(paths["overlay"])
        self.result = {"folder": self.final, "joints": joints, **paths}
        self.phase, self.progress = "done", 1.0
        self.status = f"Prepared {os.path.basename(self.photo)}: {joints}/18 joints seen"

    def _fail(self, message):
        if self.engine.proc.poll() is None:
            self.engine.cancel()
        output_dir.discard(self.partial)
        self.phase, self.error, self.status = "failed", message, message

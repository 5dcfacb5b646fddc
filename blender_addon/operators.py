"""Operators: prepare the photo and generate the clip (both modal in the UI, synchronous in
background, one engine job at a time), cancel, export poses, detect the rig preset, show the photo
in the camera."""
import os

import bpy
from bpy.app.handlers import persistent
from bpy_extras.io_utils import ExportHelper

from . import overlay_preview, props
from .clip_job import ClipError, ClipJob, check_rig, existing_file, read_p0
from .pose_track import FitError, PoseTrack
from .prepare_job import PrepareJob
from .projection import CameraError, scene_camera

TICK = 0.1  # seconds between modal updates
_job = None  # the running ClipJob or PrepareJob; one at a time


def last_job():
    """The latest job (ClipJob or PrepareJob, running or finished), for scripts that read its result."""
    return _job


def running_job():
    return _job if _job is not None and _job.phase in ("project", "engine") else None


def _state(context):
    return context.window_manager.psc_run


def _redraw(context):
    for win in context.window_manager.windows:
        for area in win.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR", "PROPERTIES"}:
                area.tag_redraw()


class _EngineJobOperator:
    """Runs a job (ClipJob, PrepareJob) modally in the UI, synchronously in background mode."""
    bl_options = {"REGISTER"}
    job_class = None
    _timer = None

    def _start(self, context):
        global _job
        if running_job():
            self._say(context, {"ERROR"}, "PSC is already busy (preparing a photo or making a clip): "
                      "wait for it or cancel it")
            return None
        try:
            _job = self.job_class(context, log=lambda msg: print(f"PSC: {msg}", flush=True))
        except (ClipError, OSError) as e:
            self._say(context, {"ERROR"}, str(e))
            return None
        st = _state(context)
        st.running, st.progress, st.status, st.last_report = True, 0.0, _job.status, ""
        return _job

    def _say(self, context, level, message):
        _state(context).last_report = message
        self.report(level, message)

    def _end(self, context, job):
        st = _state(context)
        st.running, st.progress, st.status = False, job.progress, job.status
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _redraw(context)
        if job.phase == "done":
            level, msg = job.summary()
            self._say(context, {level}, msg)
            return {"FINISHED"}
        if job.phase == "cancelled":
            self._say(context, {"WARNING"}, self.cancelled_message)
        else:
            self._say(context, {"ERROR"}, job.error)
        return {"CANCELLED"}

    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        job.run_to_end(context)
        return self._end(context, job)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if self._start(context) is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = _job
        if job is None:  # the add-on was unregistered meanwhile
            return {"CANCELLED"}
        esc = event.type == "ESC" and event.value == "PRESS"
        if (esc or event.type == "TIMER" or job.cancel_requested) and not advance(context, job, esc):
            return self._end(context, job)
        return {"PASS_THROUGH"}


class PSC_OT_generate_clip(_EngineJobOperator, bpy.types.Operator):
    """Project the animated rig, run the engine on every frame and put the frames in the Video Sequencer"""
    bl_idname = "psc.generate_clip"
    bl_label = "Generate clip"
    job_class = ClipJob
    cancelled_message = "PSC: cancelled; no frames kept, no strip added"


class PSC_OT_prepare_photo(_EngineJobOperator, bpy.types.Operator):
    """Frame the photo (any size) and estimate its parsing and pose; Photo, Parsing and Pose CSV then use them"""
    bl_idname = "psc.prepare_photo"
    bl_label = "Prepare"
    job_class = PrepareJob
    cancelled_message = "PSC: Prepare cancelled; no files kept, settings unchanged"


def advance(context, job, esc=False):
    """One modal tick: cancel on Esc or the Cancel button, else a slice of work. True while running."""
    if esc or job.cancel_requested:
        job.cancel(context)
        return False
    job.step(context, budget=0.04)
    st = _state(context)
    st.progress, st.status = job.progress, job.status
    if context.workspace is not None:
        context.workspace.status_text_set(f"PSC: {job.status} ({job.progress:.0%}) - Esc to cancel")
    _redraw(context)
    return job.phase in ("project", "engine")


class PSC_OT_cancel_clip(bpy.types.Operator):
    """Stop now (making the clip or preparing the photo): the engine is killed and its files removed"""
    bl_idname = "psc.cancel_clip"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return running_job() is not None

    def execute(self, context):
        running_job().cancel_requested = True  # the modal operator cancels on its next tick
        return {"FINISHED"}


class PSC_OT_export_poses(bpy.types.Operator, ExportHelper):
    """Write every frame's projected pose as a pose CSV (the engine's format, one pose per frame)"""
    bl_idname = "psc.export_poses"
    bl_label = "Export poses"
    filename_ext = ".csv"
    filter_glob: bpy.props.StringProperty(default="*.csv", options={"HIDDEN"})

    def execute(self, context):
        """Streams the poses into the file (temp name, renamed when complete): flat memory at any length."""
        scene, s = context.scene, context.scene.psc
        track = None
        wm = context.window_manager
        wm.progress_begin(0, 100)
        try:
            rig = check_rig(context)
            p0 = read_p0(existing_file(s.pose_csv, "pose CSV", "Pose CSV")) if s.pose_source == "CSV" else None
            frames = range(scene.frame_start, scene.frame_end + 1)
            track = PoseTrack(scene, rig, s.armature, frames, s.reference_frame, self.filepath, p0)
            while not track.step(context, budget=0.1):
                wm.progress_update(int(100 * track.progress))
        except (ClipError, FitError, OSError) as e:
            if track is not None:
                track.abort(scene)
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        warnings = [w for w in [rig.warning, *track.warnings()] if w]
        msg = f"Wrote {len(frames)} poses to {self.filepath}" + "".join(f". {w}" for w in warnings)
        self.report({"WARNING" if warnings else "INFO"}, msg)
        return {"FINISHED"}


class PSC_OT_detect_rig(bpy.types.Operator):
    """Pick the rig preset from the armature's bone names and fill the joint maps"""
    bl_idname = "psc.detect_rig"
    bl_label = "Detect rig"

    def execute(self, context):
        s = context.scene.psc
        if s.armature is None:
            self.report({"ERROR"}, "Choose the armature first")
            return {"CANCELLED"}
        found = props.detect_preset(s)
        if found is None:
            self.report({"WARNING"}, f"No preset matches '{s.armature.name}': map the joints by hand")
            return {"FINISHED"}
        self.report({"INFO"}, f"Detected {found.label}")
        return {"FINISHED"}


class PSC_OT_show_photo(bpy.types.Operator):
    """Show the reference photo as the camera's background image (fitted), to pose the rig over it"""
    bl_idname = "psc.show_photo"
    bl_label = "Show photo in camera"

    def execute(self, context):
        try:
            path = existing_file(context.scene.psc.image, "reference photo", "Photo")
            cam = scene_camera(context.scene)
        except (ClipError, CameraError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        img = bpy.data.images.load(path, check_existing=True)
        data = cam.data
        bg = next((b for b in data.background_images if b.image == img), None) or data.background_images.new()
        bg.image, bg.frame_method, bg.alpha, bg.show_background_image = img, "FIT", 0.6, True
        data.show_background_images = True
        self.report({"INFO"}, f"{os.path.basename(path)} shown in camera '{cam.name}' (view it with Numpad 0)")
        return {"FINISHED"}


CLASSES = (PSC_OT_generate_clip, PSC_OT_prepare_photo, PSC_OT_cancel_clip, PSC_OT_export_poses, PSC_OT_detect_rig,
           PSC_OT_show_photo)
register_classes, unregister_classes = bpy.utils.register_classes_factory(CLASSES)


@persistent
def _cancel_on_load(*_args):
    """Loading another file ends the modal operator: stop its engine too, so nothing is orphaned."""
    job = running_job()
    if job is not None:
        job.cancel(bpy.context)


def register():
    register_classes()
    bpy.app.handlers.load_pre.append(_cancel_on_load)


def unregister():
    global _job
    _cancel_on_load()
    _job = None
    if _cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_load)
    unregister_classes()
    overlay_preview.clear()

"""Add-on preferences: which Python runs the engine, where the engine and its weights are.

When the add-on is imported as a plain module (tests, batch scripts without addon_utils) there
are no stored preferences; `get()` then returns DEFAULTS, which such callers may change.
"""
import threading
from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import deps, engine_command
from .engine_process import check_interpreter, default_interpreter

DEFAULTS = SimpleNamespace(python_path="", engine_dir="", weights_dir="", torch_build="CPU", with_photo=False,
                           precision="auto")
CHECK = {"running": False, "message": ""}


def get(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon and addon.preferences else DEFAULTS


def interpreter(p):
    """The configured engine interpreter, or Blender's own Python."""
    return bpy.path.abspath(p.python_path) if p.python_path else default_interpreter()


def engine_dir(p):
    """The folder holding psc_engine/ (preference, bundled copy or checkout), or ""."""
    return engine_command.engine_folder(bpy.path.abspath(p.engine_dir) if p.engine_dir else "")


def engine_paths(p):
    """Folders the child needs on PYTHONPATH: the engine's folder and the add-on's deps folder."""
    return [engine_dir(p), deps.installed_folder()]


def deps_plan(p):
    """What Install dependencies would download for these preferences, or the reason it cannot."""
    try:
        return deps.plan(engine_dir(p), p.torch_build, p.with_photo), ""
    except deps.DepsError as e:
        return None, str(e)


class PSC_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(name="Engine interpreter", subtype="FILE_PATH",
                                description="Python that runs the engine (empty: Blender's own Python)")
    engine_dir: StringProperty(name="Engine folder", subtype="DIR_PATH",
                               description="Folder holding psc_engine/ (empty: the bundled engine or a checkout)")
    weights_dir: StringProperty(name="Weights folder", subtype="DIR_PATH",
                                description="Folder with pm/aa/ct .safetensors (empty: the engine's own weights)")
    torch_build: EnumProperty(name="Torch build", items=(
        ("CPU", "CPU", "Runs everywhere; slower"),
        ("CUDA", "CUDA", "NVIDIA GPU (CUDA 12.6 build)"),
    ), default="CPU")
    with_photo: BoolProperty(name="Photo nets (MediaPipe)", default=False,
                             description="Also install MediaPipe (the engine's photo extra, with numpy < 2), "
                                         "for Prepare on real photos")
    precision: EnumProperty(name="Precision", items=(
        ("auto", "Fastest", "The fastest number format whose frames stay within the engine's stated tolerance of "
         "float32 on this computer (bfloat16 on CPUs with AVX512-BF16 or AMX, float16 on NVIDIA GPUs)"),
        ("float32", "float32", "Always float32: slower, the reference the tolerance is measured against"),
    ), default="auto")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "python_path")
        row = col.row()
        row.label(text=f"Using: {interpreter(self)}")
        row.operator("psc.check_interpreter", icon="CHECKMARK")
        if CHECK["message"]:
            col.label(text=CHECK["message"], icon="INFO")
        col.prop(self, "engine_dir")
        col.prop(self, "weights_dir")
        col.row().prop(self, "precision", expand=True)
        col.label(text=f"Engine: {engine_dir(self) or 'from the interpreter (pip install -e)'}")
        box = col.box()
        box.label(text="Dependencies: the engine's requirements, installed into the add-on's own folder")
        row = box.row()
        row.prop(self, "torch_build", expand=True)
        row.prop(self, "with_photo")
        plan, why = deps_plan(self)
        box.label(text=f"Downloads {plan['summary']}" if plan else why, icon="URL" if plan else "ERROR")
        if not bpy.app.online_access:
            box.label(text=deps.OFFLINE, icon="ERROR")
        row = box.row()
        row.enabled = bool(plan) and bpy.app.online_access
        row.operator("psc.install_deps", icon="IMPORT")
        box.label(text=f"Folder: {deps.deps_folder()}")
        if deps.STATE["message"]:
            box.label(text=deps.STATE["message"], icon="ERROR" if deps.STATE["ok"] is False else "INFO")


def _redraw_prefs():
    for win in bpy.context.window_manager.windows:
        for area in win.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def _poll_state(state):
    def tick():
        _redraw_prefs()
        return 0.5 if state["running"] else None
    return tick


class PSC_OT_check_interpreter(bpy.types.Operator):
    """Check that the engine interpreter can import torch and psc_engine (runs in the background)"""
    bl_idname = "psc.check_interpreter"
    bl_label = "Check"

    def execute(self, context):
        if CHECK["running"]:
            return {"CANCELLED"}
        p = get(context)
        python, env = interpreter(p), engine_command.child_env(engine_paths(p))
        CHECK.update(running=True, message="Checking (importing torch)...")

        def work():
            ok, msg = check_interpreter(python, env)
            CHECK.update(running=False, message=msg)

        threading.Thread(target=work, daemon=True).start()
        bpy.app.timers.register(_poll_state(CHECK), first_interval=0.5)
        return {"FINISHED"}


class PSC_OT_install_deps(bpy.types.Operator):
    """Download and install the engine's dependencies (torch in the chosen build) into the add-on's own folder"""
    bl_idname = "psc.install_deps"
    bl_label = "Install dependencies"

    def invoke(self, context, event):
        plan, _ = deps_plan(get(context))
        if plan is None or not bpy.app.online_access:
            return self.execute(context)  # reports why nothing is downloaded
        return context.window_manager.invoke_confirm(self, event, title="Install dependencies",
                                                     message=f"Download {plan['summary']}?", confirm_text="Download")

    def execute(self, context):
        p = get(context)
        plan, why = deps_plan(p)
        try:
            if plan is None:
                raise deps.DepsError(why)
            message = deps.start_install(interpreter(p), plan)
        except deps.DepsError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        bpy.app.timers.register(_poll_state(deps.STATE), first_interval=1.0)
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES = (PSC_AddonPreferences, PSC_OT_check_interpreter, PSC_OT_install_deps)
register_classes, unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register():
    register_classes()


def unregister():
    unregister_classes()
    for state in (CHECK, deps.STATE):
        state["running"] = False  # stops the redraw timers on their next tick


"""The PSC tab in the 3D View's sidebar (N panel), also shown in the Video Sequencer's sidebar."""
import bpy

from . import presets
from .joints import LABELS
from .operators import running_job


def _draw_inputs(layout, s):
    col = layout.column()
    col.prop(s, "image")
    col.prop(s, "parsing")
    col.prop(s, "pose_source")
    if s.pose_source == "CSV":
        col.prop(s, "pose_csv")
    col.prop(s, "reference_frame")
    col.operator("psc.show_photo", icon="IMAGE_BACKGROUND")


def _draw_rig(layout, s):
    col = layout.column()
    col.prop(s, "armature")
    if s.armature is None:
        return
    row = col.row(align=True)
    row.prop(s, "preset", text="")
    row.operator("psc.detect_rig", text="", icon="VIEWZOOM")
    if s.detected:
        col.label(text=f"Detected: {s.detected}", icon="CHECKMARK" if s.detected in
                  [p.label for p in presets.PRESETS] else "ERROR")
    col.prop_search(s, "head_bone", s.armature.data, "bones")
    if not s.joints:
        col.label(text="No joint maps yet: click the detect button", icon="INFO")
        return
    col.prop(s, "show_mapping", icon="TRIA_DOWN" if s.show_mapping else "TRIA_RIGHT")
    if not s.show_mapping:
        return
    bones = s.armature.data.bones
    for label, item in zip(LABELS, s.joints):
        row = col.row(align=True)
        bad = item.source == "BONE" and item.bone not in bones
        row.alert = bad
        row.label(text=label)
        row.prop(item, "source", text="")
        if item.source == "BONE":
            row.prop_search(item, "bone", s.armature.data, "bones", text="")
            row.prop(item, "end", text="")
        elif item.source == "OBJECT":
            row.prop(item, "target", text="")


def _draw_output(layout, s, scene):
    col = layout.column()
    col.prop(s, "interpolation", expand=True)
    col.prop(s, "output_dir")
    if not s.output_dir:
        col.label(text=f"//psc/{scene.name}/" if bpy.data.filepath else "Unsaved file: a temp folder", icon="FILE_FOLDER")
    col.prop(s, "overwrite")
    col.prop(s, "channel")
    col.prop(s, "make_mp4")
    row = col.row()
    row.prop(s, "device", text="")
    row.prop(s, "batch_size")


def _draw_run(layout, context):
    st = context.window_manager.psc_run
    if running_job() is not None:
        layout.progress(factor=st.progress, type="BAR", text=st.status or "Working...")
        layout.operator("psc.cancel_clip", icon="CANCEL")
        return
    layout.operator("psc.generate_clip", icon="RENDER_ANIMATION")
    layout.operator("psc.export_poses", icon="EXPORT")
    if st.last_report:
        layout.label(text=st.last_report)


class _PSCPanel:
    bl_region_type = "UI"
    bl_category = "PSC"


class PSC_PT_main(_PSCPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_label = "PSC clip"

    def draw(self, context):
        s = context.scene.psc
        layout = self.layout
        for title, fn in (("Photo", lambda b: _draw_inputs(b, s)), ("Rig", lambda b: _draw_rig(b, s)),
                          ("Output", lambda b: _draw_output(b, s, context.scene))):
            box = layout.box()
            box.label(text=title)
            fn(box)
        _draw_run(layout, context)


class PSC_PT_sequencer(_PSCPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_label = "PSC clip"

    def draw(self, context):
        _draw_output(self.layout, context.scene.psc, context.scene)
        _draw_run(self.layout, context)


CLASSES = (PSC_PT_main, PSC_PT_sequencer)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

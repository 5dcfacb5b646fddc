"""The PSC tab in the 3D View's sidebar (N panel), also shown in the Video Sequencer's sidebar.

The Photo box starts with Prepare: a photo of any size goes in, and the overlay of the result (the
framed photo beside its estimated parsing and skeleton) shows right under the button, as a preview
icon (a preview collection: nothing is added to the .blend). Photo, Parsing and Pose CSV below it
are then filled in, and stay editable: the user may replace the parsing or the pose by their own.
"""
import os

import bpy

from . import overlay_preview, presets
from .joints import LABELS
from .operators import running_job
from .rig_points import TORSO

OVERLAY_SCALE = 10.0  # the overlay preview's size in the panel (icon units)


def _draw_prepare(layout, s):
    """Photo to prepare + Prepare, then the overlay of the last Prepare (photo | parsing and skeleton)."""
    col = layout.column()
    row = col.row(align=True)
    row.prop(s, "source_photo", text="")
    row.operator("psc.prepare_photo", icon="IMAGE_RGB")
    path = bpy.path.abspath(s.overlay) if s.overlay else ""
    if not path:
        return
    prev = overlay_preview.preview(path)
    if prev is None:
        col.label(text=f"Overlay missing: {path}", icon="ERROR")
        return
    col.template_icon(icon_value=prev.icon_id, scale=OVERLAY_SCALE)
    col.label(text=f"Overlay: {os.path.basename(path)} (left: framed photo; right: parsing and skeleton)")


def _draw_inputs(layout, s):
    col = layout.column()
    col.label(text="Photo to prepare (any size)")
    _draw_prepare(col, s)
    col.separator()
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
    if s.armature.type != "ARMATURE":
        col.label(text=f"'{s.armature.name}' is not an armature", icon="ERROR")
        return
    col.prop_search(s, "head_bone", s.armature.data, "bones")
    if not s.joints:
        col.label(text="No joint maps yet: click the detect button", icon="INFO")
        return
    bones = s.armature.data.bones
    unmapped = [i for i, item in enumerate(s.joints) if item.source == "BONE" and item.bone not in bones]
    if unmapped:
        torso = [LABELS[i] for i in unmapped if s.joints[i].joint in TORSO]
        col.label(text=(f"Needs a bone: {', '.join(torso)}" if torso else
                        "Written as missing: " + ", ".join(LABELS[i] for i in unmapped)), icon="ERROR")
    col.prop(s, "show_mapping", icon="TRIA_DOWN" if s.show_mapping else "TRIA_RIGHT")
    if not s.show_mapping:
        return
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
    elif s.output_dir.startswith("//") and not bpy.data.filepath:
        col.label(text="Unsaved file: '//' goes to a temp folder", icon="ERROR")
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
register, unregister = bpy.utils.register_classes_factory(CLASSES)

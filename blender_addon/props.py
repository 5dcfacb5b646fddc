"""Scene settings (saved in the .blend) and the run state shown in the UI (not saved)."""
import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import presets
from .joints import FACE, JOINTS, LABELS
from .rig_points import JointSource

SOURCE_ITEMS = (
    ("BONE", "Bone", "A bone's head or tail"),
    ("OBJECT", "Object", "An object's origin, e.g. an empty parented to the rig"),
    ("HEAD", "From head", "Face joints only: from the head bone and the way the face points"),
    ("NONE", "Missing", "Always written as missing (-1)"),
)
PRESET_ITEMS = tuple((p.id, p.label, p.description) for p in presets.PRESETS) + (
    ("CUSTOM", "Custom", "Joints mapped by hand"),
)


# Blender 4.5+ warns when a path property that does not declare it is given a `//` (relative) path.
REL = ({"PATH_SUPPORTS_BLEND_RELATIVE"} if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
       else set())


class PSC_JointMap(bpy.types.PropertyGroup):
    joint: StringProperty()
    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="BONE")
    bone: StringProperty(name="Bone", description="Bone giving this joint")
    end: EnumProperty(name="End", items=(("HEAD", "Head", "The bone's head (its start)"),
                                         ("TAIL", "Tail", "The bone's tail (its end)")), default="HEAD")
    target: PointerProperty(name="Object", type=bpy.types.Object, description="Object giving this joint")


def _is_armature(_self, ob):
    return ob.type == "ARMATURE"


def _on_armature(self, context):
    detect_preset(self)


def _on_preset(self, context):
    if self.preset != "CUSTOM":
        apply_preset(self, self.preset)


class PSC_Settings(bpy.types.PropertyGroup):
    source_photo: StringProperty(name="Photo to prepare", subtype="FILE_PATH", options=REL,
                                 description="A photo of the person, any size: Prepare frames it to 256x256 and "
                                 "estimates its parsing and pose, then fills Photo, Parsing and Pose CSV")
    overlay: StringProperty(name="Overlay", subtype="FILE_PATH", options=REL,
                            description="The last Prepare's overlay (parsing and skeleton over the photo), shown in the panel")
    image: StringProperty(name="Photo", subtype="FILE_PATH", options=REL,
                          description="Reference photo I0, 256x256 (JPEG or PNG)")
    parsing: StringProperty(name="Parsing", subtype="FILE_PATH", options=REL,
                            description="Its human parsing S0 (PNG, class id in the red channel); "
                            "empty: the engine estimates it from the photo")
    pose_source: EnumProperty(name="Reference pose", items=(
        ("CSV", "From CSV", "P0 from the photo's pose CSV; the rig is scaled and shifted onto it"),
        ("RIG", "From rig", "P0 is the rig at the reference frame, posed over the photo in the camera"),
    ), default="CSV")
    pose_csv: StringProperty(name="Pose CSV", subtype="FILE_PATH", options=REL, description="The photo's pose P0 (CSV)")
    reference_frame: IntProperty(name="Reference frame", default=1,
                                 description="Frame where the rig stands as the person in the photo")
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature, update=_on_armature)
    preset: EnumProperty(name="Rig preset", items=PRESET_ITEMS, default="CUSTOM", update=_on_preset)
    detected: StringProperty(name="Detected", description="Result of the last preset detection")
    head_bone: StringProperty(name="Head bone", description="Head bone (neck to crown): gives the face "
                              "direction, and the face joints when the rig has no face bones")
    joints: CollectionProperty(type=PSC_JointMap)
    interpolation: EnumProperty(name="Interpolation", items=(
        ("BLENDER", "Blender", "Every frame's evaluated pose (Blender's keyframe interpolation)"),
        ("PMNET", "PM-Net", "Only keyframed frames are projected; PM-Net's learned interpolation fills the rest"),
    ), default="BLENDER")
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH", options=REL,
                               description="Where the frames go (empty: //psc/<scene>/ next to the .blend)")
    overwrite: BoolProperty(name="Overwrite", default=False, description=(
        "Replace the earlier run's folder once the new frames are done (off: a new numbered folder)"))
    channel: IntProperty(name="Channel", default=1, min=1, max=128, description="Sequencer channel for the clip")
    make_mp4: BoolProperty(name="Render MP4", default=False, description="Render the sequencer to an MP4 afterwards")
    device: EnumProperty(name="Device", items=(("auto", "Auto", "CUDA if available"), ("cpu", "CPU", ""),
                                               ("cuda", "CUDA", "")), default="auto")
    batch_size: IntProperty(name="Batch size", default=8, min=1, max=256, description="Frames per engine batch")
    show_mapping: BoolProperty(name="Show joints", default=False)


class PSC_RunState(bpy.types.PropertyGroup):
    """Shown by the panel while a clip is made; lives on the window manager, so never saved."""
    running: BoolProperty()
    progress: FloatProperty(min=0.0, max=1.0)
    status: StringProperty()
    last_report: StringProperty()


def ensure_joints(settings):
    """Exactly one map entry per joint, in the engine's order."""
    if [j.joint for j in settings.joints] == list(JOINTS):
        return
    settings.joints.clear()
    for name in JOINTS:
        settings.joints.add().joint = name


def apply_preset(settings, preset_id):
    """Fill the joint maps from a preset and the armature's bone names."""
    ensure_joints(settings)
    arm = settings.armature
    names = arm.data.bones.keys() if arm and arm.type == "ARMATURE" else []
    head, mapping = presets.resolve(presets.BY_ID[preset_id], names)
    settings.head_bone = head or ""
    for item in settings.joints:
        found = mapping.get(item.joint)
        item.target = None
        if found:
            item.source, item.bone, item.end = "BONE", found[0], found[1]
        elif item.joint in FACE and head:
            item.source, item.bone, item.end = "HEAD", "", "HEAD"
        else:
            item.source, item.bone, item.end = "BONE", "", "HEAD"


def detect_preset(settings):
    """Pick the preset matching the armature's bone names; returns it or None."""
    ensure_joints(settings)
    arm = settings.armature
    if arm is not None and arm.type != "ARMATURE":  # possible from Python (the picker only offers armatures)
        settings.detected = f"'{arm.name}' is not an armature"
        return None
    found = presets.detect(arm.data.bones.keys()) if arm else None
    settings.detected = found.label if found else ("no preset matches" if arm else "")
    if found:
        if settings.preset == found.id:
            apply_preset(settings, found.id)
        else:
            settings.preset = found.id  # its update fills the joints
    return found


def joint_sources(settings):
    """The joint maps as plain JointSource values (18, in order)."""
    ensure_joints(settings)
    return [JointSource(j.source, j.bone, j.end, j.target) for j in settings.joints]


def joint_label(name):
    return LABELS[JOINTS.index(name)]


CLASSES = (PSC_JointMap, PSC_Settings, PSC_RunState)
register_classes, unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register():
    register_classes()
    bpy.types.Scene.psc = PointerProperty(type=PSC_Settings)
    bpy.types.WindowManager.psc_run = PointerProperty(type=PSC_RunState)


def unregister():
    del bpy.types.WindowManager.psc_run
    del bpy.types.Scene.psc
    unregister_classes()

"""Project an evaluated rig through the scene camera into the photo's 256x256 frame.

world_to_camera_view handles perspective and orthographic cameras and the scene's render
resolution and pixel aspect (through the camera's view frame); framing.py then maps the camera
frame onto the photo.
"""
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from .framing import camera_to_photo, frame_size
from .joints import JOINTS
from .rig_points import face_visible


class CameraError(ValueError):
    pass


def scene_camera(scene):
    cam = scene.camera
    if cam is None:
        raise CameraError(f"Scene '{scene.name}' has no active camera: add one (Add > Camera) and make it "
                          "active (Ctrl+Numpad 0); PSC projects the rig through it")
    if cam.type != "CAMERA":
        kind = cam.type.lower().replace("_", " ")
        raise CameraError(f"The active camera of scene '{scene.name}', '{cam.name}', is {'an' if kind[0] in 'aeiou' else 'a'} "
                          f"{kind}, not a camera: make a camera active (select it, Ctrl+Numpad 0); PSC projects the "
                          "rig through it")
    return cam


def direction_to_camera(cam_eval, point):
    """Unit vector from a point towards the camera (the view axis for an orthographic camera)."""
    mw = cam_eval.matrix_world
    if cam_eval.data.type == "ORTHO":
        return (mw.to_3x3() @ Vector((0.0, 0.0, 1.0))).normalized()
    return (mw.translation - point).normalized()


def project_points(scene, cam_eval, points, head=None):
    """World points (None = missing) -> photo pixels, None where missing, behind the camera or hidden."""
    fw, fh = frame_size(scene.render)
    to_cam = direction_to_camera(cam_eval, head.center) if head is not None else None
    pose = []
    for joint, p in zip(JOINTS, points):
        if p is None:
            pose.append(None)
            continue
        u, v, depth = world_to_camera_view(scene, cam_eval, p)
        if depth <= 0 or (to_cam is not None and not face_visible(joint, head, to_cam)):
            pose.append(None)
            continue
        pose.append(camera_to_photo(u, v, fw, fh))
    return pose


def pose_at_frame(context, rig, arm, frame):
    """Set the frame, evaluate the depsgraph (constraints, drivers) and project the rig."""
    scene = context.scene
    scene.frame_set(frame)
    depsgraph = context.evaluated_depsgraph_get()
    cam_eval = scene_camera(scene).evaluated_get(depsgraph)
    points, head = rig.world_points(arm.evaluated_get(depsgraph), depsgraph)
    return project_points(scene, cam_eval, points, head)

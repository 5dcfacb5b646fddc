"""Which frames hold keyframes, for the PM-Net interpolation mode.

Blender 4.4 moved F-curves into slotted actions (action.layers -> strips -> channelbags) and
5.0 removed `action.fcurves`; both layouts are read here.
"""


def _fcurves(id_data):
    ad = getattr(id_data, "animation_data", None)
    action = ad.action if ad else None
    if action is None:
        return []
    slot = getattr(ad, "action_slot", None)
    if slot is not None and hasattr(action, "layers"):
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(action, slot)
        return list(bag.fcurves) if bag else []
    return list(getattr(action, "fcurves", ()))


def keyed_frames(objects, frame_start, frame_end):
    """Sorted whole frames in [start, end] keyed on any of the objects, always with start and end.

    The range ends are included so the clip covers the whole scene range (Blender holds the pose
    before the first and after the last key; PM-Net then has nothing to interpolate there).
    """
    frames = {frame_start, frame_end}
    for ob in objects:
        for fc in _fcurves(ob):
            for kp in fc.keyframe_points:
                f = int(round(kp.co.x))
                if frame_start <= f <= frame_end:
                    frames.add(f)
    return sorted(frames)

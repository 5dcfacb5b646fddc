"""The generated clip in the Video Sequencer, and the optional MP4 render.

Blender 5.0 renamed `sequence_editor.sequences` to `strips`; both are handled. The add-on's
strip carries a custom property, so a re-run replaces that strip and never one the user made.
"""
import os

import bpy

TAG = "psc_clip"
STRIP_NAME = "PSC clip"


def _strips(scene):
    se = scene.sequence_editor or scene.sequence_editor_create()
    return se.strips if hasattr(se, "strips") else se.sequences


def own_strips(scene):
    if scene.sequence_editor is None:
        return []
    return [s for s in _strips(scene) if s.get(TAG)]


def remove_own_strips(scene):
    """Remove the add-on's earlier strips; returns how many."""
    strips = _strips(scene)
    own = own_strips(scene)
    for s in own:
        strips.remove(s)
    return len(own)


def _channel_free(scene, channel, start, end):
    for s in _strips(scene):
        if s.channel == channel and s.frame_final_start < end and s.frame_final_end > start:
            return False
    return True


def free_channel(scene, channel, start, length):
    """The wanted channel if nothing overlaps the clip there, else the next free one above."""
    end = start + length
    for ch in range(channel, 129):
        if _channel_free(scene, ch, start, end):
            return ch
    return channel


def add_clip(scene, frames, channel, frame_start):
    """Replace the add-on's strip with an image-sequence strip of these frame files."""
    remove_own_strips(scene)
    ch = free_channel(scene, channel, frame_start, len(frames))
    first = frames[0]
    if bpy.data.filepath:
        first = bpy.path.relpath(first)
    strip = _strips(scene).new_image(name=STRIP_NAME, filepath=first, channel=ch,
                                     frame_start=frame_start, fit_method="FIT")
    for path in frames[1:]:
        strip.elements.append(os.path.basename(path))
    strip[TAG] = True
    return strip


def _set_video_output(render, filepath):
    """Switch render output to an H.264 MP4; returns the settings to restore."""
    im, ff = render.image_settings, render.ffmpeg
    saved = {"filepath": render.filepath, "use_sequencer": render.use_sequencer,
             "use_compositing": render.use_compositing, "file_format": im.file_format,
             "media_type": getattr(im, "media_type", None), "format": ff.format, "codec": ff.codec,
             "resolution": (render.resolution_x, render.resolution_y, render.resolution_percentage),
             "aspect": (render.pixel_aspect_x, render.pixel_aspect_y)}
    if hasattr(im, "media_type"):  # Blender 5.0: video formats sit under media type VIDEO
        im.media_type = "VIDEO"
    im.file_format = "FFMPEG"
    ff.format = "MPEG4"
    ff.codec = "H264"
    render.filepath = filepath
    render.use_sequencer = True
    render.use_compositing = False
    return saved


def _restore(render, saved):
    im, ff = render.image_settings, render.ffmpeg
    if saved["media_type"] is not None:
        im.media_type = saved["media_type"]
    im.file_format = saved["file_format"]
    if im.file_format == "FFMPEG":
        ff.format, ff.codec = saved["format"], saved["codec"]
    render.filepath = saved["filepath"]
    render.use_sequencer = saved["use_sequencer"]
    render.use_compositing = saved["use_compositing"]
    render.resolution_x, render.resolution_y, render.resolution_percentage = saved["resolution"]
    render.pixel_aspect_x, render.pixel_aspect_y = saved["aspect"]


def render_mp4(scene, filepath, size, frame_range, background):
    """Render the sequencer to an MP4 at the frames' own size, then put the scene's settings back.

    In the UI the render runs as Blender's usual render job (the UI stays live) and the settings
    are restored when it completes or is cancelled.
    """
    render = scene.render
    saved = _set_video_output(render, filepath)
    saved_range = (scene.frame_start, scene.frame_end)
    render.resolution_x = render.resolution_y = size
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    scene.frame_start, scene.frame_end = frame_range

    def restore(*_args):
        _restore(render, saved)
        scene.frame_start, scene.frame_end = saved_range
        for handlers in (bpy.app.handlers.render_complete, bpy.app.handlers.render_cancel):
            if restore in handlers:
                handlers.remove(restore)

    restore.psc_restore = True
    if background:
        try:
            bpy.ops.render.render(animation=True, scene=scene.name)
        finally:
            restore()
        return filepath
    bpy.app.handlers.render_complete.append(restore)
    bpy.app.handlers.render_cancel.append(restore)
    bpy.ops.render.render("INVOKE_DEFAULT", animation=True, scene=scene.name)
    return filepath


def clear_handlers():
    """Drop restore handlers of an MP4 render still pending (add-on unregistered meanwhile)."""
    for handlers in (bpy.app.handlers.render_complete, bpy.app.handlers.render_cancel):
        for h in [h for h in handlers if getattr(h, "psc_restore", False)]:
            handlers.remove(h)

"""Every wanted frame's pose, projected a few frames at a time so the UI can breathe in between.

The reference frame is projected first. With a P0 from CSV, a scale and shift fitted from that
projection onto P0 is applied to every frame, so the poses keep the photo's framing; with P0
from the rig, the projection at the reference frame is P0 itself.
"""
import time

from .framing import apply_fit, drop_outside, fit_scale_shift
from .projection import pose_at_frame


class FitError(ValueError):
    pass


class PoseTrack:
    def __init__(self, scene, rig, arm, frames, reference_frame, p0=None):
        self.rig, self.arm = rig, arm
        self.queue = [reference_frame] + list(frames)
        self.frames = list(frames)
        self.p0_csv = p0
        self.raw = []
        self.saved_frame = (scene.frame_current, scene.frame_subframe)
        self.finished = False

    @property
    def progress(self):
        return len(self.raw) / len(self.queue)

    def step(self, context, budget=0.05):
        """Project frames for about `budget` seconds; True when every frame is done."""
        t0 = time.perf_counter()
        while len(self.raw) < len(self.queue):
            self.raw.append(pose_at_frame(context, self.rig, self.arm, self.queue[len(self.raw)]))
            if time.perf_counter() - t0 > budget:
                break
        if len(self.raw) == len(self.queue):
            self.restore(context.scene)
            return True
        return False

    def restore(self, scene):
        """Put the scene back on the frame the user was looking at."""
        if not self.finished:
            self.finished = True
            scene.frame_set(self.saved_frame[0], subframe=self.saved_frame[1])

    def result(self):
        """(P0, poses): the reference pose and one pose per frame, in the photo's pixels."""
        ref, poses = self.raw[0], self.raw[1:]
        if self.p0_csv is None:
            return drop_outside(ref), [drop_outside(p) for p in poses]
        fit = fit_scale_shift(ref, self.p0_csv)
        if fit is None:
            raise FitError(f"At the reference frame {self.queue[0]} the rig and the photo's pose share fewer than "
                           "two visible joints, so the rig cannot be fitted onto the photo: check the reference "
                           "frame, the camera and the pose CSV")
        return self.p0_csv, [drop_outside(apply_fit(p, fit)) for p in poses]

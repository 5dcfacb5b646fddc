"""Every wanted frame's pose, projected a few frames at a time and streamed into a pose CSV.

The reference frame is projected first. With a P0 from CSV, a scale and shift fitted from that
projection onto P0 is applied to every frame, so the poses keep the photo's framing; with P0
from the rig, the projection at the reference frame is P0 itself.

Each frame's pose goes straight to the file (its two CSV lines) and is not kept, so memory stays
flat however long the range: 10,000 frames hold no more than one. The file is written under a
temporary name and renamed only once every frame is in it; abort() removes it.
"""
import os
import time

from .contract import protocol
from .framing import apply_fit, drop_outside, fit_agreement, fit_scale_shift, shared_joints
from .projection import pose_at_frame

MIN_REFERENCE_JOINTS = 2  # fewer cannot place and scale the person
MIN_AGREEMENT = 0.5  # below this, the rig at the reference frame does not stand like the photo's pose
BLIND_LISTED = 5  # frames named in the warning when the camera sees no joint


class FitError(ValueError):
    pass


def _seen(pose):
    return sum(p is not None for p in pose)


class PoseTrack:
    def __init__(self, scene, rig, arm, frames, reference_frame, out_path, p0=None, times=True):
        self.rig, self.arm = rig, arm
        self.frames = frames  # a list or a range: only indexed, never copied
        self.reference_frame = reference_frame
        self.first, self.span = frames[0], max(frames[-1] - frames[0], 1)
        self.out_path = out_path
        self.tmp_path = f"{out_path}.{os.getpid()}.partial"
        self.p0_csv = p0
        # t of each pose: its frame's fraction of the range (an exported file), or 0 for the engine's
        # key poses, whose frame numbers travel in --key_frames alone
        self.times = times
        self.p0 = None  # the reference pose, known after the first step
        self.fit = None
        self.done = 0  # frames written (the reference frame not counted)
        self.blind_count, self.blind_frames = 0, []  # frames where the camera sees no joint (the first few)
        self.fit_warning = ""
        self._file = None
        self.saved_frame = (scene.frame_current, scene.frame_subframe)
        self.finished = False

    @property
    def total(self):
        return len(self.frames) + 1

    @property
    def progress(self):
        return (self.done + (self.p0 is not None)) / self.total

    def step(self, context, budget=0.05):
        """Project and write frames for about `budget` seconds; True when the file is complete."""
        t0 = time.perf_counter()
        if self.p0 is None:
            self._reference(context)
        while self.done < len(self.frames):
            frame = self.frames[self.done]
            pose = pose_at_frame(context, self.rig, self.arm, frame)
            if self.fit is not None:
                pose = apply_fit(pose, self.fit)
            pose = drop_outside(pose)
            if not _seen(pose):
                self.blind_count += 1
                if len(self.blind_frames) < BLIND_LISTED:
                    self.blind_frames.append(frame)
            self._file.write(protocol.pose_lines((frame - self.first) / self.span if self.times else 0.0, pose))
            self.done += 1
            if self.done < len(self.frames) and time.perf_counter() - t0 > budget:
                return False
        self._file.close()
        os.replace(self.tmp_path, self.out_path)
        self.restore(context.scene)
        return True

    def _reference(self, context):
        scene = context.scene
        ref = pose_at_frame(context, self.rig, self.arm, self.reference_frame)
        if self.p0_csv is None:
            p0 = drop_outside(ref)
            if _seen(p0) < MIN_REFERENCE_JOINTS:
                raise FitError(f"At the reference frame {self.reference_frame} the camera '{scene.camera.name}' sees "
                               f"{_seen(p0)} of the rig's joints, so the rig gives no reference pose: frame the rig "
                               "in the camera there, or choose another Reference frame")
            self.p0 = p0
        else:
            self.fit = fit_scale_shift(ref, self.p0_csv)
            if self.fit is None:
                n = shared_joints(ref, self.p0_csv)
                why = f"share {n} visible joint(s)" if n < 2 else "share joints that all sit on one spot"
                raise FitError(f"At the reference frame {self.reference_frame} the rig and the photo's pose {why}, so "
                               "the rig cannot be fitted onto the photo: check the reference frame, the camera and "
                               "the pose CSV (or set Reference pose to From rig)")
            agreement = fit_agreement(ref, self.p0_csv)
            if agreement < MIN_AGREEMENT:
                self.fit_warning = (f"At the reference frame {self.reference_frame} the rig does not stand like the "
                                    f"photo's pose (agreement {agreement:.2f} of 1): it is only scaled and moved onto "
                                    "the photo; pose the rig like the photo there, or check the pose CSV")
            self.p0 = self.p0_csv
        os.makedirs(os.path.dirname(os.path.abspath(self.tmp_path)), exist_ok=True)
        self._file = open(self.tmp_path, "w", encoding="utf-8", newline="\n")

    def warnings(self):
        """Problems that did not stop the projection: a poor fit, frames where the camera saw no joint."""
        return [w for w in (self.fit_warning, self.blind_warning()) if w]

    def blind_warning(self):
        """A warning naming the frames where the camera saw none of the joints, or ""."""
        if not self.blind_count:
            return ""
        listed = ", ".join(str(f) for f in self.blind_frames) + (", ..." if self.blind_count > len(self.blind_frames) else "")
        return (f"At {self.blind_count} frame(s) ({listed}) the camera sees none of the rig's joints: those frames "
                "get an all-missing pose (no person); check the camera and the rig's path")

    def restore(self, scene):
        """Put the scene back on the frame the user was looking at."""
        if not self.finished:
            self.finished = True
            scene.frame_set(self.saved_frame[0], subframe=self.saved_frame[1])

    def abort(self, scene):
        """Stop: close and remove the unfinished file, put the frame back."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        if os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)
        self.restore(scene)

"""Issue 7, the add-on's cases that need their own test: frame ranges of one and of 10,000 frames
(streamed projection, progress, cancel), a reference frame the camera cannot see, and a .blend
that was never saved. The other add-on cases are tested beside the features they guard (see the
"Add-on" table in tests/README.md)."""
import gc
import math
import os
import sys
import time
from pathlib import Path

import pytest

from conftest_addon import (add_camera, addon, all_strips, animate_arm_swing, build_rig, bpy, fake_engine,  # noqa: F401
                            generate, leftovers, prefs_reset, private_tmp, psc_strips, run_until_first_frame, scene10)

LONG = 10_000


def test_one_frame_range(scene10, fake_engine, tmp_path):
    scene10.frame_start = scene10.frame_end = 5
    result, report = generate()
    assert result == {"FINISHED"}, report
    out = tmp_path / "out"
    assert [p.name for p in out.glob("frame_*.png")] == ["frame_00001.png"]
    assert [line.split(",")[0] for line in (out / "poses.csv").read_text().splitlines()] == ["0.0000", "0.0000"]
    (strip,) = psc_strips()
    assert (strip.frame_final_start, strip.frame_final_duration) == (5, 1)
    scene10.psc.interpolation = "PMNET"
    result, report = generate()
    assert result == {"CANCELLED"} and report == "PM-Net interpolation needs a frame range of at least two frames"


def _long_scene():
    scene = bpy.context.scene
    rig = build_rig("mixamo")
    add_camera()
    animate_arm_swing(rig, "mixamo", frames=LONG)
    scene.psc.armature, scene.psc.pose_source = rig, "RIG"
    return scene


def test_ten_thousand_frames_export(addon, tmp_path):
    """Export poses over 10,000 frames: quick, streamed into the file under a temporary name."""
    scene = _long_scene()
    t0 = time.perf_counter()
    assert bpy.ops.psc.export_poses(filepath=str(tmp_path / "long.csv")) == {"FINISHED"}
    assert time.perf_counter() - t0 < 15
    lines = (tmp_path / "long.csv").read_text().splitlines()
    assert len(lines) == 2 * LONG and lines[0].startswith("0.0000,") and lines[-1].startswith("1.0000,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.csv", "tmp"]  # tmp: the private temp folder


def test_ten_thousand_frames_progress_then_cancel(addon, fake_engine, tmp_path, monkeypatch):
    """A 10,000-frame run: the projection advances in slices with its progress and keeps no pose in memory
    (it streams into the job's CSV; keeping them as Python tuples would hold ~190,000 objects), the
    engine starts on the streamed poses, Cancel stops it at once and leaves nothing."""
    from blender_addon.clip_job import ClipJob

    monkeypatch.setenv("PSC_FAKE_DELAY", "0.2")
    scene = _long_scene()
    scene.psc.image = str(Path(__file__).resolve().parent.parent / "psc_engine" / "__init__.py")  # the fake copies it
    scene.psc.output_dir = str(tmp_path / "out")
    scene.frame_set(42)
    job = ClipJob(bpy.context)
    seen = []
    gc.collect()
    blocks = sys.getallocatedblocks()
    while job.phase == "project":
        job.step(bpy.context, budget=0.25)  # a modal tick's slice, larger here to keep the test short
        seen.append((job.progress, job.status))
    gc.collect()
    assert sys.getallocatedblocks() - blocks < 20_000  # the job, its process and its track: no per-frame data
    assert job.phase == "engine", job.error
    assert len(seen) > 3 and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert seen[0][1].startswith("Projecting the rig: ") and seen[0][1].endswith(f"/{LONG} frames")
    assert sum(1 for _ in open(job.targets)) == 2 * LONG
    while not job.status.startswith("Frame "):
        job.step(bpy.context, wait=0.1)
    assert job.status.endswith(f"/{LONG}") and 0.1 <= job.progress < 0.11
    pid, t0 = job.engine.proc.pid, time.time()
    job.cancel(bpy.context)
    assert time.time() - t0 < 2.0 and job.phase == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert leftovers(tmp_path) == [] and all_strips() == [] and scene.frame_current == 42


@pytest.mark.skipif(os.name == "nt", reason="kills the process group (POSIX)")
def test_engine_killed_mid_job(scene10, fake_engine, tmp_path, monkeypatch):
    """Killed from outside (not by Cancel): a one-line report, its frames removed, no strip, Blender goes on."""
    import signal

    monkeypatch.setenv("PSC_FAKE_DELAY", "0.5")
    job = run_until_first_frame(tmp_path)
    os.killpg(job.engine.proc.pid, signal.SIGKILL)
    while job.step(bpy.context, wait=0.1) == "engine":
        pass
    assert job.phase == "failed" and job.error == "Engine was stopped by signal 9"
    assert leftovers(tmp_path) == [] and all_strips() == []


def test_reference_frame_the_camera_cannot_see(scene10):
    scene10.camera.rotation_euler = (math.pi / 2, 0.0, math.pi)  # looks away from the rig
    result, report = generate()
    assert result == {"CANCELLED"}
    assert report.startswith("At the reference frame 1 the rig and the photo's pose share 0 visible joint(s)")
    scene10.psc.pose_source = "RIG"
    result, report = generate()
    assert result == {"CANCELLED"}
    assert report.startswith("At the reference frame 1 the camera 'Cam' sees 0 of the rig's joints")


def test_unsaved_blend_and_relative_paths(scene10, fake_engine, private_tmp, tmp_path):
    """`//` of a never-saved .blend: <temp>/psc_unsaved stands in for its folder, and the report says so.
    An input file given as `//...` cannot be found then: a one-line error. Once saved, `//` is the .blend's."""
    s = scene10.psc
    s.output_dir = "//frames/"
    result, report = generate()
    folder = private_tmp / "psc_unsaved" / "frames"
    assert result == {"FINISHED"}, report
    assert report.endswith(f"The .blend is not saved: frames go to {folder} (save the file first to keep them next to it)")
    assert len(list(folder.glob("frame_*.png"))) == 10
    s.output_dir = ""
    assert generate()[0] == {"FINISHED"}
    assert len(list((private_tmp / "psc_unsaved" / "psc" / "Scene").glob("frame_*.png"))) == 10
    image = s.image
    s.image = "//I0.png"
    result, report = generate()
    assert result == {"CANCELLED"}
    assert report == ("Reference photo '//I0.png' is relative to the .blend, but the .blend was never saved: save it, "
                      "or choose the file again in the PSC panel (Photo)")
    s.image, s.output_dir = image, "//frames/"
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    result, report = generate()
    assert result == {"FINISHED"} and "not saved" not in report
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 10

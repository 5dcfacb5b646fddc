"""The add-on driving the engine in its own process: the real engine end to end (small batches,
tiny weights), cancel, errors from the engine, an interpreter without torch, the headless scripts.

Tests marked `engine` start the real `python -m psc_engine` (torch on the CPU); the others use a
fake engine package (conftest_addon.FAKE_MAIN) that speaks the same protocol, for timing control.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest_addon import (REPO, add_camera, addon, all_strips, animate_arm_swing, build_rig, bpy,  # noqa: F401
                            fake_engine, fresh_file, generate, leftovers, prefs_reset, private_tmp, psc_strips,
                            run_until_first_frame, scene10, set_prefs, strips, write_inputs)


def read_png(path):
    from PIL import Image
    import numpy as np

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# --- the real engine ------------------------------------------------------------------------

@pytest.mark.engine
def test_generate_clip_with_the_real_engine(scene10, tiny_weights, prefs_reset, tmp_path):
    """The whole run; at frame 8 the rig jumps out of the camera's view: that frame's pose is all missing,
    the engine draws it anyway (no person) and the report names the frame."""
    set_prefs(weights_dir=str(tiny_weights))
    scene10.psc.make_mp4 = True
    rig = scene10.psc.armature
    for frame, x in ((7, 0.0), (8, 100.0), (9, 0.0)):
        rig.location.x = x
        rig.keyframe_insert("location", index=0, frame=frame)
    result, report = generate()
    assert result == {"FINISHED"}, report
    assert "At 1 frame(s) (8) the camera sees none of the rig's joints" in report
    out = tmp_path / "out"
    frames = sorted(out.glob("frame_*.png"))
    assert [p.name for p in frames] == [f"frame_{i:05d}.png" for i in range(1, 11)]
    (strip,) = psc_strips()
    assert len(strip.elements) == 10 and strip.frame_final_start == 1 and strip.frame_final_duration == 10
    assert [e.filename for e in strip.elements] == [p.name for p in frames]
    assert os.path.normpath(bpy.path.abspath(strip.directory)) == str(out)
    assert (out / "Scene.mp4").stat().st_size > 0
    assert bpy.context.scene.render.image_settings.file_format == "PNG"  # settings restored after the MP4

    # The frames are the engine's output for the poses the add-on projected (poses.csv, kept with them).
    lines = (out / "poses.csv").read_text().splitlines()
    assert len(lines) == 20
    assert lines[14].split(",")[1:] == ["-1"] * 18 and lines[15].split(",")[1:] == ["-1"] * 18  # frame 8
    assert lines[12].count("-1") < 18 and lines[16].count("-1") < 18
    first = tmp_path / "first_batch.csv"  # the add-on's first batch of 4, so the batch is the same
    first.write_text("\n".join(lines[:8]) + "\n")
    s = scene10.psc
    cmd = [sys.executable, "-m", "psc_engine", "animate", "--image", s.image, "--parsing", s.parsing, "--pose",
           s.pose_csv, "--poses", str(first), "--output_dir", str(tmp_path / "direct"),
           "--weights", str(tiny_weights), "--batch_size", "4", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for i in range(1, 5):
        a, b = read_png(out / f"frame_{i:05d}.png"), read_png(tmp_path / "direct" / f"frame_{i:05d}.png")
        assert abs(a - b).max() <= 1, (i, abs(a - b).max())


@pytest.mark.engine
def test_cancel_with_the_real_engine_leaves_nothing(scene10, tiny_weights, prefs_reset, tmp_path):
    set_prefs(weights_dir=str(tiny_weights))
    scene10.frame_end = 60  # long enough to still be running when the first frame lands
    scene10.psc.batch_size = 1
    scene10.frame_set(3)
    job = run_until_first_frame(tmp_path)
    job.cancel(bpy.context)
    assert job.phase == "cancelled" and job.engine.returncode is not None
    assert leftovers(tmp_path) == []
    assert all_strips() == []
    assert bpy.context.scene.frame_current == 3


@pytest.mark.engine
def test_engine_error_is_reported_without_traceback(scene10, tiny_weights, prefs_reset, tmp_path):
    from PIL import Image

    set_prefs(weights_dir=str(tiny_weights))
    wrong = tmp_path / "wrong.png"
    Image.new("RGB", (300, 300)).save(wrong)
    scene10.psc.image = str(wrong)
    result, report = generate()
    assert result == {"CANCELLED"}
    assert report.startswith("Engine: ") and "wrong.png" in report and "300x300" in report
    assert "Traceback" not in report
    assert leftovers(tmp_path) == []


@pytest.mark.engine
def test_batch_clip_under_plain_python(addon, tiny_weights, tmp_path):
    scene = bpy.context.scene
    rig = build_rig("rigify")
    add_camera()
    animate_arm_swing(rig, "rigify", frames=6)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    image, parsing, pose = write_inputs(tmp_path / "inputs")
    cmd = [sys.executable, str(REPO / "scripts" / "batch_clip.py"), "--blend", str(blend), "--image", image,
           "--parsing", parsing, "--pose", pose, "--weights", str(tiny_weights), "--batch-size", "3",
           "--interpolation", "pmnet", "--save"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    folder = tmp_path / "psc" / scene.name
    assert len(list(folder.glob("frame_*.png"))) == 6 and (folder / "key_poses.csv").is_file()
    assert len((folder / "key_poses.csv").read_text().splitlines()) == 6  # keys at frames 1, 4, 6
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    (strip,) = psc_strips()
    assert len(strip.elements) == 6 and strip.directory.startswith("//")  # relative to the saved .blend
    fresh_file()


@pytest.mark.engine
def test_demo_clip_writes_a_clip(tiny_weights, tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "demo_clip.py"), "--out", str(tmp_path / "demo"),
           "--frames", "4", "--weights", str(tiny_weights), "--batch-size", "4"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    demo = tmp_path / "demo"
    assert len(list((demo / "psc" / "Demo").glob("frame_*.png"))) == 4
    assert (demo / "psc" / "Demo" / "Demo.mp4").stat().st_size > 0
    assert (demo / "demo.blend").is_file() and (demo / "demo_frames.png").is_file()


@pytest.mark.skipif(not __import__("shutil").which("blender"), reason="no Blender binary on PATH")
@pytest.mark.engine
def test_batch_clip_inside_blender(addon, tiny_weights, tmp_path):
    rig = build_rig("mixamo")
    add_camera()
    animate_arm_swing(rig, "mixamo", frames=4)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    image, parsing, pose = write_inputs(tmp_path / "inputs")
    cmd = ["blender", "--background", str(blend), "--python", str(REPO / "scripts" / "batch_clip.py"), "--",
           "--image", image, "--parsing", parsing, "--pose", pose, "--weights", str(tiny_weights),
           "--python", sys.executable, "--out", str(tmp_path / "frames")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 4


# --- the fake engine: cancel, re-runs, PM-Net command, errors ---------------------------------

def test_cancel_kills_the_engine_and_removes_its_frames(scene10, fake_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("PSC_FAKE_DELAY", "0.5")
    job = run_until_first_frame(tmp_path)
    pid = job.engine.proc.pid
    t0 = time.time()
    job.cancel(bpy.context)
    assert time.time() - t0 < 2.0  # at once, not after the remaining frames
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert leftovers(tmp_path) == [] and all_strips() == []


def test_cancel_button_stops_the_running_job(scene10, fake_engine, tmp_path, monkeypatch):
    """The Cancel operator flags the job; the modal operator's next tick cancels it."""
    from blender_addon import operators

    monkeypatch.setenv("PSC_FAKE_DELAY", "0.5")
    operators._job = job = run_until_first_frame(tmp_path)
    assert bpy.ops.psc.cancel_clip.poll()
    assert bpy.ops.psc.cancel_clip() == {"FINISHED"} and job.cancel_requested
    assert operators.advance(bpy.context, job) is False
    assert job.phase == "cancelled" and leftovers(tmp_path) == []
    assert not bpy.ops.psc.cancel_clip.poll()


def test_rerun_keeps_earlier_runs_and_user_strips(scene10, fake_engine, tmp_path):
    scene = bpy.context.scene
    user = strips(scene).new_image(name="my strip", filepath=scene.psc.image, channel=1, frame_start=1)
    assert generate()[0] == {"FINISHED"}
    assert generate()[0] == {"FINISHED"}
    out, out1 = tmp_path / "out", tmp_path / "out_001"
    assert len(list(out.glob("frame_*.png"))) == 10 and len(list(out1.glob("frame_*.png"))) == 10
    own = psc_strips()
    assert len(own) == 1 and os.path.normpath(bpy.path.abspath(own[0].directory)) == str(out1)
    assert user.name in strips(scene) and own[0].channel == 2
    scene.psc.overwrite = True
    (out / "marker.txt").write_text("earlier run")
    assert generate()[0] == {"FINISHED"}
    assert not (out / "marker.txt").exists() and len(list(out.glob("frame_*.png"))) == 10
    assert not list(tmp_path.glob("out_002")) and out1.is_dir()


def test_pmnet_mode_sends_key_poses(scene10, fake_engine, tmp_path, monkeypatch):
    log = tmp_path / "argv.json"
    monkeypatch.setenv("PSC_FAKE_LOG", str(log))
    scene10.psc.interpolation = "PMNET"
    assert generate()[0] == {"FINISHED"}
    argv = json.loads(log.read_text())
    assert argv[argv.index("--key_frames") + 1] == "1,6,10" and "--poses" not in argv
    keys = (tmp_path / "out" / "key_poses.csv").read_text().splitlines()
    # The key times travel once, in --key_frames: the key poses' t is 0 (the contract: t is for in-betweens).
    assert len(keys) == 6 and [float(k.split(",")[0]) for k in keys[::2]] == [0.0, 0.0, 0.0]
    assert len(psc_strips()[0].elements) == 10


def test_parsing_left_out_is_estimated_by_the_engine(scene10, fake_engine, tmp_path, monkeypatch):
    log = tmp_path / "argv.json"
    monkeypatch.setenv("PSC_FAKE_LOG", str(log))
    scene10.psc.parsing = ""
    assert generate()[0] == {"FINISHED"}
    argv = json.loads(log.read_text())
    assert "--parsing" not in argv and argv[argv.index("--image") + 1] == scene10.psc.image


def test_engine_error_line_becomes_the_report(scene10, fake_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("PSC_FAKE_FAIL", "/data/P0.csv: line 3: not a number in ['x']")
    result, report = generate()
    assert result == {"CANCELLED"}
    assert report == "Engine: /data/P0.csv: line 3: not a number in ['x']"
    assert leftovers(tmp_path) == []


def test_interpreter_without_torch(scene10, prefs_reset, tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    set_prefs(python_path=str(python))
    result, report = generate()
    assert result == {"CANCELLED"}
    assert "has no" in report and "Install dependencies" in report and str(python) in report
    assert "Traceback" not in report and leftovers(tmp_path) == []
    from blender_addon.engine_process import check_interpreter

    ok, msg = check_interpreter(str(python))
    assert not ok and "Install dependencies" in msg


def test_missing_interpreter(scene10, prefs_reset, tmp_path):
    set_prefs(python_path=str(tmp_path / "no" / "python"))
    result, report = generate()
    assert result == {"CANCELLED"} and "Engine interpreter not found" in report

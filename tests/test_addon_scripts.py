"""The headless scripts under the bpy module this test runs with: their exit status is the real one
(bpy 4.2.x segfaults at interpreter exit once the add-on is registered, 4.5.x can hang there), and
their errors speak of command-line options, once. The successful runs (exit 0) are in
test_addon_engine.py and test_addon_prepare.py."""
import subprocess
import sys

from conftest_addon import REPO, add_camera, addon, animate_arm_swing, build_rig, bpy, private_tmp, write_inputs  # noqa: F401


def run_script(name, *args, cwd):
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_batch_clip_without_a_blend_names_the_options_once(tmp_path):
    """The add-on is enabled before the armature is looked for, so this run has registered its
    PropertyGroups: the exit that crashes bpy 4.2 comes after it."""
    image, parsing, pose = write_inputs(tmp_path / "inputs")
    r = run_script("batch_clip.py", "--image", image, "--parsing", parsing, "--pose", pose, cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    said = [ln for ln in (r.stdout + r.stderr).splitlines() if "armature" in ln.lower()]
    assert said == ["psc: error: no armature in an empty file: give --blend FILE (a .blend with the animated rig) "
                    "or --armature NAME"], r.stdout + r.stderr
    assert "panel" not in (r.stdout + r.stderr).lower()


def test_batch_clip_failures_exit_1(addon, tmp_path):
    rig = build_rig("rigify")  # no camera: Generate refuses
    animate_arm_swing(rig, "rigify", frames=4)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    image, parsing, pose = write_inputs(tmp_path / "inputs")
    common = ("--blend", blend, "--image", image, "--parsing", parsing, "--pose", pose)

    r = run_script("batch_clip.py", *common, "--armature", "Nope", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "psc: error: no armature object named 'Nope'", r.stderr
    r = run_script("batch_clip.py", *common, cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert r.stderr.strip().startswith("psc: error: Scene 'Scene' has no active camera"), r.stderr
    r = run_script("batch_clip.py", *common[:2], "--photo", tmp_path / "missing.jpg", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == f"psc: error: --photo {tmp_path / 'missing.jpg'}: no such file"
    assert not (tmp_path / "psc").exists()


def test_demo_clip_failures_exit_with_their_status(tmp_path):
    r = run_script("demo_clip.py", "--out", tmp_path / "demo", "--image", "x.png", cwd=tmp_path)
    assert r.returncode == 2 and "demo_clip.py: error: --image needs --parsing and --pose" in r.stderr, r.stderr
    r = run_script("demo_clip.py", "--out", tmp_path / "demo", "--photo", "missing.jpg", cwd=tmp_path)
    assert r.returncode == 2 and "demo_clip.py: error: --photo missing.jpg: no such file" in r.stderr, r.stderr
    (tmp_path / "no_weights").mkdir()  # the scene is built and the add-on registered; the engine refuses
    r = run_script("demo_clip.py", "--out", tmp_path / "demo", "--frames", "2", "--no-mp4",
                   "--weights", tmp_path / "no_weights", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert r.stderr.strip().splitlines()[-1].startswith("psc: error: Engine: "), r.stderr

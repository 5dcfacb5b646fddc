"""Install dependencies in the add-on's preferences, in real bpy: it goes online only when
Blender's online access allows it (the real preference, not a stand-in), says what it will
download and how much before it does, and installs exactly the pins of the engine's requirement
files, the ones pyproject.toml reads. pip itself is replaced by a recorder (no network here)."""
import subprocess
import time
import tomllib

import pytest

from conftest_addon import ADDON, REPO, RecordingLayout, addon, bpy, private_tmp, set_prefs  # noqa: F401


def requirement_lines(name):
    lines = (REPO / "psc_engine" / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


@pytest.fixture
def pip(addon, monkeypatch, tmp_path):
    """Every pip command the add-on runs, recorded instead of run; the deps folder in tmp_path."""
    calls = []

    def fake_run_pip(cmd):
        calls.append(cmd)
        if cmd[3] != "install":  # `pip --version`: pip is there
            return subprocess.CompletedProcess(cmd, 0, "pip 24.0", "")
        return subprocess.CompletedProcess(cmd, fake_run_pip.returncode, "", fake_run_pip.stderr)

    fake_run_pip.returncode, fake_run_pip.stderr = 0, ""
    monkeypatch.setattr(addon.deps, "run_pip", fake_run_pip)
    monkeypatch.setattr(addon.deps, "deps_folder", lambda create=False: str(tmp_path / "deps"))
    system = bpy.context.preferences.system
    online = system.use_online_access
    yield calls, fake_run_pip
    system.use_online_access = online
    set_prefs(torch_build="CPU", with_photo=False)
    addon.deps.STATE.update(running=False, ok=None, message="")


def draw_prefs(addon):
    log = []
    prefs = bpy.context.preferences.addons[ADDON].preferences
    addon.prefs.PSC_AddonPreferences.draw(type("P", (), {"layout": RecordingLayout(log), "bl_rna": prefs.bl_rna,
                                                         "__getattr__": lambda s, n: getattr(prefs, n)})(), bpy.context)
    return [text for kind, text in log if kind == "label"]


def wait_until_done(state, timeout=30):
    t0 = time.time()
    while state["running"]:
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def test_offline_nothing_runs_and_the_reason_is_said(addon, pip, monkeypatch):
    calls, _ = pip
    threads = []
    monkeypatch.setattr(addon.deps.threading, "Thread", lambda *a, **k: threads.append(k))
    bpy.context.preferences.system.use_online_access = False
    assert bpy.app.online_access is False
    labels = draw_prefs(addon)
    assert addon.deps.OFFLINE in labels
    assert any(t.startswith("Downloads about 260 MB: torch==2.13.0") for t in labels), labels  # said before any download
    for how in ("EXEC_DEFAULT", "INVOKE_DEFAULT"):
        with pytest.raises(RuntimeError, match="Online access is off: allow it in Preferences > System > Network"):
            bpy.ops.psc.install_deps(how)
    assert calls == [] and threads == [] and addon.deps.STATE["running"] is False


def test_online_it_installs_the_engines_pins(addon, pip, tmp_path):
    calls, _ = pip
    bpy.context.preferences.system.use_online_access = True
    set_prefs(torch_build="CUDA", with_photo=True)
    assert any(t.startswith("Downloads about 3.0 GB: torch==2.13.0") for t in draw_prefs(addon))
    assert addon.deps.OFFLINE not in draw_prefs(addon)
    assert bpy.ops.psc.install_deps() == {"FINISHED"}
    wait_until_done(addon.deps.STATE)
    assert addon.deps.STATE["ok"] is True, addon.deps.STATE
    install = calls[-1]
    assert install[:4] == [install[0], "-m", "pip", "install"]
    assert install[install.index("--target") + 1] == str(tmp_path / "deps")
    assert install[install.index("--index-url") + 1] == "https://download.pytorch.org/whl/cu126"
    wanted = requirement_lines("requirements.txt") + requirement_lines("requirements-photo.txt")
    assert "torch==2.13.0" in wanted and "mediapipe==0.10.21" in wanted and "numpy<2" in wanted
    assert install[install.index("--target") + 2:install.index("--index-url")] == wanted

    # the same files are the package's dependencies
    dynamic = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"]["file"] == ["psc_engine/requirements.txt"]
    assert dynamic["optional-dependencies"]["photo"]["file"] == ["psc_engine/requirements-photo.txt"]


def test_sizes_are_for_the_pinned_torch_and_pip_errors_are_reported(addon, pip):
    calls, fake = pip
    assert addon.deps.SIZES_FOR in requirement_lines("requirements.txt")  # re-measure DOWNLOAD_MB when the pin moves
    plan = addon.deps.plan(str(REPO), "CPU")
    assert plan["mb"] == 260 and "mediapipe==0.10.21" not in plan["packages"]
    with pytest.raises(addon.deps.DepsError, match="No engine with its requirement files found"):
        addon.deps.plan("", "CPU")
    bpy.context.preferences.system.use_online_access = True
    fake.returncode, fake.stderr = 1, "ERROR: No matching distribution found for torch==2.13.0\n"
    assert bpy.ops.psc.install_deps() == {"FINISHED"}
    wait_until_done(addon.deps.STATE)
    assert addon.deps.STATE == {"running": False, "ok": False,
                                "message": "pip failed: ERROR: No matching distribution found for torch==2.13.0"}

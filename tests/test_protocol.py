"""The add-on/engine contract (psc_engine/protocol.py): one definition, used by both sides.

The contract loads without torch or numpy; the command lines it builds are what the engine's
CLI parses; pose files, frame names and events round-trip between the two sides.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from psc_engine import protocol
from psc_engine.cli import build_parser
from psc_engine.formats.poses import FLIP_PERM, JOINTS, format_pose_csv, read_pose_csv

REPO = Path(__file__).resolve().parent.parent


def test_contract_loads_without_torch_or_numpy():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
            "import psc_engine.protocol as p, psc_engine\n"
            "assert len(p.JOINTS) == 18 and p.SIZE == 256\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "print(psc_engine.__version__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_the_addon_loads_the_engines_own_contract_file():
    """blender_addon/contract.py loads psc_engine/protocol.py from the checkout, without bpy or torch."""
    code = ("import sys, importlib.util, types; sys.modules['torch'] = None\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "pkg = types.ModuleType('blender_addon'); pkg.__path__ = [" + repr(str(REPO / "blender_addon")) + "]\n"
            "sys.modules['blender_addon'] = pkg\n"
            "import blender_addon.contract as c, blender_addon.joints as j\n"
            "print(c.protocol.__file__); assert j.JOINTS is c.protocol.JOINTS")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == (REPO / "psc_engine" / "protocol.py").resolve()


def test_engine_uses_the_contracts_joints():
    assert JOINTS is protocol.JOINTS and FLIP_PERM is protocol.FLIP_PERM
    for i, name in enumerate(JOINTS):  # the mirror swaps r_ and l_ and keeps the rest
        twin = name.replace("r_", "@").replace("l_", "r_").replace("@", "l_")
        assert JOINTS[FLIP_PERM[i]] == twin


@pytest.mark.parametrize("mode", ["poses", "keys"])
def test_command_lines_the_contract_builds_are_what_the_cli_parses(mode):
    kwargs = (dict(poses="t.csv") if mode == "poses" else dict(key_poses="k.csv", key_frames=[1, 10, 25]))
    cmd = protocol.animate_command("python", "I0.png", "S0.png", "P0.csv", "out", weights="w", device="cpu",
                                   batch_size=4, **kwargs)
    assert cmd[1:3] == ["-m", "psc_engine"]
    args = build_parser().parse_args(cmd[3:])
    assert (args.image, args.parsing, args.pose, args.output_dir) == ("I0.png", "S0.png", "P0.csv", "out")
    assert (args.weights, args.device, args.batch_size, args.progress) == ("w", "cpu", 4, "json")
    assert (args.poses, args.key_poses, args.key_frames) == (
        ("t.csv", None, None) if mode == "poses" else (None, "k.csv", "1,10,25"))
    prep = build_parser().parse_args(protocol.prepare_command("python", "photo.jpg", "dir", "s", device="cpu")[3:])
    assert (prep.image, prep.out, prep.stem, prep.device, prep.weights) == ("photo.jpg", "dir", "s", "cpu", None)
    # Without a parsing or pose the engine estimates them: the options are simply left out.
    bare = build_parser().parse_args(protocol.animate_command("python", "I0.png", None, None, "o", poses="t.csv")[3:])
    assert bare.parsing is None and bare.pose is None


def test_pose_csv_round_trips_between_the_two_sides(tmp_path):
    pose = [(float(i), 2.0 * i + 0.125) for i in range(18)]
    pose[3] = None
    protocol.write_pose_csv(tmp_path / "addon.csv", [pose, pose], [0.0, 0.5])
    ts, arr = read_pose_csv(tmp_path / "addon.csv")  # the engine reads what the add-on wrote
    assert ts.tolist() == [0.0, 0.5] and np.isnan(arr[0, 3]).all() and arr[1, 5].tolist() == [5.0, 10.125]
    (tmp_path / "engine.csv").write_text(format_pose_csv(arr, ts))
    assert protocol.read_pose_csv(tmp_path / "engine.csv") == ([0.0, 0.5], [pose, pose])  # and back


def test_pose_csv_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("0," + ",".join(["1"] * 18) + "\n0," + ",".join(["1"] * 17) + "\n")
    with pytest.raises(protocol.PSCError, match=r"bad\.csv: line 2: expected 19 values"):
        protocol.read_pose_csv(bad)
    bad.write_text("2," + ",".join(["1"] * 18) + "\n2," + ",".join(["1"] * 18) + "\n")
    with pytest.raises(protocol.PSCError, match=r"t = 2 is outside \[0, 1\]"):
        read_pose_csv(bad)


def test_events_round_trip_and_are_checked():
    line = protocol.event_line("frame", done=3, total=10, path="o/frame_00003.png")
    assert protocol.parse_event(line) == {"event": "frame", "done": 3, "total": 10, "path": "o/frame_00003.png"}
    assert protocol.parse_event("10/250 frames") is None and protocol.parse_event('{"x": 1}') is None
    with pytest.raises(ValueError):
        protocol.event_line("frame", done=3)
    assert protocol.FRAME_RE.match(protocol.frame_name(7)) and protocol.frame_name(7) == "frame_00007.png"


def test_engine_progress_is_what_the_contract_parses(tmp_path, test_layout, tiny_weights):
    """The real engine process: every stdout line of --progress json is a contract event."""
    from psc_engine.formats.poses import write_pose_csv

    poses = tmp_path / "poses.csv"
    _, p0 = read_pose_csv(test_layout / "P0" / "0000.csv")
    write_pose_csv(poses, np.repeat(p0, 3, 0))
    cmd = protocol.animate_command(sys.executable, str(test_layout / "I0" / "0000.png"), str(test_layout / "S0" / "0000.png"),
                                   str(test_layout / "P0" / "0000.csv"), str(tmp_path / "out"), poses=str(poses),
                                   weights=str(tiny_weights), device="cpu")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    events = [protocol.parse_event(line) for line in out.stdout.splitlines()]
    assert all(events) and [e["event"] for e in events] == ["start", "frame", "frame", "frame", "done"]
    assert [Path(e["path"]).name for e in events[1:4]] == [protocol.frame_name(i) for i in (1, 2, 3)]
    assert json.loads(out.stdout.splitlines()[-1])["output_dir"] == str(tmp_path / "out")

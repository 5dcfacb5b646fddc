"""Shared fixtures: small checkpoints and a small test-layout folder made by the tests themselves."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from psc_engine.evaluation.bench import example_inputs
from psc_engine.formats.images import write_png
from psc_engine.formats.poses import write_pose_csv
from psc_engine.weights import make_placeholder

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "psc_engine" / "example" / "test"


_EXIT = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave with pytest's status once everything is reported when the add-on tests ran in the bpy
    module: its own teardown at interpreter exit crashes (bpy 4.2.x segfaults once the add-on has
    registered its properties) or can hang (4.5.x), after every test has passed."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path and "status" in _EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Randomly initialised PM/AA/CT at base width 4: the real nets and loader, fast."""
    folder = tmp_path_factory.mktemp("weights")
    make_placeholder(folder, base=4, seed=0)
    return folder


def make_test_layout(root, n=2):
    """A drawn test-layout folder (I0, S0, P0, P1) with n samples."""
    image, parsing, pose, targets = example_inputs(8)
    for name in ("I0", "S0", "P0", "P1"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        stem = f"{i:04d}"
        write_png(root / "I0" / f"{stem}.png", np.roll(image, i, axis=1))
        write_png(root / "S0" / f"{stem}.png", parsing)
        write_pose_csv(root / "P0" / f"{stem}.csv", pose[None])
        write_pose_csv(root / "P1" / f"{stem}.csv", targets[4 + i][None])
    return root


@pytest.fixture
def test_layout(tmp_path):
    return make_test_layout(tmp_path / "test")


def run_cli(*args, cwd=None, env=None):
    """Run `python -m psc_engine ...` in a real subprocess."""
    return subprocess.run([sys.executable, "-m", "psc_engine", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def make_train_layout(root, n=2):
    """A drawn train-layout folder: n people, 8 views each (the figure shifted per view)."""
    from psc_engine.formats.train_layout import VIEWS

    image, parsing, pose, targets = example_inputs(8)
    for v in VIEWS:
        (root / f"{v}_img").mkdir(parents=True, exist_ok=True)
        (root / f"{v}_sg").mkdir(parents=True, exist_ok=True)
    (root / "joint").mkdir(exist_ok=True)
    (root / "joint_interpolation").mkdir(exist_ok=True)
    for i in range(n):
        stem = f"{i:04d}"
        poses = []
        for k, v in enumerate(VIEWS):
            shift = 4 * k + i
            from PIL import Image
            Image.fromarray(np.roll(image, shift, axis=1)).save(root / f"{v}_img" / f"{stem}.jpg", quality=95)
            write_png(root / f"{v}_sg" / f"{stem}.png", np.roll(parsing, shift, axis=1))
            p = targets[k].copy()
            p[:, 0] += shift
            poses.append(p)
        write_pose_csv(root / "joint" / f"{stem}.csv", np.stack(poses))
        interp = np.concatenate([np.stack(poses[:4]), np.stack([poses[k % 8] for k in range(8)])])
        write_pose_csv(root / "joint_interpolation" / f"{stem}.csv", interp, [0] * 4 + [0.3, 0.7] * 4)
    return root

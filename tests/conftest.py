"""Shared fixtures: small checkpoints and a small test-layout folder made by the tests themselves."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from psc_engine.bench import example_inputs
from psc_engine.images import write_png
from psc_engine.poses import write_pose_csv
from psc_engine.weights import make_placeholder

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "psc_engine" / "example" / "test"


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

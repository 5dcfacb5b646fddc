"""A non-editable install works outside the checkout: the package carries its weights and example."""
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent


def test_installed_package_runs_the_test_job_with_its_own_weights(tmp_path):
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(REPO)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("PSC_WEIGHTS", None)
    where = subprocess.run([sys.executable, "-c", "import psc_engine, psc_engine.pipeline as p; "
                            "print(psc_engine.__file__); print(p.default_weights_dir())"],
                           cwd=work, env=env, capture_output=True, text=True)
    package, weights = where.stdout.split()
    assert Path(package).is_relative_to(site) and Path(weights).is_relative_to(site)
    example = site / "psc_engine" / "example" / "test"
    run = subprocess.run([sys.executable, "-m", "psc_engine", "test", "--data_dir", str(example), "--output_dir", "out",
                          "--process_dir", "proc", "--device", "cpu"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert "placeholder" not in run.stderr  # the shipped, trained weights
    assert len(list((work / "out").glob("*.png"))) == 10 and len(list((work / "proc").glob("*.png"))) == 2


def test_one_version_number():
    import psc_engine

    meta = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('psc-engine'))"],
                          capture_output=True, text=True)
    assert meta.stdout.strip() == psc_engine.__version__

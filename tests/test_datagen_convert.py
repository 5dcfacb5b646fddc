"""The original view order (scripts/datagen/layout.py) and the converter from the older layout
(scripts/convert_layout.py). No Blender needed.

`tests/fixtures/older_tiny` is held-out sample 0000 exactly as generator version 1 wrote it
(older layout: views front, left, back, right, mid0..mid3, `left` = the person facing the
image's left edge), without its images. The checks after conversion are physical, so they
fail if the view order, the naming or the t flip is wrong: the `right` view shows the person
facing image-left, every view's nose lies on its own parsing's face, of a transition's two
in-between poses the one with the smaller t is nearer its first view (and the other nearer its
second), and mid k is nearest transition k's in-between poses.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
OLDER = REPO / "tests" / "fixtures" / "older_tiny"
FIXTURE = REPO / "tests" / "fixtures" / "train_tiny"
sys.path.insert(0, str(SCRIPTS))

from datagen import layout  # noqa: E402

VIEWS = ("right", "front", "left", "back", "mid0", "mid1", "mid2", "mid3")  # written out, not imported
NOSE, NECK, R_EAR, L_EAR = 0, 1, 16, 17
FACE, HAIR = 2, 1


def read_poses(path):
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    return rows[0::2, 0], np.stack([rows[0::2, 1:], rows[1::2, 1:]], -1)  # (P,), (P, 18, 2)


def facing(pose):
    """-1 if the nose points to the image's left of the head and shoulders' middle, +1 if right."""
    back = pose[[1, 2, 5, 16, 17]]  # neck, shoulders, ears: whichever are visible
    back = back[(back != -1).all(-1)]
    return int(np.sign(pose[0, 0] - back[:, 0].mean()))


def parsing(path):
    return np.asarray(Image.open(path).convert("RGB"))[..., 0]


def convert(*args):
    return subprocess.run([sys.executable, str(SCRIPTS / "convert_layout.py"), *map(str, args)],
                          capture_output=True, text=True)


def mean_dist(a, b, *others):
    """Mean joint distance over the joints visible in a, b and the others (the same joints for
    every comparison made with the same poses)."""
    ok = np.all([(p != -1).all(-1) for p in (a, b) + others], axis=0)
    return float(np.linalg.norm(a[ok] - b[ok], axis=-1).mean())


def check_original_order(root, stem):
    """Physical checks that hold only in the original order and naming."""
    _, poses = read_poses(root / "joint" / f"{stem}.csv")
    ts, interp = read_poses(root / "joint_interpolation" / f"{stem}.csv")
    assert len(poses) == 8 and len(interp) == 12
    # the `right` view: turned to their right, the person faces the image's left edge
    assert facing(poses[0]) == -1 and facing(poses[2]) == 1
    sg = parsing(root / "right_sg" / f"{stem}.png")
    head = np.isin(sg, [FACE, HAIR])
    cols = np.nonzero(head)[1]
    assert np.nonzero(sg == FACE)[1].mean() < 0.5 * (cols.min() + cols.max())  # the face on the image-left side
    # each view's nose lies on that view's face (a swapped pair of views puts it on hair or background)
    s = sg.shape[0] / 256
    seen = 0
    for v, pose in zip(VIEWS, poses):
        if (pose[NOSE] == -1).any():
            continue
        x, y = np.round((pose[NOSE] + 0.5) * s - 0.5).astype(int)
        view_sg = parsing(root / f"{v}_sg" / f"{stem}.png")
        assert (view_sg[y - 2:y + 3, x - 2:x + 3] == FACE).any(), f"{v}: the nose is not on the face"
        seen += 1
    assert seen >= 4
    assert np.array_equal(interp[:4], poses[:4]) and (ts[:4] == 0).all()
    for k in range(4):
        a, b = poses[k], poses[(k + 1) % 4]
        t = ts[4 + 2 * k:6 + 2 * k]
        p = interp[4 + 2 * k:6 + 2 * k]
        assert 0 < t[0] < t[1] < 1
        # the pose with the smaller t is the nearer to the transition's first view, the other to its second
        assert mean_dist(p[0], a, b, p[1]) < mean_dist(p[1], a, b, p[0]), (k, t)
        assert mean_dist(p[1], b, a, p[0]) < mean_dist(p[0], b, a, p[1]), (k, t)
        # mid k is nearer transition k's in-betweens than any other transition's
        d = [min(mean_dist(poses[4 + k], q, *interp[4:]) for q in interp[4 + 2 * j:6 + 2 * j]) for j in range(4)]
        assert int(np.argmin(d)) == k, (k, d)


def older_with_images(tmp_path):
    """older_tiny plus images: the committed (original-layout) fixture's JPEGs under the older
    names, by the older convention written out here (older `left` = theta 90 = `right`)."""
    src = tmp_path / "older"
    shutil.copytree(OLDER, src)
    older_name = {"front": "front", "right": "left", "left": "right", "back": "back", "mid0": "mid0",
                  "mid1": "mid3", "mid2": "mid2", "mid3": "mid1"}
    marker = json.loads((src / ".done/0000").read_text())
    for new, old in older_name.items():
        (src / f"{old}_img").mkdir()
        shutil.copy(FIXTURE / f"{new}_img/0000.jpg", src / f"{old}_img/0000.jpg")
        marker["files"].append(f"{old}_img/0000.jpg")
    (src / ".done/0000").write_text(json.dumps(marker))
    return src


def test_view_angles_walk_one_way():
    """right -> front -> left -> back -> right is one direction of turn; mid k halfway."""
    for k in range(4):
        a, b = layout.REFERENCE[k], layout.REFERENCE[(k + 1) % 4]
        assert layout.interp_angle(k, 0) == layout.VIEW_ANGLES[a]
        assert layout.interp_angle(k, 1) == layout.VIEW_ANGLES[b] % 360
        assert layout.interp_angle(k, 0.5) == layout.VIEW_ANGLES[f"mid{k}"]
    assert layout.VIEWS == VIEWS and layout.VIEW_ANGLES["right"] == 90  # theta 90: faces the image's left


def test_older_in_betweens_map_to_the_same_turntable_angles():
    rng = np.random.default_rng(0)
    ts = [round(float(t), 2) for t in rng.uniform(0.05, 0.95, 8)]
    for k, (i, t) in enumerate(layout.old_interp_to_new(ts)):
        older_angle = 90.0 * (i // 2 + ts[i])  # older transition j at s: theta 90 (j + s)
        assert abs(layout.interp_angle(k // 2, t) - older_angle % 360) < 1e-9


def _unflip(root):
    """joint_interpolation/0000.csv as a converter that forgot the t flip would write it: each
    transition's two poses labelled 1 - t (so back in rising order: the pair swaps rows)."""
    path = root / "joint_interpolation/0000.csv"
    lines = path.read_text().splitlines()
    out = lines[:8]
    for i in range(8, 24, 4):
        for pose in (lines[i + 2:i + 4], lines[i:i + 2]):
            t = 1 - float(pose[0].split(",", 1)[0])
            out += [f"{t:.2f}," + line.split(",", 1)[1] for line in pose]
    path.write_text("\n".join(out) + "\n")


def test_the_checks_fail_on_wrong_orders(tmp_path):
    """The physical checks can fail: on the older folder read as if it were in the original
    order, on a conversion without the t flip, and on one with mid1 and mid3 swapped."""
    with pytest.raises(AssertionError):
        check_original_order(OLDER, "0000")
    src = older_with_images(tmp_path)
    assert convert(src, tmp_path / "new").returncode == 0
    unflipped = tmp_path / "unflipped"
    shutil.copytree(tmp_path / "new", unflipped)
    _unflip(unflipped)
    with pytest.raises(AssertionError):
        check_original_order(unflipped, "0000")
    swapped = tmp_path / "swapped"
    shutil.copytree(tmp_path / "new", swapped)
    lines = (swapped / "joint/0000.csv").read_text().splitlines()
    lines[10:12], lines[14:16] = lines[14:16], lines[10:12]  # poses 5 (mid1) and 7 (mid3)
    (swapped / "joint/0000.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError):
        check_original_order(swapped, "0000")


def test_convert_then_the_original_order_holds(tmp_path):
    src = older_with_images(tmp_path)
    before = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    r = convert(src, tmp_path / "new")
    assert r.returncode == 0, r.stderr
    new = tmp_path / "new"
    check_original_order(new, "0000")
    assert {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # source untouched
    rec = json.loads((new / "layout.json").read_text())
    assert rec["view_order"] == "original" and rec["views"] == list(VIEWS) and rec["images"] is True
    assert rec["generator_version"] == 1 and rec["style"] == "classic"
    marker = json.loads((new / ".done/0000").read_text())
    assert sorted(marker["files"]) == marker["files"] and all((new / f).is_file() for f in marker["files"])
    assert "right_img/0000.jpg" in marker["files"] and marker["seed"] == json.loads((src / ".done/0000").read_text())["seed"]
    # the images moved with their views; the converted files are those of the committed fixture
    for v in VIEWS:
        assert (new / f"{v}_img/0000.jpg").read_bytes() == (FIXTURE / f"{v}_img/0000.jpg").read_bytes()
        assert (new / f"{v}_sg/0000.png").read_bytes() == (FIXTURE / f"{v}_sg/0000.png").read_bytes()
    for f in ("joint/0000.csv", "joint_interpolation/0000.csv"):
        assert (new / f).read_bytes() == (FIXTURE / f).read_bytes()


def test_committed_fixture_is_in_the_original_order():
    for stem in ("0000", "0001"):
        check_original_order(FIXTURE, stem)
    assert json.loads((FIXTURE / "layout.json").read_text())["view_order"] == "original"


def test_in_place_and_refusals(tmp_path):
    src = older_with_images(tmp_path)
    r = convert("--in-place", src)
    assert r.returncode == 0, r.stderr
    check_original_order(src, "0000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["older"]  # no work folders left
    for args, word in (([src, tmp_path / "again"], "nothing to convert"),  # already converted
                       ([FIXTURE, src], "exists"),  # never overwrites
                       ([tmp_path / "missing", tmp_path / "x"], "not a folder"),
                       ([src], "either")):
        r = convert(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and word in r.stderr, r.stderr
    assert not (tmp_path / "again").exists() and not (tmp_path / "x").exists()


def test_bad_csv_is_one_line_and_leaves_nothing(tmp_path):
    src = older_with_images(tmp_path)
    (src / "joint_interpolation/0000.csv").write_text("0,1\n")
    r = convert(src, tmp_path / "new")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "joint_interpolation/0000.csv" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["older"]


def test_killed_half_way_leaves_no_target(tmp_path, monkeypatch):
    """A conversion that dies while copying never leaves a folder under the target name."""
    import convert_layout

    src = older_with_images(tmp_path)
    calls = {"n": 0}
    real = shutil.copy2

    def dying_copy(a, b):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(convert_layout.shutil, "copy2", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        convert_layout.main([str(src), str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["older"]  # the work folder is removed too

"""The synthetic data generator (scripts/make_dataset.py and scripts/datagen/).

The render tests need bpy and anny (the optional `data` dependencies) and skip without them;
once anny's cache exists they take about 40 s on one core: held-out sample 0000 in the classic
style at 256 px with 1 Cycles sample (its labels must equal the committed fixture's, which
generator version 1 made at 32), and one photo-style train sample (a crop) at 128 px with
4 samples, then the same sample geometry-only. The layout, packing and crash-safety tests need
neither.
"""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
FIXTURE = REPO / "tests" / "fixtures" / "train_tiny"
sys.path.insert(0, str(SCRIPTS))

VIEWS = ("right", "front", "left", "back", "mid0", "mid1", "mid2", "mid3")  # the original order
# OpenPose COCO-18 indices
NOSE, NECK, R_WRIST, L_WRIST, R_KNEE, R_ANKLE, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = 0, 1, 4, 7, 9, 10, 12, 13, 14, 15, 16, 17
RES = 128
CROP = 2101  # a photo-style train sample whose framing is a knee-up crop (checked below)


def read_poses(path):
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    assert rows.shape[1] == 19 and len(rows) % 2 == 0
    ts = rows[0::2, 0]
    assert np.array_equal(ts, rows[1::2, 0])
    poses = np.stack([rows[0::2, 1:], rows[1::2, 1:]], -1)  # (P, 18, 2)
    return ts, poses


def facing(pose):
    """-1 if the nose points to the image's left of the head and shoulders' middle, +1 if right."""
    back = pose[[1, 2, 5, 16, 17]]  # neck, shoulders, ears: whichever are visible
    back = back[(back != -1).all(-1)]
    return int(np.sign(pose[0, 0] - back[:, 0].mean()))


def parsing(path):
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all()
    return arr[..., 0]


def make(out, *extra, timeout=300):
    cmd = [sys.executable, str(SCRIPTS / "make_dataset.py"), "--out", str(out), *map(str, extra)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_train_sample(root, stem, res, images=True, full_body=True):
    """Layout and label ranges of one complete train-layout sample."""
    assert (root / ".done" / stem).is_file()
    marker = json.loads((root / ".done" / stem).read_text())
    assert len(marker["files"]) == (18 if images else 10)
    rec = json.loads((root / "layout.json").read_text())
    assert rec["view_order"] == "original" and rec["views"] == list(VIEWS) and rec["images"] is images
    for v in VIEWS:
        assert (root / f"{v}_img" / f"{stem}.jpg").is_file() == images
        if images:
            img = Image.open(root / f"{v}_img" / f"{stem}.jpg")
            assert img.format == "JPEG" and img.size == (res, res) and img.mode == "RGB"
        sg = parsing(root / f"{v}_sg" / f"{stem}.png")
        assert sg.shape == (res, res) and sg.max() <= 6
        rows, cols = np.nonzero(sg)
        height = (rows.max() - rows.min() + 1) / res
        if full_body:
            assert (sg == 0).mean() > 0.5  # background around a centred person
            assert 0.75 <= height <= 0.95, f"{v}: person fills {height:.0%} of the frame height"
        else:  # a crop: the person fills the frame and is cut by the bottom edge
            assert rows.max() == res - 1 and height > 0.9, f"{v}: not cut by the bottom edge"
        assert 0.25 * res < cols.mean() < 0.75 * res
    front = parsing(root / f"front_sg/{stem}.png")
    assert {1, 2, 3} <= set(np.unique(front)) and ({4, 5} & set(np.unique(front)))
    ts, poses = read_poses(root / "joint" / f"{stem}.csv")
    assert len(poses) == 8 and (ts == 0).all()
    ts, interp = read_poses(root / "joint_interpolation" / f"{stem}.csv")
    assert len(interp) == 12 and (ts[:4] == 0).all() and ((ts[4:] > 0) & (ts[4:] < 1)).all()
    assert np.array_equal(interp[:4], poses[:4])  # the 4 reference views
    assert (ts[4::2] < ts[5::2]).all()  # two in-betweens per transition, in order
    for p in (poses, interp):
        ok = p != -1
        assert ((p[ok] >= -0.5) & (p[ok] <= 255.5)).all()
        assert ((p == -1) == (p == -1)[..., ::-1]).all()  # x and y missing together
    return poses


# ---------------------------------------------------------------- no Blender needed

def test_fixture_is_a_complete_train_layout():
    for stem in ("0000", "0001"):
        check_train_sample(FIXTURE, stem, 256)


def test_bad_cli_input_is_one_line_naming_the_setting(tmp_path):
    for args, word in ((["--resolution", "10"], "--resolution"), (["--count", "0"], "--count"),
                       (["--workers", "0"], "--workers"), (["--start", "-1"], "--start")):
        r = make(tmp_path / "x", "--split", "train", "--count", "1", *args)
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1 and word in r.stderr, r.stderr
    r = make(tmp_path / "x", "--split", "nope", "--count", "1")
    assert r.returncode == 2 and "--split" in r.stderr
    older = tmp_path / "older"
    (older / ".done").mkdir(parents=True)  # samples, but no layout.json: the older layout
    r = make(older, "--split", "train", "--count", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "convert_layout.py" in r.stderr


def test_interrupted_commit_never_looks_complete(tmp_path, monkeypatch):
    """A sample killed while its files are being moved into place has no marker, is skipped
    by readers and packers, and is simply written again on the next run."""
    from datagen import writer
    import os

    files = {f"{v}_img/0007.jpg": b"x" * 10 for v in VIEWS}
    files["joint/0007.csv"] = b"0,1\n"
    writer.commit(tmp_path, "0007", files, {"seed": 1})
    assert writer.is_complete(tmp_path, "0007")

    calls = {"n": 0}
    real = os.replace

    def dying_replace(a, b):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed mid-way
        return real(a, b)

    monkeypatch.setattr(writer.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        writer.commit(tmp_path, "0007", {k: b"y" * 10 for k in files}, {"seed": 1})
    monkeypatch.setattr(writer.os, "replace", real)
    assert not writer.is_complete(tmp_path, "0007")
    assert "0007" not in writer.complete_stems(tmp_path)
    writer.commit(tmp_path, "0007", {k: b"y" * 10 for k in files}, {"seed": 1})
    assert writer.is_complete(tmp_path, "0007")
    assert (tmp_path / "joint/0007.csv").read_bytes() == b"y" * 10


def test_pack_shards_whole_samples_only_complete(tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    (data / ".done" / "0001").unlink()  # 0001 now looks interrupted
    shutil.copytree(FIXTURE, tmp_path / "two")
    out = tmp_path / "shards"
    r = subprocess.run([sys.executable, str(SCRIPTS / "pack_shards.py"), str(data), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = tarfile.open(out / "shard-00000.tar").getnames()
    assert names[0] == "layout.json" and len(names) == 19
    assert all(n.endswith(("0000.jpg", "0000.png", "0000.csv")) for n in names[1:])
    assert "front_img/0000.jpg" in names and "joint_interpolation/0000.csv" in names
    # a tiny limit: one sample per shard, every shard within the limit
    r = subprocess.run([sys.executable, str(SCRIPTS / "pack_shards.py"), str(tmp_path / "two"), "--out", str(out),
                        "--max-mib", "0.2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shards = sorted(out.glob("shard-*.tar"))
    assert len(shards) == 2 and all(s.stat().st_size <= 0.2 * 2 ** 20 for s in shards)
    for s, stem in zip(shards, ("0000", "0001")):
        with tarfile.open(s) as t:
            assert {Path(n).stem for n in t.getnames()} == {stem, "layout"}
            assert t.extractfile("layout.json").read() == (FIXTURE / "layout.json").read_bytes()
            assert t.extractfile(f"front_img/{stem}.jpg").read() == (FIXTURE / f"front_img/{stem}.jpg").read_bytes()
    r = subprocess.run([sys.executable, str(SCRIPTS / "pack_shards.py"), str(REPO / "tests/fixtures/older_tiny"),
                        "--out", str(tmp_path / "older")], capture_output=True, text=True)
    assert r.returncode == 2 and "convert_layout.py" in r.stderr and not (tmp_path / "older").exists()


# ---------------------------------------------------------------- rendering

@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{"classic": held-out 0000 at 256 px / 1 spp, "photo": train CROP at 128 px / 4 spp,
    "geometry": the same train sample geometry-only}."""
    pytest.importorskip("bpy")
    pytest.importorskip("anny")
    root = tmp_path_factory.mktemp("render")
    runs = {"classic": ("--split", "heldout", "--count", 1, "--samples", 1, "--style", "classic"),
            "photo": ("--split", "train", "--start", CROP, "--count", 1, "--resolution", RES, "--samples", 4),
            "geometry": ("--split", "train", "--start", CROP, "--count", 1, "--resolution", RES, "--geometry-only")}
    for name, args in runs.items():
        r = make(root / name, *args, "--workers", 1)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return {name: root / name for name in runs}


def _near(sg, xy, classes, radius=2):
    """Is one of `classes` within `radius` pixels of the joint (256-frame coords)?"""
    s = sg.shape[0] / 256
    x, y = (xy + 0.5) * s - 0.5
    x, y = int(round(x)), int(round(y))
    win = sg[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
    return bool(np.isin(win, classes).any())


def test_classic_style_makes_version_1_labels_in_the_original_order(rendered):
    """The classic style is generator version 1's look: its labels for held-out 0000 are the
    committed fixture's bytes (made by version 1, then converted by scripts/convert_layout.py)."""
    root = rendered["classic"]
    check_train_sample(root, "0000", 256)
    rec = json.loads((root / "layout.json").read_text())
    assert rec["style"] == "classic" and rec["content_version"] == 1 and rec["framing"] == "full"
    for rel in json.loads((root / ".done/0000").read_text())["files"]:
        if not rel.endswith(".jpg"):
            assert (root / rel).read_bytes() == (FIXTURE / rel).read_bytes(), rel


def test_photo_crop_layout_and_look(rendered):
    root = rendered["photo"]
    marker = json.loads((root / ".done" / f"{CROP}").read_text())
    assert marker["framing"]["kind"] == "crop" and marker["style"] == "photo"
    poses = check_train_sample(root, f"{CROP}", RES, full_body=False)
    front = poses[VIEWS.index("front")]
    assert (front[[R_ANKLE, L_ANKLE]] == -1).all()  # below the bottom edge: missing, as in photos
    _, interp = read_poses(root / "joint_interpolation" / f"{CROP}.csv")
    assert (interp[:, [R_ANKLE, L_ANKLE]] == -1).all()
    img = np.asarray(Image.open(root / f"front_img/{CROP}.jpg"), float)
    sg = parsing(root / f"front_sg/{CROP}.png")
    assert img[sg == 0].mean() > 215  # white or light-grey paper
    assert img[sg == 0].std() < 25  # seamless: no floor line or dark corners


def test_joints_land_on_the_right_parsing_regions(rendered):
    root = rendered["photo"]
    _, poses = read_poses(root / "joint" / f"{CROP}.csv")
    front = poses[VIEWS.index("front")]
    sg = parsing(root / f"front_sg/{CROP}.png")
    assert (front[:14] != -1).sum() >= 20, "the upper body's joints are visible from the front"
    assert _near(sg, front[NOSE], [2])
    for j in (R_WRIST, L_WRIST):
        assert _near(sg, front[j], [3, 4])  # skin or a sleeve
    # "right" is the person's right: on a person facing the camera, the image's left
    assert front[R_WRIST, 0] < front[L_WRIST, 0] and front[R_EYE, 0] < front[L_EYE, 0]
    # the `right` view: turned to their right, the person faces the image's left edge
    right = poses[VIEWS.index("right")]
    assert facing(right) == -1 and (right[[R_EYE, R_EAR]] == -1).all()
    left = poses[VIEWS.index("left")]
    assert facing(left) == 1 and (left[[L_EYE, L_EAR]] == -1).all()
    # from behind, the person's right is on the image's right and the face is hidden
    back = poses[VIEWS.index("back")]
    assert back[R_WRIST, 0] > back[L_WRIST, 0] and (back[[NOSE, R_EYE, L_EYE]] == -1).all()


def test_geometry_only_is_the_same_sample_without_images(rendered):
    """A geometry-only sample has the parsings and joints of the full sample of its seed."""
    geo, photo = rendered["geometry"], rendered["photo"]
    check_train_sample(geo, f"{CROP}", RES, images=False, full_body=False)
    assert json.loads((geo / "layout.json").read_text())["images"] is False
    assert not list(geo.glob("*_img"))
    for rel in json.loads((geo / ".done" / f"{CROP}").read_text())["files"]:
        assert (geo / rel).read_bytes() == (photo / rel).read_bytes(), rel


def test_resume_skips_complete_samples_and_a_folder_keeps_its_layout(rendered):
    root = rendered["geometry"]
    args = ("--split", "train", "--start", CROP, "--count", 1, "--resolution", RES, "--workers", 1)
    r = make(root, *args, "--geometry-only")
    assert r.returncode == 0 and "1 already complete, 0 to render" in r.stdout
    r = make(root, *args)  # with images, into a geometry-only folder
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "images" in r.stderr, r.stderr

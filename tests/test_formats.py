"""Pose CSV, pose maps, parsing and image IO."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from psc_engine import PSCError
from psc_engine.formats.images import read_image, read_parsing, write_png
from psc_engine.formats.poses import (FLIP_PERM, JOINTS, decode_pose_maps, flip_pose, pose_maps,
                              read_pose_csv, write_pose_csv)


def random_pose(rng, missing=3):
    pose = rng.uniform(5, 250, (18, 2)).astype(np.float32)
    pose[rng.choice(18, missing, replace=False)] = np.nan
    return pose


def test_csv_round_trip_with_missing_joints(tmp_path):
    rng = np.random.default_rng(0)
    poses = np.stack([random_pose(rng) for _ in range(3)])
    ts = np.array([0.0, 0.25, 1.0])
    path = tmp_path / "p.csv"
    write_pose_csv(path, poses, ts)
    rows = path.read_text().splitlines()
    assert len(rows) == 6 and all(len(r.split(",")) == 19 for r in rows)
    t2, p2 = read_pose_csv(path)
    np.testing.assert_allclose(t2, ts, atol=1e-4)
    assert np.array_equal(np.isnan(p2), np.isnan(poses))
    np.testing.assert_allclose(p2[~np.isnan(p2)], poses[~np.isnan(poses)], atol=1e-3)


def test_csv_original_style_minus_one_and_crlf_bom(tmp_path):
    xs = ",".join(["0"] + [str(10 + j) for j in range(17)] + ["-1"])
    ys = ",".join(["0"] + [str(100 + j) for j in range(17)] + ["-1"])
    path = tmp_path / "orig.csv"
    path.write_bytes(("\ufeff" + xs + "\r\n" + ys + "\r\n").encode("utf-8"))
    ts, poses = read_pose_csv(path)
    assert poses.shape == (1, 18, 2) and ts[0] == 0
    assert poses[0, 3].tolist() == [13, 103] and np.isnan(poses[0, 17]).all()


@pytest.mark.parametrize("text, what", [
    ("", "empty"),
    (",".join(["0"] * 19) + "\n", "rows come in x/y pairs"),
    (",".join(["0"] * 18) + "\n" + ",".join(["0"] * 18) + "\n", "expected 19 values"),
    (",".join(["0"] * 19) + "\n" + ",".join(["0"] * 18 + ["abc"]) + "\n", "not a number"),
    (",".join(["0"] * 19) + "\n" + ",".join(["0"] * 18 + ["nan"]) + "\n", "NaN or infinite"),
    (",".join(["1.5"] + ["0"] * 18) + "\n" + ",".join(["1.5"] + ["0"] * 18) + "\n", r"outside \[0, 1\]"),
])
def test_csv_errors_name_the_file(tmp_path, text, what):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PSCError, match=what) as e:
        read_pose_csv(path)
    assert str(path) in str(e.value)


def test_missing_csv():
    with pytest.raises(PSCError, match="file not found"):
        read_pose_csv("/nonexistent/p.csv")


def test_pose_map_round_trip_subpixel():
    rng = np.random.default_rng(1)
    poses = np.stack([random_pose(rng) for _ in range(4)])
    maps = pose_maps(poses)
    assert maps.shape == (4, 18, 256, 256)
    assert float(maps.max()) <= 1.0
    back = decode_pose_maps(maps)
    assert np.array_equal(np.isnan(back), np.isnan(poses))
    err = np.abs(back - poses)[~np.isnan(poses)]
    assert err.max() < 0.05, err.max()  # sub-pixel exact on clean maps
    nhwc = pose_maps(poses, channels_last=True)  # the inference layout: same values
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(nhwc, maps)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 254), st.floats(1, 254)), min_size=18, max_size=18),
       st.sets(st.integers(0, 17), max_size=17))
def test_pose_map_round_trip_property(joints, missing):
    pose = np.array(joints, np.float32)
    pose[list(missing)] = np.nan
    back = decode_pose_maps(pose_maps(pose[None]))[0]
    assert np.array_equal(np.isnan(back), np.isnan(pose))
    assert np.nanmax(np.abs(back - pose), initial=0) < 0.05


def test_joint_outside_frame_decodes_missing():
    pose = np.full((18, 2), np.nan, np.float32)
    pose[0] = [-40, 100]
    assert np.isnan(decode_pose_maps(pose_maps(pose[None]))[0, 0]).all()


def test_flip_swaps_left_and_right():
    pose = np.arange(36, dtype=np.float32).reshape(18, 2)
    f = flip_pose(pose)
    assert f[JOINTS.index("r_wrist"), 1] == pose[JOINTS.index("l_wrist"), 1]
    assert f[JOINTS.index("l_ear"), 0] == 255 - pose[JOINTS.index("r_ear"), 0]
    np.testing.assert_array_equal(flip_pose(f), pose)
    assert sorted(FLIP_PERM) == list(range(18))


def test_parsing_red_channel_and_single_channel(tmp_path):
    lab = np.random.default_rng(0).integers(0, 7, (256, 256)).astype(np.uint8)
    rgb = np.stack([lab, np.zeros_like(lab), np.full_like(lab, 200)], -1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(lab, mode="L").save(tmp_path / "grey.png")
    write_png(tmp_path / "ours.png", lab)
    for name in ("rgb.png", "grey.png", "ours.png"):
        np.testing.assert_array_equal(read_parsing(tmp_path / name), lab)


def test_parsing_label_above_6(tmp_path):
    lab = np.zeros((256, 256), np.uint8)
    lab[5, 5] = 9
    write_png(tmp_path / "s.png", lab)
    with pytest.raises(PSCError, match="label 9"):
        read_parsing(tmp_path / "s.png")


def test_images_jpeg_png_modes(tmp_path):
    yy, xx = np.mgrid[0:256, 0:256]
    rgb = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)  # smooth, so JPEG stays close
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(rgb).convert("L").save(tmp_path / "g.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "r.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - rgb).mean() < 3
    for name in ("g.png", "r.png"):
        assert read_image(tmp_path / name).shape == (256, 256, 3)


def test_image_errors(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    (tmp_path / "fake.jpg").write_bytes(b"not an image at all")
    with pytest.raises(PSCError, match="300x200, expected 256x256"):
        read_image(tmp_path / "big.png")
    with pytest.raises(PSCError, match="not a readable image"):
        read_image(tmp_path / "fake.jpg")
    with pytest.raises(PSCError, match="file not found"):
        read_image(tmp_path / "none.jpg")

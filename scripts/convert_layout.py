#!/usr/bin/env python3
"""Convert a data folder written in the generator's older layout into the original layout.

    python scripts/convert_layout.py OLD_DIR NEW_DIR
    python scripts/convert_layout.py --in-place DIR

The older layout (generator version 1; a folder without `layout.json`) named the views front,
left, back, right, mid0..mid3 with `left` the view where the person faces the image's left
edge. The original layout (scripts/datagen/layout.py) calls that view `right` and orders the
rows right, front, left, back, mid0..mid3. The converter

- renames the view folders (older -> original: left -> right, right -> left, mid1 -> mid3,
  mid3 -> mid1; front, back, mid0, mid2 keep their names),
- reorders the rows of `joint/NNNN.csv` and `joint_interpolation/NNNN.csv`; every transition
  of the original order is an older one walked backwards, so its in-between poses get
  t -> 1 - t (and stay in rising t); the joint values are copied as written,
- rewrites the file lists of the `.done/NNNN` markers (everything else in them is kept),
- writes `layout.json`, last.

Only complete samples are converted (with a `.done/` folder: those with a marker). Test-layout
folders (I0, S0, P0, P1) hold the same data in both layouts and only gain `layout.json`.
The new folder is built beside the target and renamed into place when complete, so a
half-converted folder is never found under the target name; NEW_DIR must not exist. With
--in-place the images are hard-linked into the new folder, which then replaces DIR.
"""
import argparse
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import layout  # noqa: E402

OLD_REFS = layout.OLD_VIEWS[:4]


class ConvertError(Exception):
    pass


def convert_poses(text, name, interpolation):
    """Older CSV text -> original-order CSV text (rows reordered, in-between t flipped)."""
    lines = text.splitlines()
    want = 24 if interpolation else 16
    if len(lines) != want:
        raise ConvertError(f"{name}: {len(lines)} rows, expected {want} ({want // 2} poses of two rows)")
    poses = [lines[2 * i:2 * i + 2] for i in range(want // 2)]
    ts = []
    for i, (x, y) in enumerate(poses):
        tx, ty = x.split(",", 1)[0], y.split(",", 1)[0]
        try:
            t = float(tx)
        except ValueError:
            raise ConvertError(f"{name}: row {2 * i + 1} does not start with a number t") from None
        if tx != ty or x.count(",") != 18 or y.count(",") != 18:
            raise ConvertError(f"{name}: pose {i + 1} is not two rows of t and 18 values with the same t")
        ts.append(t)
    refs = [poses[layout.OLD_VIEWS.index(layout.NEW_TO_OLD[v])] for v in layout.REFERENCE]
    if not interpolation:
        mids = [poses[layout.OLD_VIEWS.index(layout.NEW_TO_OLD[v])] for v in layout.VIEWS[4:]]
        return "\n".join(r for p in refs + mids for r in p) + "\n"
    if any(t != 0 for t in ts[:4]) or not all(0 < t < 1 for t in ts[4:]):
        raise ConvertError(f"{name}: expected 4 poses at t = 0, then 8 in-between poses with 0 < t < 1")
    out = [r for p in refs for r in p]
    for i, t in layout.old_interp_to_new(ts[4:]):
        x, y = poses[4 + i]
        out += [f"{t:.2f}," + x.split(",", 1)[1], f"{t:.2f}," + y.split(",", 1)[1]]
    return "\n".join(out) + "\n"


def new_path(rel):
    """An older layout-relative path -> its path in the original layout."""
    top, _, rest = rel.partition("/")
    view, sep, kind = top.rpartition("_")
    if sep and kind in ("img", "sg") and view in layout.OLD_TO_NEW:
        return f"{layout.OLD_TO_NEW[view]}_{kind}/{rest}"
    return rel


def plan(src):
    """What the older folder holds: (kind 'train'|'test', complete stems, markers by stem)."""
    rec = layout.read_layout(src)
    if rec is not None:
        raise ConvertError(f"{src}: already has {layout.LAYOUT_FILE} (view_order {rec.get('view_order')!r}): "
                           f"nothing to convert")
    if (src / "joint").is_dir():
        kind, key = "train", "joint"
    elif (src / "S0").is_dir() and (src / "P0").is_dir():
        kind, key = "test", "P0"
    else:
        raise ConvertError(f"{src}: neither a train-layout folder (joint/, <view>_sg/) nor a test-layout one "
                           f"(S0/, P0/)")
    stems = sorted(p.stem for p in (src / key).glob("*.csv"))
    done = src / ".done"
    markers = {}
    if done.is_dir():
        for p in sorted(done.iterdir()):
            if p.name.startswith("."):
                continue
            try:
                markers[p.name] = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                raise ConvertError(f"{p}: not a readable marker ({e})") from None
        stems = [s for s in stems if s in markers]
    if not stems:
        raise ConvertError(f"{src}: no complete samples")
    if kind == "train":
        views = {p.name.rpartition("_")[0] for p in src.iterdir() if p.is_dir() and p.name.endswith(("_img", "_sg"))}
        if views != set(layout.OLD_VIEWS):
            raise ConvertError(f"{src}: view folders are {sorted(views)}, expected the older layout's "
                               f"{list(layout.OLD_VIEWS)}")
    return kind, stems, markers


def sample_files(src, kind, stem, marker):
    if marker is not None and "files" in marker:
        return list(marker["files"])
    if kind == "test":
        return [f"{d}/{stem}{e}" for d, e in (("I0", ".jpg"), ("S0", ".png"), ("P0", ".csv"), ("P1", ".csv"))
                if (src / d / f"{stem}{e}").exists()]
    files = [f"{v}_{k}/{stem}{e}" for v in layout.OLD_VIEWS for k, e in (("img", ".jpg"), ("sg", ".png"))]
    return [f for f in files if (src / f).exists()] + [f"joint/{stem}.csv", f"joint_interpolation/{stem}.csv"]


def build(src, dst, link):
    """Write the converted folder at dst (which must not exist)."""
    kind, stems, markers = plan(src)
    dst.mkdir(parents=True)
    place = os.link if link else shutil.copy2
    images = False
    for stem in stems:
        marker = markers.get(stem)
        files = sample_files(src, kind, stem, marker)
        for rel in files:
            if not (src / rel).is_file():
                raise ConvertError(f"{src / rel}: missing (listed for sample {stem})")
            out = dst / (new_path(rel) if kind == "train" else rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            if kind == "train" and rel.startswith(("joint/", "joint_interpolation/")):
                text = (src / rel).read_text()
                out.write_text(convert_poses(text, src / rel, rel.startswith("joint_interpolation/")))
            else:
                place(src / rel, out)
            images |= rel.endswith(".jpg")
        if marker is not None:
            (dst / ".done").mkdir(exist_ok=True)
            rec = dict(marker, view_order=layout.ORDER_NAME, converted_by="scripts/convert_layout.py")
            if "files" in marker:
                rec["files"] = sorted(new_path(f) if kind == "train" else f for f in marker["files"])
            (dst / ".done" / stem).write_text(json.dumps(rec, indent=1, sort_keys=True))
    first = markers.get(stems[0], {})
    version = first.get("generator_version", 1)
    rec = layout.layout_record(version, kind, first.get("split"), "classic", "full", images,
                               first.get("resolution", 256))
    rec.update(content_version=version, converted_from="older layout (no layout.json)")
    (dst / layout.LAYOUT_FILE).write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return kind, len(stems)


def main(argv=None):
    p = argparse.ArgumentParser(prog="convert_layout", description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="folder in the older layout")
    p.add_argument("dst", type=Path, nargs="?", help="new folder (must not exist)")
    p.add_argument("--in-place", action="store_true", help="replace SRC by its converted version")
    a = p.parse_args(argv)

    def fail(msg):
        p.exit(2, f"convert_layout: error: {msg}\n")

    if a.in_place == (a.dst is not None):
        fail("give either OLD_DIR NEW_DIR or --in-place DIR")
    src = a.src
    if not src.is_dir():
        fail(f"{src}: not a folder")
    if a.dst is not None and (a.dst.exists() or a.dst.is_symlink()):
        fail(f"{a.dst}: exists; the converter writes a new folder and never overwrites one")
    target = src if a.in_place else a.dst
    work = target.parent / f"{target.name}.converting-{os.getpid()}"
    lock = None
    try:
        if (src / ".lock").exists():  # a running make_dataset batch holds it
            lock = open(src / ".lock")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fail(f"{src}: a make_dataset batch is writing this folder (.lock is held)")
        kind, n = build(src, work, link=a.in_place)
        if a.in_place:
            old = src.parent / f"{src.name}.older-{os.getpid()}"
            os.rename(src, old)
            os.rename(work, src)
            shutil.rmtree(old)
        else:
            os.rename(work, a.dst)
    except (ConvertError, OSError, RuntimeError) as e:  # RuntimeError: layout.read_layout's one-line errors
        shutil.rmtree(work, ignore_errors=True)
        fail(str(e))
    except BaseException:  # interrupted: the work folder (never marked good: no layout.json yet) goes
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if lock:
            lock.close()
    print(f"{target}: {n} {kind}-layout samples in the original layout")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m psc_engine evaluate --parts real --data_dir D [D ...]`: the chain on real photos.

A real photo has no second view of the same person in the same clothes, but it has two targets
whose truth is known:

- identity: the photo to its own pose P0; the truth is the photo itself, so this measures what
  the chain loses without moving (copying the photo is perfect here, and so is the warp).
- mirror: the photo to its mirrored pose; the truth is the photo mirrored left-right, a real photo
  of the mirrored pose. Mirroring a person turns their right side into their left, so the target
  pose swaps each right joint with its left twin and mirrors x (`flip_pose`): a person facing the
  camera still faces it. The target parsing is S0 mirrored. The truth is right wherever the
  garment is left-right symmetric (most are; prints and side partings are not).

Each data folder is in the test layout (I0/, S0/, P0/, P1/; P1 is not used: no photo shows it).
Methods, all in the same run: ours (AA -> CT), ours_true_parsing (CT given the target parsing,
i.e. with a perfect AA), copy (the photo as it is), warp (the photo moved piecewise-affinely by
the two skeletons; `baselines.py`). Metrics per photo and target: SSIM and PSNR over the frame
and within the person (the target parsing's non-background pixels), L1 within the clothing, and
parsing mIoU against the target parsing (ours: AA's parsing; copy: S0 as it is; warp: S0 warped
like the photo), the mIoU from the confusion summed over the row's photos. Rows: each folder and
all photos together ("overall", a mean over photos).

A photo without S0 (or P0): the chain needs it, so the project's photo nets estimate it, as
`test` and `animate` do (prepare.py), and the estimate also stands in for the target parsing: the
person metrics then use the parser's person mask, and the mIoU measures AA against the parser,
not against a label. Each row says how many of its photos had labels ("s0": label / estimated).
"""
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import PSCError
from ..formats.images import colorize_parsing
from ..formats.poses import flip_pose
from ..formats.test_layout import find_test_samples, load_test_sample
from .baselines import piecewise_affine_warp
from .evaluate import image_metrics
from .metrics import confusion, miou

TASKS = ("identity", "mirror")
METHODS = ("ours", "ours_true_parsing", "copy", "warp")
PARSING_METHODS = ("ours", "copy", "warp")  # ours_true_parsing is given the target parsing
METRICS = ("ssim", "ssim_person", "psnr", "psnr_person", "l1_cloth")
SHEET_COLUMNS = ("photo", "ours to its own pose", "mirrored photo (the target)", "ours to the mirrored pose",
                 "copy", "warp", "AA's mirrored parsing")


@dataclass
class RealPhoto:
    folder: str
    stem: str
    image: np.ndarray  # (256, 256, 3) uint8
    parsing: np.ndarray  # (256, 256) uint8
    pose: np.ndarray  # (18, 2), NaN = missing
    s0: str  # "label" or "estimated"
    p0: str


def mirror_target(image, parsing, pose):
    """The photo, its parsing and its pose mirrored left-right: the truth of 'photo -> mirrored pose'."""
    return image[:, ::-1].copy(), parsing[:, ::-1].copy(), flip_pose(pose)


def is_test_layout(data_dir):
    """A test-layout folder (photos in I0/) rather than a train-layout one."""
    return (Path(data_dir) / "I0").is_dir()


def folder_names(data_dirs):
    """A row name per folder: its name, or its whole path where two folders share a name."""
    names = [Path(d).name for d in data_dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, data_dirs)]


def load_photos(data_dirs, complete=None, limit=None, log=print):
    """Every photo of every folder, read and checked before anything is computed. A missing S0 or
    P0 is estimated by complete(image, parsing, pose) (Pipeline.complete_reference: the photo nets)."""
    photos = []
    for name, d in zip(folder_names(data_dirs), data_dirs):
        estimated, items = 0, list(find_test_samples(d).items())[:limit]
        for stem, paths in items:
            s = load_test_sample(stem, paths)
            parsing, pose = s.parsing, s.pose0
            if parsing is None or pose is None:
                if complete is None:
                    raise PSCError(f"photo {stem} has no S0 or P0 and no photo nets are given to estimate it", d)
                _, parsing, pose = complete(s.image, parsing, pose)
                if not parsing.any():
                    raise PSCError(f"the parser finds no person in I0/{Path(paths['I0']).name}; give its S0", d)
                if np.isnan(pose).all():
                    raise PSCError(f"the keypoint net finds no joints in I0/{Path(paths['I0']).name}; give its P0", d)
                estimated += 1
            photos.append(RealPhoto(name, stem, s.image, parsing, pose,
                                    "label" if s.parsing is not None else "estimated",
                                    "label" if s.pose0 is not None else "estimated"))
        if estimated:
            log(f"psc: {d}: {estimated} of {len(items)} photos lack S0 or P0; the photo nets estimate them (see the report's s0/p0 counts)")
    return photos


def transfer_all(pipe, photo):
    """One photo to both targets by every method. Returns (truth images (2, 256, 256, 3),
    truth parsings (2, 256, 256), {method: (images (2, ...), parsings (2, ...) or None)}), in TASKS order."""
    mirrored = mirror_target(photo.image, photo.parsing, photo.pose)
    truth = np.stack([photo.image, mirrored[0]])
    tpars = np.stack([photo.parsing, mirrored[1]])
    tpose = np.stack([photo.pose, mirrored[2]])
    ref = pipe.encode_reference(photo.image, photo.parsing, photo.pose)
    ours, ours_par = (np.asarray(x.cpu()) for x in pipe.render(ref, torch.from_numpy(tpose)))
    ours_true = np.asarray(pipe.render(ref, torch.from_numpy(tpose), tpars)[0].cpu())
    warp = np.stack([piecewise_affine_warp(photo.image, photo.pose, p) for p in tpose])
    warp_par = np.stack([piecewise_affine_warp(photo.parsing, photo.pose, p, order=0) for p in tpose])
    outputs = {"ours": (ours, ours_par), "ours_true_parsing": (ours_true, None),
               "copy": (np.stack([photo.image] * 2), np.stack([photo.parsing] * 2)), "warp": (warp, warp_par)}
    return truth, tpars, outputs


class Tally:
    """Sums of the per-photo metrics and parsing confusions of one row (a folder, or all photos)."""

    def __init__(self):
        self.photos, self.s0, self.p0 = 0, {"label": 0, "estimated": 0}, {"label": 0, "estimated": 0}
        self.sums = {t: {m: dict.fromkeys(METRICS, 0.0) for m in METHODS} for t in TASKS}
        self.conf = {t: {m: torch.zeros(7, 7, dtype=torch.long) for m in PARSING_METHODS} for t in TASKS}

    def add(self, photo, scores, confs):
        self.photos += 1
        self.s0[photo.s0] += 1
        self.p0[photo.p0] += 1
        for t in TASKS:
            for m in METHODS:
                for k in METRICS:
                    self.sums[t][m][k] += scores[t][m][k]
            for m in PARSING_METHODS:
                self.conf[t][m] += confs[t][m]

    def row(self):
        out = {"photos": self.photos, "s0": dict(self.s0), "p0": dict(self.p0)}
        for t in TASKS:
            out[t] = {m: {k: v / max(self.photos, 1) for k, v in self.sums[t][m].items()} for m in METHODS}
            for m in PARSING_METHODS:
                out[t][m]["miou"] = miou(self.conf[t][m])
        return out


def sheet_row(photo, outputs, truth):
    """photo | ours to its own pose | mirrored photo | ours | copy | warp | AA's mirrored parsing (k = 1: mirror)."""
    tiles = [photo.image, outputs["ours"][0][0], truth[1], outputs["ours"][0][1], outputs["copy"][0][1],
             outputs["warp"][0][1], colorize_parsing(outputs["ours"][1][1])]
    return np.concatenate(tiles, 1)


def evaluate_real(pipe, data_dirs, limit=None, log=print, complete=None):
    """Score `pipe` (a Pipeline, or anything with its encode_reference/render) and the baselines on
    real photos in test-layout folders (at most `limit` per folder). A missing S0 or P0 is estimated
    by `complete` (default: pipe.complete_reference). Returns (report dict,
    {"contact_sheet_<folder>": (H, W, 3) uint8})."""
    data_dirs = [Path(d) for d in np.atleast_1d(data_dirs)]
    photos = load_photos(data_dirs, complete or getattr(pipe, "complete_reference", None), limit, log)
    start = time.perf_counter()
    tallies = {name: Tally() for name in folder_names(data_dirs)}
    overall, per_photo, sheets = Tally(), [], {}
    for i, photo in enumerate(photos):
        truth, tpars, outputs = transfer_all(pipe, photo)
        scores, confs = {}, {}
        for k, t in enumerate(TASKS):
            scores[t] = {m: {key: float(v[k]) for key, v in image_metrics(outputs[m][0], truth, tpars).items()}
                         for m in METHODS}
            confs[t] = {m: confusion(torch.from_numpy(outputs[m][1][k]), torch.from_numpy(tpars[k]))
                        for m in PARSING_METHODS}
            for m in PARSING_METHODS:
                scores[t][m]["miou"] = miou(confs[t][m])
        for tally in (tallies[photo.folder], overall):
            tally.add(photo, scores, confs)
        per_photo.append({"folder": photo.folder, "stem": photo.stem, "s0": photo.s0, "p0": photo.p0, **scores})
        sheets.setdefault(f"contact_sheet_{photo.folder}", []).append(sheet_row(photo, outputs, truth))
        log(f"\revaluate real photos {i + 1}/{len(photos)} ({(i + 1) / (time.perf_counter() - start):.2f}/s)", end="")
    log("")
    cards = getattr(pipe, "cards", {})
    report = {"folders": {name: t.row() for name, t in tallies.items()}, "overall": overall.row(), "photos": per_photo,
              "meta": {"mode": "real", "photos": len(photos), "data_dir": [str(d) for d in data_dirs],
                       "tasks": {"identity": "photo -> its own pose; truth: the photo",
                                 "mirror": "photo -> its mirrored pose; truth: the photo mirrored"},
                       "target_parsing": "S0 (mirrored for the mirror task) where labelled, else the parser's "
                                         "estimate of S0 (see each row's s0 counts)",
                       "sheet_columns": list(SHEET_COLUMNS),
                       "weights": {k: {kk: c.get(kk) for kk in ("steps", "placeholder", "data")} for k, c in cards.items()},
                       "seconds": round(time.perf_counter() - start, 1)}}
    return report, {name: np.concatenate(rows, 0) for name, rows in sheets.items()}


def s0_label(row):
    s0 = row["s0"]
    if not s0["estimated"]:
        return "label"
    return "estimate" if not s0["label"] else f"{s0['label']} label, {s0['estimated']} est."


def format_table(report):
    cols = ("ssim", "ssim_person", "psnr", "psnr_person")
    lines = ["real photos: each photo to its own pose (identity) and to its mirrored pose (mirror: the "
             "mirrored photo is the truth); person metrics and mIoU use S0, or the parser's estimate where "
             "S0 is missing (column S0)",
             f"{'folder':<18}{'photos':>7}  {'S0':<18}{'task':<10}{'method':<19}" + "".join(f"{c:>12}" for c in cols)
             + f"{'mIoU':>8}"]
    rows = {**report["folders"], "overall": report["overall"]}
    for name, row in rows.items():
        for t in TASKS:
            for m in METHODS:
                r = row[t][m]
                lines.append(f"{name:<18}{row['photos']:>7}  {s0_label(row):<18}{t:<10}{m:<19}"
                             + "".join(f"{r[c]:>12.4f}" for c in cols)
                             + (f"{r['miou']:>8.4f}" if "miou" in r else f"{'':>8}"))
    lines.append(f"{report['meta']['photos']} photos in {report['meta']['seconds']} s")
    return "\n".join(lines)

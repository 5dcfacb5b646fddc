"""Command line: `python -m psc_engine <command>` or `psc <command>`.

  test      the original release's job on the test layout (PM -> AA -> CT at t = 0.2 .. 1.0)
  animate   one frame per target pose (what the Blender add-on runs)
  bench     frames per second of the AA + CT chain, batched vs the seed-style loop
  train     train PM, AA or CT on the train layout
  evaluate  SSIM / PSNR / mIoU / PM joint error on a train-layout folder, with baselines;
            PCK and parser mIoU of the photo nets; or (--parts real) the chain on real photos
  prepare   a plain photo -> I0, S0, P0 (the photo nets find, frame, parse and pose the person)
  init-weights  write untrained placeholder checkpoints

User errors print one line, `psc: error: <file>: <what is wrong>`, and exit with status 2.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import protocol
from .errors import PSCError

TEST_TS = (0.2, 0.4, 0.6, 0.8, 1.0)


def _warn(message):
    print(protocol.WARNING_PREFIX + message, file=sys.stderr, flush=True)


def _pipeline(args):
    from .pipeline import Pipeline

    pipe = Pipeline.from_pretrained(args.weights, device=args.device, precision=args.precision)
    if pipe.placeholder:
        _warn("using untrained placeholder weights; frames will not look like the person")
    return pipe


def _runs_in(pipe):
    """The first line `test` and `animate` print: how AA and CT run, and why in that precision."""
    return f"psc: AA and CT in {pipe.precision} on {pipe.device} ({pipe.precision_reason})"


def cmd_test(args):
    from .formats.draw import process_strip
    from .formats.outputs import OutputDir
    from .formats.test_layout import load_test_layout

    samples = load_test_layout(args.data_dir)  # everything read and checked before writing
    pipe = _pipeline(args)
    print(_runs_in(pipe), flush=True)
    for s in samples:
        if s.parsing is None or s.pose0 is None:
            _say_estimating(s.parsing, s.pose0, f"sample {s.stem}")
            s.image, s.parsing, s.pose0 = _complete(pipe, s.image, s.parsing, s.pose0, s.image_path)
    with OutputDir(args.output_dir, args.overwrite) as out, OutputDir(args.process_dir, args.overwrite) as proc:
        for s in samples:
            frames = pipe.between(s.image, s.parsing, s.pose0, s.pose1, TEST_TS, batch_size=args.batch_size)
            for t, image in zip(TEST_TS, frames.images):
                out.write_png(f"{s.stem}_t{t:.1f}.png", image)
            steps = list(zip(frames.poses, frames.parsings, frames.images))
            proc.write_png(f"{s.stem}.png", process_strip(s.pose0, s.pose1, s.parsing, s.image, steps))
            print(f"{s.stem}: {len(TEST_TS)} frames", flush=True)
    print(f"wrote {len(samples) * len(TEST_TS)} frames to {args.output_dir} and {len(samples)} process strips to {args.process_dir}")
    return 0


def _say_estimating(parsing, pose, what):
    missing = " and ".join(n for n, v in (("parsing", parsing), ("pose", pose)) if v is None)
    print(f"psc: {what}: no {missing} given; estimating it from the photo", file=sys.stderr)


def _complete(pipe, image, parsing, pose, path):
    """pipe.complete_reference, its errors (no person found, ...) naming the photo's file."""
    try:
        return pipe.complete_reference(image, parsing, pose)
    except PSCError as e:
        if e.path is not None:
            raise
        raise PSCError(str(e), path) from None


def _key_frames(text):
    try:
        return [int(f) for f in text.split(",")]
    except ValueError:
        raise PSCError(f"--key_frames must be comma-separated integers, got {text!r}") from None


def cmd_animate(args):
    from .formats.images import read_image, read_parsing, require_person
    from .formats.outputs import write_frames
    from .formats.poses import read_pose_csv, require_joints

    if bool(args.poses) == bool(args.key_poses):
        raise PSCError("give either --poses (one pose per frame) or --key_poses with --key_frames")
    if args.key_poses and not args.key_frames:
        raise PSCError("--key_poses needs --key_frames (the frame number of each key pose)")
    image = read_image(args.image)
    parsing = require_person(read_parsing(args.parsing), args.parsing) if args.parsing else None
    pose = require_joints(read_pose_csv(args.pose)[1][0], args.pose) if args.pose else None
    targets = read_pose_csv(args.poses or args.key_poses)[1]  # checked before loading the nets
    key_frames = _key_frames(args.key_frames) if args.key_poses else None
    if key_frames is not None and len(key_frames) != len(targets):
        raise PSCError(f"{len(targets)} poses but {len(key_frames)} --key_frames", args.key_poses)
    pipe = _pipeline(args)
    if parsing is None or pose is None:
        _say_estimating(parsing, pose, str(args.image))
        image, parsing, pose = _complete(pipe, image, parsing, pose, args.image)
    if key_frames is not None:
        targets = pipe.keyframe_poses(targets, key_frames)
    progress = args.progress == "json"

    def emit(name, **fields):
        if progress:
            print(protocol.event_line(name, **fields), flush=True)

    total = len(targets)
    emit("start", total=total, device=str(pipe.device), precision=pipe.precision, reason=pipe.precision_reason)
    if not progress:
        print(_runs_in(pipe), file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = 0

    def on_frame(path):
        nonlocal done
        done += 1
        emit("frame", done=done, total=total, path=str(path))
        if not progress:
            print(f"\r{done}/{total} frames", end="", file=sys.stderr, flush=True)

    chunks = pipe.stream(image, parsing, pose, targets, batch_size=args.batch_size, on_warning=_warn)
    write_frames(chunks, args.output_dir, args.overwrite, on_frame)
    seconds = time.perf_counter() - start
    emit("done", total=total, output_dir=str(args.output_dir), seconds=round(seconds, 3))
    if not progress:
        print(f"\rwrote {total} frames to {args.output_dir} ({total / max(seconds, 1e-9):.1f} frames/s)", file=sys.stderr)
    return 0


def cmd_bench(args):
    import torch

    from .evaluation import bench
    from .pipeline import CHECKOUT_WEIGHTS, PACKAGE_WEIGHTS, default_weights_dir, load_chain, pick_device
    from .weights import NETS, build_net

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.random:  # the architecture alone: untrained nets of the chosen width at 256x256
        nets, cards = [build_net(name, {"base": args.base}) for name in NETS], None
        what = f"random base-{args.base} nets (--random: the architecture alone, untrained)"
    else:  # what animate runs: the weights as Pipeline.from_pretrained loads them, at their own size
        folder = args.weights or default_weights_dir()
        nets, cards = load_chain(folder, device)
        shipped = Path(folder).resolve() in (CHECKOUT_WEIGHTS.resolve(), PACKAGE_WEIGHTS.resolve())
        what = f"{'shipped' if shipped else 'given'} weights ({folder})"
    default = "1,4,16,64,256" if device.type == "cuda" else "1,4,8,16,64"
    sizes = tuple(int(b) for b in (args.batch_sizes or default).split(","))
    log = lambda message: print(message, file=sys.stderr, flush=True)
    result = bench.run(nets, cards, device, precision=args.precision, compile=args.compile, batch_sizes=sizes,
                       frames=args.frames, seed_frames=args.seed_frames, min_seconds=args.seconds,
                       end_to_end_frames=args.end_to_end, repeats=args.repeats, weights=what, log=log)
    if args.photo:
        from .prepare import PhotoPreparer
        from .weights import PHOTO_NETS

        if not args.random:
            prep = PhotoPreparer.from_pretrained(args.weights, args.device)
        else:
            prep = PhotoPreparer(*(build_net(name, {"base": args.base}) for name in PHOTO_NETS), device=args.device)
        result["photo"] = bench.photo_fps(prep, min_seconds=args.seconds)
    bench.print_report(result, sys.stdout)
    return 0


def cmd_train(args):
    from .training.config import TrainConfig
    from .training.train import train

    train(TrainConfig.from_args(args))
    return 0


def cmd_evaluate(args):
    from .evaluation import photo_eval
    from .evaluation.evaluate import evaluate, format_table, write_report
    from .evaluation.realphoto import is_test_layout
    from .prepare import PhotoPreparer

    if args.parts is None:  # test-layout folders (I0/ ...) are real photos; train-layout folders are renders
        args.parts = ["real"] if all(is_test_layout(d) for d in args.data_dir) else ["psc", "photo"]
    if "real" in args.parts:
        return _evaluate_real(args)
    if args.parts == ["photo"] and all(is_test_layout(d) for d in args.data_dir):  # prepare on labelled real photos
        photo_eval.run(args, log=lambda *a, **k: print(*a, **k, file=sys.stderr))
        return 0
    args.report_dir = args.report_dir or "evaluation"
    pipe = _pipeline(args) if "psc" in args.parts else None
    prep = PhotoPreparer.from_pretrained(args.weights, args.device) if "photo" in args.parts else None
    if prep is not None and prep.placeholder:
        _warn("the photo nets are untrained placeholders")
    report, sheets = evaluate(pipe, args.data_dir, limit=args.limit, prep=prep,
                              log=lambda *a, **k: print(*a, **k, file=sys.stderr))
    print(format_table(report))
    write_report(report, sheets, args.report_dir)
    written = [f"{args.report_dir}/report.json"]
    if sheets["contact_sheet"] is not None:
        written.append(f"{args.report_dir}/contact_sheet.png (columns: input, truth, ours, ours with true S_t, copy, affine warp)")
    if sheets["photo_sheet"] is not None:
        written.append(f"{args.report_dir}/photo_sheet.png (columns: photo, true parsing and pose, the photo nets' guess)")
    print("report: " + "; ".join(written))
    return 0


def _evaluate_real(args):
    from .evaluation.evaluate import write_report
    from .evaluation.realphoto import SHEET_COLUMNS, evaluate_real, format_table

    if args.parts != ["real"]:
        raise PSCError("--parts real runs alone: it scores test-layout folders, psc and photo score train-layout ones")
    if not args.report_dir:
        raise PSCError("--parts real needs --report_dir: its contact sheets show the photos, so choose where they "
                       "go (outside the repository if their licence forbids sharing them)")
    pipe = _pipeline(args)
    report, sheets = evaluate_real(pipe, args.data_dir, limit=args.limit, log=lambda *a, **k: print(*a, **k, file=sys.stderr))
    table = format_table(report)
    print(table)
    write_report(report, sheets, args.report_dir, table)
    print(f"report: {args.report_dir}/report.json, table.txt; " + ", ".join(f"{args.report_dir}/{n}.png" for n in sheets)
          + f" (columns: {', '.join(SHEET_COLUMNS)})")
    return 0


def cmd_prepare(args):
    from .formats.images import atomic_write_bytes, write_png
    from .formats.poses import format_pose_csv
    from .prepare import PhotoPreparer, open_photo, overlay

    import torch

    # One photo through a small parser: one thread. Two took 1.0 s against 0.09 s for one here,
    # where the second core was busy (each of torch's parallel steps waits for its slowest thread).
    torch.set_num_threads(1)
    photo = open_photo(args.image)
    prep = PhotoPreparer.from_pretrained(args.weights, args.device, finder=args.finder)
    if prep.fallback_reason:
        _warn(f"{prep.fallback_reason}: the pose comes from the project's keypoint net, trained on renders only; "
              "pip install -e \".[photo]\" for MediaPipe Pose")
    if prep.placeholder:
        _warn("the photo nets are untrained placeholders; check the overlay")
    try:
        p = prep.prepare(photo)
    except PSCError as e:
        raise PSCError(str(e), args.image) from None
    stem = args.stem or Path(args.image).stem
    out = Path(args.out)
    targets = {f"I0/{stem}.png": p.image, f"S0/{stem}.png": p.parsing, f"overlay/{stem}.png": overlay(p.image, p.parsing, p.pose)}
    clashes = [n for n in [*targets, f"P0/{stem}.csv"] if (out / n).exists()]
    if clashes and not args.overwrite:
        raise PSCError(f"{clashes[0]} already exists; pass --overwrite or choose another --out", out)
    for sub in ("I0", "S0", "P0", "overlay"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name, array in targets.items():
        write_png(out / name, array)
    atomic_write_bytes(out / "P0" / f"{stem}.csv", format_pose_csv(p.pose[None]).encode())
    print(f"prepared {stem} with {p.summary()}; check {out / 'overlay' / (stem + '.png')}")
    return 0


def cmd_init_weights(args):
    from .weights import make_placeholder

    if os.path.isdir(args.out) and any(n.endswith(".safetensors") for n in os.listdir(args.out)) and not args.overwrite:
        raise PSCError("folder already holds weights; pass --overwrite to replace them", args.out)
    make_placeholder(args.out, base=args.base, seed=args.seed)
    print(f"wrote untrained placeholder pm/aa/ct (base width {args.base}) to {args.out}")
    return 0


def precision_option(sp, default="auto"):
    sp.add_argument("--precision", default=default, choices=protocol.PRECISIONS,
                    help="AA's and CT's number format; auto: the fastest within the stated tolerance of float32 on "
                    "this machine (bfloat16 on a CPU with AVX512-BF16 or AMX, float16 on CUDA, else float32); "
                    "float32 forces float32 (default: %(default)s)")


def build_parser():
    p = argparse.ArgumentParser(prog="psc", description="PSC engine: a dressed person from one photo, in new poses.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, batch=8, precision="auto"):
        sp.add_argument("--weights", default=None, help="weights folder (default: $PSC_WEIGHTS or the repository's weights/)")
        sp.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
        precision_option(sp, precision)
        sp.add_argument("--batch_size", type=int, default=batch, help="frames per AA/CT batch")

    t = sub.add_parser("test", help="the original release's test job on the test layout")
    t.add_argument("--data_dir", required=True)
    t.add_argument("--output_dir", required=True)
    t.add_argument("--process_dir", required=True)
    t.add_argument("--overwrite", action="store_true", help="write into output folders that already hold files")
    common(t)
    t.set_defaults(fn=cmd_test)

    a = sub.add_parser("animate", help="one frame per target pose")
    for flag, options in protocol.ANIMATE_OPTIONS:
        a.add_argument(flag, **options)
    common(a)
    a.set_defaults(fn=cmd_animate)

    b = sub.add_parser("bench", help="frames per second of the AA + CT chain")
    b.add_argument("--weights", default=None, help="time these weights (default: $PSC_WEIGHTS or the repository's "
                   "weights/, at their own size, as animate runs them)")
    b.add_argument("--random", action="store_true", help="time untrained nets of --base width at 256x256 instead "
                   "(the architecture alone)")
    b.add_argument("--base", type=int, default=16, help="width of the --random nets")
    b.add_argument("--device", default="auto")
    precision_option(b)
    b.add_argument("--compile", action="store_true", help="torch.compile the per-frame decoders (compile time reported apart)")
    b.add_argument("--batch_sizes", default=None, help="default: 1,4,8,16,64 on the CPU, 1,4,16,64,256 on CUDA")
    b.add_argument("--frames", type=int, default=None, help="frames per timed run (default: largest batch)")
    b.add_argument("--seed_frames", type=int, default=8)
    b.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per figure and round")
    b.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds; each figure is their median")
    b.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    b.add_argument("--end_to_end", type=int, default=250, help="frames for the end-to-end run with PNG writing (0: skip)")
    b.add_argument("--photo", action="store_true", help="also time the photo nets (keypoints, parser, `prepare` on a 256x256 photo)")
    b.set_defaults(fn=cmd_bench)

    from .training.config import TrainConfig

    tr = sub.add_parser("train", help="train a net on the train layout (folders or .tar shards)")
    TrainConfig.add_arguments(tr)
    tr.set_defaults(fn=cmd_train)

    ev = sub.add_parser("evaluate", help="quality on renders (train layout) or real photos (test layout), against two baselines")
    ev.add_argument("--data_dir", required=True, nargs="+", action="extend",
                    help="train-layout folder or folder of .tar shards; or test-layout folders of real photos (several allowed)")
    ev.add_argument("--report_dir", default=None, help="where report.json, table.txt and the sheets go "
                    "(default: evaluation; --parts real needs it given)")
    ev.add_argument("--limit", type=int, default=None, help="at most this many samples (per folder with --parts real)")
    ev.add_argument("--parts", nargs="+", choices=("psc", "photo", "real"), default=None,
                    help="psc: the PM/AA/CT chain against the baselines; photo: the keypoint net and parser (PCK, mIoU; "
                    "on test-layout folders with P0/S0: prepare on real photos, MediaPipe and the nets side by side); "
                    "real: the chain on real photos (test layout), each to its own and to its mirrored pose. "
                    "Default: real for test-layout folders (with I0/), else psc photo")
    common(ev, precision="float32")  # quality figures stay comparable across checkpoints
    ev.set_defaults(fn=cmd_evaluate)

    pr = sub.add_parser("prepare", help="a plain photo -> I0, S0 and P0 in the test layout, with an overlay")
    for flag, options in protocol.PREPARE_OPTIONS:
        pr.add_argument(flag, **options)
    pr.add_argument("--weights", default=None)
    pr.add_argument("--device", default="auto")
    pr.add_argument("--finder", choices=("auto", "mediapipe", "nets"), default="auto",
                    help="what finds the person and their pose: auto (MediaPipe Pose, the [photo] extra, where "
                    "installed, else the project's keypoint net), or either one")
    pr.set_defaults(fn=cmd_prepare)

    w = sub.add_parser("init-weights", help="write untrained placeholder checkpoints")
    w.add_argument("--out", default="weights")
    w.add_argument("--base", type=int, default=16)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--overwrite", action="store_true")
    w.set_defaults(fn=cmd_init_weights)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except PSCError as e:
        print(f"{protocol.ERROR_PREFIX}{e}", file=sys.stderr)
        return protocol.EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("psc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{protocol.ERROR_PREFIX}out of memory; try a smaller --batch_size", file=sys.stderr)
        return 1

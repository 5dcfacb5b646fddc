"""The resumable batch: skip complete samples, render the rest with N worker processes, print
progress (done, samples/hour, time left). One batch per output folder at a time (a lock file).
"""
import fcntl
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from . import VERSION, layout as layoutmod, writer

_STATE = {}


def _exit_with_parent(parent):
    """A worker whose batch process is gone (killed) stops at once, so no orphan keeps rendering
    into a folder that a resumed batch is writing too."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init(resolution, samples, threads, root, split, layout, style, framing, images, parent):
    """Worker start-up: import Blender and build the body model once."""
    _exit_with_parent(parent)
    import bpy  # noqa: F401  (import first: it sets up Blender's own Python paths)

    from .body import load_body_model

    load_body_model()
    _STATE.update(resolution=resolution, samples=samples, threads=threads, root=root, split=split, layout=layout,
                  style=style, framing=framing, images=images)


def _warm():
    """Build anny's cache in one process before the pool starts: on a fresh machine two
    workers would otherwise both build it (a minute each) and race to write the cache."""
    from .body import load_body_model

    load_body_model()


def _work(index):
    from . import sample

    s = _STATE
    t0 = time.time()
    try:
        res = sample.make(s["split"], index, s["resolution"], s["samples"], s["threads"],
                          workdir=Path(s["root"]) / writer.TMP, style=s["style"], framing=s["framing"],
                          images=s["images"])
        stem = writer.stem_of(index)
        files = writer.sample_files(res, s["layout"], stem)
        meta = dict(res["meta"], layout=s["layout"], resolution=s["resolution"],
                    samples=s["samples"] if s["images"] else 0, images=s["images"], generator_version=VERSION,
                    view_order=layoutmod.ORDER_NAME)
        writer.commit(s["root"], stem, files, meta)
        return index, time.time() - t0, sum(len(b) for b in files.values()), None
    except Exception:  # one bad sample must not stop a night's batch
        return index, time.time() - t0, 0, traceback.format_exc()


def _fmt_h(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def run(root, split, layout, start, count, workers, resolution, samples, log=print, style="photo", framing=None,
        images=True):
    from .sample import FRAMINGS, STYLES

    framing = framing or ("full" if style == "classic" else "photo")
    assert style in STYLES and framing in FRAMINGS
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise RuntimeError(f"{root}: another make_dataset batch is writing this folder (.lock is held)")
    if layoutmod.read_layout(root) is None and (root / writer.DONE).is_dir():
        raise RuntimeError(f"{root}: holds samples of the older layout (no layout.json); convert it with "
                           f"scripts/convert_layout.py or use another --out folder")
    layoutmod.write_layout(root, layoutmod.layout_record(VERSION, layout, split, style, framing, images, resolution))
    writer.clean_tmp(root)
    (root / writer.TMP).mkdir()
    todo = [i for i in range(start, start + count) if not writer.is_complete(root, writer.stem_of(i))]
    skipped = count - len(todo)
    what = f"{samples} spp" if images else "geometry only"
    log(f"[{split}/{layout}] {root}: {count} samples from {start}, {skipped} already complete, {len(todo)} to render "
        f"with {workers} worker(s), {resolution}px, {style} style, {framing} framing, {what}")
    if not todo:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # taskset
    threads = max(1, cores // workers)
    args = (resolution, samples, threads, str(root), split, layout, style, framing, images, os.getpid())
    # SIGTERM (kill, a session ending) unwinds like Ctrl-C, so the pool below terminates its workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.time()
    done, failed, nbytes = 0, 0, 0
    ctx = mp.get_context("spawn")
    if workers > 1:
        warm = ctx.Process(target=_warm)
        warm.start()
        warm.join()
    with ctx.Pool(workers, initializer=_init, initargs=args, maxtasksperchild=50) as pool:
        for index, secs, size, err in pool.imap_unordered(_work, todo):
            if err:
                failed += 1
                log(f"  FAILED {writer.stem_of(index)} after {secs:.1f}s:\n{err}")
                continue
            done += 1
            nbytes += size
            elapsed = time.time() - t0
            rate = done / elapsed * 3600
            left = (len(todo) - done - failed) / max(rate, 1e-9) * 3600
            log(f"  {writer.stem_of(index)} {secs:5.1f}s {size / 1e6:.2f}MB | {skipped + done}/{count} done, "
                f"{rate:.0f} samples/h, ETA {_fmt_h(left)}")
    log(f"[{split}/{layout}] finished: {done} rendered, {failed} failed, {skipped} skipped, "
        f"{(time.time() - t0) / 60:.1f} min, {nbytes / max(done, 1) / 1e6:.2f} MB/sample")
    return 1 if failed else 0


def log_to(path):
    """A logger that prints and appends to a file (for nohup runs)."""
    f = open(path, "a", buffering=1) if path else None

    def log(msg):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        print(line, flush=True)
        if f:
            f.write(line + "\n")

    return log

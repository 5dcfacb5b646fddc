"""Run the engine as a child process and follow its JSON progress lines. No bpy here.

Reader threads drain stdout and stderr (a full pipe would stall the engine) and hand events
to the main thread through a queue; only the main thread touches Blender. Killing the child
frees all its memory, GPU memory included.
"""
import atexit
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import weakref

from .contract import protocol

ERROR_PREFIX = protocol.ERROR_PREFIX
WARNING_PREFIX = protocol.WARNING_PREFIX
_MISSING_MODULE = re.compile(r"No module named '([^'.]+)")
_LIVE = weakref.WeakSet()  # running engines, killed if Blender quits first


@atexit.register
def _kill_live():
    """The child runs in its own session, so it would outlive Blender: stop it on exit."""
    for run in list(_LIVE):
        run.cancel()


class EngineProcess:
    """One engine run. poll() returns new events; cancel() kills it at once."""

    def __init__(self, cmd, env=None, cwd=None):
        self.cmd = list(cmd)
        self.events = queue.Queue()
        self.stderr_lines = []
        self.returncode = None
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # its own process group: cancel kills any helpers too
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        _LIVE.add(self)

    def _read_stdout(self):
        for line in self.proc.stdout:
            event = protocol.parse_event(line)  # the engine may print other lines too
            if event is not None:
                self.events.put(event)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            del self.stderr_lines[:-200]

    def poll(self, timeout=0.0):
        """New events since the last call (waits up to `timeout` s for the first one)."""
        out = []
        try:
            out.append(self.events.get(timeout=timeout) if timeout else self.events.get_nowait())
            while True:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return out

    def finished(self):
        """True once the process has exited and both pipes are drained."""
        if self.returncode is None:
            self.returncode = self.proc.poll()
        if self.returncode is None:
            return False
        for t in self._threads:
            t.join(timeout=5)
        _LIVE.discard(self)
        return True

    def wait(self, timeout=None):
        self.returncode = self.proc.wait(timeout)
        self.finished()
        return self.returncode

    def cancel(self):
        """Kill the engine (and its process group) now and wait until it is gone."""
        if self.proc.poll() is None:
            try:
                if os.name == "nt":
                    self.proc.kill()
                else:
                    os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                self.proc.kill()
        self.wait()
        _LIVE.discard(self)

    def warnings(self):
        """The engine's `psc: warning:` lines (placeholder weights, a batch halved for memory ...), as
        "Engine: <Warning>", in order, without repeats."""
        out = []
        for line in self.stderr_lines:
            if line.startswith(WARNING_PREFIX):
                text = line[len(WARNING_PREFIX):].strip()
                text = "Engine: " + text[:1].upper() + text[1:]
                if text not in out:
                    out.append(text)
        return out

    def error_message(self):
        """The engine's one-line error, or a plain explanation of why the process failed."""
        return explain_failure(self.stderr_lines, self.returncode, self.cmd[0])


def explain_failure(stderr_lines, returncode, interpreter):
    """Turn a failed run's stderr into one line a Blender user can act on (never a traceback)."""
    for line in reversed(stderr_lines):
        if line.startswith(ERROR_PREFIX):
            return "Engine: " + line[len(ERROR_PREFIX):].strip()
    text = "\n".join(stderr_lines)
    m = _MISSING_MODULE.search(text)
    if m:
        return missing_module_message(interpreter, m.group(1))
    last = next((ln.strip() for ln in reversed(stderr_lines) if ln.strip()), "")
    if returncode is not None and returncode < 0:
        return f"Engine was stopped by signal {-returncode}" + (f": {last}" if last else "")
    return f"Engine failed (exit code {returncode})" + (f": {last}" if last else "")


def missing_module_message(interpreter, module):
    if module == "psc_engine":
        return (f"The engine interpreter {interpreter} cannot find psc_engine: install the engine "
                "(pip install -e <PSC checkout>) or set the engine folder in the add-on preferences")
    return (f"The engine interpreter {interpreter} has no {module} (torch and the engine's other packages "
            "are needed): click 'Install dependencies' in Preferences > Add-ons > PSC for Blender, "
            "or set an engine interpreter that has torch")


def check_interpreter(python, env=None, timeout=120):
    """(ok, message): can this interpreter import torch and psc_engine? Takes seconds (torch import)."""
    if not python or not os.path.isfile(python):
        return False, f"Engine interpreter not found: {python or '(not set)'}; set it in the add-on preferences"
    try:
        r = subprocess.run([python, "-c", "import torch, psc_engine; print(torch.__version__, "
                            "'cuda' if torch.cuda.is_available() else 'cpu')"],
                           capture_output=True, text=True, env=env, timeout=timeout,
                           cwd=tempfile.gettempdir())  # not a checkout's folder: import what the engine will
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"Cannot run {python}: {e}"
    if r.returncode == 0:
        return True, f"OK: torch {r.stdout.strip()}"
    return False, explain_failure(r.stderr.splitlines(), r.returncode, python)


def default_interpreter():
    """Blender's own Python (sys.executable is the bundled interpreter in Blender 4.2+)."""
    return sys.executable

"""Progress bars draw only on a terminal: a recipe run into a pipe or log file writes its lines and no bar
updates; the same run on a pseudo-terminal draws bars; ``--no-progress`` turns them off there too."""
import io
import os
import subprocess
import sys

import pytest

from models.progress import progress_allowed, progress_bar, progress_enabled, set_progress

# a seq2seq run of about a second: 2 epochs, each ending in a printed line
RECIPE = ["-m", "models", "seq2seq", "--num-train", "40", "--num-valid", "10", "--hidden-size", "8", "--epochs", "2",
          "--no-plot"]


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_draw_only_on_a_terminal_and_when_allowed():
    assert not progress_enabled(io.StringIO())
    terminal = _FakeTerminal()
    assert progress_enabled(terminal)
    bar = progress_bar(range(3), desc="drawn", file=terminal)
    assert list(bar) == [0, 1, 2] and "drawn" in terminal.getvalue()
    pipe = io.StringIO()
    assert list(progress_bar(range(3), desc="hidden", file=pipe)) == [0, 1, 2] and pipe.getvalue() == ""
    try:
        set_progress(False)
        assert not progress_allowed() and not progress_enabled(_FakeTerminal())
        quiet = _FakeTerminal()
        bar = progress_bar(total=2, file=quiet)
        bar.update(1)
        bar.set_postfix(loss="1.0")
        bar.close()
        assert quiet.getvalue() == ""
    finally:
        set_progress(True)


def _run(tmp_path, argv, terminal: bool) -> str:
    """Run ``python argv`` with stdout and stderr on a pipe, or on a pseudo-terminal; return all it wrote."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not terminal:
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, *argv], stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_recipe_log_has_one_line_per_epoch_and_no_bar(tmp_path):
    out = _run(tmp_path, RECIPE + ["--out", str(tmp_path / "piped")], terminal=False)
    assert "\r" not in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2, out
    assert len(out.splitlines()) < 15, out


def test_recipe_on_a_terminal_draws_bars_unless_no_progress(tmp_path):
    drawn = _run(tmp_path, RECIPE + ["--out", str(tmp_path / "tty")], terminal=True)
    assert "\r" in drawn and "batch" in drawn  # tqdm's carriage-return updates
    quiet = _run(tmp_path, RECIPE + ["--out", str(tmp_path / "quiet"), "--no-progress"], terminal=True)
    # a terminal turns "\n" into "\r\n": what must be gone is a "\r" that is not a line end
    assert "\r" not in quiet.replace("\r\n", "\n"), quiet
    assert sum(line.startswith("epoch ") for line in quiet.splitlines()) == 2

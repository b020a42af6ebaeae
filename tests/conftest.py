"""Test-session setup: one BLAS thread before NumPy loads, and the hypothesis profiles.

The models here multiply many small matrices; on a 2-core machine shared with other work,
oversubscribed OpenBLAS threads make such products tens of times slower, and results with one
thread do not depend on the machine's thread count (same seed, same numbers).

Hypothesis profiles:
- ``ci`` (selected when the ``CI`` environment variable is set, as ``.ci/run`` does): the same
  examples on every run (``derandomize``), no example database, no deadline, and the blob that
  reproduces a failure printed. A red CI run is therefore reproducible on any machine.
- ``dev`` (otherwise): fresh random examples each run, so local runs keep exploring. A failure
  found this way is pinned in the test with ``@example(...)`` so that CI checks it from then on.
``HYPOTHESIS_PROFILE=<name>`` picks a profile explicitly.

Kernel-path record (``.ci/run``): with ``MINIGRAD_RECORD_KERNEL_TESTS=<file>`` every test file in
which a layer asked ``minigrad.kernels.using_reference()`` (while importing it or during any of its
tests) — so its outcome can depend on ``MINIGRAD_KERNELS`` — is appended to ``<file>``, one path a
line (each xdist worker appends its own lines). With ``MINIGRAD_ONLY_KERNEL_TESTS=<file>`` only the
test files listed there run: CI reruns on the plain-ops references the files that reached a kernel.
"""
import os
from pathlib import Path

import pytest

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from hypothesis import settings  # noqa: E402  (after the thread variables: it may import NumPy)

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    cpu = os.environ.get("ATEN_CPU_CAPABILITY", "")
    return [f"hypothesis profile: {PROFILE} ({'derandomized' if settings().derandomize else 'random'} examples)"
            + (f"; ATEN_CPU_CAPABILITY={cpu}" if cpu else "")]


RECORD = os.environ.get("MINIGRAD_RECORD_KERNEL_TESTS")
ONLY = os.environ.get("MINIGRAD_ONLY_KERNEL_TESTS")


def _record_if_asked(before: int, test_file: str) -> None:
    from minigrad import kernels

    if kernels.times_asked() != before:
        with open(RECORD, "a", encoding="utf-8") as out:  # one short line per write: workers' lines stay whole
            out.write(test_file + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Importing a test file (module-level code may run a layer)."""
    if not RECORD or not isinstance(collector, pytest.Module):
        yield
        return
    from minigrad import kernels

    before = kernels.times_asked()
    yield
    _record_if_asked(before, collector.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Setup, call and teardown of one test. The record is per file, not per test: a test can read
    what a module-scoped fixture or cache computed with a kernel during an earlier test."""
    if not RECORD:
        yield
        return
    from minigrad import kernels

    before = kernels.times_asked()
    yield
    _record_if_asked(before, item.nodeid.split("::")[0])


def pytest_collection_modifyitems(config, items):
    if not ONLY:
        return
    path = Path(ONLY)
    if not path.is_file():
        raise pytest.UsageError(f"MINIGRAD_ONLY_KERNEL_TESTS: no such file {path} (write it with "
                                f"MINIGRAD_RECORD_KERNEL_TESTS=<file> python -m pytest)")
    files = set(path.read_text(encoding="utf-8").split())
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid.split("::")[0] not in files])
    items[:] = [item for item in items if item.nodeid.split("::")[0] in files]

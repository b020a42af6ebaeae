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
"""
import os

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

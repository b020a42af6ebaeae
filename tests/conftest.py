"""Test-session setup: one BLAS thread before NumPy loads.

The models here multiply many small matrices; on a 2-core machine shared with other work,
oversubscribed OpenBLAS threads make such products tens of times slower, and results with one
thread do not depend on the machine's thread count (same seed, same numbers)."""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

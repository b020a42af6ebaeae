import os

# One BLAS thread unless the user says otherwise (set before NumPy loads): the book's models
# multiply many small matrices, where extra threads cost more than they give, and one thread
# makes results independent of the machine. Override with e.g. OPENBLAS_NUM_THREADS=2.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402

from models.cli import main  # noqa: E402

sys.exit(main())

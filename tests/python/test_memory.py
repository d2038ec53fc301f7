"""Zero copy, measured: Statistics.update reads a C- or Fortran-ordered float32/float64 block where it
lies (also a slice of columns of a wider array). In a fresh process, the peak resident memory grows during update() by far less than the block
(rcpu's own temporaries are bounded by Statistics.chunk_rows rows), while a float16 block, which must
be widened, is converted in chunks and does not double either."""
import subprocess
import sys

import pytest

CHILD = r"""
import resource, sys
import numpy as np
import rcpu
order, dtype = sys.argv[1], sys.argv[2]
n, d = 65536, 256
if order == "slice":                                     # columns of a wider C-order array: row pitch d + 16
    x = np.ones((n, d + 16), dtype=dtype)[:, 8:8 + d]
else:
    x = np.ones((n, d), dtype=dtype, order=order)        # touched: its pages are resident
s = rcpu.Statistics(d, dtype="float64" if dtype == "float64" else "float32")
s.update(x[:8])                                          # the statistics' own memory, allocated first
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s.update(x)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, x.nbytes)
"""


@pytest.mark.parametrize("order,dtype", [("C", "float32"), ("F", "float32"), ("slice", "float32"), ("C", "float64"),
                                         ("C", "float16")])
def test_update_does_not_copy_the_block(order, dtype):
    out = subprocess.run([sys.executable, "-c", CHILD, order, dtype], check=True, capture_output=True, text=True)
    grew, nbytes = map(int, out.stdout.split())
    # A copy of the block would grow the peak by nbytes (32-128 MiB here); chunks of 4096 rows in double
    # are 8 MiB.
    assert grew < nbytes / 2, f"peak memory grew by {grew} bytes for a {nbytes}-byte block"

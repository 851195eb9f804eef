"""Side-by-side benchmarks: minibert against transformers, same weights, same process, interleaved.

Run them all with ``python -m benchmarks`` (see ``benchmarks/__main__.py``); each ``bench_*.py`` also
runs alone with ``python -m benchmarks.bench_encoder`` and so on.

OpenMP's default spin-wait makes 2-thread timings collapse when another process is busy on a small
shared host, so the benchmarks default to ``OMP_WAIT_POLICY=PASSIVE``. It has to be set before torch
(and its OpenMP runtime) is loaded, which is why it happens here, on package import; an explicit
setting in the environment wins, and every header records the policy in force.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""Fast paths beside the reference model, and the one function that chooses between them.

    plan.py      decide(): per call, which path runs and why -> Plan(path, reason); explain() for users
    run.py       the encoder's blocks on the chosen fast path
    sdpa.py      attention by PyTorch's fused kernel, on the padded grid or per group of unpadded sequences
    unpad.py     packing real tokens (b, t, c) <-> (n, c)
    in_place.py  the block's maths with one scratch buffer and residuals accumulated by the matmuls
    compiled.py  compile(): torch.compile with the Inductor settings measured for minibert

``minibert/model.py`` holds the reference path; ``tests/test_fast_paths.py`` holds every path here equal to it.
"""

from minibert.fast.compiled import compile
from minibert.fast.plan import Plan, UnpadMode, decide, explain
from minibert.fast.run import encode

__all__ = ["Plan", "UnpadMode", "compile", "decide", "explain", "encode"]

"""``groundwork reproduce RUN``: rerun a recorded run from its recorded code and inputs, and compare.

1. **Code** (:mod:`.checkout`). A git worktree of the run's repository at the recorded
   commit, in a temporary folder, with the recorded uncommitted diff applied and the
   ignored folders recreated; without a commit, a temporary copy of the run's folder.
   The user's own folder is never written (the workspace is removed afterwards).
2. **Inputs** (:mod:`.inputs`). Every recorded input is restored from the artifact
   store to its recorded path in the workspace (a path that would leave it is refused);
   one outside the project is read where it is, never restored over. An input recorded
   by digest only (not stored) is copied from the working tree as it is now, and named
   when it differs; ``current_inputs=True`` does that for every input ("would this
   still reproduce with today's data?").
3. **Rerun** (:mod:`.rerun`, :mod:`.child`). A command run (``groundwork run`` or an
   SDK script) reruns its recorded command from the same relative folder, with its
   params as ``GROUNDWORK_PARAM_*`` and its ``seed`` tag as ``GROUNDWORK_SEED``. A
   pipeline step reruns its function from the workspace on the recorded inputs and
   params. A pipeline reruns every step, without the cache. The rerun is recorded as
   a new run of the same name tagged ``reproduces=<id>`` (name look-ups skip it).
4. **Compare** (:mod:`.compare`). Equal output digests: "reproduced exactly". Otherwise
   each differing output, the metric deltas, and the differences between the two
   recorded environments (package versions, Python, CPU and its features) that may
   explain them. ``tolerance`` accepts metric deltas up to that size. With
   ``current_inputs``, a run that recorded no inputs never passes.
"""

from groundwork.core.reproduce.checkout import Checkout, NotReproducible, checkout
from groundwork.core.reproduce.compare import (
    EnvDifference,
    MetricDelta,
    OutputDiff,
    Reproduction,
    compare,
    environment_differences,
)
from groundwork.core.reproduce.inputs import InputNote
from groundwork.core.reproduce.rerun import TAG_REPRODUCES, reproduce

__all__ = [
    "TAG_REPRODUCES",
    "Checkout",
    "EnvDifference",
    "InputNote",
    "MetricDelta",
    "NotReproducible",
    "OutputDiff",
    "Reproduction",
    "checkout",
    "compare",
    "environment_differences",
    "reproduce",
]

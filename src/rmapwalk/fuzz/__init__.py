"""``rmapwalk fuzz``: differential testing of the model against the real kernels on random
histories.  :mod:`.generate` writes the scenarios, :mod:`.differ` compares one scenario's
walks, outcomes and refusal on both sides, :mod:`.minimize` shrinks a disagreement, and
:mod:`.run` is the command (it may use both the model and the measurement: it is the command
line, ARCHITECTURE.md)."""

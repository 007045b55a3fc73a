"""minillm's benchmarks: every figure measured side by side with a peer, in one run, as a ratio."""

"""Work beyond one notebook: the ``pruninglab`` command, sweeps over Ray or plain
processes, and the benchmarks. May import every other folder (docs/design.md)."""

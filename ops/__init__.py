"""gridwatch operations: the `gridwatch` CLI, topic administration, benchmarks."""

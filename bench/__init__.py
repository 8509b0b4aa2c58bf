"""Benchmarks. Each module exposes ``run(quick: bool) -> list[dict]`` whose rows are
``{name, value, unit, peer_or_limit, ratio, aim}``: every figure is printed beside a limit or
a peer measured in the same run, because these machines are noisy. ``python -m bench`` runs
them all and prints one table; none of them is a timed assertion in the test suite."""

"""The benchmarks of BENCHMARKS.md, run as ``python -m bench.<name>``; not part of the installed package."""

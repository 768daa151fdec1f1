"""Reproducible benchmarks: each figure beside its baseline, measured in the same run.

Run with ``make bench`` (or ``python -m benchmarks [suite ...] [--runs N]``). Every benchmark
alternates subject and baseline for ``--runs`` rounds and reports medians; the results replace
the suite's section of BENCHMARKS.md. Speed is never asserted by the test suite: these machines
are shared and noisy, so the ratio to the baseline is the figure to trust.
"""

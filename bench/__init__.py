"""genisys benchmarks (issue 7): ``make bench`` or ``python -m bench --help``; see README.md."""

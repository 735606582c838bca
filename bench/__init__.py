"""botlab benchmarks: `make bench` runs them and writes numbers to bench/results/."""

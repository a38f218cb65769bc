# Benchmarks: 'make bench' runs the nightly set at full size.

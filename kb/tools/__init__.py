"""Tools around the product: demo data, synthetic data at scale, and the benchmark."""

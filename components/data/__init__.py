"""Ingestion: finding or fetching CIFAR-10 in its official layouts, ExampleGen over
them, the spans a run trains on, and reading data files back."""

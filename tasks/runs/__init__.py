"""One run's life: its options, run folder, resume guard, signals, provenance and TensorBoard files."""

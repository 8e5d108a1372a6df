"""The data a task trains on: images (MNIST, FashionMNIST), the time series of Table II, a user's own files."""

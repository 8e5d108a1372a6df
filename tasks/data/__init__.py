"""The data sets a task trains on: images (MNIST, FashionMNIST) and time series (Table II)."""

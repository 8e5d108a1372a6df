"""Training and evaluating tasks: networks, data, engines, task kinds, run folders and experiments."""

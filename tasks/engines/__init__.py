"""Training loops: the supervised engine (one or several models), A3C, baselines, selection."""

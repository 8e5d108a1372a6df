"""The task kinds a .task names (classify, forecast, a3c): their checks, runs and reports."""

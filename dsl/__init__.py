"""The spec languages: .qs search spaces and .task tasks, parsed into validated models with located errors."""

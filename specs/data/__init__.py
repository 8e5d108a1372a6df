"""Example tasks that read a user's own data file: sunspots.task (a CSV series, forecast) and
digits.task (an npz of 8x8 images, classify), with their files (docs/spec-language.md, "Your
own data")."""

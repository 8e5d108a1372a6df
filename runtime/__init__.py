"""Running compiled programs: backends, kernel building and caching, the QT generator, QTModel."""

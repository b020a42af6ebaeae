"""The book's models, built on minigrad. Run recipes with ``python -m models <recipe>``."""

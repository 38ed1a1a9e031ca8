"""End-to-end tests and their harnesses."""

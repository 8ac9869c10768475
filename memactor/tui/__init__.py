"""Layer 7: the Textual terminal UI."""

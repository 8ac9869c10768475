"""The pytest plugin, run by pytester."""

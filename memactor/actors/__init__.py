"""Layer 5: memory-holding actors (buffer pools, chunk processors, GPU buffers)."""

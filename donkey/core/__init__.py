"""The vocabulary every layer shares: standard library only, so `donkey --help` can import it."""

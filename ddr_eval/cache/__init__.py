"""The on-disk store of features and results: bounded, never trusted (a bad entry is a miss)."""

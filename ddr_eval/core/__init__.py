"""Lowest layer: errors, registries, specs, atomic writes, process set-up, report directories."""

"""The architecture registry, kept in its own module so arch modules can import it without cycles."""

from ddr_eval.core.registry import Registry

ARCHS: Registry = Registry("architecture")

"""Suite schema (YAML -> validated objects) and loading."""

from ddr_eval.config.schema import DataSpec, DegradationSet, ModelSpec, Suite

__all__ = ["DataSpec", "DegradationSet", "ModelSpec", "Suite", "LoadedSuite", "load_suite", "compile_suite"]


def __getattr__(name):  # the loader pulls in the registries; import it only when asked
    if name in {"LoadedSuite", "load_suite", "compile_suite"}:
        from ddr_eval.config import loader

        return getattr(loader, name)
    raise AttributeError(name)

"""Architectures, checkpoint I/O and the model zoo: everything up to a ready ``ModelDescriptor``.

``load_model`` here is the ARCHITECTURE.md entry point: it accepts a zoo name, a
``name@iteration`` training snapshot, a checkpoint path or a public model name. The
path-only loader is :func:`ddr_eval.models.checkpoint.load_model`.
"""

from ddr_eval.models.archs import ARCHS, Arch, build_arch
from ddr_eval.models.checkpoint import (
    describe,
    detect_arch,
    read_state_dict,
    save_model,
    sha256_file,
)
from ddr_eval.models.checkpoint import load_model as load_checkpoint
from ddr_eval.models.descriptor import ModelDescriptor
from ddr_eval.models.zoo import PublicEntry, Zoo, ZooEntry, cache_dir, resolve_model, zoo_dir

load_model = resolve_model

__all__ = [
    "ARCHS", "Arch", "ModelDescriptor", "PublicEntry", "Zoo", "ZooEntry", "build_arch", "cache_dir", "describe",
    "detect_arch", "load_checkpoint", "load_model", "read_state_dict", "resolve_model", "save_model",
    "sha256_file", "zoo_dir",
]

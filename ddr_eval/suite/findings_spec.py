"""The ``findings:`` section of a suite: which paper findings to compute, on which models and sets.

Validated with the rest of the suite, before any work: every model and set a finding names
must be in the suite (``ddr_eval.suite.loader``). The findings themselves are computed from a
run's results by ``ddr_eval.findings``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_names(self) -> tuple[str, ...]:
        """Every model label this finding reads, so the suite loader can refuse a typo before the run."""
        return ()


class GlobalResidualSpec(_Strict):
    with_gr: str = Field(alias="with")
    without_gr: str = Field(alias="without")
    sets: tuple[str, ...]
    matched_fit: str | None = Field(
        None, description="a snapshot of the GR net (NAME@ITERATION) whose PSNR matches the no-GR net's: "
        "the comparison at equal fit, which must hold too"
    )

    def model_names(self) -> tuple[str, ...]:
        return (self.with_gr, self.without_gr, *([self.matched_fit] if self.matched_fit else []))


class AdversarialSpec(_Strict):
    pairs: tuple[tuple[str, str], ...] = Field(description="(GAN model, its pixel-loss counterpart)")
    sets: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return tuple(name for pair in self.pairs for name in pair)


class TrainingSpec(_Strict):
    series: str = Field(description="zoo name; the suite lists NAME@ITERATION models")
    sets: tuple[str, ...]

    def snapshots(self, labels) -> list[str]:
        """The ``series@iteration`` labels among ``labels`` (a curve needs at least three)."""
        return [label for label in labels if label.startswith(self.series + "@")]


class ContentSpec(_Strict):
    sr: tuple[str, ...]
    classification: tuple[str, ...]
    sets: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (*self.sr, *self.classification)


class SpectrumSpec(_Strict):
    model: str
    sets: tuple[str, ...]
    sigmas: tuple[float, ...]

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)


class GeneralizationSpec(_Strict):
    trained: str = Field(description="model trained on degraded inputs")
    baseline: str = Field(description="the same architecture trained on clean inputs")
    sets: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (self.trained, self.baseline)


class IdentificationSpec(_Strict):
    ddr: tuple[str, ...] = Field(description="SR models whose DDR the probe reads")
    baselines: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (*self.ddr, *self.baselines)


class BlindSrSpec(_Strict):
    """DDR-guided blind SR against the same mix without a condition and against the oracle."""

    blind: str = Field(description="the DDR-conditioned model (DDRConditionedSR, condition ddr)")
    unconditioned: str = Field(description="an SR model trained on the same mix, no condition")
    oracle: str = Field(description="the generator conditioned on the true blur/noise sigmas")
    inside: tuple[str, ...] = Field(description="sets whose strengths lie inside the training ranges")
    outside: tuple[str, ...] = Field((), description="held-out strengths outside the training ranges")

    def model_names(self) -> tuple[str, ...]:
        return (self.blind, self.unconditioned, self.oracle)


class CincganSpec(_Strict):
    """CinCGAN's SR features by degradation against a pixel-loss net without a global residual."""

    model: str = Field("cincgan", description="the CinCGAN model")
    baseline: str = Field(description="e.g. srresnet-nogr, read at the same layer")
    sets: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (self.model, self.baseline)


class FindingsSpec(_Strict):
    layer: str = "deep"
    bootstrap: int = Field(200, ge=0)
    global_residual: GlobalResidualSpec | None = None
    adversarial: AdversarialSpec | None = None
    training: TrainingSpec | None = None
    sr_vs_classification: ContentSpec | None = None
    spectrum: SpectrumSpec | None = None
    generalization: GeneralizationSpec | None = None
    identification: IdentificationSpec | None = None
    blind_sr: BlindSrSpec | None = None
    cincgan: CincganSpec | None = None

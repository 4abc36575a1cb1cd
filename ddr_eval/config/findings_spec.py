"""The ``findings:`` section of a suite: which findings to compute, on which models and sets.

Validated with the rest of the suite, before any work: every model and set a finding names
must be in the suite, and the metrics it reads must be computed (``ddr_eval.config.loader``).
The findings themselves are computed from a run's results by ``ddr_eval.findings``.

This is the config layer of a finding: its spec model (the YAML it takes) and the inputs it
declares (:class:`FindingNeeds`), registered under its key in :data:`FINDING_SPECS`. The loader
sits below ``ddr_eval.findings`` in the layering, so what it checks lives here; the paper's
findings register their specs in this module, and a plug-in finding's spec is registered by
``ddr_eval.findings.register_finding`` with its class. ``FindingsSpec`` and ``RobustnessSpec``
then accept every registered key (:func:`registered_models`): a new finding needs no edit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, create_model

from ddr_eval.core.registry import Registry
from ddr_eval.core.specs import SnapshotLabel, StrictModel


@dataclass(frozen=True)
class FindingNeeds:
    """What a finding reads from a run beyond the features of the models and sets it names, so
    the suite loader can refuse a suite that does not compute it before any work."""

    row_types: tuple[str, ...] = ()  # metric row types it reads; the suite must compute at least one
    sr_outputs: bool = False  # runs the SR networks on its sets' inputs and scores the outputs against HR


class FindingPart(StrictModel):
    """A part of the ``findings:`` section; the ones that name models say which (:meth:`model_names`)."""

    needs: ClassVar[FindingNeeds] = FindingNeeds()

    def model_names(self) -> tuple[str, ...]:
        """Every model label this finding reads, so the suite loader can refuse a typo before the run."""
        return ()

    def set_names(self) -> tuple[str, ...]:
        """Every degradation set this finding reads (its ``sets:`` unless it names them otherwise)."""
        return tuple(getattr(self, "sets", ()) or ())


FINDING_SPECS: Registry[type[FindingPart]] = Registry("finding")
"""Finding key -> its spec model (the keys ``findings:`` and ``findings.robustness:`` accept)."""


@FINDING_SPECS.register("global_residual")
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


@FINDING_SPECS.register("adversarial")
class AdversarialSpec(FindingPart):
    pairs: tuple[tuple[str, str], ...] = Field(description="(GAN model, its pixel-loss counterpart)")
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")

    def model_names(self) -> tuple[str, ...]:
        return tuple(name for pair in self.pairs for name in pair)


@FINDING_SPECS.register("training")
class TrainingSpec(FindingPart):
    series: str = Field(description="zoo name; the suite lists NAME@ITERATION models")
    sets: tuple[str, ...]

    def snapshots(self, labels) -> list[str]:
        """The ``series@iteration`` labels among ``labels`` (a curve needs at least three)."""
        return [label for label in labels if (snapshot := SnapshotLabel.parse(label)) and snapshot.series == self.series]


@FINDING_SPECS.register("sr_vs_classification")
class ContentSpec(FindingPart):
    sr: tuple[str, ...]
    classification: tuple[str, ...]
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")

    def model_names(self) -> tuple[str, ...]:
        return (*self.sr, *self.classification)


@FINDING_SPECS.register("spectrum")
class SpectrumSpec(FindingPart):
    model: str
    sets: tuple[str, ...]
    sigmas: tuple[float, ...]

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)


@FINDING_SPECS.register("generalization")
class GeneralizationSpec(FindingPart):
    needs = FindingNeeds(row_types=("srga", "ddr_chi_to_reference", "psnr_drop"))
    trained: str = Field(description="model trained on degraded inputs")
    baseline: str = Field(description="the same architecture trained on clean inputs")
    sets: tuple[str, ...] = Field((), description="required in `findings:`; under `robustness:` each strength level gives them")

    def model_names(self) -> tuple[str, ...]:
        return (self.trained, self.baseline)


@FINDING_SPECS.register("identification")
class IdentificationSpec(FindingPart):
    needs = FindingNeeds(row_types=("identification",))
    ddr: tuple[str, ...] = Field(description="SR models whose DDR the probe reads")
    baselines: tuple[str, ...]

    def model_names(self) -> tuple[str, ...]:
        return (*self.ddr, *self.baselines)


@FINDING_SPECS.register("blind_sr")
class BlindSrSpec(FindingPart):
    """DDR-guided blind SR against the same mix without a condition and against the oracle."""

    needs = FindingNeeds(sr_outputs=True)

    blind: str = Field(description="the DDR-conditioned model (DDRConditionedSR, condition ddr)")
    unconditioned: str = Field(description="an SR model trained on the same mix, no condition")
    oracle: str = Field(description="the generator conditioned on the true blur/noise sigmas")
    inside: tuple[str, ...] = Field(description="sets whose strengths lie inside the training ranges")
    outside: tuple[str, ...] = Field((), description="held-out strengths outside the training ranges")

    def model_names(self) -> tuple[str, ...]:
        return (self.blind, self.unconditioned, self.oracle)

    def set_names(self) -> tuple[str, ...]:
        return (*self.inside, *self.outside)


@FINDING_SPECS.register("cincgan")
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


class FindingKeys(FindingPart):
    """A section that takes, besides its own fields, one optional field per registered finding
    (its key, validated by that finding's spec model). The fields are added by the model
    :meth:`registry_model` builds for the registry's current state, so a finding registered by a
    plug-in becomes a valid key without an edit here."""

    @classmethod
    def registry_model(cls) -> type[FindingKeys]:
        raise NotImplementedError

    @classmethod
    def static_model(cls) -> type[FindingKeys]:
        """The class written in this module (the registry-built one is its subclass)."""
        return next(c for c in cls.__mro__ if c.__module__ == __name__ and "registry_model" in c.__dict__)

    @classmethod
    def model_validate(cls, obj: Any, *args, **kwargs):
        """Validated by the model that has a field per registered finding (:func:`registered_models`)."""
        model = cls.registry_model()
        if issubclass(cls, model):
            return super().model_validate(obj, *args, **kwargs)
        return model.model_validate(obj, *args, **kwargs)

    def parts(self) -> dict[str, FindingPart]:
        """The findings this section names: key -> spec, in registration order (the report's order)."""
        return finding_parts(self)

    def part(self, key: str) -> FindingPart | None:
        return self.parts().get(key)

    def __reduce__(self):  # the registry-built class is not importable by name: pickle the YAML instead
        return type(self).static_model().model_validate, (self.model_dump(by_alias=True, exclude_unset=True),)


class RobustnessSpec(FindingKeys):
    """Where each finding holds: over degradation strength, suite seeds and sample size (issue #18).

    Besides the fields below, it takes any registered finding's key (its spec without ``sets``:
    each strength level gives them) to sweep that finding over strength."""

    seeds: tuple[Annotated[int, Field(ge=0, lt=2**63)], ...] = Field(min_length=1)
    reference: str = Field(description="the clean set each strength level is paired with")
    strength: tuple[StrengthGroup, ...] = Field(min_length=1)
    seeds_agree: int | None = Field(None, ge=1, description="seeds that must reproduce a finding at a level for "
                                    "it to hold there; default: a majority")
    sample_size: SampleSizeSpec | None = None

    @classmethod
    def registry_model(cls) -> type[RobustnessSpec]:
        return registered_models()[0]

    def model_names(self) -> tuple[str, ...]:
        names = tuple(n for part in self.parts().values() for n in part.model_names())
        return names + (self.sample_size.models if self.sample_size else ())

    def required_agreement(self) -> int:
        return self.seeds_agree or len(self.seeds) // 2 + 1


class FindingsSpec(FindingKeys):
    """The ``findings:`` section; besides the fields below, it takes each registered finding's key."""

    include: tuple[str, ...] = Field(
        (), description="suite files (relative to this suite's folder) whose findings are computed, each on its own "
        "run with its own seed, and appended after this suite's; each must have findings and no include or robustness")
    layer: str = "deep"
    bootstrap: int = Field(200, ge=0)
    thresholds: Thresholds = Thresholds()
    robustness: RobustnessSpec | None = None

    @classmethod
    def registry_model(cls) -> type[FindingsSpec]:
        return registered_models()[1]


def finding_parts(spec: StrictModel) -> dict[str, FindingPart]:
    """The registered findings ``spec`` sets, key -> spec, in registration order."""
    return {key: part for key, _ in FINDING_SPECS.in_registration_order()
            if (part := getattr(spec, key, None)) is not None}


_MODELS: dict[tuple, tuple[type[RobustnessSpec], type[FindingsSpec]]] = {}


def registered_models() -> tuple[type[RobustnessSpec], type[FindingsSpec]]:
    """``RobustnessSpec`` and ``FindingsSpec`` with one optional field per finding registered now
    (built once per state of :data:`FINDING_SPECS`): the keys a suite may use, each validated by
    its own spec model, and a misspelt one refused as any unknown key is."""
    entries = tuple(FINDING_SPECS.in_registration_order())
    if entries not in _MODELS:
        fields: dict[str, Any] = {key: (spec | None, None) for key, spec in entries}
        robustness = create_model("RobustnessSpec", __base__=RobustnessSpec, __module__=__name__, **fields)
        findings = create_model("FindingsSpec", __base__=FindingsSpec, __module__=__name__,
                                robustness=(robustness | None, None), **fields)
        _MODELS[entries] = robustness, findings
    return _MODELS[entries]


def base_fields(model: type[StrictModel]) -> set[str]:
    """The names and aliases a spec class takes besides finding keys."""
    return {name for name in model.model_fields} | {f.alias for f in model.model_fields.values() if f.alias}

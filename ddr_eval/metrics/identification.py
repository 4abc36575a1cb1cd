"""Can the degradation of an input be read off a network's deep features?

The ``identification`` metric trains a simple probe (multinomial logistic regression or kNN on
standardized features) on one split of patches and reports accuracy, macro-F1 and the
confusion matrix on another. A network with a strong degradation representation lets a
*linear* probe identify the degradation almost perfectly.

:class:`DegradationProbe` is that probe as a reusable object: ``ddr-eval identify`` fits it on
a model's features once, saves it, and later predicts the degradation of new images. It is
saved as a ``.npz`` of plain arrays (coefficients, scaler statistics, class names; training
features for kNN) read with ``allow_pickle=False`` — never a pickle.

The baseline the probe must beat, hand-made statistics of the LR image itself, is a feature
source (``ddr_eval.features.statistics``), fed to the same probe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

import numpy as np
import pydantic
from pydantic import Field

if TYPE_CHECKING:  # sklearn is imported where it is used: it costs start-up time
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

from ddr_eval.core.errors import DegenerateInputError, UserError
from ddr_eval.metrics.base import ImageIntervalMetric, MetricInputs, Stacked, register_metric
from ddr_eval.metrics.bootstrap import (
    ImageGroups,
    bootstrap_mean_interval,
    cluster_bootstrap_mean_interval,
    image_bootstrap_rng,
)
from ddr_eval.metrics.checks import check_features, encode_labels
from ddr_eval.metrics.results import POOLED, IdentificationResult, MetricOutput

Classifier = Literal["logistic", "lda", "knn"]
PROBE_FORMAT = "ddr-eval-degradation-probe"
PROBE_VERSION = 1
LOGISTIC_MAX_ITER = 2000


class DegradationProbe:
    """Standardize (statistics of the training set) then classify; predicts class names.

    Parameters: ``classifier`` "logistic" (L2, inverse strength ``C``), "lda" (linear
    discriminant analysis with Ledoit-Wolf shrinkage: closed form, so fast on wide inputs such as
    several layers concatenated, and the Bayes rule when each degradation is a Gaussian cloud of
    shared shape) or "knn" (``k`` neighbours, Euclidean); ``meta`` is free JSON-serialisable information saved with the probe
    (e.g. which model and layer produced the features).
    """

    def __init__(
        self,
        classifier: Classifier = "logistic",
        k: int = 5,
        C: float = 1.0,
        seed: int = 0,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if classifier not in ("logistic", "lda", "knn"):
            raise UserError(f"probe classifier must be 'logistic', 'lda' or 'knn', got {classifier!r}")
        if int(k) != k or k < 1:
            raise UserError(f"probe k must be a positive integer, got {k!r}")
        if not C > 0:
            raise UserError(f"probe C must be > 0, got {C!r}")
        self.classifier = classifier
        self.k = int(k)
        self.C = float(C)
        self.seed = seed
        self.meta = dict(meta or {})
        self.classes_: list[str] = []
        self._arrays: dict[str, np.ndarray] = {}
        self._estimator: LogisticRegression | KNeighborsClassifier | None = None

    # ------------------------------------------------------------------ fit / predict

    def fit(self, features: np.ndarray, labels: np.ndarray) -> DegradationProbe:
        features = check_features(features, "training features")
        codes, self.classes_ = encode_labels(np.asarray(labels).astype(str), features.shape[0])
        from sklearn.preprocessing import StandardScaler  # lazy: keeps sklearn out of start-up
        scaler = StandardScaler().fit(features)
        arrays = {"mean": scaler.mean_, "scale": scaler.scale_}
        standardized = (features - arrays["mean"]) / arrays["scale"]
        if self.classifier == "logistic":
            from sklearn.linear_model import LogisticRegression  # lazy: keeps sklearn out of start-up
            model = LogisticRegression(C=self.C, max_iter=LOGISTIC_MAX_ITER, random_state=self.seed)
            model.fit(standardized, codes)
            arrays.update(coef=model.coef_, intercept=model.intercept_)
        elif self.classifier == "lda":
            model = _shrinkage_lda().fit(standardized, codes)
            arrays.update(coef=model.coef_, intercept=model.intercept_)
        else:
            if self.k > features.shape[0]:
                raise DegenerateInputError(f"kNN probe with k={self.k} needs at least k training samples")
            arrays.update(train_features=standardized, train_codes=codes)
        self._arrays = arrays
        self._estimator = self._build_estimator()
        return self

    def _build_estimator(self) -> LogisticRegression | KNeighborsClassifier:
        """The sklearn estimator, rebuilt from the saved arrays (the same path after load). A
        fitted LDA is a linear rule whose probabilities are the softmax (sigmoid for two classes)
        of its decision function, exactly as a logistic regression's: both are rebuilt as one."""
        arrays = self._arrays
        if self.classifier == "knn":
            from sklearn.neighbors import KNeighborsClassifier  # lazy: keeps sklearn out of start-up
            return KNeighborsClassifier(n_neighbors=self.k).fit(arrays["train_features"], arrays["train_codes"])
        from sklearn.linear_model import LogisticRegression  # lazy: keeps sklearn out of start-up
        model = LogisticRegression(C=self.C, max_iter=LOGISTIC_MAX_ITER, random_state=self.seed)
        model.classes_ = np.arange(len(self.classes_))
        model.coef_ = arrays["coef"]
        model.intercept_ = arrays["intercept"]
        model.n_features_in_ = arrays["coef"].shape[1]
        return model

    def _standardized(self, features: np.ndarray) -> np.ndarray:
        if self._estimator is None:
            raise UserError("the degradation probe is not fitted; call fit() or DegradationProbe.load()")
        features = check_features(features, "features", min_samples=1, allow_constant=True)
        expected = self._arrays["mean"].shape[0]
        if features.shape[1] != expected:
            raise UserError(f"the probe expects {expected} features per sample, got {features.shape[1]}")
        return (features - self._arrays["mean"]) / self._arrays["scale"]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of ``classes_``."""
        standardized = self._standardized(features)
        return self._estimator.predict_proba(standardized)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted class names (N,)."""
        standardized = self._standardized(features)
        return np.asarray(self.classes_)[self._estimator.predict(standardized)]

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | Path) -> None:
        """Write the probe to ``path`` (a ``.npz`` of plain arrays; the name is kept as given)."""
        if self._estimator is None:
            raise UserError("cannot save an unfitted degradation probe")
        header = {"format": PROBE_FORMAT, "version": PROBE_VERSION, "classifier": self.classifier,
                  "k": self.k, "C": self.C, "seed": self.seed, "meta": self.meta}
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle, header=np.array(json.dumps(header)), classes=np.array(self.classes_, dtype=str), **self._arrays
            )

    @classmethod
    def load(cls, path: str | Path) -> DegradationProbe:
        """Read a probe written by :meth:`save`; anything else raises a UserError naming ``path``."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            header = json.loads(str(arrays.pop("header")))
            if header.get("format") != PROBE_FORMAT or header.get("version") != PROBE_VERSION:
                raise ValueError(f"not a version-{PROBE_VERSION} {PROBE_FORMAT} file")
            probe = cls(header["classifier"], header["k"], header["C"], header["seed"], header["meta"])
            probe.classes_ = [str(c) for c in arrays.pop("classes")]
            probe._arrays = arrays
            probe._estimator = probe._build_estimator()
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: cannot load degradation probe ({err})") from None
        return probe


# --------------------------------------------------------------------------- metric


@register_metric
class IdentificationMetric(ImageIntervalMetric):
    """Accuracy (headline), macro-F1 and confusion matrix of a degradation probe. Higher = better.

    The probe is chosen on the training split only: ``C`` may be a list, and the value of the
    list with the best ``cv_folds``-fold cross-validated accuracy is refitted on the whole
    training split. Folds are content-disjoint (grouped by source photograph), so the choice
    rewards recognising the degradation, not remembering the picture. The cross-validated
    accuracy is kept on the row (``cv_accuracy``): it is what a finding compares variants by
    (feature layers, pooling, backbones) without looking at the test split.

    ``concat: true`` gives one probe on every tapped layer of the model concatenated (a layer
    sweep's blocks, say) instead of one probe per layer. ``interval`` is the bootstrap of the
    test accuracy: over test patches, over source photographs (stratified by degradation set),
    or both (image interval in the row's ``ci_images``).
    """

    metric_type: ClassVar[str] = "identification"
    higher_is_better: ClassVar[bool] = True
    kind: ClassVar[str] = "identification"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "train_split", "image_groups"})
    ranked_by_default: ClassVar[bool] = False  # identifying degradations is DDR; whether that is good is the question

    classifier: Classifier = "logistic"
    k: int = Field(5, ge=1)
    C: float | tuple[float, ...] = Field(1.0, description="inverse L2 strength; a list is a grid chosen by cross-validation")
    cv_folds: int = Field(5, ge=0, description="content-disjoint folds of the training split; 0 = no cross-validation")
    concat: bool = Field(False, description="one probe on all the model's tapped layers concatenated")
    layers: tuple[str, ...] | None = Field(None, description="the model's layers to read (default: all of them)")
    bootstrap: int = Field(200, ge=0)

    @pydantic.field_validator("C")
    @classmethod
    def _positive_c(cls, value: float | tuple[float, ...]) -> float | tuple[float, ...]:
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(not c > 0 for c in values):
            raise ValueError(f"C must be > 0 (or a non-empty list of values > 0), got {value!r}")
        return tuple(sorted(set(values))) if isinstance(value, tuple) and len(set(values)) > 1 else values[0]

    @pydantic.field_validator("cv_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cv_folds must be 0 (no cross-validation) or at least 2")
        return value

    @property
    def c_grid(self) -> tuple[float, ...]:
        return self.C if isinstance(self.C, tuple) else (self.C,)

    def name_params(self) -> list[str]:
        if self.classifier == "knn":
            params = [self.classifier, f"k{self.k}"]
        elif self.classifier == "lda":
            params = [self.classifier]
        else:
            params = [self.classifier, "C" + "-".join(f"{c:g}" for c in self.c_grid)]
        return [*params, "concat"] if self.concat else params

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        """Per layer (or once, on all layers concatenated): fit on the training split's sets,
        score on the evaluated sets; one row (accuracy, with ``macro_f1`` and ``cv_accuracy``)
        and one confusion matrix."""
        output = MetricOutput()
        for layer, members in self._probe_inputs(self._read_layers(inputs)):
            train, test = self._stacked(inputs, members, "train"), self._stacked(inputs, members, "eval")
            result = output.guarded(
                layer, POOLED, self.compute, train.features, train.labels["degradation"], test.features,
                test.labels["degradation"], inputs.seed, train_groups=train.labels["content"], test_groups=test.groups)
            if result is None:
                continue
            fields = {key: result.extra[key] for key in ("cv_accuracy", "C_chosen", "cv_folds", "cv_grouped")
                      if key in result.extra}
            output.result(layer, POOLED, result, macro_f1=float(result.macro_f1), layers=list(members), **fields)
            output.confusions.append({
                "layer": layer, "classes": list(result.classes), "matrix": np.asarray(result.confusion).tolist(),
                "accuracy": float(result.accuracy), "macro_f1": float(result.macro_f1)})
        return output

    def _read_layers(self, inputs: MetricInputs) -> tuple[str, ...]:
        if self.layers is None:
            return tuple(inputs.layers)
        unknown = [layer for layer in self.layers if layer not in inputs.layers]
        if unknown:
            raise UserError(f"{self.name}: model {inputs.model} has no layer {unknown[0]!r}; its layers: "
                            f"{', '.join(inputs.layers)}")
        return self.layers

    def _probe_inputs(self, layers: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
        """(row layer name, layers whose features it reads): one per layer, or the concatenation."""
        if not self.concat or len(layers) == 1:
            return [(layer, (layer,)) for layer in layers]
        return [(concat_layer_name(layers), tuple(layers))]

    @staticmethod
    def _stacked(inputs: MetricInputs, layers: tuple[str, ...], split: Literal["eval", "train"]) -> Stacked:
        parts = [inputs.stack(layer, split) for layer in layers]
        if len(parts) == 1:
            return parts[0]
        return Stacked(np.concatenate([p.features for p in parts], axis=1), parts[0].labels, parts[0].groups)

    def compute(
        self, train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray, test_y: np.ndarray, seed: int, *,
        train_groups: np.ndarray | None = None, test_groups: ImageGroups | None = None,
    ) -> IdentificationResult:
        """Choose ``C`` by cross-validation on the training split (folds grouped by
        ``train_groups``, each row's source photograph, when given), refit, score on the test
        split; the test accuracy's interval resamples test rows, or ``test_groups``' images."""
        train_X = check_features(train_X, "training features")
        train_y = np.asarray(train_y).astype(str)
        encode_labels(train_y, train_X.shape[0])  # >= 2 classes, one label per row: checked before any fit
        if self.classifier == "knn" and self.cv_folds and self.k > train_X.shape[0] * (1 - 1 / self.cv_folds):
            raise DegenerateInputError(f"kNN probe with k={self.k} needs at least k training samples in every "
                                       f"cross-validation fold ({train_X.shape[0]} training samples)")
        extra: dict[str, Any] = {"warnings": []}
        chosen_c = self.c_grid[0]
        if self.cv_folds:
            chosen_c, cv_accuracy, note = self._cross_validate(train_X, train_y, train_groups, seed)
            extra.update(cv_accuracy=cv_accuracy, cv_folds=note[0], cv_grouped=note[1])
            if self.classifier == "logistic":
                extra["C_chosen"] = chosen_c
        probe = DegradationProbe(self.classifier, self.k, chosen_c, seed).fit(train_X, train_y)
        test_X = check_features(test_X, "test features", min_samples=1, allow_constant=True)
        test_y = np.asarray(test_y).astype(str)
        if test_y.shape != (test_X.shape[0],):
            raise DegenerateInputError(f"test labels must be 1-D with {test_X.shape[0]} entries, got {test_y.shape}")
        predicted = probe.predict(test_X)
        classes = sorted(set(probe.classes_) | set(test_y.tolist()))
        unseen = sorted(set(test_y.tolist()) - set(probe.classes_))
        correct = (predicted == test_y).astype(np.float64)
        patches, images = self._intervals(correct, test_groups, seed)
        low, high = (images if self.interval == "images" else patches) or (None, None)
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score  # lazy: start-up

        if unseen:
            extra["warnings"].append(f"test classes never seen in training: {unseen}")
        return IdentificationResult(
            accuracy=float(accuracy_score(test_y, predicted)),
            macro_f1=float(f1_score(test_y, predicted, labels=classes, average="macro", zero_division=0)),
            confusion=confusion_matrix(test_y, predicted, labels=classes),
            classes=classes,
            ci_low=low,
            ci_high=high,
            extra={"n_train": int(train_y.size), "n_test": int(test_y.size), "chance": 1.0 / len(probe.classes_),
                   **extra},
            ci_images=images if self.interval == "both" else None,
            n_source_images=test_groups.n_images if test_groups is not None and images is not None else None,
        )

    def _intervals(self, correct: np.ndarray, groups: ImageGroups | None, seed: int):
        patches = images = None
        if self.wants_patches:
            patches = bootstrap_mean_interval(correct, self.bootstrap, np.random.default_rng(seed))
        groups = self.require_groups(groups, correct.size)
        if groups is not None:
            images = cluster_bootstrap_mean_interval(correct, groups.image, groups.stratum, self.bootstrap,
                                                     image_bootstrap_rng(seed))
        return patches, images

    def _cross_validate(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None,
                        seed: int) -> tuple[float, float, tuple[int, bool]]:
        """(chosen C, its mean cross-validated accuracy, (folds, whether grouped by source image))."""
        from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold  # lazy: start-up
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if groups is not None and np.unique(groups).size >= 2:
            n_splits = min(self.cv_folds, int(np.unique(groups).size))
            folds, note = GroupKFold(n_splits=n_splits), (n_splits, True)
        else:
            n_splits = min(self.cv_folds, int(np.unique(y, return_counts=True)[1].min()))
            if n_splits < 2:
                raise DegenerateInputError("cross-validation needs at least 2 training samples of every class")
            folds, note = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed), (n_splits, False)
        if self.classifier == "knn":
            from sklearn.neighbors import KNeighborsClassifier
            estimator, grid = KNeighborsClassifier(n_neighbors=self.k), {}
        elif self.classifier == "lda":
            estimator, grid = _shrinkage_lda(), {}
        else:
            from sklearn.linear_model import LogisticRegression
            estimator = LogisticRegression(max_iter=LOGISTIC_MAX_ITER, random_state=seed)
            grid = {"logisticregression__C": list(self.c_grid)}
        search = GridSearchCV(make_pipeline(StandardScaler(), estimator), grid, cv=folds, scoring="accuracy",
                              refit=False, error_score="raise")
        search.fit(X, y, groups=groups)
        best = int(search.best_index_)
        chosen = float(search.cv_results_["params"][best].get("logisticregression__C", self.c_grid[0]))
        return chosen, float(search.cv_results_["mean_test_score"][best]), note


def _shrinkage_lda():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # lazy: keeps sklearn out of start-up
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def concat_layer_name(layers: Sequence[str]) -> str:
    """The row name of a probe on several layers concatenated: ``block0+block1+deep``, or
    ``block0..block7 (8 layers)`` for a longer run."""
    return "+".join(layers) if len(layers) <= 3 else f"{layers[0]}..{layers[-1]} ({len(layers)} layers)"

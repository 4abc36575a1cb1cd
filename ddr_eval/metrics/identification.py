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
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

if TYPE_CHECKING:  # sklearn is imported where it is used: it costs start-up time
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

from ddr_eval.errors import DegenerateInputError, UserError
from ddr_eval.metrics.base import (
    ALL,
    IdentificationResult,
    Metric,
    MetricInputs,
    MetricOutput,
    bootstrap_mean_interval,
    check_features,
    encode_labels,
    register_metric,
)

Classifier = Literal["logistic", "knn"]
PROBE_FORMAT = "ddr-eval-degradation-probe"
PROBE_VERSION = 1
LOGISTIC_MAX_ITER = 2000


class DegradationProbe:
    """Standardize (statistics of the training set) then classify; predicts class names.

    Parameters: ``classifier`` "logistic" (L2, inverse strength ``C``) or "knn" (``k``
    neighbours, Euclidean); ``meta`` is free JSON-serialisable information saved with the probe
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
        if classifier not in ("logistic", "knn"):
            raise UserError(f"probe classifier must be 'logistic' or 'knn', got {classifier!r}")
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
        else:
            if self.k > features.shape[0]:
                raise DegenerateInputError(f"kNN probe with k={self.k} needs at least k training samples")
            arrays.update(train_features=standardized, train_codes=codes)
        self._arrays = arrays
        self._estimator = self._build_estimator()
        return self

    def _build_estimator(self) -> LogisticRegression | KNeighborsClassifier:
        """The sklearn estimator, rebuilt from the saved arrays (the same path after load)."""
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
class IdentificationMetric(Metric):
    """Accuracy (headline), macro-F1 and confusion matrix of a degradation probe. Higher = better."""

    metric_type: ClassVar[str] = "identification"
    higher_is_better: ClassVar[bool] = True
    kind: ClassVar[str] = "identification"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "train_split"})
    ranked_by_default: ClassVar[bool] = False  # identifying degradations is DDR; whether that is good is the question

    classifier: Classifier = "logistic"
    k: int = Field(5, ge=1)
    C: float = Field(1.0, gt=0)
    bootstrap: int = Field(200, ge=0)

    def name_params(self) -> list[str]:
        return [self.classifier, f"k{self.k}" if self.classifier == "knn" else f"C{self.C:g}"]

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        """Per layer: fit on the training split's sets, score on the evaluated sets; one row
        (accuracy, with ``macro_f1``) and one confusion matrix."""
        output = MetricOutput()
        for layer in inputs.layers:
            train, test = inputs.stack(layer, "train"), inputs.stack(layer)
            result = output.guarded(layer, ALL, self.compute, train.features, train.labels["degradation"],
                                    test.features, test.labels["degradation"], inputs.seed)
            if result is None:
                continue
            output.result(layer, ALL, result, macro_f1=float(result.macro_f1))
            output.confusions.append({
                "layer": layer, "classes": list(result.classes), "matrix": np.asarray(result.confusion).tolist(),
                "accuracy": float(result.accuracy), "macro_f1": float(result.macro_f1)})
        return output

    def compute(
        self, train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray, test_y: np.ndarray, seed: int
    ) -> IdentificationResult:
        """Fit on the training split, score on the test split (bootstrap interval over test samples)."""
        probe = DegradationProbe(self.classifier, self.k, self.C, seed).fit(train_X, train_y)
        test_X = check_features(test_X, "test features", min_samples=1, allow_constant=True)
        test_y = np.asarray(test_y).astype(str)
        if test_y.shape != (test_X.shape[0],):
            raise DegenerateInputError(f"test labels must be 1-D with {test_X.shape[0]} entries, got {test_y.shape}")
        predicted = probe.predict(test_X)
        classes = sorted(set(probe.classes_) | set(test_y.tolist()))
        unseen = sorted(set(test_y.tolist()) - set(probe.classes_))
        correct = (predicted == test_y).astype(np.float64)
        ci_low, ci_high = bootstrap_mean_interval(correct, self.bootstrap, np.random.default_rng(seed))
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score  # lazy: start-up

        return IdentificationResult(
            accuracy=float(accuracy_score(test_y, predicted)),
            macro_f1=float(f1_score(test_y, predicted, labels=classes, average="macro", zero_division=0)),
            confusion=confusion_matrix(test_y, predicted, labels=classes),
            classes=classes,
            ci_low=ci_low,
            ci_high=ci_high,
            extra={
                "n_train": len(np.asarray(train_y)),
                "n_test": int(test_y.size),
                "chance": 1.0 / len(probe.classes_),
                "warnings": [f"test classes never seen in training: {unseen}"] if unseen else [],
            },
        )

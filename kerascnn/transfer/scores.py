"""Transferability scores: LogME, LEEP, and `rank` for choosing without labels spent.

A transferability score says, from a forward pass and the target labels
alone (no fine-tuning, no validation split), how well a pretrained model's
features will serve a target task. `rank` scores several candidates
(backbones, source models, blocks of one backbone, or feature arrays) and
orders them.

- LogME (You, Liu, Wang and Long, "LogME: Practical Assessment of
  Pre-trained Models for Transfer Learning", ICML 2021): the log marginal
  evidence of a Bayesian linear model on the features, maximised over the
  prior precision `alpha` and the noise precision `beta` by MacKay's fixed
  point, averaged over the one-vs-rest label columns and divided by the
  number of samples. Higher is better.
- LEEP (Nguyen, Hassner, Seeger and Archambeau, "LEEP: A New Measure to
  Evaluate Transferability of Learned Representations", ICML 2020): the
  average log-likelihood of the target labels under the "expected empirical
  predictor" built from the source classifier's probabilities. Needs a
  source model that still has its classifier head. Higher (closer to 0) is
  better.

What it adds to Keras: Keras has no way to compare pretrained models for a
target without training each; these are the published scores, computed
exactly (LogME through one SVD of the features).
"""

import dataclasses

import keras
import numpy as np

from kerascnn import _validation

SCORES = ("logme", "leep")


def _check_features(name, features):
    features = np.asarray(features)
    if features.dtype == object or not np.issubdtype(features.dtype,
                                                     np.number):
        _validation.fail(name, "a numeric array (n, d)", features)
    if features.ndim != 2 or features.shape[0] < 2 or features.shape[1] < 1:
        _validation.fail(name, "a 2-D array (n, d) with n >= 2",
                         f"an array of shape {features.shape}")
    features = features.astype("float64")
    if not np.all(np.isfinite(features)):
        _validation.fail(name, "finite values", "an array with NaN or inf")
    return features


def _logme_column(u, sigma2, uty, y_norm2, n, d, max_iterations, tolerance):
    """LogME of one target column, from the SVD of the features.

    `u`: left singular vectors (n, r); `sigma2`: squared singular values
    (r,); `uty = u.T @ y`; `y_norm2 = y @ y`. The D - r directions with zero
    singular value only carry the prior.
    """
    del u
    alpha, beta = 1.0, 1.0
    outside = max(y_norm2 - float(uty @ uty), 0.0)  # |y - U U^T y|^2
    for _ in range(max_iterations):
        denom = alpha + beta * sigma2
        gamma = float(np.sum(beta * sigma2 / denom))
        m2 = float(np.sum((beta * np.sqrt(sigma2) * uty / denom) ** 2))
        residual = outside + float(np.sum((alpha * uty / denom) ** 2))
        new_alpha = gamma / max(m2, 1e-300)
        new_beta = (n - gamma) / max(residual, 1e-300)
        if not (0 < new_alpha < np.inf and 0 < new_beta < np.inf):
            # Labels in the span of the features (n <= d): the evidence
            # rises towards its supremum as beta -> inf, gamma -> n, until
            # n - gamma rounds to 0. Keep the last finite precisions.
            break
        change = abs(new_alpha - alpha) / alpha + abs(new_beta - beta) / beta
        alpha, beta = new_alpha, new_beta
        if change < tolerance:
            break
    denom = alpha + beta * sigma2
    m2 = float(np.sum((beta * np.sqrt(sigma2) * uty / denom) ** 2))
    residual = outside + float(np.sum((alpha * uty / denom) ** 2))
    log_det = float(np.sum(np.log(denom))) + (d - len(sigma2)) * np.log(alpha)
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha)
                - n / 2 * np.log(2 * np.pi) - beta / 2 * residual
                - alpha / 2 * m2 - log_det / 2)
    return evidence / n


def logme(features, labels, max_iterations=100, tolerance=1e-6):
    """LogME of features for integer class labels (You et al., ICML 2021).

    For each class `k`, the one-vs-rest target `y_k` (1 for the class, 0
    otherwise) is modelled as `y = F w + noise`, `w ~ N(0, I / alpha)`,
    noise `~ N(0, 1 / beta)`; the log evidence `log p(y | F, alpha, beta)`
    is maximised over `alpha` and `beta` by MacKay's fixed point
    (`gamma = sum(beta s_i / (alpha + beta s_i))`, `alpha = gamma / m'm`,
    `beta = (n - gamma) / |F m - y|^2`, `s_i` the eigenvalues of `F'F`),
    divided by `n`, and averaged over the classes. Works for `n > d` and
    `n <= d` alike (one thin SVD of `F`). The features are used as given
    (no centring), as in the paper.

    Args:
        features: Array `(n, d)`.
        labels: Integer labels `(n,)`, at least two classes.
        max_iterations: Most fixed-point iterations. Defaults to `100`.
        tolerance: Stop when the relative change of `alpha` plus that of
            `beta` is below this. Defaults to `1e-6`.

    Returns:
        A float: the mean over classes of the evidence per sample. Higher
        means the features fit the labels better with a linear model.
    """
    features = _check_features("features", features)
    labels = _validation.check_labels("labels", labels,
                                      num_samples=len(features),
                                      samples_name="features")
    max_iterations = _validation.check_positive_int("max_iterations",
                                                    max_iterations)
    tolerance = _validation.check_positive_float("tolerance", tolerance)
    classes = np.unique(labels)
    if len(classes) < 2:
        _validation.fail("labels", "at least two classes", labels)
    n, d = features.shape
    u, sigma, _ = np.linalg.svd(features, full_matrices=False)
    keep = sigma > sigma.max() * max(n, d) * np.finfo("float64").eps
    u, sigma2 = u[:, keep], sigma[keep] ** 2
    scores = []
    for k in classes:
        y = (labels == k).astype("float64")
        scores.append(_logme_column(u, sigma2, u.T @ y, float(y @ y), n, d,
                                    max_iterations, tolerance))
    return float(np.mean(scores))


def leep(source_probabilities, labels):
    """LEEP of a source classifier for target labels (Nguyen et al., 2020).

    With `theta_i` the source model's probabilities over its `Z` source
    classes for target image `i`: the empirical joint
    `P(y, z) = sum_{i: y_i = y} theta_iz / n`, the conditional
    `P(y | z) = P(y, z) / P(z)`, and
    `LEEP = mean_i log(sum_z P(y_i | z) theta_iz)`.

    Args:
        source_probabilities: Array `(n, Z)` of the source model's softmax
            outputs on the target images (rows sum to 1).
        labels: Integer target labels `(n,)`.

    Returns:
        A float <= 0; higher (closer to 0) predicts better transfer.
    """
    theta = _check_features("source_probabilities", source_probabilities)
    if np.any(theta < -1e-6) or not np.allclose(theta.sum(1), 1.0,
                                                atol=1e-3):
        _validation.fail("source_probabilities", "rows of probabilities "
                         "(>= 0, summing to 1: a softmax output)",
                         "rows summing to "
                         f"{np.round(theta.sum(1)[:3], 4).tolist()}...")
    theta = np.clip(theta, 0.0, None)
    labels = _validation.check_labels("labels", labels,
                                      num_samples=len(theta),
                                      samples_name="source_probabilities")
    n = len(labels)
    num_target = int(labels.max()) + 1
    joint = np.zeros((num_target, theta.shape[1]))
    np.add.at(joint, labels, theta)
    joint /= n
    marginal = joint.sum(0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint),
                            where=marginal > 0)
    likelihood = np.sum(conditional[labels] * theta, axis=1)
    return float(np.mean(np.log(np.maximum(likelihood, 1e-300))))


@dataclasses.dataclass
class Ranking:
    """What `rank` returns.

    Attributes:
        score: `"logme"` or `"leep"`.
        names: Candidate names, best first.
        scores: Dict name -> score (higher is better).
    """

    score: str
    names: list
    scores: dict

    @property
    def best(self):
        """The name of the best-scoring candidate."""
        return self.names[0]

    def summary(self):
        """One line per candidate, best first."""
        lines = [f"Candidates ranked by {self.score} (higher is better):"]
        lines += [f"  {i}. {name}: {self.scores[name]:.4f}"
                  for i, name in enumerate(self.names, 1)]
        return "\n".join(lines)


def _named(candidates):
    if isinstance(candidates, dict):
        items = list(candidates.items())
    elif isinstance(candidates, (list, tuple)):
        items = []
        for i, c in enumerate(candidates):
            name = getattr(c, "name", None)
            if isinstance(c, str):
                name = c
            items.append((str(name) if name else f"candidate{i}", c))
    else:
        items = [(getattr(candidates, "name", "candidate0"), candidates)]
    if not items:
        _validation.fail("candidates", "at least one candidate", candidates)
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        _validation.fail("candidates", "candidates with distinct names (pass "
                         "a dict name -> candidate)", names)
    return items


def rank(candidates, x, y, score="logme", blocks=False, batch_size=64,
         verbose=0):
    """Ranks pretrained candidates for a target by a transferability score.

    No candidate is trained: each is run once over the target images in
    inference mode and scored on the target labels, so the choice spends
    no labels on a validation split (all of them serve the score, and then
    the training).

    Candidates can be `Backbone`s (scored on their globally average-pooled
    top features, or every block of each with `blocks=True`), Keras models
    (with `score="logme"`: turned into a `Backbone` with `get_backbone`, so a
    source classifier is scored on the features under its head; with
    `score="leep"`: its softmax output is used as it is), registry names
    (built with `weights="imagenet"` for the images' shape), or feature
    arrays `(n, d)` already computed on `x`.

    Args:
        candidates: A dict name -> candidate, a list of candidates, or one
            `Backbone` (with `blocks=True`: rank its blocks).
        x: Raw target images `(n, height, width, channels)`, as the
            candidates take them (ignored for feature arrays).
        y: Integer target labels `(n,)`.
        score: `"logme"` or `"leep"`. Defaults to `"logme"`.
        blocks: Whether each backbone's blocks are candidates of their own
            (named `"<name>/<block>"`). Defaults to `False`.
        batch_size: Forward-pass batch size. Defaults to `64`.
        verbose: `1` shows a progress bar per candidate. Defaults to `0`.

    Returns:
        A `Ranking`.
    """
    from kerascnn.transfer import feature_cache, registry

    score = _validation.check_option("score", score, SCORES)
    blocks = _validation.check_bool("blocks", blocks)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    y = np.asarray(y)
    items = _named(candidates)
    images = None
    if any(not isinstance(c, np.ndarray) for _, c in items):
        images = _validation.check_images("x", x).astype("float32")
    y = _validation.check_labels("y", y, num_samples=None if images is None
                                 else len(images), samples_name="x")
    scores = {}
    for name, candidate in items:
        if isinstance(candidate, np.ndarray):
            if score == "leep":
                scores[name] = leep(candidate, y)
            else:
                scores[name] = logme(candidate, y)
            continue
        if score == "leep":
            if not isinstance(candidate, keras.Model):
                _validation.fail(
                    "candidates", 'Keras classifiers (with their softmax '
                    'head) or probability arrays for score="leep"',
                    f"{name}={candidate!r}")
            probabilities = feature_cache.extract_features(
                candidate, images, batch_size, verbose=verbose)
            scores[name] = leep(probabilities, y)
            continue
        if isinstance(candidate, (str, keras.Model)):
            candidate = registry.get_backbone(
                candidate, input_shape=tuple(images.shape[1:]))
        if getattr(candidate, "blocks", None) is None:
            _validation.fail("candidates", "Backbones, Keras models, "
                             "registry names or feature arrays",
                             f"{name}={candidate!r}")
        if blocks:
            model = candidate.stage_model()
            features = feature_cache.extract_features(
                model, images, batch_size, verbose=verbose)
            if not isinstance(features, list):
                features = [features]
            for block, f in zip(candidate.blocks, features):
                scores[f"{name}/{block.name}"] = logme(f, y)
        else:
            model = feature_cache.pooled_feature_model(candidate)
            scores[name] = logme(feature_cache.extract_features(
                model, images, batch_size, verbose=verbose), y)
    names = sorted(scores, key=lambda k: -scores[k])
    return Ranking(score=score, names=names, scores=scores)

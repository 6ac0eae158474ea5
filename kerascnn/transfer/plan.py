"""The transfer-learning table as code: `recommend` and `TransferPlan`."""

import collections

import numpy as np

from kerascnn import _validation
from kerascnn.transfer import similarity as similarity_lib

CELLS = ("similar-small", "similar-large", "dissimilar-small",
         "dissimilar-large")
HEADS = ("auto", "dense", "svm", "logistic")

Phase = collections.namedtuple(
    "Phase", ["name", "trainable_blocks", "learning_rate", "cached",
              "description"])
Phase.__doc__ = """One training phase of a `TransferPlan`.

Fields:
    name: `"head"`, `"probe"`, `"fine-tune"` or `"unfreeze-k"`.
    trainable_blocks: Number of top backbone blocks trained in this phase.
    learning_rate: Base learning rate of the phase (`None` for a
        scikit-learn probe).
    cached: Whether the frozen backbone's features are computed once and the
        head trained on them.
    description: One sentence.
"""


def plan_sample(source, num_classes, max_images, seed=0):
    """What `recommend` reads from a streamed `ImageSource`: a bounded
    sample of its images, and labels with the source's exact per-class
    counts (the images per class come from the file list, not the sample).
    """
    images = source.sample(max_images, seed=seed)
    counts = source.class_counts(num_classes)
    return images, np.repeat(np.arange(len(counts)), counts)


class TransferPlan:
    """What to freeze and how to train, with the reasons.

    Attributes:
        cell: One of `"similar-small"`, `"similar-large"`,
            `"dissimilar-small"`, `"dissimilar-large"`.
        similar, large: The two facts behind the cell.
        images_per_class: Average number of training images per class.
        num_classes: Number of target classes.
        similarity: The `Similarity` measured (or `None` if given as facts).
        strategy: `"linear_head"`, `"fine_tune_top"`, `"linear_probe"` or
            `"fine_tune_all"`.
        head: `"dense"`, `"svm"` or `"logistic"`.
        frozen_blocks, fine_tuned_blocks: Block names at the end of training.
        probe_blocks: Block names whose pooled features the probe tries.
        head_learning_rate, fine_tune_learning_rate: Learning rates.
        lr_decay: Per-block learning-rate factor going down the network
            (discriminative learning rates), or `None`.
        gradual_unfreeze_every: Epochs between unfreezing one more block, or
            `None`.
        phases: List of `Phase`.
        reasons: List of sentences explaining the choices.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def linear_classifier(self):
        """Whether the plan fits a scikit-learn linear classifier on one pass
        of frozen features (the small-target plans: no Keras training, no
        validation split, nothing to distribute)."""
        return self.strategy in ("linear_probe", "linear_head") and (
            self.head != "dense")

    def to_dict(self):
        """A JSON-friendly dict of the plan."""
        result = {}
        for key, value in self.__dict__.items():
            if key == "similarity":
                value = None if value is None else {
                    "cosine": value.cosine, "distance": value.distance,
                    "layer": value.layer, "route": value.route}
            elif key == "phases":
                value = [phase._asdict() for phase in value]
            result[key] = value
        return result

    def summary(self):
        """The cell, the plan and the reasons, as readable text."""
        lines = [f"Cell: {self.cell} (similar={self.similar}, "
                 f"large={self.large})",
                 f"Strategy: {self.strategy}, head: {self.head}"]
        if self.frozen_blocks:
            lines.append("Frozen blocks: " + ", ".join(self.frozen_blocks))
        if self.fine_tuned_blocks:
            lines.append("Fine-tuned blocks: "
                         + ", ".join(self.fine_tuned_blocks))
        if self.probe_blocks:
            lines.append("Probe tries blocks: " + ", ".join(self.probe_blocks))
        lines.append("Phases:")
        for number, phase in enumerate(self.phases, 1):
            rate = ("" if phase.learning_rate is None
                    else f", learning rate {phase.learning_rate:g}")
            lines.append(f"  {number}. {phase.name}: {phase.description}"
                         f"{rate}")
        lines.append("Why:")
        lines.extend(f"  - {reason}" for reason in self.reasons)
        return "\n".join(lines)

    def __repr__(self):
        return f"TransferPlan(cell={self.cell!r}, strategy={self.strategy!r})"


def recommend(backbone, images=None, labels=None, source_images=None,
              similarity=None, similar=None, large=None,
              large_threshold=1000, cosine_threshold=0.975,
              distance_threshold=0.25, learning_rate=1e-3,
              fine_tune_factor=0.1, head="auto", lr_decay=None,
              gradual_unfreeze_every=None, layer=None):
    """Chooses the cell of the transfer table and the plan that goes with it.

    The table (cs231n, and the course tutorials): similar + small: freeze
    the backbone, train a linear classifier on top; similar + large:
    fine-tune the top blocks (all but the lowest) at ~1/10 of the head's
    learning rate; dissimilar + small: a linear SVM / logistic regression on
    pooled features of several stages, the best stage chosen on validation;
    dissimilar + large: fine-tune the whole backbone (or train from
    scratch).

    Size: the target is large when it has at least `large_threshold` images
    per class on average. Similarity: the target is similar when the cosine
    similarity of the mean feature vectors is at least `cosine_threshold`
    and their standardized distance at most `distance_threshold` (see
    `measure_similarity`; without `source_images` the backbone's
    BatchNormalization statistics stand for the source data).

    What it adds to Keras: Keras documents how to freeze and fine-tune;
    this decides what to freeze for your data and says why.

    Args:
        backbone: A `Backbone` from `get_backbone`.
        images: Raw target training images. Needed unless `similar` is
            given.
        labels: Integer target labels. Needed unless `large` is given.
        source_images: Optional raw source images for the similarity.
        similarity: Optional precomputed `Similarity`.
        similar, large: Optional booleans that override the measured facts.
        large_threshold: Images per class from which the data is large.
            Defaults to `1000`.
        cosine_threshold: Defaults to `0.975` (calibrated on seven domain
            pairs, `docs/evidence.md`).
        distance_threshold: Defaults to `0.25`.
        learning_rate: The head's learning rate. Defaults to `1e-3`.
        fine_tune_factor: Fine-tuning rate / head rate. Defaults to `0.1`.
        head: `"auto"` (`"logistic"` for similar-small: a scikit-learn
            logistic regression on the cached top features, turned into a
            Dense layer; `"dense"`, a Keras head, before fine-tuning;
            `"svm"` for the probe), `"dense"`, `"svm"` or `"logistic"`.
            Defaults to `"auto"`.
        lr_decay: Optional factor in (0, 1]: each lower fine-tuned block
            learns at this factor times the rate of the block above
            (discriminative learning rates). Defaults to `None`.
        gradual_unfreeze_every: Optional number of epochs after which one
            more block is unfrozen. Defaults to `None` (all at once).
        layer: Layer compared by `measure_similarity`. Defaults to its
            default.

    Returns:
        A `TransferPlan`.
    """
    large_threshold = _validation.check_positive_int("large_threshold",
                                                     large_threshold)
    cosine_threshold = _validation.check_float("cosine_threshold",
                                               cosine_threshold, -1.0, 1.0)
    distance_threshold = _validation.check_float(
        "distance_threshold", distance_threshold, 0.0)
    learning_rate = _validation.check_positive_float("learning_rate",
                                                     learning_rate)
    fine_tune_factor = _validation.check_float(
        "fine_tune_factor", fine_tune_factor, 0.0, 1.0, min_open=True)
    head = _validation.check_option("head", head, HEADS)
    if lr_decay is not None:
        lr_decay = _validation.check_float("lr_decay", lr_decay, 0.0, 1.0,
                                           min_open=True)
    if gradual_unfreeze_every is not None:
        gradual_unfreeze_every = _validation.check_positive_int(
            "gradual_unfreeze_every", gradual_unfreeze_every)
    for name, value in (("similar", similar), ("large", large)):
        if value is not None:
            _validation.check_bool(name, value)
    if getattr(backbone, "blocks", None) is None:
        _validation.fail("backbone", "a kerascnn.transfer.Backbone", backbone)

    reasons = list(getattr(backbone, "notes", []))
    num_classes, per_class = None, None
    if labels is not None:
        labels = _validation.check_labels(
            "labels", labels,
            num_samples=None if images is None else len(images),
            samples_name="images")
        counts = np.bincount(labels)
        counts = counts[counts > 0]
        num_classes = len(counts)
        per_class = float(len(labels) / num_classes)
    if large is None:
        if per_class is None:
            _validation.fail("labels", "given when `large` is None", labels)
        large = per_class >= large_threshold
        reasons.append(
            f"The target has {per_class:.0f} images per class on average "
            f"({num_classes} classes), {'at least' if large else 'fewer than'}"
            f" the threshold of {large_threshold}: it is "
            f"{'large' if large else 'small'}.")
    else:
        reasons.append(f"The target is {'large' if large else 'small'} "
                       "(given).")
    if similar is None:
        if similarity is None:
            if images is None:
                _validation.fail("images", "given when `similar` and "
                                 "`similarity` are None", images)
            similarity = similarity_lib.measure_similarity(
                backbone, images, source_images, layer=layer)
        similar = (similarity.cosine >= cosine_threshold
                   and similarity.distance <= distance_threshold)
        reasons.append(
            f"Mean features at layer {similarity.layer!r} ({similarity.route})"
            f": cosine similarity {similarity.cosine:.3f} (threshold "
            f"{cosine_threshold:g}), standardized distance "
            f"{similarity.distance:.3f} (threshold {distance_threshold:g}): "
            f"the target is {'similar' if similar else 'dissimilar'} to the "
            "source.")
    else:
        word = "similar" if similar else "dissimilar"
        reasons.append(f"The target is {word} to the source (given).")

    cell = f"{'similar' if similar else 'dissimilar'}-" \
           f"{'large' if large else 'small'}"
    blocks = [block.name for block in backbone.blocks]
    fine_rate = learning_rate * fine_tune_factor
    phases, probe_blocks, fine_tuned = [], [], []
    head_phase = Phase("head", 0, learning_rate, True,
                       "train the new classifier on the frozen backbone's "
                       "features, computed once")
    if cell == "similar-small":
        strategy = "linear_head"
        head = "logistic" if head == "auto" else head
        phases.append(head_phase if head == "dense" else Phase(
            "head", 0, None, True,
            f"fit a {head} linear classifier (scikit-learn) on the frozen "
            "backbone's pooled features, computed once"))
        reasons.append(
            "Similar data, few labels: the backbone's features already fit "
            "and fine-tuning would overfit, so the whole backbone is frozen "
            "and only a linear classifier is trained on top.")
    elif cell == "dissimilar-small":
        strategy = "linear_probe"
        head = "svm" if head == "auto" else head
        probe_blocks = list(blocks)
        phases.append(Phase(
            "probe", 0, None, True,
            f"fit a linear {head} on the pooled features of each block "
            f"({', '.join(blocks)}) and keep the best on validation"))
        reasons.append(
            "Dissimilar data, few labels: the top features are specific to "
            "the source task, so linear classifiers are tried on lower-level "
            "features of several stages and the best stage on validation "
            "is kept; nothing is fine-tuned.")
    else:
        head = "dense" if head == "auto" else head
        if cell == "similar-large":
            strategy = "fine_tune_top"
            count = max(1, len(blocks) - 1)
            reasons.append(
                "Similar data, many labels: the top blocks are fine-tuned "
                f"({count} of {len(blocks)}; the lowest, most generic block "
                f"stays frozen) at {fine_tune_factor:g} x the head's learning "
                "rate, after the head is trained on frozen features.")
        else:
            strategy = "fine_tune_all"
            count = len(blocks)
            reasons.append(
                "Dissimilar data, many labels: the whole backbone is "
                "fine-tuned (the pretrained weights are only a starting "
                "point; training from scratch is the alternative), at "
                f"{fine_tune_factor:g} x the head's learning rate after the "
                "head is trained on frozen features.")
        phases.append(head_phase)
        fine_tuned = blocks[len(blocks) - count:]
        if gradual_unfreeze_every:
            for k in range(1, count):
                phases.append(Phase(
                    f"unfreeze-{k}", k, fine_rate, False,
                    f"fine-tune the top {k} block(s) for "
                    f"{gradual_unfreeze_every} epoch(s)"))
            reasons.append(
                f"Gradual unfreezing: one more block every "
                f"{gradual_unfreeze_every} epoch(s), from the top down.")
        phases.append(Phase(
            "fine-tune", count, fine_rate, False,
            f"fine-tune the top {count} block(s) end to end until early "
            "stopping"))
        reasons.append(
            "BatchNormalization layers stay frozen (inference mode) while "
            "fine-tuning, so their statistics are not overwritten by small "
            "batches of new data.")
        if lr_decay is not None:
            reasons.append(
                f"Discriminative learning rates: each lower block learns at "
                f"{lr_decay:g} x the rate of the block above.")
    frozen = [b for b in blocks if b not in fine_tuned]
    return TransferPlan(
        cell=cell, similar=bool(similar), large=bool(large),
        images_per_class=per_class, num_classes=num_classes,
        similarity=similarity, strategy=strategy, head=head,
        frozen_blocks=frozen, fine_tuned_blocks=list(fine_tuned),
        probe_blocks=probe_blocks, head_learning_rate=learning_rate,
        fine_tune_learning_rate=fine_rate if fine_tuned else None,
        lr_decay=lr_decay if fine_tuned else None,
        gradual_unfreeze_every=gradual_unfreeze_every if fine_tuned else None,
        phases=phases, reasons=reasons)


def block_lr_multipliers(backbone, num_blocks, lr_decay):
    """Learning-rate multiplier of each layer of the top `num_blocks`.

    The top block gets 1, the one below `lr_decay`, then `lr_decay**2`...

    Returns:
        A dict layer name -> multiplier.
    """
    lr_decay = _validation.check_float("lr_decay", lr_decay, 0.0, 1.0,
                                       min_open=True)
    result = {}
    top = backbone.blocks[len(backbone.blocks) - num_blocks:]
    for depth, block in enumerate(reversed(top)):
        for name in block.layers:
            result[name] = float(lr_decay ** depth)
    return result



"""Transfer learning by the similarity / size table, on Keras 3.

Start from a pretrained network (a `keras.applications` backbone or your own
Keras model) and decide what to freeze from two facts about the target data:
is it small or large, similar or dissimilar to the source.

    similar + small     freeze the backbone, train a linear classifier
    similar + large     fine-tune the top blocks at ~1/10 learning rate
    dissimilar + small  linear SVM / logistic regression on lower stages
    dissimilar + large  fine-tune the whole backbone (or train from scratch)

`recommend` picks the cell and explains it; `fit` runs the plan and returns
one Keras model that takes raw pixels and saves / exports. `logme`, `leep`
and `rank` score pretrained candidates for a target without training them.
"""

from kerascnn.transfer.blocks import (Block, batchnorm_layers, find_blocks,
                                      freeze_backbone, set_trainable_blocks,
                                      trainable_blocks, unfreeze_backbone)
from kerascnn.transfer.discriminative import (DiscriminativeAdam,
                                              DiscriminativeAdamW,
                                              DiscriminativeRMSprop,
                                              DiscriminativeSGD,
                                              discriminative_optimizer)
from kerascnn.transfer.feature_cache import (CachedHead, assemble,
                                             extract_features,
                                             fit_cached_head)
from kerascnn.transfer.fit import TransferResult, fit
from kerascnn.transfer.linear_probe import (Probe, dense_from_linear,
                                            fit_linear_probe)
from kerascnn.transfer.plan import (CELLS, Phase, TransferPlan,
                                    block_lr_multipliers, recommend)
from kerascnn.transfer.preprocessing import (PREPROCESSING_MODES,
                                             BackbonePreprocessing)
from kerascnn.transfer.scores import Ranking, leep, logme, rank
from kerascnn.transfer.registry import (BACKBONES, Backbone, BackboneSpec,
                                        get_backbone, get_spec,
                                        list_backbones)
from kerascnn.transfer.similarity import (Similarity, default_layer,
                                          measure_similarity)
from kerascnn.transfer.views import (ImageViews, ViewAverage, Views,
                                     preset_views)

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackbonePreprocessing",
    "BackboneSpec",
    "Block",
    "CELLS",
    "CachedHead",
    "DiscriminativeAdam",
    "DiscriminativeAdamW",
    "DiscriminativeRMSprop",
    "DiscriminativeSGD",
    "ImageViews",
    "PREPROCESSING_MODES",
    "Phase",
    "Probe",
    "Ranking",
    "Similarity",
    "TransferPlan",
    "TransferResult",
    "ViewAverage",
    "Views",
    "assemble",
    "batchnorm_layers",
    "block_lr_multipliers",
    "default_layer",
    "dense_from_linear",
    "discriminative_optimizer",
    "extract_features",
    "find_blocks",
    "fit",
    "fit_cached_head",
    "fit_linear_probe",
    "freeze_backbone",
    "get_backbone",
    "get_spec",
    "leep",
    "list_backbones",
    "logme",
    "measure_similarity",
    "preset_views",
    "rank",
    "recommend",
    "set_trainable_blocks",
    "trainable_blocks",
    "unfreeze_backbone",
]

"""The public names of kerascnn.transfer."""

import kerascnn.transfer as transfer


def test_all_is_pinned():
    assert transfer.__all__ == [
        "BACKBONES", "Backbone", "BackbonePreprocessing", "BackboneSpec",
        "Block", "CELLS", "CachedHead", "DiscriminativeAdam",
        "DiscriminativeAdamW", "DiscriminativeRMSprop", "DiscriminativeSGD",
        "ImageViews", "PREPROCESSING_MODES", "Phase", "Probe", "Ranking",
        "Similarity", "TransferPlan", "TransferResult", "ViewAverage",
        "Views", "assemble", "batchnorm_layers",
        "block_lr_multipliers", "default_layer", "dense_from_linear",
        "discriminative_optimizer", "extract_features", "find_blocks", "fit",
        "fit_cached_head", "fit_linear_probe", "freeze_backbone",
        "get_backbone", "get_spec", "leep", "list_backbones", "logme",
        "measure_similarity", "preset_views", "rank", "recommend", "set_trainable_blocks", "trainable_blocks",
        "unfreeze_backbone",
    ]
    for name in transfer.__all__:
        assert getattr(transfer, name) is not None

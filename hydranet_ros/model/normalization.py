"""The one input normalisation of this package: RGB in [0, 1], minus ImageNet's mean, over its std.

Checkpoints record it (`CheckpointMetadata.normalization`), datasets and the Predictor apply it,
encoders whose weights were trained on another scaling convert from it inside the network.
"""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

"""Label sets of the synthetic world (ids are what the bundled model predicts)."""
from hydranet_ros import IGNORE  # noqa: F401 (the package's ignore label, imported from here by the world's users)


SEGMENTATION_CLASSES = [
    ('road', [128, 64, 128]), ('lane_marking', [255, 255, 255]), ('sidewalk', [244, 35, 232]),
    ('terrain', [152, 251, 152]), ('building', [70, 70, 70]), ('vegetation', [107, 142, 35]),
    ('pole', [153, 153, 153]), ('sky', [70, 130, 180]), ('car', [0, 0, 142]), ('pedestrian', [220, 20, 60]),
]
SEG_ID = {name: i for i, (name, _) in enumerate(SEGMENTATION_CLASSES)}
DETECTION_CLASSES = ['car', 'pedestrian']
DET_ID = {name: i for i, name in enumerate(DETECTION_CLASSES)}

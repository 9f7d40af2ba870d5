"""torchvision's counterpart: `import torchvision.transforms as transforms` becomes
`import minires.vision.transforms as transforms` (datasets, transforms, utils, models)."""
from . import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]

"""Which local image a docker-mode step runs.

`make build` tags `drone-yolo-<image>:<version>-<commit>` and `:latest` on this machine; a pushed or
pulled image carries the config's registry name (`<registry>/drone-yolo-<image>:<tag>`). The
runner takes the config's name when Docker has it, else `make build`'s, so `python -m pipeline local
--docker` works straight after `make build`; with neither it stops before any step runs.
"""

from __future__ import annotations

from functools import lru_cache

from pipeline.config import Images
from pipeline.step_exec import local_image_id
from yolo_core.errors import UserInputError


@lru_cache(maxsize=32)
def image_exists(reference: str) -> bool:
    return local_image_id(reference) is not None


def candidates(images: Images, image: str, tag: str) -> tuple[str, str]:
    """The config's registry name first, then the name `make build` gives the image."""
    return images.uri(image, tag), f"{getattr(images, image)}:{tag}"


def resolve_local_image(images: Images, image: str, tag: str) -> str:
    names = candidates(images, image, tag)
    for name in names:
        if image_exists(name):
            return name
    raise UserInputError(
        f"no local {image} image: neither {names[0]} nor {names[1]} is in Docker; "
        f"run `make build` (it tags <version>-<commit> and latest), or pass -p "
        f"{image.capitalize()}ImageTag=TAG"
    )

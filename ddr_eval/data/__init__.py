"""Source images (embedded scikit-image photographs or a folder) and the HR patches cut from them."""

from ddr_eval.data.images import (
    DEFAULT_TEST_IMAGES,
    EMBEDDED_IMAGES,
    MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    EmbeddedImage,
    Image,
    load_embedded,
    load_folder,
    load_images,
    read_image,
)
from ddr_eval.data.patches import PatchSet, sample_patches, split_images

__all__ = [
    "DEFAULT_TEST_IMAGES",
    "EMBEDDED_IMAGES",
    "MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "EmbeddedImage",
    "Image",
    "PatchSet",
    "load_embedded",
    "load_folder",
    "load_images",
    "read_image",
    "sample_patches",
    "split_images",
]

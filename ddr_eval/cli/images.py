"""`ddr-eval upscale` and `ddr-eval identify`: one network on your images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddr_eval.cli.options import (
    ARCH_HELP,
    ARCH_KWARGS_HELP,
    apply_trust,
    batch_size_option,
    device_option,
    parse_arch_kwargs,
    trust_code_option,
)
from ddr_eval.core.errors import UserError


def identify(
    images: list[Path] = typer.Argument(..., help="LR images whose degradation to identify"),
    probe: str = typer.Option("ddr-probe", "--probe", help="probe name in model_zoo/probes/, or a probe .npz file "
                              "(`zoo train-probe RECIPE.yaml` writes one beside its recipe)"),
    device: Optional[str] = device_option(),
    batch_size: Optional[int] = batch_size_option(),
    trust_code: bool = trust_code_option(),
) -> None:
    """Predict the degradation of images from their DDR (class and probability)."""
    apply_trust(trust_code)
    from tabulate import tabulate

    from ddr_eval.workflows.identify import Identifier

    identifier = Identifier(probe, device=device, batch_size=batch_size)
    rows = []
    for image in images:
        found = identifier.identify(image)
        others = ", ".join(f"{c} {p:.2f}" for c, p in found.probabilities.items() if c != found.label)
        rows.append([str(image), found.label, f"{found.probability:.3f}", others])
    typer.echo(tabulate(rows, headers=["image", "degradation", "probability", "other classes"], tablefmt="simple"))


def upscale(
    input_path: Path = typer.Argument(..., metavar="IN", help="input image"),
    output_path: Path = typer.Argument(..., metavar="OUT", help="output image; its extension picks the format "
                                       "(.png, .jpg/.jpeg, .webp, .tif/.tiff)"),
    model: str = typer.Option(..., "--model", help="zoo name or checkpoint path"),
    arch: Optional[str] = typer.Option(None, "--arch", help=ARCH_HELP),
    arch_kwargs: Optional[str] = typer.Option(None, "--arch-kwargs", help=ARCH_KWARGS_HELP),
    trust_code: bool = trust_code_option(),
) -> None:
    """Super-resolve one image with a model (uint8 out, rounded like BasicSR's tensor2img; PNG, JPEG, WebP or
    TIFF by the output's extension)."""
    apply_trust(trust_code)
    from PIL import Image as PILImage

    from ddr_eval.core.atomic import atomic_write
    from ddr_eval.data.images import read_image
    from ddr_eval.metrics.quality import to_uint8
    from ddr_eval.models.zoo import resolve_model
    from ddr_eval.models.inference import super_resolve_within_memory
    from ddr_eval.pipeline.models import require_finite_weights
    from ddr_eval.pipeline.runner import check_output_dir

    check_output_dir(output_path.parent, "output image folder")
    if output_path.is_dir():
        raise UserError(f"output image {output_path} is a directory")
    kwargs = parse_arch_kwargs(arch_kwargs)
    if kwargs and not Path(model).expanduser().is_file():
        raise UserError(f"--arch-kwargs builds a checkpoint file's architecture; {model} is not a file "
                        "(a zoo entry records its own)")
    image_format = _image_format(output_path)
    descriptor = resolve_model(model, arch=arch, **kwargs)
    require_finite_weights(descriptor, model)
    if descriptor.purpose != "sr":
        raise UserError(f"model {model} is a {descriptor.purpose} network, not super-resolution")
    pixels = read_image(input_path)
    out = to_uint8(super_resolve_within_memory(descriptor.module, pixels, descriptor.scale))  # tiles if huge
    atomic_write(output_path, lambda tmp: PILImage.fromarray(out).save(tmp, format=image_format, **_SAVE_OPTIONS.get(
        image_format, {})))
    typer.echo(f"{input_path} {pixels.shape[1]}x{pixels.shape[0]} -> {output_path} {out.shape[1]}x{out.shape[0]}")


# Output extension -> Pillow format. Lossy formats are saved at their highest quality: the point of
# `upscale` is to look at what the network made, not at the codec.
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}


def _image_format(path: Path) -> str:
    """The Pillow format an output path's extension names; any other extension is refused."""
    image_format = _IMAGE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        known = ", ".join(sorted(_IMAGE_FORMATS))
        raise UserError(f"output image {path}: unknown extension {path.suffix or '(none)'!r}; use one of {known}")
    return image_format

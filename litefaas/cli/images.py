"""The ``--image-*`` options of ``litefaas build``: declare a model input an image input."""

from __future__ import annotations

import argparse

from litefaas.errors import CommandError


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    images = parser.add_argument_group(
        "image input", "declare a model input an image input: callers may then send encoded files"
    )
    images.add_argument("--image-input", metavar="NAME", help="the input that takes images")
    images.add_argument("--image-size", metavar="H,W", help="the model's image height and width")
    images.add_argument(
        "--image-channels", type=int, choices=(1, 3), default=3, help="1 gray, 3 RGB (default)"
    )
    images.add_argument("--image-scale", type=float, help="pixel (0..255) * scale + offset (default 1)")
    images.add_argument("--image-offset", type=float, help="added after --image-scale (default 0)")
    images.add_argument("--image-mean", metavar="M[,M,M]", help="per channel, instead of scale/offset")
    images.add_argument("--image-std", metavar="S[,S,S]", help="per channel, with --image-mean")
    images.add_argument(
        "--image-invert",
        action="store_true",
        help="invert first (dark-on-light drawings for a light-on-dark model)",
    )
    images.add_argument(
        "--image-fit",
        choices=("stretch", "ink"),
        default="stretch",
        help="ink: crop to the ink, centred square",
    )
    images.add_argument(
        "--image-resize",
        choices=("nearest", "box", "bilinear", "bicubic", "lanczos"),
        default="bilinear",
        metavar="METHOD",
        help="nearest, box, bilinear (default), bicubic or lanczos",
    )


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(item) for item in text.split(",")]
    except ValueError:
        raise CommandError(f"{flag} takes numbers separated by commas, not {text!r}") from None


def image_options(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """``{input name: image declaration}`` from the ``--image-*`` flags; empty without ``--image-input``."""
    name = getattr(args, "image_input", None)
    if name is None:
        used = [
            flag
            for flag in ("image_size", "image_scale", "image_offset", "image_mean", "image_std")
            if getattr(args, flag, None) is not None
        ]
        if used or getattr(args, "image_invert", False):
            raise CommandError("the --image-* options need --image-input NAME")
        return {}
    if args.image_size is None:
        raise CommandError("--image-input needs --image-size H,W")
    size = _floats(args.image_size, "--image-size") or []
    if len(size) != 2 or any(value != int(value) or value < 1 for value in size):
        raise CommandError(f"--image-size takes two positive whole numbers H,W, not {args.image_size!r}")
    from model.pipeline import image_declaration

    declaration = image_declaration(
        (int(size[0]), int(size[1])),
        channels=args.image_channels,
        resize=args.image_resize,
        invert=args.image_invert,
        fit=args.image_fit,
        scale=args.image_scale,
        offset=args.image_offset,
        mean=_floats(args.image_mean, "--image-mean"),
        std=_floats(args.image_std, "--image-std"),
    )
    return {name: declaration}

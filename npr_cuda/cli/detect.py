"""npr-detect: is each image real or fake? One line per image: path, probability of fake, label.

    npr-detect photo.jpg folder/ --weights NPR.pth
    python -m npr_cuda.cli.detect folder/ --weights NPR.pth --jsonl > results.jsonl
    npr-detect folder/ --model npr.onnx      # a model written by npr-export (.onnx or .pt2)

Images are used at their own size by default: resampling blurs the up-sampling traces that NPR
looks for. --resize and --crop apply the official test transforms instead (--tile 224 --crop 224:
the GenImage protocol's, for its checkpoint). 16-bit images are shifted down to 8 bits (the
official loader clips them, which turns a photo white; npr-eval does that, for the official
numbers). Unreadable files are skipped and listed on stderr at the end.
"""

import json
import os
import sys

from ..detector.checkpoint import CheckpointError, load_detector
from ..detector.data import IMAGE_EXTENSIONS, ImageDataset, Protocol, eval_transform, list_images, make_loader
from ..detector.metrics import THRESHOLD
from ..detector.model import NPR_IMPLEMENTATIONS
from ..detector.predict import predict
from .argument_types import positive_int
from .common import (
    add_common_arguments,
    add_speed_arguments,
    add_window_arguments,
    build_fast_detector,
    data_workers,
    new_parser,
    nothing_read,
    printable,
    report_failures,
    resolve_device,
    usage_error,
)


def parse_args(argv=None):
    parser = new_parser("npr-detect", __doc__)
    parser.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="NPR.pth or an npr-train checkpoint")
    source.add_argument(
        "--model",
        metavar="FILE",
        help="a detector exported by npr-export: FILE.onnx (onnxruntime) or FILE.pt2 (AOTInductor); "
        "its recorded --resize/--crop are the defaults. A .pt2 holds compiled code that runs when it is "
        "loaded: load only packages you exported yourself (an .onnx file is data)",
    )
    parser.add_argument(
        "--resize", type=positive_int, default=None, metavar="N", help="resize to N x N first (official: 256)"
    )
    parser.add_argument(
        "--crop", type=positive_int, default=None, metavar="N", help="centre crop N x N (official: 224)"
    )
    parser.add_argument(
        "--tile",
        type=positive_int,
        default=None,
        metavar="N",
        help="tile images smaller than N on a side up to at least N x N, from the top-left corner "
        "(GenImage's 'translate and duplicate', instead of --resize; its protocol: --tile 224 --crop 224)",
    )
    parser.add_argument("--jsonl", action="store_true", help="JSON lines: {path, prob_fake, label}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common_arguments(
        parser, batch_size=16, batch_help="images of the same size are batched together", max_workers=4
    )
    add_window_arguments(parser, training=False)
    add_speed_arguments(parser)
    return parser.parse_args(argv)


def collect_images(paths):
    """Files as given (whatever their extension) and the images under folders, in order."""
    images = []
    for path in paths:
        if os.path.isdir(path):
            images += list_images(path)
        elif os.path.exists(path):
            images.append(path)
        else:
            usage_error("npr-detect", f"{path}: no such file or folder")
    return images


def protocol_for(resize, crop, tile=None) -> Protocol:
    """The transforms --resize, --crop and --tile ask for. Tiling (up to `tile`) replaces the
    resize, as in the GenImage protocol: both at once is a usage error."""
    if tile is not None and resize is not None:
        usage_error("npr-detect", f"--tile {tile} and --resize {resize}: tiling replaces the resize, give one of them")
    if tile is not None and crop is not None and tile < crop:
        usage_error("npr-detect", f"--tile {tile} is below --crop {crop}: the crop would pad the tiled image")
    return Protocol(
        resize=resize is not None,
        crop=crop is not None,
        load_size=256 if resize is None else resize,
        crop_size=224 if crop is None else crop,
        tile=tile,
    )


def checkpoint_model(args, device, images):
    """--weights: the model, run as fast as the speed arguments allow."""
    protocol = protocol_for(args.resize, args.crop, args.tile)  # bad combinations: before loading
    try:
        model = load_detector(
            args.weights, device, window=args.npr_window, anchor=args.npr_anchor, npr_impl=NPR_IMPLEMENTATIONS[args.npr]
        )
    except (CheckpointError, FileNotFoundError) as error:
        usage_error("npr-detect", str(error))
    return build_fast_detector("npr-detect", model, device, args, images, protocol.fixed_size), protocol


MODEL_ONLY_ARGUMENTS = {
    "npr_window": None,
    "npr_anchor": None,
    "npr": "npr_cuda",
    "compile": "auto",
    "amp": "off",
    "cuda_graphs": False,
}


def exported_model(args, device, images):
    """--model: an exported detector, preprocessed as its metadata says (--resize and --crop,
    given, must agree with it)."""
    given = [name for name, default in MODEL_ONLY_ARGUMENTS.items() if getattr(args, name) != default]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        usage_error("npr-detect", f"{options}: for --weights only; an exported model was fixed when it was exported")
    try:
        from ..export import ExportError, load_exported, spec_from_metadata

        detector = load_exported(args.model, device)
        spec = spec_from_metadata(detector.metadata)
    except (ExportError, ImportError, FileNotFoundError) as error:
        usage_error("npr-detect", f"--model {args.model}: {error}")
    if spec.size is not None:  # a fixed-size model: its own preprocessing, which --resize/--crop may repeat
        for name, recorded in (("resize", spec.resize), ("crop", spec.crop)):
            wanted = getattr(args, name)
            if wanted is not None and wanted != recorded:
                exported = " and ".join(f"--{n} {v}" for n, v in (("resize", spec.resize), ("crop", spec.crop)) if v)
                usage_error("npr-detect", f"--{name} {wanted}: {args.model} was exported for {exported}")
        args.resize, args.crop = spec.resize, spec.crop
    if not args.quiet:
        print(f"npr-detect: {images} images; model: {detector.description}", file=sys.stderr)
    return detector, protocol_for(args.resize, args.crop, args.tile)


def main(argv=None):
    args = parse_args(argv)
    images = collect_images(args.paths)
    if not images:
        usage_error("npr-detect", f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {' '.join(args.paths)}")
    device = resolve_device(args.device, "npr-detect")
    detector, protocol = (exported_model if args.model else checkpoint_model)(args, device, len(images))
    samples = [(path, -1) for path in images]
    dataset = ImageDataset(samples, eval_transform(protocol), args.max_pixels, rescale_high_bit_depth=True)
    loader = make_loader(dataset, args.batch_size, data_workers(args, device), pin_memory=device.type == "cuda")
    result = predict(detector, loader, desc="npr-detect", progress=not args.quiet, max_batch_pixels=args.max_pixels)
    if not result.probs:
        nothing_read("npr-detect", result.failures)
    position = {path: i for i, path in enumerate(images)}  # batches group images by size: restore order
    for path, prob in sorted(zip(result.paths, result.probs), key=lambda item: position[item[0]]):
        label = "fake" if prob > THRESHOLD else "real"
        if args.jsonl:
            print(json.dumps({"path": path, "prob_fake": prob, "label": label}))
        else:
            print(f"{printable(path)}\t{prob:.6f}\t{label}")
    report_failures(result.failures)


if __name__ == "__main__":
    main()

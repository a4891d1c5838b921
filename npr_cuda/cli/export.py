"""npr-export: the detector as one file that runs without this package's Python code: ONNX for
onnxruntime, or an AOTInductor package for C++ (and Python) through AOTIModelPackageLoader.

    npr-export --weights NPR.pth --output npr.onnx                 # any batch, height and width
    npr-export --weights NPR.pth --output npr.pt2 --resize 256     # any batch, 256x256 images
    npr-export --weights NPR.pth --web page/ --onnxruntime-web node_modules/onnxruntime-web

The format is the output's suffix. The graph is the whole detector, image batch to logit, with
the checkpoint's NPR window and anchor; the input it expects is printed and written into the
file's metadata, which npr-detect --model reads. The file is written atomically.

--web DIR writes a static web page that runs the detector in the visitor's browser (onnxruntime-web,
WASM): serve DIR with any static server. Its runtime files come from a local copy of the npm
package onnxruntime-web at the pinned version (npm install onnxruntime-web@VERSION).
"""

import sys

from ..detector.checkpoint import CheckpointError, load_detector
from ..detector.data import DEFAULT_MAX_PIXELS
from ..export.web import ONNXRUNTIME_WEB_VERSION
from .argument_types import positive_int
from .common import check_output_file, new_parser, resolve_device, usage_error

PROG = "npr-export"


def parse_args(argv=None):
    parser = new_parser(PROG, __doc__)
    parser.add_argument("--weights", required=True, help="NPR.pth or an npr-train checkpoint")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", metavar="FILE", help="FILE.onnx or FILE.pt2")
    target.add_argument("--web", metavar="DIR", help="a static web page in DIR (new, empty, or an earlier --web)")
    fixes = "(fixes the size; npr-detect --model does the same)"
    parser.add_argument("--resize", type=positive_int, metavar="N", help=f"images resized to N x N {fixes}")
    parser.add_argument("--crop", type=positive_int, metavar="N", help=f"images centre-cropped to N x N {fixes}")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: where a .pt2 package runs")
    web = parser.add_argument_group("--web")
    web.add_argument(
        "--onnxruntime-web",
        metavar="PATH",
        help=f"the npm package onnxruntime-web {ONNXRUNTIME_WEB_VERSION} (npm install "
        f"onnxruntime-web@{ONNXRUNTIME_WEB_VERSION}): node_modules/onnxruntime-web, its dist/, or a folder with "
        "node_modules/; default ./node_modules",
    )
    web.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"the page refuses images with more pixels (default {DEFAULT_MAX_PIXELS}, 4096x4096), as npr-detect does",
    )
    args = parser.parse_args(argv)
    if args.web is None:
        given = [name for name in ("onnxruntime_web",) if getattr(args, name) is not None]
        given += ["max_pixels"] if args.max_pixels != DEFAULT_MAX_PIXELS else []
        if given:
            usage_error(PROG, ", ".join("--" + n.replace("_", "-") for n in given) + ": for --web only")
    return args


def check_arguments(args):
    """Everything that can be checked before any work (exit 2): the output's format, or for --web
    the ONNX extra, the target folder and the runtime files, whose folder is returned."""
    from ..export import check_request
    from ..export.web import check_target, find_runtime

    if args.web is None:
        check_request(args.output, args.crop or args.resize)
        return None
    from ..export import ONNX_TRANSLATIONS  # noqa: F401  (ImportError naming the extra, if it is missing)

    check_target(args.web)
    return find_runtime(args.onnxruntime_web)


def write(args, model, spec, runtime):
    """The export itself; returns what it wrote, and the metadata to print."""
    from ..export import describe, export_detector
    from ..export.web import export_web

    if args.web is None:
        return args.output, export_detector(model, args.output, spec)
    files = export_web(model, args.web, spec, runtime, args.max_pixels)
    return f"{args.web} ({', '.join(files)}); serve it, e.g. python -m http.server -d {args.web}", describe(spec)


def main(argv=None):
    args = parse_args(argv)
    try:
        from ..export import ExportError, InputSpec

        runtime = check_arguments(args)
    except (ExportError, ImportError) as error:
        usage_error(PROG, str(error))
    if args.output is not None:  # before the model is loaded and exported (--web: check_arguments)
        check_output_file(PROG, "--output", args.output)
    device = resolve_device(args.device, PROG)
    try:
        model = load_detector(args.weights, device)
    except (CheckpointError, FileNotFoundError) as error:
        usage_error(PROG, str(error))
    spec = InputSpec(model.window, model.anchor, args.resize, args.crop)
    try:
        written, metadata = write(args, model, spec, runtime)
    except (ExportError, ImportError) as error:
        usage_error(PROG, str(error))
    print(f"{PROG}: wrote {written}", file=sys.stderr)
    for key, value in metadata.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

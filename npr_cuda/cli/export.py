"""npr-export: the detector as one file that runs without this package's Python code: ONNX for
onnxruntime, or an AOTInductor package for C++ (and Python) through AOTIModelPackageLoader.

    npr-export --weights NPR.pth --output npr.onnx                 # any batch, height and width
    npr-export --weights NPR.pth --output npr.pt2 --resize 256     # any batch, 256x256 images

The format is the output's suffix. The graph is the whole detector, image batch to logit, with
the checkpoint's NPR window and anchor; the input it expects is printed and written into the
file's metadata, which npr-detect --model reads. The file is written atomically.
"""

import sys

from ..detector.checkpoint import CheckpointError, load_detector
from .argument_types import positive_int
from .common import check_output_file, new_parser, resolve_device, usage_error

PROG = "npr-export"


def parse_args(argv=None):
    parser = new_parser(PROG, __doc__)
    parser.add_argument("--weights", required=True, help="NPR.pth or an npr-train checkpoint")
    parser.add_argument("--output", required=True, metavar="FILE", help="FILE.onnx or FILE.pt2")
    fixes = "(fixes the size; npr-detect --model does the same)"
    parser.add_argument("--resize", type=positive_int, metavar="N", help=f"images resized to N x N {fixes}")
    parser.add_argument("--crop", type=positive_int, metavar="N", help=f"images centre-cropped to N x N {fixes}")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: where a .pt2 package runs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        from ..export import ExportError, InputSpec, check_request, export_detector

        check_request(args.output, args.crop or args.resize)
    except (ExportError, ImportError) as error:
        usage_error(PROG, str(error))
    check_output_file(PROG, "--output", args.output)  # before the model is loaded and exported
    device = resolve_device(args.device, PROG)
    try:
        model = load_detector(args.weights, device)
    except (CheckpointError, FileNotFoundError) as error:
        usage_error(PROG, str(error))
    spec = InputSpec(model.window, model.anchor, args.resize, args.crop)
    try:
        metadata = export_detector(model, args.output, spec)
    except (ExportError, ImportError) as error:
        usage_error(PROG, str(error))
    print(f"{PROG}: wrote {args.output}", file=sys.stderr)
    for key, value in metadata.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

"""Classify an image with any supported int8 .tflite model, securely.

Like TFLite's label_image, but the model runs under secure multi-party
computation through the tflite-mpc delegate: the image stays private to the
data owner, the weights to the model owner, and only the output is revealed.
The same model is also run in plaintext TFLite (reference kernels) for comparison.
This is `tflite-mpc run` (tflite_mpc/commands.py) with a demo model and image:

  python examples/label_image.py --model mobilenet_int8.tflite --image cat.jpg --labels labels.txt
  python examples/label_image.py                      # MobileNetV1 0.25_128 (random weights), synthetic image
  tflite-mpc run mobilenet_int8.tflite --input cat.jpg --labels labels.txt   # the same, as a command

Options: --protocol rep3, --truncation probabilistic|exact, --top-k N. Exit code 1 if
the secure and plaintext top-1 classes differ.
"""
import argparse
import os
import sys

import numpy as np

from tflite_mpc import _quiet

_quiet.set_environment()  # before TensorFlow is imported


def synthetic_image(shape, seed=0):
    """A smooth NHWC float image in [0, 1] with a little noise."""
    _, h, w, c = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * xx + k) * np.cos(4 * yy - k) for k in range(c)], axis=-1) * 0.5 + 0.5
    return (img + 0.05 * rng.standard_normal(img.shape)).clip(0, 1)[None]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="int8 .tflite model (default: MobileNetV1 0.25_128 built on the fly)")
    ap.add_argument("--image", help="image file (.jpg/.png, or a .npy array in [0, 1]); default: a synthetic image")
    ap.add_argument("--labels", help="text file with one label per line")
    ap.add_argument("--protocol", default="rep3")
    ap.add_argument("--truncation", default="probabilistic", choices=["probabilistic", "exact"])
    ap.add_argument("--preprocess", default="mobilenet", choices=["mobilenet", "none", "auto"],
                    help="mobilenet: scale [0,1] to [-1,1] before quantizing; none: keep [0,1]; auto: the range "
                         "the model's input quantization covers")
    ap.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args(argv)

    from tflite_mpc import commands

    try:
        if args.model:
            model, name = commands.read_model(args.model), os.path.basename(args.model)
        else:
            print("building MobileNetV1 0.25_128 (keras, random weights) and converting it to int8 ...", flush=True)
            from tflite_mpc import modelgen  # imports TensorFlow without its start-up lines

            # Logits: with random weights a 1000-way softmax is almost flat (all -127/-128).
            model = modelgen.mobilenet_v1(0.25, 128, classifier_activation=None)
            name = "MobileNetV1 0.25_128 (int8, logits)"
        inp = commands._single_input(commands.plain_interpreter(model))
        preprocess = {"none": "unit"}.get(args.preprocess, args.preprocess)
        if args.image is None or args.image.endswith(".npy"):
            img = synthetic_image(inp["shape"]) if args.image is None else np.load(args.image).astype(np.float64)
            _, (lo, hi) = commands.image_range(inp, preprocess)
            x = commands.fit_input(lo + img * (hi - lo), inp, "the image")
        else:
            x = commands.read_input(args.image, inp, preprocess=preprocess)
        res = commands.run(model, x, {"protocol": args.protocol, "truncation": args.truncation},
                           labels=commands.read_labels(args.labels), top=args.top_k, name=name)
    except commands.UsageError as e:
        sys.exit(f"label_image: {e}")
    return 0 if res["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())

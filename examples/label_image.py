"""Classify an image with any supported int8 .tflite model, securely.

Like TFLite's label_image, but the model runs under secure multi-party
computation through the tflite-mpc delegate: the image stays private to the
data owner, the weights to the model owner, and only the output is revealed.
The same model is also run in plaintext TFLite for comparison.

  python examples/label_image.py --model mobilenet_int8.tflite --image cat.jpg --labels labels.txt
  python examples/label_image.py                      # MobileNetV1 0.25_128 (random weights), synthetic image

Options: --protocol rep3, --truncation probabilistic|exact, --top-k N.
"""
import argparse
import os
import sys
import time

import numpy as np


def load_image(path, shape, seed=0):
    """An NHWC float image in [0, 1] resized to the model's input, or a synthetic one."""
    _, h, w, c = shape
    if path is None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([np.sin(6 * xx + k) * np.cos(4 * yy - k) for k in range(c)], axis=-1) * 0.5 + 0.5
        return (img + 0.05 * rng.standard_normal(img.shape)).clip(0, 1)[None].astype(np.float32)
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32).reshape(shape)
    try:
        from PIL import Image
    except ImportError:
        sys.exit("reading images needs Pillow (pip install pillow), or pass a .npy array")
    img = Image.open(path).convert("RGB" if c == 3 else "L").resize((w, h))
    return (np.asarray(img, dtype=np.float32) / 255.0).reshape(shape)


def to_model_input(img, detail, preprocess):
    """Float image -> the model's input tensor (quantized if the input is int8)."""
    x = img * 2.0 - 1.0 if preprocess == "mobilenet" else img  # keras MobileNet expects [-1, 1]
    if detail["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zp = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(detail["dtype"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="int8 .tflite model (default: MobileNetV1 0.25_128 built on the fly)")
    ap.add_argument("--image", help="image file (.jpg/.png, or .npy array); default: a synthetic image")
    ap.add_argument("--labels", help="text file with one label per line")
    ap.add_argument("--protocol", default="rep3")
    ap.add_argument("--truncation", default="probabilistic", choices=["probabilistic", "exact"])
    ap.add_argument("--preprocess", default="mobilenet", choices=["mobilenet", "none"],
                    help="mobilenet: scale [0,1] to [-1,1] before quantizing")
    ap.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args(argv)

    import tflite_mpc
    from tflite_mpc import modelgen

    if args.model:
        if not os.path.exists(args.model):
            sys.exit(f"no such model: {args.model}")
        with open(args.model, "rb") as f:
            model = f.read()
        name = os.path.basename(args.model)
    else:
        print("building MobileNetV1 0.25_128 (keras, random weights) and converting it to int8 ...", flush=True)
        # Logits: with random weights a 1000-way softmax is almost flat (all -127/-128).
        model = modelgen.mobilenet_v1(0.25, 128, classifier_activation=None)
        name = "MobileNetV1 0.25_128 (int8, logits)"
    labels = None
    if args.labels:
        with open(args.labels) as f:
            labels = [line.strip() for line in f]

    Interpreter, OpResolverType, _ = modelgen._interp_api()
    plain = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    plain.allocate_tensors()
    inp, out = plain.get_input_details()[0], plain.get_output_details()[0]
    x = to_model_input(load_image(args.image, inp["shape"]), inp, args.preprocess)

    delegate = tflite_mpc.load_delegate(protocol=args.protocol, truncation=args.truncation)
    secure = Interpreter(model_content=model, experimental_delegates=[delegate])
    secure.allocate_tensors()

    t0 = time.perf_counter()
    plain.set_tensor(inp["index"], x)
    plain.invoke()
    t_plain = time.perf_counter() - t0
    want = plain.get_tensor(out["index"])

    secure.set_tensor(secure.get_input_details()[0]["index"], x)
    secure.invoke()  # the first run also secret-shares the weights
    first = tflite_mpc.report(delegate)
    t0 = time.perf_counter()
    secure.invoke()
    t_secure = time.perf_counter() - t0
    got = secure.get_tensor(secure.get_output_details()[0]["index"])
    rep = tflite_mpc.report(delegate)

    def top(v):
        v = v.reshape(-1).astype(np.float64)
        idx = np.argsort(-v, kind="stable")[: args.top_k]
        return [(int(i), float(v[i])) for i in idx]

    print(f"\nmodel: {name}   protocol: {args.protocol}   truncation: {args.truncation}")
    print(f"{'rank':>4}  {'secure (MPC)':>26}  {'plaintext TFLite':>26}")
    for r, ((i, s), (j, p)) in enumerate(zip(top(got), top(want))):
        li = labels[i] if labels and i < len(labels) else f"class {i}"
        lj = labels[j] if labels and j < len(labels) else f"class {j}"
        print(f"{r + 1:>4}  {li[:16]:>16} {s:9.1f}  {lj[:16]:>16} {p:9.1f}")
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64)) if got.dtype != np.float32 else np.abs(got - want)
    agree = int(np.argmax(got)) == int(np.argmax(want))
    print(f"\ntop-1 agrees: {agree}   identical outputs: {int(np.sum(diff == 0))}/{diff.size}   "
          f"max difference: {diff.max():.3g} {'LSB' if got.dtype != np.float32 else ''}")
    tot = rep["parties"]
    print(f"secure inference: {t_secure * 1e3:.1f} ms (plaintext reference kernels: {t_plain * 1e3:.1f} ms)")
    traffic = ", ".join(f"P{i} {p['bytes_sent'] / 1e6:.2f} MB" for i, p in enumerate(tot))
    print(f"traffic per party: {traffic}; rounds: {tot[0]['rounds']}; layers: {len(rep['layers'])}")
    setup = [l for l in first["layers"] if l["op"] == "share weights"]
    if setup:
        print(f"one-time weight sharing (first run): {setup[0]['seconds'] * 1e3:.1f} ms, "
              f"{setup[0]['parties'][1]['bytes_sent'] / 1e6:.2f} MB from the model owner")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())

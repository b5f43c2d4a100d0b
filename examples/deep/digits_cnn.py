"""A small CNN on scikit-learn's bundled 8×8 digits: trained by mloop's Trainer, registered as ``digits-cnn@champion``.

    python examples/deep/digits_cnn.py            # the workspace of MLOOP_HOME, or ./.mloop
    python examples/deep/digits_cnn.py --epochs 4 --html gradcam.html

The 1,797 digits of ``sklearn.datasets.load_digits`` (bundled with scikit-learn: nothing is downloaded) as 64 pixel
columns; a quarter is held out. The network has no ONNX twin (registration records why); `mloop serve` answers through
the network itself, one row of 64 pixel columns per image. ``--html`` writes an offline page with GradCAM heat maps
over a few held-out digits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from mloop.training import TrainConfig, Trainer, digits_cnn, digits_tensors
    from mloop.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1: on a busy 2-core machine, faster than 2)")
    parser.add_argument("--name", default="digits-cnn")
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--html", type=Path, default=None, help="write GradCAM heat maps of a few held-out digits here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    digits = load_digits(as_frame=True)
    frame = digits.frame.rename(columns={"target": "digit"})
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame["digit"])
    fit_rows, valid = train_test_split(train, test_size=0.1, random_state=0, stratify=train["digit"])
    pixels = list(digits.feature_names)
    ws = Workspace.init(args.workspace)  # the workspace of MLOOP_HOME (or ./.mloop), created if it is not there yet
    try:
        with ws.tracker.start_run("digits-cnn", run_name="sklearn-digits", seed=0) as run:
            run.log_dataset(train, context="training", name="sklearn-load_digits-train", targets="digit")
            net = digits_cnn(seed=0)
            run.log_params({"channels": ",".join(map(str, net.channels)), "classes": net.classes})
            config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=5e-3, schedule="cosine", seed=0, progress=True)
            started = time.perf_counter()
            Trainer(config, run=run).fit(net, digits_tensors(net, fit_rows[pixels], fit_rows["digit"]), digits_tensors(net, valid[pixels], valid["digit"]))
            seconds = time.perf_counter() - started
            accuracy = float((net.predict(test[pixels]) == test["digit"].to_numpy()).mean())
            run.log_metrics({"test_accuracy": accuracy, "train_seconds": seconds})
            run.describe(intended_use="A teaching example: which digit an 8×8 scan of a handwritten digit shows (UCI's optical digits).",
                         out_of_scope="Real handwriting recognition: 8×8 pixels, 43 writers, digits only.", license="cc-by-4.0")
            uri = run.log_sklearn_model(net, train[pixels], labels=train["digit"])
        info = ws.registry.register(uri, args.name, alias="champion")
        print(f"trained on {len(fit_rows):,} digits in {seconds:.1f} s; accuracy on {len(test)} held-out digits: {accuracy:.3f}")
        print(f"registered {args.name} v{info.version} as champion (served by the network itself, no ONNX twin); "
              f"serve it with: mloop deploy {args.name} --model {args.name} --version {info.version} && mloop serve")
        if args.html is not None:
            from mloop.explain import grad_cam, render_neural_html

            cams = grad_cam(net, test[pixels].head(8))
            args.html.write_text(render_neural_html(cams=cams, title=f"{args.name}: where the evidence is"), encoding="utf-8")
            print(f"GradCAM of 8 held-out digits (read as {', '.join(cams.classes)}; they are {', '.join(map(str, test['digit'].head(8)))}): "
                  f"wrote {args.html}")
    finally:
        ws.close()


if __name__ == "__main__":
    main()

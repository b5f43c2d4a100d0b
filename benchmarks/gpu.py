"""GPU check (issue 16): the flights MLP and a small transformer trained on CUDA in bf16 (and with ``torch.compile``),
beside the same training on CPU, in samples/s. Only where a CUDA GPU is present; elsewhere it says so and exits 0 (the
tests never need a GPU).

    python benchmarks/gpu.py [--rows 200000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
warnings.filterwarnings("ignore")
console = Console(width=150)


def flights(rows: int) -> tuple[Any, tuple[Any, ...]]:
    from mloop.demo._flights import SPEC, load_flights
    from mloop.training import tabular_net, training_tensors

    frame = load_flights().head(rows)[[*SPEC.features, SPEC.target]]
    net = tabular_net(frame, SPEC.target, numeric=list(SPEC.numeric), categorical=list(SPEC.categorical), hidden=[256, 128])
    return net, training_tensors(net, frame, SPEC.target)


def sequences(rows: int, length: int = 64, vocab: int = 2000) -> tuple[Any, tuple[Any, ...]]:
    """A synthetic sequence task for the transformer's throughput (the label: is token 7 among the first half)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, vocab, (rows, length), generator=gen)
    labels = (tokens[:, : length // 2] == 7).any(dim=1).long()
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(128, 4, 256, batch_first=True)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, 128)
            self.encoder = torch.nn.TransformerEncoder(layer, 2)
            self.head = torch.nn.Linear(128, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(x)).mean(dim=1))  # type: ignore[no-any-return]

    return Encoder(), (tokens, labels)


def throughput(build: Any, data: tuple[Any, ...], epochs: int, device: str, precision: str, compile_: bool = False) -> float:
    import copy

    import torch

    from mloop.training import TrainConfig, Trainer

    module = copy.deepcopy(build)
    wrap = torch.compile if compile_ else None
    config = TrainConfig(epochs=epochs, batch_size=1024, lr=1e-3, precision=precision, device=device, progress=False)
    Trainer(TrainConfig(**{**config.__dict__, "max_steps": 5})).fit(copy.deepcopy(build), data, wrap=wrap)  # warm-up / compile
    started = time.perf_counter()
    result = Trainer(config).fit(module, data, wrap=wrap)
    if device == "cuda":
        torch.cuda.synchronize()
    return result.samples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        console.print("no CUDA GPU here: the GPU check is skipped (the tests never need one)")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    console.print(f"GPU: {torch.cuda.get_device_name(0)}; CPU threads: {torch.get_num_threads()}")
    table = Table("model", "CPU fp32", "CUDA fp32", "CUDA bf16", "CUDA bf16 + torch.compile")
    for label, (module, data) in (("flights MLP", flights(args.rows)), ("transformer (2 × 128, seq 64)", sequences(args.rows // 4))):
        cells = [throughput(module, data, 1, "cpu", "fp32")]
        for precision, compile_ in (("fp32", False), ("bf16", False), ("bf16", True)):
            try:
                cells.append(throughput(module, data, args.epochs, "cuda", precision, compile_))
            except Exception as exc:  # noqa: BLE001 - e.g. torch.compile without a compiler toolchain: say so in the table
                console.print(f"{label} {precision}{' compiled' if compile_ else ''}: {type(exc).__name__}: {exc}")
                cells.append(float("nan"))
        table.add_row(label, *(f"{c:,.0f}/s" for c in cells))
    console.print(table)


if __name__ == "__main__":
    main()

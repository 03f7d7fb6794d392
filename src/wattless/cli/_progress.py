"""Rich progress bars on stderr for long work: epochs of training, steps of a recipe (nothing when quiet)."""

from __future__ import annotations

from collections.abc import Callable

from ._app import err


class EpochProgress:
    """A bar over training epochs; ``with`` gives the ``on_epoch`` callback (None when quiet)."""

    def __init__(self, epochs: int, quiet: bool):
        self.epochs, self.quiet, self.progress = epochs, quiet or not err.is_terminal, None

    def __enter__(self) -> Callable[[int, dict], None] | None:
        if self.quiet:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[info]}"), console=err, transient=True)
        self.progress.start()
        task = self.progress.add_task("train", total=self.epochs, info="")

        def on_epoch(epoch: int, row: dict) -> None:
            info = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k.startswith("val_") and k != "val_loss")
            self.progress.update(task, completed=epoch, info=info)

        return on_epoch

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class StepProgress:
    """A bar over a recipe's steps; ``with`` gives the ``on_step`` callback (None when quiet)."""

    def __init__(self, quiet: bool):
        from rich.progress import Progress

        self.progress = None if quiet or not err.is_terminal else Progress(console=err, transient=True)
        self.total = 0

    def __enter__(self) -> Callable[[int, str], None] | None:
        if self.progress is None:
            return None
        self.progress.start()
        task = self.progress.add_task("compressing", total=None)

        def on_step(position: int, name: str) -> None:
            self.progress.update(task, description=f"step {position}: {name}")

        return on_step

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

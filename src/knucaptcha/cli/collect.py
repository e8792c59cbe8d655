"""``knucaptcha collect``: download captchas into a folder, optionally with the model's guesses for labelling."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..ctc import ReadOptions
from ..errors import ConfigError
from .app import app, console, progress
from .solve import Length, Symbols, Verify

EXIT_SHORT = 1
"""Exit status when the run ended with fewer images than asked for (2 means it could not run)."""


@app.command()
def collect(
    url: Annotated[str, typer.Argument(help="A URL that answers each GET with a fresh captcha image.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="New images to save.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save them in (created if needed).")],
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at most.")] = 4,
    delay: Annotated[float, typer.Option(min=0.0, help="Seconds each worker waits between requests.")] = 0.2,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a request may take in all (redirects, body) before it is abandoned.")
    ] = 10.0,
    retries: Annotated[int, typer.Option(min=0, help="Retries on connection errors, timeouts, 5xx and 429.")] = 3,
    backoff: Annotated[float, typer.Option(min=0.0, help="Seconds before the first retry; doubles each time.")] = 0.5,
    max_bytes: Annotated[
        int, typer.Option(min=1, help="Largest answer kept, in bytes; a longer one is abandoned while it downloads.")
    ] = 1_000_000,
    follow_redirects_anywhere: Annotated[
        bool,
        typer.Option("--follow-redirects-anywhere", help="Follow redirects to other hosts too (default: the URL's only)."),
    ] = False,
    prelabel: Annotated[
        bool, typer.Option("--prelabel", help="Solve the new images and write prelabels.csv for 'knucaptcha label'.")
    ] = False,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model for --prelabel: a .onnx file or a bundled model's name.")
    ] = "default",
    symbols: Symbols = None,
    length: Length = None,
    verify: Verify = True,
) -> None:
    """Download COUNT new captchas from URL into OUT, skipping duplicates and anything that is not an image.

    Files are named _<time>-<n>-<hash>.<ext> (the leading _ marks them
    unlabelled) and never replace an existing file. A request that passes
    --timeout or --max-bytes is abandoned and reported. Exits with 1 when
    fewer than COUNT images could be saved.
    """
    from ..collect import CollectConfig
    from ..collect import collect as run_collect
    from ..inference import Solver

    config = CollectConfig(
        url,
        count,
        concurrency,
        delay,
        timeout,
        retries,
        backoff,
        max_bytes=max_bytes,
        follow_redirects_anywhere=follow_redirects_anywhere,
    )
    options = ReadOptions(symbols=symbols, length=length)
    for option, value in (("--symbols", symbols), ("--length", length)):
        if value is not None and not prelabel:
            raise ConfigError(f"{option} restricts --prelabel's guesses; add --prelabel")
    # Fail on a bad model, alphabet or length before downloading anything.
    solver = Solver.load(model, verify=verify) if prelabel else None
    if solver is not None:
        solver.check_options(options)
    with progress() as bar:
        task = bar.add_task("collecting", total=count)
        report = run_collect(config, out, on_progress=lambda done: bar.advance(task, done))
    for problem in report.problems[-5:]:
        console.print(f"[yellow]skipped:[/] {problem}", markup=True, highlight=False)
    console.print(
        f"saved {len(report.saved)} of {count} into {out}; "
        f"{report.duplicates} duplicate(s), {report.rejected} rejected, {report.failed} failed request(s)",
        highlight=False,
    )
    if solver is not None and report.saved:
        from ..prelabels import PRELABELS_NAME, add_guesses

        with progress() as bar:
            task = bar.add_task("prelabelling", total=len(report.saved))
            add_guesses(out, solver, list(report.saved), options, on_progress=lambda done: bar.advance(task, done))
        console.print(f"wrote the model's guesses to {out / PRELABELS_NAME}", highlight=False)
    if len(report.saved) < count:
        raise typer.Exit(EXIT_SHORT)

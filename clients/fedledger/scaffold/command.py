"""The `fedledger new` command (added to the `fedledger` group in cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from fedledger.scaffold import AppNameError, TargetExistsError, app_name, write_app


@click.command("new")
@click.argument("name")
@click.option(
    "--directory",
    "-d",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create NAME/.",
)
@click.option(
    "--force", is_flag=True, help="Write into NAME/ even if it is not empty (overwrites its app files)."
)
def new(name: str, directory: Path, force: bool) -> None:
    """Create NAME/, a ready fedledger app package: an MLP classifier on CSV files, in plain
    PyTorch, with sample data, tests and the entry point that makes `--app NAME` find it.

    NAME starts with a letter and holds letters, digits, '-' and '_'; its Python package is NAME
    in lower case with '-' as '_'.
    """
    try:
        target = write_app(name, directory, force=force)
    except AppNameError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    except TargetExistsError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"could not write the app into {directory / name}: {exc}") from None
    shown = _shown(target)
    module = app_name(name).module
    click.echo(f"Created the fedledger app {name!r} in {shown}\n")
    click.echo("Next steps:")
    click.echo(f"  pip install -e {shown}")
    click.echo(f"  pytest {shown}")
    click.echo(
        f"  fedledger demo --app {name} --data {shown}/data/train.csv --test-data {shown}/data/test.csv"
    )
    click.echo(f"\nThe model, data loading, training and evaluation are in {shown}/{module}/app.py;")
    click.echo(f"{shown}/README.md says how to change them and how to run a real federation.")


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else absolute."""
    absolute = path.resolve()
    try:
        return os.path.relpath(absolute) if absolute.is_relative_to(Path.cwd()) else str(absolute)
    except ValueError:
        return str(absolute)

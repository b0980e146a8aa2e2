"""The ``dub`` command: argument parsing only. Work happens in the library; errors become exit codes here."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import NoReturn

import typer

from dubber import __version__
from dubber.cli.output import configure_logging, native_stderr_diverted, stderr

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _DefaultToDub(typer.core.TyperGroup):
    """``dub talk.mp4 --audio speech.wav`` runs the ``video`` command: a first argument that names no command is
    the video to dub."""

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            return "video", self.get_command(ctx, "video"), args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="dub",
    cls=_DefaultToDub,
    help="dubber: re-render a speaker's mouth to say new audio.\n\n"
    "dub VIDEO --audio AUDIO [-o OUT]   (the `video` command; `dub video --help` lists its options)",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"dubber {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-vv: debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    configure_logging(-1 if quiet else verbose)


def _register() -> None:
    from dubber.cli.batch_cmd import batch_command
    from dubber.cli.bench_cmd import bench_command
    from dubber.cli.cache_cmd import cache_app
    from dubber.cli.dub_cmd import dub_command
    from dubber.cli.env_cmd import env_command
    from dubber.cli.eval_cmd import eval_app
    from dubber.cli.export_cmd import export_app
    from dubber.cli.inspect_cmd import inspect_command
    from dubber.cli.prep_cmd import prep_command
    from dubber.cli.sync_cmd import sync_command
    from dubber.cli.train_cmd import train_app
    from dubber.cli.weights_cmd import weights_app

    app.command("video")(dub_command)
    app.command("batch")(batch_command)
    app.command("inspect")(inspect_command)
    app.command("sync")(sync_command)
    app.command("prep")(prep_command)
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    app.add_typer(weights_app, name="weights")
    app.add_typer(cache_app, name="cache")
    app.add_typer(export_app, name="export")
    app.command("bench")(bench_command)
    app.command("env")(env_command)


_register()


def _verbosity(args: list[str]) -> int:
    """How many -v were given, before the command parses them (the stderr set-up must happen first)."""
    count = 0
    for a in args:
        if a == "--verbose":
            count += 1
        elif a.startswith("-") and not a.startswith("--") and set(a[1:]) == {"v"}:
            count += len(a) - 1
    return count


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so the stack unwinds as it does on Ctrl-C: temporary
    outputs and feature files are removed on the way out, and ``dub batch`` keeps what it finished."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _TerminationUnwinds:
    """For the length of a command, SIGTERM and SIGHUP raise ``Terminated`` (and are remembered: typer turns any
    KeyboardInterrupt into exit code 130); the previous handlers come back after."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict = {}

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        raise Terminated(signum)

    def __enter__(self) -> _TerminationUnwinds:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if s is not None:
                    self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _interrupted(signum: int | None) -> int:
    """128 + the signal's number, as shells report a process ended by it: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    stderr.print("interrupted" if signum is None else f"interrupted ({signal.Signals(signum).name})")
    return EXIT_INTERRUPTED if signum is None else 128 + signum


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this; ``main`` exits with it)."""
    from dubber.errors import DubberError, InputError

    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(app)
    termination = _TerminationUnwinds()
    try:
        with termination, native_stderr_diverted(enabled=_verbosity(args) < 2):
            code = command.main(args=args, prog_name="dub", standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # typer's answer to a KeyboardInterrupt, Terminated included
            return _interrupted(termination.signum)
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        return code if isinstance(code, int) else EXIT_OK
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return _interrupted(termination.signum)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, bad value
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())  # one line, whatever click wrapped
        stderr.print(f"[red]error:[/red] {message}{where}", markup=True, highlight=False, soft_wrap=True)
        return getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE
    except KeyboardInterrupt:
        return _interrupted(termination.signum)
    except InputError as exc:
        stderr.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except DubberError as exc:
        stderr.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, the traceback only with -vv
        logging.getLogger("dubber").debug("unexpected error", exc_info=True)
        stderr.print(
            f"[red]error:[/red] unexpected {type(exc).__name__}: {exc} (run with -vv for details)",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_FAILURE


def main() -> None:
    finish(run())


def finish(code: int) -> NoReturn:
    """Exit with ``code``. Once a command has loaded torch, without the interpreter's teardown: torch's own (its
    modules and registrations) takes 0.8 s on a CPU, after every output is closed and renamed; the buffered output
    streams and the log are flushed first. Not where another thread is still running, nor after a Ray batch (Ray's
    exit handler stops the local cluster it started), in a distributed training process (its process group ends at
    exit) or under coverage.py (it writes its data at exit): there the usual exit."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    at_exit = ("ray", "coverage")  # packages whose exit handlers must run
    if "torch" not in sys.modules or any(m in sys.modules for m in at_exit) or others or _distributed():
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nobody reads it any more
            pass
    os._exit(code)


def _distributed() -> bool:
    distributed = sys.modules.get("torch.distributed")
    return bool(distributed is not None and distributed.is_available() and distributed.is_initialized())

"""The `nodeops` command: an Invoke program over the task collection, with Fabric's core flags either
meaning the same thing for nodeops or refused.

`nodeops ARGS` and, in the source repository, `fab ARGS` are one program: the repository's fabfile
turns the running `fab` into it (``adopt_running_fab``), so flags, `-H` and exit codes agree.

- ``-H/--hosts a,b`` selects nodes by name, for a task that selects nodes (``--nodes``: exec); any
  other task works on whole services and refuses it (``--service`` selects those).
- Flags that configure Fabric's own connections or Invoke's ``run()`` (``-i``, ``-S``, ``-t``, ``-T``,
  the password prompts, ``-R``, ``-w``, ``-e``, ``-p``, ``--hide``, ``-f``) would be silently ignored
  or misread: each is refused with one line saying where its setting lives (exit 2).
- A misspelled flag, an unknown task, a missing argument or a number flag's value that is not a whole number
  is exit 2 (Invoke's own is 1, or a traceback). Every argument is given by its flag, never by position, so
  `nodeops exec -h` shows exec's help.
- ``-H/--hosts`` after a task's name means what it means before it (``nodeops exec -H a --command ...``).
- Output into a pipe its reader closed (``nodeops status | head``) ends quietly with exit 141, as a
  program killed by SIGPIPE: no traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version

from fabric.main import Fab
from invoke import Argument, Config, Executor, Exit, ParseError, Parser, Program

from nodeops import __version__
from nodeops.errors import EXIT_INVALID

from . import ns

_RUN = "an option of Invoke's run(), which nodeops tasks do not use"
REFUSED = {  # core argument (Invoke's name) -> (the flag as typed, why it is refused and where its setting lives)
    "identity": ("-i/--identity", "the inventory names the identity: set bastion.identity_file and "
                                  "ssh.identity_file there"),
    "ssh-config": ("-S/--ssh-config", "nodeops reads no ssh config: hosts, ports, users and keys come from the "
                                      "inventory"),
    "connect-timeout": ("-t/--connect-timeout", "set ssh.connect_timeout in the inventory"),
    "command-timeout": ("-T/--command-timeout", "set ssh.command_timeout in the inventory"),
    "prompt-for-login-password": ("--prompt-for-login-password", "nodeops logs in with the inventory's "
                                                                 "identity_file only, never a password"),
    "prompt-for-passphrase": ("--prompt-for-passphrase", "the inventory's identity_file is loaded without a "
                                                         "passphrase (keep it in RAM, e.g. /dev/shm)"),
    "prompt-for-sudo-password": ("--prompt-for-sudo-password", "nodeops never runs sudo with a password"),
    "list-agent-keys": ("--list-agent-keys", "nodeops never uses ssh-agent keys"),
    "dry": ("-R/--dry", "use the command's own --dry-run (deploy)"),
    "warn-only": ("-w/--warn-only", "nodeops's exit codes are fixed (docs/cli.md: Exit codes)"),
    "echo": ("-e/--echo", _RUN),
    "pty": ("-p/--pty", _RUN),
    "hide": ("--hide", _RUN),
    "config": ("-f/--config", "nodeops reads no Invoke configuration file: settings live in the inventory"),
}  # fmt: skip
NODES = "nodes"  # the task argument -H/--hosts fills
HOSTS_FLAGS = ("-H", "--hosts")
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a program its pipe's reader cut off


def hosts_after_tasks(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """``-H/--hosts`` values found among the tokens after the core flags (``-H a``, ``-Ha``, ``--hosts a``,
    ``--hosts=a``; none after ``--``), and the tokens without them. Pure: ``(["a"], ["exec", "--command", "x"])``
    for ``["exec", "-H", "a", "--command", "x"]``. A trailing ``-H`` without a value is left for the parser."""
    found: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            rest.extend(tokens[i:])
            break
        if token in HOSTS_FLAGS and i + 1 < len(tokens):
            found.append(tokens[i + 1])
            i += 2
            continue
        if token.startswith("--hosts="):
            found.append(token.partition("=")[2])
        elif token.startswith("-H") and not token.startswith("--") and len(token) > 2:
            found.append(token[2:])
        else:
            rest.append(token)
        i += 1
    return found, rest


@contextlib.contextmanager
def quiet_on_closed_pipe() -> Iterator[None]:
    """Run the block and flush stdout; if the reader of stdout's pipe is gone (BrokenPipeError), point stdout at
    /dev/null (so that Python's own flush at exit stays quiet) and end with Exit(EXIT_CLOSED_PIPE), no traceback."""
    try:
        try:
            yield
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise Exit(code=EXIT_CLOSED_PIPE) from None


VALUE_HINTS = {"env": "an environment name: inventory/NAME.yaml", "inventory": "an inventory file's path",
               "service": "a service name, or several joined by commas", "node": "a node name"}  # fmt: skip


def parse_error_line(message: str, task: str | None, flags: Sequence[str], commands: Sequence[str]) -> str:
    """Invoke's parse error ``message`` as nodeops' one line (without the ``nodeops: `` prefix), naming the flag
    and the fix. Pure: ``task`` is the command being parsed (None: the core flags), ``flags`` its flags
    (``--dry-run``, ``-d``), ``commands`` every command's name. A message it does not know passes unchanged."""
    see = f"see `nodeops --help {task}`" if task else "see `nodeops --help`"
    if unknown := re.fullmatch(r"No idea what '(.*)' is!", message):
        token = unknown.group(1)
        if not token.startswith("-"):
            close = difflib.get_close_matches(token, commands, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"no command {token!r}{hint}: `nodeops --list` shows them"
        close = difflib.get_close_matches(token.partition("=")[0], [f for f in flags if f.startswith("--")], n=1,
                                          cutoff=0.8)  # fmt: skip
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{token} is not a flag of {task or 'nodeops'}{hint}; {see}"
    if needed := re.fullmatch(r"Flag <\w+: ([\w-]+).*> needed value and was not given one!", message):  # any Argument
        name = needed.group(1).strip("_").replace("_", "-")
        hint = f" ({VALUE_HINTS[name]})" if name in VALUE_HINTS else ""
        return f"--{name} needs a value{hint}; {see}"
    return message


def required_flags(task) -> list[str]:
    """The arguments of Invoke task ``task`` that have no default (its context excluded), in order: the flags it
    cannot run without (a number among them is annotated ``int``: whole_number_flags). Every task takes them by
    flag (``positional=[]``): Invoke fills a missing positional argument with the next token, whatever it is, so
    `exec -h` ran exec with `-h` as its command."""
    parameters = task.argspec(task.body).parameters.values()
    return [p.name for p in parameters if p.default is inspect.Parameter.empty]


def whole_number_flags(task) -> list[str]:
    """The arguments of Invoke task ``task`` that take a whole number, in order: those with an int default (Invoke
    gives them kind int), and those without a default annotated ``int`` (a required number: ``count: int``)."""
    parameters = task.argspec(task.body).parameters.values()
    return [p.name for p in parameters if type(p.default) is int
            or (p.default is inspect.Parameter.empty and p.annotation in (int, "int"))]  # fmt: skip


class WholeNumber(Argument):
    """An Invoke argument that takes a whole number: a value int() cannot read (``x``, ``2.5``, empty) is a
    ParseError naming the flag, ``--count x: expected a whole number (such as --count 4)``, where Invoke lets
    int()'s ValueError through (a traceback, exit 1)."""

    def set_value(self, value, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except ValueError:
            flag = f"--{max(self.names, key=len)}"  # the long name: Fabric lists -t's first
            raise ParseError(f"{flag} {shlex.quote(str(value))}: expected a whole number (such as {flag} 4)") from None


def missing_flags_line(task: str, names: Sequence[str], numbers: Sequence[str] = ()) -> str:
    """The one line (without the ``nodeops: `` prefix) for ``task`` run without its required flags ``names``
    (Python names: ``b_c`` is ``--b-c``), those among ``numbers`` shown taking ``N``, the others ``NAME``. Pure."""
    flags = [f"--{name.strip('_').replace('_', '-')} {'N' if name in numbers else 'NAME'}" for name in names]
    return f"{task} needs {' and '.join(flags)}; see `nodeops --help {task}`"


def refusal(flags: dict[str, object], tasks: dict[str, dict[str, object]], remainder: str) -> str | None:
    """Why the command line must be refused (one line), or None. Pure: ``flags`` maps core argument names
    to their parsed values, ``tasks`` each requested task's name to its arguments' values."""
    for name, (flag, why) in REFUSED.items():
        if flags.get(name):
            return f"{flag} is not a nodeops option: {why}"
    if remainder:
        return "`-- COMMAND` is not a nodeops option: run it with exec --env E --command COMMAND [-H nodes]"
    hosts = flags.get("hosts")
    if hosts:
        for task, args in tasks.items():
            if NODES not in args:
                return f"-H/--hosts selects nodes, and {task} works on whole services: choose them with --service"
            if args[NODES] and args[NODES] != hosts:
                return f"-H/--hosts {hosts} and --nodes {args[NODES]} disagree: give one of them"
    return None


class Nodeops(Fab):
    """Fabric's program with nodeops' reading of its flags (see the module's docstring)."""

    def core_args(self) -> list[Argument]:
        """Invoke's and Fabric's core flags, each int one (``-D/--list-depth``, ``-t``, ``-T``) a WholeNumber."""
        args = super().core_args()
        for arg in args:
            if arg.kind is int:
                arg.__class__ = WholeNumber
        return args

    def parse_core(self, argv) -> None:
        try:
            with quiet_on_closed_pipe():  # --version
                Program.parse_core(self, argv)  # not Fab's, which would list ssh-agent keys before we refuse it
        except ParseError as err:  # `fab` parses its core flags as Fabric's program, before the fabfile adopts it
            raise Exit(f"nodeops: {self.parse_error(err)}", code=EXIT_INVALID) from None

    def parse_tasks(self) -> None:
        after, self.core.unparsed = hosts_after_tasks(self.core.unparsed)
        before = self.args["hosts"].value
        if after and (len(after) > 1 or (before and before != after[0])):
            raise Exit(f"nodeops: -H/--hosts given twice ({', '.join(filter(None, [before, *after]))}): give it once",
                       code=EXIT_INVALID)  # fmt: skip
        if after:
            self.args["hosts"].value = after[0]
        try:
            super().parse_tasks()
        except ParseError as err:
            raise Exit(f"nodeops: {self.parse_error(err)}", code=EXIT_INVALID) from None
        flags = {name: self.args[name].value for name in (*REFUSED, "hosts")}  # by long name (keys are the first)
        tasks = {ctx.name: {name: arg.value for name, arg in ctx.args.items()} for ctx in self.tasks}
        why = refusal(flags, tasks, self.core.remainder)
        if why:
            raise Exit(f"nodeops: {why}", code=EXIT_INVALID)
        for ctx in self.tasks:  # refusal() passed: each task takes --nodes
            if flags.get("hosts"):
                ctx.args[NODES].value = flags["hosts"]

    def parse_cleanup(self) -> None:
        try:
            with quiet_on_closed_pipe():
                super().parse_cleanup()  # --help TASK, --list
        except ParseError as err:
            raise Exit(f"nodeops: {self.parse_error(err)}", code=EXIT_INVALID) from None
        for ctx in self.tasks:  # not asking for help (that exited above): each task needs its required flags
            task = self.collection[ctx.name]
            missing = [name for name in required_flags(task) if ctx.args[name].value is None]
            if missing:
                line = missing_flags_line(ctx.name, missing, whole_number_flags(task))
                raise Exit(f"nodeops: {line}", code=EXIT_INVALID)

    def _make_parser(self) -> Parser:
        """Invoke's parser for the tasks, each flag of whole_number_flags() a WholeNumber of kind int (shown as INT
        in its help): a bad value is one line and exit 2 (parse_tasks), not a traceback, for every task at once."""
        parser = super()._make_parser()
        for context in parser.contexts.values():
            for name in whole_number_flags(self.collection[context.name]):
                context.args[name].kind = int
                context.args[name].__class__ = WholeNumber
        return parser

    def parse_error(self, err: ParseError) -> str:
        """parse_error_line for ``err``, with the flags of the command it arose in (Invoke's ParserContext)."""
        context = getattr(err, "context", None)
        task = getattr(context, "name", None)
        flags = list(getattr(context, "flags", {}) or {})
        return parse_error_line(str(err), task, flags, list(ns.task_names))

    def execute(self) -> None:
        with quiet_on_closed_pipe():
            super().execute()

    def update_config(self, merge: bool = True) -> None:
        Program.update_config(self, merge)  # not Fab's: it loads ~/.ssh/config and -i keys, which nodeops never uses


def _version() -> str:
    try:
        return version("nodeops")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return __version__


program = Nodeops(name="nodeops", binary="nodeops", binary_names=["nodeops"], version=_version(), namespace=ns,
                  executor_class=Executor, config_class=Config)  # fmt: skip


def main() -> None:
    """The console script ``nodeops`` (pyproject.toml)."""
    program.run()


def adopt_running_fab() -> None:
    """Called by the repository's fabfile: if Fabric's own ``fab`` program is loading it, make that program
    a ``Nodeops`` (same class hierarchy, our overrides) with Invoke's executor (Fabric's would run a task once
    per -H host), so that ``fab ARGS`` behaves as ``nodeops ARGS``. Imported by anything else: no effect."""
    frame = inspect.currentframe()
    while frame is not None:
        running = frame.f_locals.get("self")
        if isinstance(running, Fab) and not isinstance(running, Nodeops):
            running.__class__ = Nodeops
            running.executor_class = Executor
            return
        frame = frame.f_back

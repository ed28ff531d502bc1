"""Argument parsing shared by the experiment commands: every bad input is one line, exit 2."""
from __future__ import annotations

import argparse
import contextlib
import re
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error is a single line naming the flag (argparse prints the usage too)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str, code: int = 2):
    """A one-line error for problems found after parsing (unwritable output, missing data, ...)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def number(text: str) -> float:
    """An argparse type: a number, else the flag's one-line error."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float_list(flag: str, example: str):
    """A comma list of numbers > 0, e.g. ``--lr 0.001,0.01,0.1``."""

    def parse(text: str) -> list[float]:
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"{text!r} is empty or has an empty item; give a comma list such as {example}")
        values = [number(t) for t in items]
        bad = [v for v in values if not (v > 0 and v != float("inf"))]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]:g} is not > 0; every value must be a positive number, e.g. {example}")
        return values

    return parse


def int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} must be >= {low}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def checked(parse, name: str):
    """An argparse type from a parser that raises ValueError (its message: argparse's one line)."""

    def check(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    check.__name__ = name
    return check


def task_parser(prog: str, description: str, default_task: str, task_help: str) -> ArgumentParser:
    """The parser of a command whose flags are its task's, with ``--task`` (its help lists the tasks)."""
    from jaxlabs.tasks import TASKS

    epilog = f"tasks: {', '.join(sorted(TASKS))}. `{prog} --task NAME --help` lists that task's options."
    p = ArgumentParser(prog=prog, description=description, epilog=epilog)
    p.add_argument("--task", default=default_task, choices=sorted(TASKS), help=task_help)
    return p


def parse_task_args(prog: str, argv, default_task: str, build_parser):
    """(task, args) of a command whose flags are its task's: ``--task`` read first (an unknown one
    is the one-line error), then ``build_parser(task)`` parses everything; another task's flag is a
    one-line error naming this task's, and ``--x-range -3,3`` binds its negative value."""
    from jaxlabs.tasks import TASKS, get_task

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=default_task)
    name = pre.parse_known_args(argv)[0].task
    if name not in TASKS:
        fail(prog, f"argument --task: invalid choice: {name!r} (choose from {', '.join(sorted(TASKS))})")
    task = get_task(name)
    argv = join_negative_values(task, argv)
    if not any(a in ("-h", "--help") for a in argv):
        reject_other_task_flags(prog, task, argv)
    return task, build_parser(task).parse_args(argv)


def reject_other_task_flags(prog: str, task, argv: list[str]) -> None:
    """A flag that another task declares is a one-line error naming this task and its options."""
    from jaxlabs.tasks import TASKS

    own = {o.flag for o in task.options} | {"--no-" + o.flag[2:] for o in task.options if o.type is bool}
    others = {}
    for name, cls in TASKS.items():
        for o in cls.options:
            others.setdefault(o.flag, name)
            if o.type is bool:
                others.setdefault("--no-" + o.flag[2:], name)
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in own and flag in others:
            names = ", ".join(o.flag for o in task.options if o.name != "lr")
            fail(prog, f"argument {flag}: task {task.name} has no option {flag} (it is {others[flag]}'s); "
                       f"{task.name}'s options: {names}")


def join_negative_values(task, argv: list[str]) -> list[str]:
    """``--x-range -3,3``: argparse would take ``-3,3`` for a flag; bind such a value to its flag."""
    takes_value = {o.flag for o in task.options if o.type is not bool}
    out, i = [], 0
    while i < len(argv):
        if argv[i] in takes_value and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def add_engine_flags(p: argparse.ArgumentParser, plan_help: str = "") -> None:
    """How the engine runs each group: the flags the commands share. ``plan_help``: a command whose
    --plan means something else (a search: a fixed plan, default vmap) says so here."""
    from jaxlabs.engine.memory import MEMORY_FORMS, parse_memory
    from jaxlabs.engine.plans import PLAN_FORMS, PRECISIONS, parse_plan, parse_precision

    g = p.add_argument_group("engine")
    g.add_argument("--plan", type=checked(lambda t: (t, parse_plan(t))[0], "plan"), default="auto",
                   help=plan_help or f"how a group's members share the device: {PLAN_FORMS}. auto times the "
                   "candidates on a short probe when the group is long enough and caches the choice (default: auto)")
    g.add_argument("--memory-limit", dest="memory_limit", type=checked(parse_memory, "memory"), default=None,
                   help=f"memory one program may use ({MEMORY_FORMS}); a larger group runs in waves "
                        "(default: the device's free memory)")
    g.add_argument("--precision", type=checked(parse_precision, "precision"), default="fp32",
                   help=f"matmul and convolution precision: {', '.join(PRECISIONS)}; parameters and optimizer "
                        "state stay float32 (default: fp32)")
    g.add_argument("--compaction", action=argparse.BooleanOptionalAction, default=True,
                   help="stopped members stop costing: hybrid moves them into blocks it skips, vmap repacks the "
                        "running ones into a smaller program once half have stopped (map skips them anyway) "
                        "(default: on)")
    g.add_argument("--devices", type=checked(_parse_devices, "devices"), default=None,
                   help="split each group's members over this many devices, or all (default: all: every "
                        "device of every process)")
    g.add_argument("--slice-steps", dest="slice_steps", type=int_at_least(0), default=16, metavar="STEPS",
                   help="a classifier's epoch runs as device calls of about this many training steps per member, "
                        "shared by the members on a device, so the bar moves within a long epoch (the same numbers "
                        "as whole epochs); 0: whole epochs (default: 16)")
    g.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                   help="compile every program afresh, neither loading nor keeping compiled programs (default: "
                        "kept in $JAXLABS_CACHE_DIR/xla, ~/.cache/jaxlabs/xla, so a second run of the same study "
                        "compiles nothing; JAXLABS_COMPILE_CACHE=0 turns it off too)")
    h = p.add_argument_group("several hosts (jax.distributed; every process runs the same command)")
    h.add_argument("--coordinator", type=checked(_parse_address, "address"), default=None,
                   help="HOST:PORT of process 0, which every process connects to")
    h.add_argument("--num-processes", dest="num_processes", type=int_at_least(1), default=None,
                   help="how many processes take part")
    h.add_argument("--process-id", dest="process_id", type=int_at_least(0), default=None,
                   help="this process's number, 0 .. num-processes - 1; process 0 writes --out")
    h.add_argument("--connect-timeout", dest="connect_timeout", type=int_at_least(1), default=120,
                   help="seconds to wait for every process to join before giving up (default: %(default)s)")


def add_durability_flags(p: argparse.ArgumentParser) -> None:
    """Checkpoints and resume: the same command with the same --out continues where a run stopped."""
    from jaxlabs.checkpoint import EVERY_FORMS, parse_every

    g = p.add_argument_group("checkpoints (run the same command again to resume)")
    g.add_argument("--checkpoint-every", dest="checkpoint_every", type=checked(parse_every, "time"),
                   default=parse_every("5m"), metavar="TIME",
                   help=f"checkpoint the training in OUT/.checkpoint this often ({EVERY_FORMS}; default: 5m)")
    g.add_argument("--fresh", action="store_true",
                   help="discard a checkpoint in --out (another run's, or this one's) and start over")


def add_tensorboard_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                   help="write no TensorBoard logs (default: OUT/tensorboard/<study>/<setting>/seed<k>, written as it trains)")


def durable(args):
    """While the command trains: Ctrl-C writes a checkpoint and stops (with checkpoints on)."""

    from jaxlabs.interrupt import stop_at_checkpoint

    return stop_at_checkpoint() if args.checkpoint_every > 0 else contextlib.nullcontext()


@contextlib.contextmanager
def output_lock(prog: str, out):
    """While the command writes to ``out`` (process 0), no other run may: a second one stops at once
    with one line naming the first (:func:`jaxlabs.lock.lock_output`)."""
    from jaxlabs.lock import OutputInUse, lock_output

    if not is_writer():
        yield
        return
    try:
        lock = lock_output(out)
        lock.__enter__()
    except OutputInUse as e:
        fail(prog, f"argument --out: {e}")
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


@contextlib.contextmanager
def one_line_errors(prog: str, out=None, flags: dict | None = None):
    """While a command trains and writes: the engine's errors as the command's one line and exit
    code, the same for every command. Ctrl-C: how to go on, exit 130; a search's or an engine
    option's problem names its flag (``flags``: option -> flag); a member too large for the memory,
    missing or broken data, a checkpoint of another run or a damaged one, a disk that fills while
    writing ``out``: exit 2. Nothing already written is lost (the writers write aside and rename)."""
    from jaxlabs.search.run import SearchError

    try:
        yield
    except KeyboardInterrupt as e:
        raise SystemExit(interrupted(prog, e)) from None
    except SearchError as e:
        fail(prog, f"argument {(flags or {}).get(e.option, '--' + e.option.replace('_', '-'))}: {e}")
    except MemoryError as e:  # one member does not fit the memory limit
        engine_error(prog, e)
    except (ValueError, FileNotFoundError) as e:  # e.g. a dataset that is not on this machine
        fail(prog, str(e))
    except OSError as e:  # a full disk or lost permission while writing the results
        fail(prog, f"cannot write {e.filename or out} ({e.strerror or e}); free some space or choose another --out")


def interrupted(prog: str, e: KeyboardInterrupt) -> int:
    """Ctrl-C: one line on how to go on; exit 130, as a shell reports SIGINT."""
    from jaxlabs.interrupt import Interrupted

    how = str(e) if isinstance(e, Interrupted) else \
        "stopped at once; run the same command again to resume from the last checkpoint, if one was written"
    print(f"{prog}: interrupted: {how}", file=sys.stderr)
    return 130


# the flag of each engine option, for engine errors (jaxlabs.engine.options.OptionError names the option)
HOST_FLAGS = {"coordinator": "--coordinator", "process_id": "--process-id", "connect_timeout": "--connect-timeout"}
ENGINE_FLAGS = {"plan": "--plan", "memory_limit": "--memory-limit", "compaction": "--compaction",
                "slice_steps": "--slice-steps",
                "precision": "--precision", "devices": "--devices"}


def engine_options(prog: str, args):
    """The engine flags as EngineOptions; more devices than there are is the one-line error now,
    before any work."""
    from jaxlabs.engine import compile_cache
    from jaxlabs.engine.options import EngineOptions, OptionError
    from jaxlabs.engine.plans import parse_plan

    compile_cache.configure(args.compile_cache and compile_cache.wanted())  # for this command's process
    options = EngineOptions(plan=parse_plan(args.plan), memory_limit=args.memory_limit,
                            compaction=args.compaction, precision=args.precision, devices=args.devices,
                            slice_steps=args.slice_steps or None)
    try:
        options.device_list()
    except OptionError as e:
        engine_error(prog, e)
    return options


def engine_error(prog: str, e: Exception):
    """An engine error as the command's one line: ``argument --flag: ...`` for an option's problem
    (an OptionError, or one member too large for the memory limit), exit 2."""
    option = getattr(e, "option", None)
    fail(prog, f"argument {ENGINE_FLAGS[option]}: {e}" if option in ENGINE_FLAGS else str(e))


def _parse_address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 10.0.0.1:8476 or node01:8476)")
    return text


def start_processes(prog: str, args) -> None:
    """Join JAX's multi-process runtime from the flags (or a SLURM job) before anything else
    touches JAX (:func:`jaxlabs.hosts.join`); its problems are one line naming the flag."""
    from jaxlabs.hosts import join
    from jaxlabs.engine.options import OptionError

    try:
        join(args.coordinator, args.num_processes, args.process_id, args.connect_timeout)
    except OptionError as e:
        fail(prog, f"argument {HOST_FLAGS[e.option]}: {e}")


def is_writer() -> bool:
    """Process 0 writes the results; the others of a multi-process run write nothing."""
    import jax

    return jax.process_index() == 0


def _parse_devices(text: str):
    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a device count; give all or a whole number >= 1") from None
    if n < 1:
        raise ValueError(f"{n} devices: give all or a whole number >= 1")
    return n


def plan_line(g: dict) -> str:
    """How a group ran: its plan and why (auto's probe timings), and its waves."""
    probe = ", ".join(f"{p} {t:.2f} s" for p, t in g["probe_s"].items())
    waves = f"; {len(g['waves'])} waves of {'/'.join(map(str, g['waves']))} members" if len(g["waves"]) > 1 else ""
    devices = f"; members split over {g['devices']} devices" if g.get("devices", 1) > 1 else ""
    return f"plan {g['plan']} ({g['plan_source']}{': probe ' + probe if probe else ''}){waves}{devices}"


def programs_note(g: dict) -> str:
    """`` (12 programs loaded from the cache, 1 compiled)`` of a group's timing; "" if not counted."""
    from jaxlabs.engine.compile_cache import programs_line

    return f" ({programs_line(g['programs']['loaded'], g['programs']['compiled'])})" if "programs" in g else ""

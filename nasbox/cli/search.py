"""`nasbox search`: search a space with a strategy and an estimator, through the experiment store.

Every trial goes to a SQLite store (`nasbox.db` in the run folder, or `--storage FILE`) as it
starts and ends; `trials.csv`, `summary.json` and `trials.png` are written from it. A run killed
at any point continues with `--resume RUN`: finished trials are replayed into the strategy, not
evaluated again, so the resumed run ends exactly as an uninterrupted one would.
"""

import argparse
import ast
import importlib
import inspect
import math
import os
import statistics
import sys
import time
import traceback
from collections import Counter
from dataclasses import replace
from pathlib import Path

from nasbox import __version__
from nasbox.checks import check_count, check_number, check_seed
from nasbox.cli.common import (
    add_benchmark_option,
    add_command,
    add_data_options,
    add_overwrite_option,
    add_prescore_option,
    add_space_option,
    check_local_workers,
    check_prescore,
    default_out,
    estimator_context,
    estimator_spec,
    note_unread_benchmark,
    option_given,
)
from nasbox.errors import NasboxError, counted, note
from nasbox.estimators import ESTIMATORS, get_estimator
from nasbox.estimators.objectives import (
    ConstraintCheck,
    Objective,
    get_evaluator,
    parse_constraint,
    parse_objectives,
    split_specs,
)
from nasbox.runs import (
    COMMAND_RESULTS,
    DATABASE,
    EstimatorSpec,
    ExecutorScorer,
    InlineExecutor,
    ProcessExecutor,
    RunFolder,
    RunStore,
    StoredRun,
    StoreRecorder,
    TooManyFailures,
    TrialAppender,
    best_trial,
    check_output_path,
    folder_holds_run,
    locate_run,
    plot_trials,
    run_search,
    write_json,
    write_pareto,
    write_trials_csv,
)
from nasbox.spaces import get_space
from nasbox.strategies import STRATEGIES, get_strategy

RESULTS = (*COMMAND_RESULTS["search"], f"{DATABASE}-wal", f"{DATABASE}-shm")
# Options that define what a run searches; a resumed run keeps them, so giving another value
# on the command line is a conflict. Everything else (workers, executor, budget...) may change.
RUN_SETTINGS = {
    "space": "--space",
    "strategy": "--strategy",
    "estimator": "--estimator",
    "objectives": "--objectives",
    "constraints": "--constraint",
    "prescore": "--prescore",
    "data": "--data",
    "data_dir": "--data-dir",
    "image_size": "--image-size",
    "batch_size": "--batch-size",
    "latency_batch": "--latency-batch",
    "precision": "--precision",
    "benchmark": "--benchmark",
    "seed": "--seed",
    "imports": "--import",
    "strategy_options": "--strategy-option",
}

# What runs made before an option existed used, where that is not the option's default.
BEFORE_OPTION = {"precision": "fp32"}


# Settings that name files: stored absolute, so that a run resumed from another folder reads the
# same files, not same-named ones found there.
PATH_SETTINGS = ("data", "data_dir", "benchmark", "strategy_options")
# Strategy options that name a file (petri-evolution's dish), made absolute for the same reason.
PATH_STRATEGY_OPTIONS = ("dish",)


def _absolute(key: str, value):
    """`value` of setting `key` with its path made absolute (`--data KIND:PATH`'s PATH part)."""
    if key not in PATH_SETTINGS or not value:
        return value
    if key == "strategy_options":
        return [_absolute_option(pair) for pair in value]
    if key != "data":
        return os.path.abspath(value)
    kind, colon, path = value.partition(":")
    return f"{kind}:{os.path.abspath(path)}" if colon and path.strip() else value


def _comparable(key: str, value):
    """Setting `key` as a resume compares it with the stored run's: paths made absolute, and
    constraints parsed, so that params<=.5 is the run's params<=0.5, not a conflict."""
    if key == "constraints":
        return [parse_constraint(text) for text in value or []]
    return _absolute(key, value)


def _absolute_option(pair: str) -> str:
    """`--strategy-option KEY=PATH` with PATH made absolute where KEY names a file."""
    key, equals, path = pair.partition("=")
    if key not in PATH_STRATEGY_OPTIONS or not equals or not path.strip():
        return pair
    return f"{key}={os.path.abspath(path)}"


def _check_inputs(args: argparse.Namespace) -> None:
    for option in ("out", "storage", "resume", "ray_address", "objectives"):
        value = getattr(args, option)
        if value is not None and not value.strip():
            raise NasboxError(
                f"--{option.replace('_', '-')} is empty; leave it out or give a value"
            )
    if len(split_specs(args.estimator)) > 1:
        raise NasboxError(
            f"--estimator {args.estimator!r} names several estimators; a search optimises one, "
            "or several with --objectives (e.g. --objectives naswot,-params --strategy nsga2)"
        )
    if any(not module.strip() for module in args.imports):
        raise NasboxError("--import is empty; give a module name such as my_estimators")
    check_count(args.samples, "--samples")
    check_seed(args.seed)
    check_count(args.batch_size, "--batch-size", minimum=2)
    if args.workers is not None and args.executor == "local":
        check_local_workers(args.workers, "use fewer, or --executor ray for a cluster")
    elif args.workers is not None:
        check_count(args.workers, "--workers")
    if args.trial_timeout is not None:
        check_number(args.trial_timeout, "--trial-timeout", 0, math.inf, include_low=False)
    if args.max_failures is not None:
        check_count(args.max_failures, "--max-failures")
    check_number(args.cpus_per_trial, "--cpus-per-trial", 0, math.inf, include_low=False)
    check_number(args.gpus_per_trial, "--gpus-per-trial", 0, math.inf)


def _import_plugins(modules: list[str]) -> None:
    """Import the user's modules that register their own spaces, estimators or strategies.

    A module that fails to import is one line naming the file and line at fault (the user's own
    code, so that is what they fix), not a traceback.
    """
    for module in modules:
        if module.endswith(".py") or not all(part.isidentifier() for part in module.split(".")):
            raise NasboxError(
                f"--import {module}: not a module name; give a dotted name such as my_estimators "
                "(for my_estimators.py, with its folder on PYTHONPATH)"
            )
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if module == missing or module.startswith(missing + "."):
                raise NasboxError(
                    f"--import {module}: no module {missing!r} found; put the folder that holds "
                    f"{missing.replace('.', '/')}.py on PYTHONPATH (the nasbox command does not "
                    "search the current folder)"
                ) from None
            raise NasboxError(f"--import {module}: it imports a missing module ({err})") from None
        except SyntaxError as err:
            raise NasboxError(
                f"--import {module}: {err.filename}, line {err.lineno}: {err.msg}"
            ) from None
        except (Exception, SystemExit) as err:  # the user's code may raise anything, even exit
            frame = _user_frame(err)
            raise NasboxError(
                f"--import {module}: importing it raised {type(err).__name__}: {err} "
                f"({frame.filename}, line {frame.lineno})"
            ) from None


def _user_frame(err: BaseException) -> traceback.FrameSummary:
    """Where `err` was raised, or, when nasbox itself raised it (a name registered twice), the
    last line outside nasbox that called in: the line of the user's module to change."""
    frames = traceback.extract_tb(err.__traceback__)
    package = str(Path(__file__).resolve().parents[1])
    outside = [frame for frame in frames if not frame.filename.startswith(package)]
    return (outside or frames)[-1]


OPTION_TYPES = {bool: "true or false", float: "a finite number", int: "a whole number", str: "text"}


def _option_type(parameter: inspect.Parameter) -> type | None:
    """The type an option's value takes: its annotation's (`str | None` gives str), else its
    default's; None for a plugin's untyped parameter."""
    hint = parameter.annotation
    for kind in OPTION_TYPES:  # float before int: `int | float` takes any number
        if kind is hint or kind in getattr(hint, "__args__", ()):
            return kind
    default = type(parameter.default)
    return default if default in OPTION_TYPES else None


def _option_value(strategy: str, key: str, text: str, parameter: inspect.Parameter) -> object:
    """`text` as the type of constructor parameter `key`, so a wrong value fails here in one line
    rather than as a traceback mid-run."""
    kind = _option_type(parameter)
    if kind is None:  # untyped: read as a Python literal, else kept as text
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    try:
        value = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
    except (KeyError, ValueError):
        value = None
    if value is None or (kind is float and not math.isfinite(value)):
        default = "" if parameter.default is None else f" (default {key}={parameter.default})"
        raise NasboxError(
            f"--strategy-option {key}={text}: {strategy}'s {key} takes "
            f"{OPTION_TYPES[kind]}{default}"
        )
    return value


# Constructor parameters the search fills in itself, never `--strategy-option` keys.
NOT_OPTIONS = {"self", "space", "seed", "prescore", "pool"}


def _strategy_options(strategy: str, pairs: list[str]) -> dict:
    """`KEY=VALUE` pairs checked against the strategy's constructor, each value converted to its
    parameter's type; the constructor checks the ranges."""
    accepted = inspect.signature(STRATEGIES.get(strategy)).parameters
    valid = [name for name in accepted if name not in NOT_OPTIONS]
    options = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not valid:
            raise NasboxError(
                f"--strategy-option {pair!r}: {strategy} takes no options; drop --strategy-option"
            )
        owners = _options_of_others(strategy, key) if equals and key not in valid else []
        if owners:  # ppo's clip given to lstm-reinforce was taken and ignored
            instead = f" (or give --strategy {owners[0]})" if len(owners) == 1 else ""
            raise NasboxError(
                f"--strategy-option {pair!r}: {key} is an option of {', '.join(owners)}; "
                f"{strategy} does not use it: drop it{instead}; {strategy} takes: "
                f"{', '.join(valid)}"
            )
        if not equals or key not in valid:
            raise NasboxError(
                f"--strategy-option {pair!r}: {strategy} takes KEY=VALUE with KEY one of: "
                f"{', '.join(valid)}"
            )
        if key in options:  # the last one won without a word, as if the first were never given
            first = next(p for p in pairs if p.partition("=")[0] == key)
            raise NasboxError(
                f"--strategy-option names {key!r} twice ({first} and {pair}); give each key once"
            )
        if not text.strip():  # `dish=` opened the current folder as the dish
            raise NasboxError(_empty_option(strategy, key, accepted[key]))
        options[key] = _option_value(strategy, key, text, accepted[key])
    return options


def _options_of_others(strategy: str, key: str) -> list[str]:
    """The other registered strategies that take `key`, so that a key meant for one of them
    (ppo's clip given to lstm-reinforce) is named as theirs, not as unknown."""
    if key in NOT_OPTIONS:  # every strategy has a seed, and none takes it as an option
        return []
    owners = []
    for name in STRATEGIES.names():
        try:
            parameters = inspect.signature(STRATEGIES.get(name)).parameters
        except (TypeError, ValueError):  # a factory of --import without a signature
            continue
        if name != strategy and key in parameters:
            owners.append(name)
    return owners


def _empty_option(strategy: str, key: str, parameter: inspect.Parameter) -> str:
    """The refusal of `--strategy-option KEY=` with nothing after `=`: what to give instead."""
    if key in PATH_STRATEGY_OPTIONS:
        wanted = f"{key}=FILE (a dish made with `nasbox petri fit`)"
    else:
        kind = _option_type(parameter)
        wanted = f"{key}=VALUE ({OPTION_TYPES[kind]})" if kind else f"{key}=VALUE"
    default = parameter.default
    default = "" if default in (None, parameter.empty) else f" for the default {key}={default}"
    return (
        f"--strategy-option {key}= gives {strategy}'s {key} an empty value; give {wanted}, "
        f"or leave the option out{default}"
    )


# Options a strategy took and never used until they were refused (ppo's, given to
# lstm-reinforce); a run stored with them resumes without them.
NEVER_USED_OPTIONS = {"lstm-reinforce": ("clip", "ppo_epochs")}


def _without_never_used_options(settings: dict) -> dict:
    """The stored settings less the strategy options their strategy never used, with a note
    naming them: they are refused now, and dropping them changes nothing the run did."""
    strategy = settings.get("strategy")
    never_used = NEVER_USED_OPTIONS.get(strategy, ())
    pairs = settings.get("strategy_options") or []
    unused = [pair for pair in pairs if pair.partition("=")[0] in never_used]
    if not unused:
        return settings
    them = "them" if len(unused) > 1 else "it"
    note(
        f"dropped the resumed run's --strategy-option {' '.join(unused)}: {strategy} never "
        f"used {them}, so the run goes on unchanged"
    )
    return settings | {"strategy_options": [pair for pair in pairs if pair not in unused]}


def _resumed_settings(args: argparse.Namespace, settings: dict) -> None:
    """Adopt the stored run's settings; refuse command-line values that contradict them."""
    settings = _without_never_used_options(settings)
    for key, option in RUN_SETTINGS.items():
        if key not in settings:  # the run predates the option, so it ran without it
            if option_given(args.argv, option):
                raise NasboxError(
                    f"the resumed run was made before {option} existed; drop {option} or "
                    "start a new run"
                )
            setattr(args, key, BEFORE_OPTION.get(key, getattr(args, key)))
            continue
        stored = settings[key]
        given = _comparable(key, getattr(args, key))
        if key == "strategy_options" and option_given(args.argv, option):
            _check_resumed_options(args, stored)
        elif option_given(args.argv, option) and given != _comparable(key, stored):
            raise NasboxError(
                f"{option} {getattr(args, key)} conflicts with the resumed run's {option} "
                f"{stored}; drop {option} or start a new run"
            )
        setattr(args, key, stored)
    if not (option_given(args.argv, "--samples") or option_given(args.argv, "--budget")):
        args.samples = settings.get("samples", args.samples)


def _check_resumed_options(args: argparse.Namespace, stored: list[str]) -> None:
    """Refuse a `--strategy-option` given to a resume that sets another value than the run's
    (a key the run left out has its default); compared as values, in any order, so that
    population_size=04 or the options in another order are the run's own."""
    _import_plugins(args.imports)  # a plugin's strategy names its options
    given = _strategy_options(args.strategy, args.strategy_options)
    kept = _strategy_options(args.strategy, stored)
    parameters = inspect.signature(STRATEGIES.get(args.strategy)).parameters
    for key, value in given.items():
        before = kept.get(key, parameters[key].default)
        if value != before:
            raise NasboxError(
                f"--strategy-option {key}={value} conflicts with the resumed run's {key}={before}"
                "; drop it or start a new run"
            )


def _executor(args: argparse.Namespace, estimator, spec: EstimatorSpec):
    workers = min(args.workers or 1, args.samples)  # more would never get a trial
    if args.executor == "ray":
        from nasbox.runs.ray_executor import RayExecutor

        return RayExecutor(
            spec,
            address=args.ray_address,
            workers=args.workers,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            timeout=args.trial_timeout,
        )
    if workers == 1 and args.trial_timeout is None:
        return InlineExecutor(estimator)
    return ProcessExecutor(spec, workers, timeout=args.trial_timeout)


def _summary(args, store: RunStore, run, storage: Path, out: Path, status: str) -> dict:
    trials = store.trials(run)
    counts = Counter(t.state for t in trials)
    finished = [t for t in trials if t.state == "complete"]
    objectives = parse_objectives(args.objectives) if args.objectives else []
    best = None if objectives else best_trial(trials)
    summary = {
        "command": "search",
        "version": __version__,
        "run": run.name,
        "storage": storage.name
        if storage.parent.resolve() == out.resolve()
        else str(storage.resolve()),
        "status": status,
        **{key: getattr(args, key) for key in RUN_SETTINGS},
        "samples": args.samples,
        "batch_size_used": args.batch_size_used,
        "complete": counts["complete"],
        "failed": counts["failed"],
        "running": counts["running"],
        "rejected": counts["rejected"],
        "best_arch": best.arch if best else None,
        "best_value": best.value if best else None,
        "seconds_median": round(statistics.median(t.seconds for t in finished), 4)
        if finished
        else None,
    }
    names = [o.estimator for o in objectives]
    # While the run goes on, the appender adds each trial as it finishes; a trial an interrupted
    # run left `running` is evaluated again, so listing it now would list it twice.
    listed = [t for t in trials if t.state != "running"] if status == "running" else trials
    write_trials_csv(out / "trials.csv", listed, names)
    if objectives:
        summary.update(write_pareto(out, trials, objectives))
    write_json(out / "summary.json", summary)
    if trials:
        first = objectives[0] if objectives else Objective(args.estimator)
        plot_trials(out / "trials.png", trials, first.estimator, first.minimize)
    return summary


def _run_location(args: argparse.Namespace) -> tuple[Path, str, Path]:
    """(database, run name, run folder), adopting a resumed run's stored settings."""
    if not args.resume:
        out = Path(args.out) if args.out else default_out("search")
        storage = Path(args.storage) if args.storage else out / DATABASE
        if args.storage:
            check_output_path(storage.parent, "--storage")
        return storage, out.name, out
    storage, name, out = locate_run(args.resume, args.storage, "--resume")
    if args.out and Path(args.out).resolve() != out.resolve():
        raise NasboxError(f"--out {args.out} conflicts with the resumed run's folder {out}")
    with RunStore(storage) as store:
        stored = store.find_run(name)
        counts = store.counts(stored) if stored is not None else {}
    if stored is None:
        raise NasboxError(f"{storage}: no run named {name!r}")
    _resumed_settings(args, stored.settings)
    finished = counts["complete"] + counts["failed"]
    if args.samples < finished:  # the budget counts finished trials; these cannot be undone
        raise NasboxError(
            f"--samples {args.samples} is fewer than the {finished} trials the resumed run has "
            f"already finished; give --samples {finished} or more"
        )
    return storage, name, out


def _moved_here(run: StoredRun, storage: Path, out: Path) -> bool:
    """The resumed run's folder was moved or copied to `out`: the store still names the old
    folder (or none), and `out` really is this run's folder, so `runs list` and `runs show`
    should name `out` from now on."""
    if run.folder is not None and Path(run.folder).resolve() == out.resolve():
        return False
    return folder_holds_run(out, storage, run.name)


def _fail_infinite_trials(store: RunStore, run: StoredRun, objectives: list) -> None:
    """Fail the resumed run's trials holding +inf, kept by versions before strategies refused
    it, with a note naming them: the replay would stop at them."""
    infinite = store.fail_infinite_trials(run, objectives)
    if not infinite:
        return
    listed = ", ".join(str(number) for number in infinite)
    trials = f"trial {listed} holds" if len(infinite) == 1 else f"trials {listed} hold"
    note(
        f"the resumed run's {trials} +inf, which cannot be ranked (an overflow?): now "
        "recorded and replayed as failed, as a new run fails such a trial"
    )


def _build_search(args: argparse.Namespace):
    """The space, strategy, in-process estimator and the estimator's recipe for workers."""
    _import_plugins(args.imports)
    space = get_space(args.space)
    STRATEGIES.get(args.strategy)
    options = _strategy_options(args.strategy, args.strategy_options)  # before data is loaded
    if args.samples > len(space):
        raise NasboxError(
            f"--samples {args.samples} is more than the {len(space)} architectures of "
            f"{args.space}; use at most {len(space)}"
        )
    prescored = check_prescore(args, space, [args.strategy])
    objectives = parse_objectives(args.objectives) if args.objectives else []
    if len(objectives) == 1 and not objectives[0].minimize:
        # one maximised objective is what --estimator does; its evaluator yields no objective vector
        raise NasboxError(
            f"--objectives {args.objectives} is one objective to maximise; use --estimator "
            f"{objectives[0].estimator}, or give several (e.g. naswot,-params)"
        )
    if objectives and not STRATEGIES.get(args.strategy).multi_objective:
        several = [name for name in STRATEGIES.names() if STRATEGIES.get(name).multi_objective]
        raise NasboxError(
            f"--objectives needs a strategy that handles several objectives ("
            f"{', '.join(several)}); {args.strategy} optimises one --estimator"
        )
    constraints = [parse_constraint(text) for text in args.constraints]
    evaluated = [o.estimator for o in objectives] or [args.estimator]
    read = evaluated + [c.estimator for c in constraints] + ([args.prescore] if prescored else [])
    note_unread_benchmark(args, read, "--estimator, --objectives or --constraint")
    context = estimator_context(args, space, read)
    estimator = get_evaluator(args.objectives or args.estimator, context)
    admissible = ConstraintCheck(constraints, context) if constraints else None
    args.batch_size_used = context.batch_size
    table = context.benchmark
    lookups = any(name.startswith("table:") for name in evaluated)
    if lookups and table is not None and len(table) < len(space):
        raise NasboxError(
            f"--benchmark {args.benchmark} holds {len(table):,} of the {len(space):,} "
            f"architectures of {args.space}; table:COLUMN searches need a table of every one"
        )
    spec = estimator_spec(args, context, args.objectives or args.estimator)
    if prescored:
        prescore = get_estimator(args.prescore, context)
        if args.executor == "ray" or (args.workers or 1) > 1:  # pre-score on the workers too
            prescore_spec = replace(spec, estimator=args.prescore)
            prescore = ExecutorScorer(lambda: _executor(args, prescore, prescore_spec))
        options["prescore"] = prescore
    try:
        strategy = get_strategy(args.strategy, space, seed=args.seed, **options)
    except NasboxError:
        raise
    except (TypeError, ValueError) as err:  # a check the constructor lacks: still one line
        given = " ".join(args.strategy_options) or "none given"
        raise NasboxError(f"--strategy-option ({given}): {args.strategy} refused: {err}") from None
    return space, strategy, estimator, spec, admissible


def _check_shared_storage(args: argparse.Namespace, storage: Path, name: str, out: Path) -> None:
    """A database outside the run folder is checked (readable, writable, name free) up front;
    its folder is created, as the run folder is.

    Runs are named after their folder, so another folder of the same name clashes with a run
    that is not this folder's: that run is never replaced, even with --overwrite.
    """
    if storage.parent.resolve() == out.resolve():
        return
    try:  # made as --out is: SQLite cannot open a file in a missing folder
        storage.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NasboxError(
            f"--storage {storage}: cannot create its folder {storage.parent} ({err.strerror})"
        ) from None
    with RunStore(storage) as store:
        store.check_writable()
        taken = store.find_run(name)
    if taken is None or args.resume:
        return
    resume = f"--resume {name} --storage {storage}"
    if taken.folder is None or Path(taken.folder).resolve() != out.resolve():
        raise NasboxError(
            f"{storage} already holds a run named {name!r} of folder {taken.folder or 'unknown'}"
            f"; runs are named after their --out folder, so choose an --out not named {name!r} "
            f"(that run continues with {resume})"
        )
    if not args.overwrite:
        raise NasboxError(
            f"{storage} already holds this folder's run {name!r}; continue it with {resume}, "
            "or pass --overwrite to replace it"
        )


def cmd_search(args: argparse.Namespace) -> int:
    args.imports, args.strategy_options = args.imports or [], args.strategy_options or []
    args.constraints = args.constraints or []
    if args.objectives is not None and option_given(args.argv, "--estimator"):
        raise NasboxError(
            "--objectives replaces --estimator (give naswot,-params for naswot and params); "
            "drop --estimator"
        )
    _check_inputs(args)
    for key in PATH_SETTINGS:
        setattr(args, key, _absolute(key, getattr(args, key)))
    if args.resume and args.overwrite:
        raise NasboxError("--resume continues a run and --overwrite replaces one; give only one")
    if args.executor != "ray" and (args.ray_address or option_given(args.argv, "--cpus-per-trial")):
        raise NasboxError("--ray-address and --cpus-per-trial need --executor ray")
    storage, name, out = _run_location(args)
    args.constraints = args.constraints or []  # runs made before constraints existed
    space, strategy, estimator, spec, admissible = _build_search(args)
    objectives = parse_objectives(args.objectives) if args.objectives else []
    folder = RunFolder(
        out,
        RESULTS,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        option="--resume" if args.resume else "--out",
    )
    folder.check()
    _check_shared_storage(args, storage, name, out)
    with _executor(args, estimator, spec) as executor, folder:
        store = RunStore(storage)
        settings = {key: getattr(args, key) for key in RUN_SETTINGS} | {"samples": args.samples}
        if args.resume:
            run = store.find_run(name)
            if _moved_here(run, storage, out):
                store.set_folder(run, str(out.resolve()))
                run = store.find_run(name)
            _fail_infinite_trials(store, run, objectives)
        else:
            if args.overwrite:
                store.delete_run(name)
            run = store.create_run(name, settings, str(out.resolve()), __version__)
        stored_trials = store.trials(run)
        history = [
            t.to_trial(space.parse, objectives) for t in stored_trials if t.state != "running"
        ]
        running = [(t.number, space.parse(t.arch)) for t in stored_trials if t.state == "running"]
        store.set_status(run, "running", settings)
        _summary(args, store, run, storage, out, "running")
        names = [o.estimator for o in objectives]
        appender = TrialAppender(out / "trials.csv", names)
        recorder = StoreRecorder(store, run, space, on_finished=appender, objectives=objectives)
        started = time.perf_counter()
        status, code, failure = "interrupted", 130, ""
        try:
            run_search(
                strategy,
                executor,
                args.samples,
                recorder=recorder,
                history=history,
                running=running,
                max_failures=args.max_failures,
                admissible=admissible,
                progress=not args.quiet,
            )
            status, code = "complete", 0
        except KeyboardInterrupt:
            pass  # status "interrupted": the finished trials are kept and the run can resume
        except TooManyFailures as err:
            status, code, failure = "failed", 1, str(err)
        except NasboxError as err:
            status = "failed"
            raise NasboxError(
                f"{err}; the run's finished trials are kept in {out}/ (start again there with "
                "--overwrite, or choose another --out)"
            ) from None
        finally:
            appender.close()
            store.set_status(run, status)
            summary = _summary(args, store, run, storage, out, status)
            store.close()
    elapsed = time.perf_counter() - started
    evaluated_before = sum(trial.state != "rejected" for trial in history)
    return _report(args, summary, out, code, failure, elapsed, resumed=evaluated_before)


def _report(
    args, summary: dict, out: Path, code: int, failure: str, elapsed: float, resumed: int
) -> int:
    """The last lines a user reads: the best architecture, or how to continue."""
    done = summary["complete"] + summary["failed"]
    if code == 130:
        print(
            f"interrupted; what finished ({counted(done, 'trial')}) is in {out}/ "
            f"(continue with: nasbox search --resume {out})",
            file=sys.stderr,
        )
        return code
    if code == 1:
        print(
            f"nasbox: {failure}; {counted(done, 'trial')} kept in {out}/ (errors in trials.csv)",
            file=sys.stderr,
        )
        return code
    failed = f", {summary['failed']} failed" if summary["failed"] else ""
    rejected = summary["rejected"]
    failed += f", {rejected} rejected by the constraints (not evaluated)" if rejected else ""
    new = f" ({done - resumed} new, {resumed} from before the resume)" if resumed else ""
    evaluated = counted(done, "architecture")
    print(f"evaluated {evaluated}{failed}{new} in {elapsed:.1f} s; results in {out}/")
    if args.objectives:
        return _report_front(summary, out)
    if summary["best_arch"] is None:
        print("no trial completed; see the errors in trials.csv")
        return 1
    print(f"best {args.estimator} {summary['best_value']:.4f}: {summary['best_arch']}")
    return 0


def _report_front(summary: dict, out: Path) -> int:
    front = summary["pareto_front"]
    if not front:
        print("no trial completed; see the errors in trials.csv")
        return 1
    print(
        f"Pareto front of {counted(len(front), 'architecture')} "
        f"(hypervolume {summary['hypervolume']:.4g}) in {out}/pareto.csv:"
    )
    for point in front[:5]:
        values = ", ".join(f"{key} {value:.4g}" for key, value in point.items() if key != "arch")
        print(f"  {values}: {point['arch']}")
    if len(front) > 5:
        print(f"  ... and {len(front) - 5} more")
    return 0


def add_parser(commands) -> None:
    search = add_command(
        commands, "search", "search a space with a strategy and an estimator; keep the best"
    )
    search.allow_abbrev = False  # RUN_SETTINGS are recognised by their full names
    add_space_option(search)
    search.add_argument(
        "--strategy", default="random", help=f"one of: {', '.join(STRATEGIES.names())}"
    )
    search.add_argument(
        "--estimator",
        default="naswot",
        help="one of: "
        + ", ".join(ESTIMATORS.get(name).syntax() for name in ESTIMATORS.names())
        + " (`nasbox list` says what each one does)",
    )
    search.add_argument(
        "--objectives",
        help="several estimators to optimise at once, e.g. naswot,-params (a leading '-' "
        "minimises); needs --strategy nsga2 or random and writes pareto.csv",
    )
    search.add_argument(
        "--constraint",
        dest="constraints",
        action="append",
        metavar="ESTIMATOR<=BOUND",
        help="reject architectures before evaluating them unless they keep this, e.g. "
        "params<=1.0 (repeatable; rejected ones do not count towards --samples)",
    )
    search.add_argument(
        "--samples", "--budget", type=int, default=100, help="trials to finish (complete or failed)"
    )
    search.add_argument(
        "--strategy-option",
        dest="strategy_options",
        action="append",
        metavar="KEY=VALUE",
        help="a setting of the strategy, e.g. population_size=20 (repeatable)",
    )
    add_prescore_option(search)
    add_data_options(search)
    add_benchmark_option(search)
    search.add_argument("--out", help="run folder (default: runs/search-TIMESTAMP)")
    search.add_argument(
        "--storage", help="SQLite file holding the run (default: nasbox.db in the run folder)"
    )
    search.add_argument(
        "--resume",
        metavar="RUN",
        help="continue an interrupted run: its folder, or its name in --storage",
    )
    add_overwrite_option(search)
    search.add_argument(
        "--workers",
        type=int,
        help="architectures evaluated at once (default: 1; ray: cluster CPUs)",
    )
    search.add_argument(
        "--executor", choices=("local", "ray"), default="local", help="where evaluations run"
    )
    search.add_argument("--ray-address", help="Ray cluster to join (default: start a local one)")
    search.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray CPUs per evaluation")
    search.add_argument("--gpus-per-trial", type=float, default=0.0, help="Ray GPUs per evaluation")
    search.add_argument(
        "--trial-timeout", type=float, help="seconds before an evaluation is stopped and failed"
    )
    search.add_argument(
        "--max-failures", type=int, help="end the run after this many failed trials"
    )
    search.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE",
        help="import a module that registers your own estimators (repeatable)",
    )
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(handler=cmd_search)

"""A3C task: `qtc run` for `task NAME : a3c` specs, and `qtc play`.

The environment is MiniGrid (paper Figs. 13-14: the 7x7x3 view) or any gymnasium environment
with a Box observation (flattened) and Discrete actions, such as CartPole-v1 or Acrobot-v1
(qtc.tasks.engines.a3c.envs); the networks are checked against its spaces at load.

`run` trains every requested model (DiffQAS-QT, fixed:K, classical) with the A3C engine
(qtc.tasks.engines.a3c) into ``<run>/a3c/<model>/`` (episodes.csv, checkpoint.pt, policy.pt,
summary.json, errors.log). After each model it exports the classical actor and critic to
``<run>/models/<model>/`` and refreshes, in the run folder:

    rewards.png     moving-average reward (+- one std, the spec's ``a3c window``) of every model so far
    summary.md      per model: status, episodes, final average, episodes to the threshold (the
                    environment spec's reward_threshold, e.g. 475 for CartPole-v1; MiniGrid: the
                    paper's 0.9), episodes/s, the exported policy; the random-policy baseline's row
    selection.json  per model: the rule and the episode whose policy was exported (`select
                    validation`: the best mean reward of the evaluation episodes)
    baselines.json  a uniformly random policy's mean reward on the evaluation episodes

Fixed candidates the compiler merged into one node (Built.twins: the paper space's constants,
configs 1 = 3 = 4 = 6 and 9 = 12) generate the same weights from the same seed, so the first
member is trained and the others are reported with its episodes: their ``a3c/<twin>/summary.json``
says ``trained_as`` and their exported policy is its.

Resuming (``qtc run --resume RUNDIR``) skips models whose summary.json says "completed" and
continues an interrupted or failed one from its checkpoint. Ctrl-C (or SIGTERM) inside a model
lets the engine save; the loop over models then stops and says how to resume.

`play_model` (``qtc play RUNDIR --model M``) plays greedy episodes of a trained actor as text
(MiniGrid's grids; for other environments a line per step).
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import torch

from qtc.errors import QtcError
from qtc.tasks import plots
from qtc.tasks.engines import a3c as a3c_engine
from qtc.tasks.engines import progress
from qtc.tasks.engines.a3c.envs import EnvError, EnvInfo, describe
from qtc.tasks.engines.baselines import BASELINES, random_policy_baseline
from qtc.tasks.engines.optim import make_optimizer
from qtc.tasks.engines.supervised import SELECTION
from qtc.tasks.build import Built, load_task
from qtc.tasks.runs import tensorboard
from qtc.tasks.runs.rundir import RunDir, atomic_json, read_json_or_none

name = "a3c"             # the kind's entry in qtc.tasks.kinds.KINDS
engine = "a3c"
NETS = ("actor", "critic")

# Built tasks by spec path. run() seeds it with its own Built so forked workers reuse the
# compiled program instead of recompiling it (seconds) in every process.
_BUILT: dict[str, Built] = {}


# --------------------------------------------------------------------------------------------
# Model factory (picklable: a top-level function bound with functools.partial)
# --------------------------------------------------------------------------------------------

def _built_for(spec_path: str) -> Built:
    if spec_path not in _BUILT:
        _BUILT[spec_path] = load_task(spec_path)
    return _BUILT[spec_path]


def make_model(spec_path: str, model: str, seed: int = 0, backend: str | None = None):
    """``(actor_source, critic_source, actor_net, critic_net)`` of `model` for the engine.

    The sources are built after ``torch.manual_seed(seed)``, so every process (and a resumed
    run) starts from the same initial parameters.
    """
    built = _built_for(spec_path)
    # two generator steps (actor, critic) per update and at least one update per episode, of
    # the spec's budget (not --episodes: a resumed run must render its kernels as it began)
    episodes = built.spec.train.episodes
    torch.manual_seed(seed)
    sources = built.sources(model, backend=backend, steps=2 * episodes if episodes else None)
    return sources["actor"], sources["critic"], built.nets["actor"], built.nets["critic"]


def model_factory(built: Built, spec_path: Path | str, model: str, seed: int,
                  backend: str | None = None) -> functools.partial:
    """A picklable ``make_model`` for `model`; `built` is cached as the spec's build."""
    key = str(Path(spec_path).resolve())
    _BUILT.setdefault(key, built)
    return functools.partial(make_model, key, model, seed, backend)


# --------------------------------------------------------------------------------------------
# qtc run
# --------------------------------------------------------------------------------------------

def check(built: Built) -> None:
    """The spec names an environment A3C can play (envs.describe), and networks `actor` (the
    observation vector -> one logit per action) and `critic` (the observation -> one value):
    located SpecErrors, raised by load_task."""
    spec = built.spec
    if spec.env is None:
        raise built.error(None, "an a3c task needs an 'env' statement",
                          "e.g. 'env CartPole-v1' or 'env MiniGrid-Empty-5x5-v0'")
    info = env_info(built)
    missing = [n for n in NETS if n not in built.nets]
    if missing:
        raise built.error(next(iter(spec.networks.values())),
                          f"an a3c task needs networks named actor and critic; missing {', '.join(missing)} "
                          f"(found {', '.join(built.nets)})", "write 'network actor { ... }'")
    actions = len(info.actions)
    built.check_io("actor", (info.obs_size,), (actions,), f"{spec.env.id}'s {info.obs_text} "
                   f"and its {actions} actions")
    built.check_io("critic", (info.obs_size,), (1,), f"{spec.env.id}'s {info.obs_text} and one value")


def env_info(built: Built) -> EnvInfo:
    """The spec's environment as the engine sees it; a located SpecError when A3C cannot play
    it (unknown id, continuous or other non-Discrete actions, an observation neither a Box nor
    MiniGrid's view)."""
    try:
        return _describe(built.spec.env.id)
    except EnvError as exc:
        raise built.error(built.spec.env, exc.message, exc.hint) from None


@functools.lru_cache(maxsize=None)
def _describe(env_id: str) -> EnvInfo:
    """describe() once per process: check, report and play read the same environment."""
    return describe(env_id)


def preflight(built: Built, opts) -> None:
    """Nothing beyond `check` and the runner's own checks (the selection rule, --jobs): the
    environment is made by the workers, the data is the episodes they play."""


def run(built: Built, rundir: RunDir, opts) -> dict:
    """Train every model in ``opts.models``; return {model: engine summary}.

    Raises QtcError when a model failed (its status is in summary.md), KeyboardInterrupt after
    a Ctrl-C (the model's checkpoint is saved; the message says how to resume).
    """
    spec_path = rundir.path / "spec.task"
    if not spec_path.is_file():            # run() called without the runner's run folder
        spec_path = Path(built.spec.file)
    episodes = opts.episodes or built.spec.train.episodes
    env, cfg = built.spec.env, built.spec.a3c
    rundir.write_json(BASELINES, random_policy_baseline(env.id, env.max_steps, cfg.eval_episodes, opts.seed))
    results: dict = {}
    twins = built.twins(opts.models)
    trained = [m for m in opts.models if m not in twins]
    overall = progress.Overall(len(trained))
    try:
        for model in trained:
            before = _completed(rundir.engine_dir(model), episodes)
            results[model] = _train_model(built, rundir, opts, spec_path, model, episodes)
            if results[model]["status"] == "completed":
                for twin in (t for t, first in twins.items() if first == model):
                    results[twin] = _report_twin(built, rundir, model, twin, results[model])
            rundir.write_json(SELECTION, {m: choice(opts, cfg, s) for m, s in results.items()})
            report(built, rundir, opts.models)
            progress.say(overall.finished(trained=before is None))
            if results[model]["status"] == "interrupted":
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        report(built, rundir, opts.models)
        print(f"interrupted: the checkpoint is saved; resume with\n  qtc run --resume {rundir.path}",
              file=sys.stderr)
        raise
    failed = [m for m, s in results.items() if s["status"] != "completed"]
    if failed:
        raise QtcError(f"A3C training failed for {', '.join(failed)}: a worker kept dying (see "
                       f"{rundir.path / 'summary.md'} and errors.log in {rundir.path / 'a3c'}); "
                       f"hint: fix the cause, then resume from the checkpoint with "
                       f"'qtc run --resume {rundir.path}'")
    return results


def _train_model(built: Built, rundir: RunDir, opts, spec_path: Path, model: str,
                 episodes: int) -> dict:
    """Train (or resume, or skip) one model; export it when it completed."""
    out = rundir.engine_dir(model)
    done = _completed(out, episodes)
    if done:
        print(f"{built.model_label(model)}: already completed ({done['episodes']} episodes), skipping")
        _export(built, rundir, model)
        return done
    resume = (out / a3c_engine.CHECKPOINT).is_file()
    if not resume:
        _clear_partial(out)
    spec = built.spec
    print(f"{built.model_label(model)}: {'resuming' if resume else 'training'} "
          f"{episodes} episodes on {spec.env.id}")
    summary = a3c_engine.train_a3c(
        model_factory(built, spec_path, model, opts.seed, opts.backend), spec.env, spec.a3c,
        episodes=episodes, out_dir=out, workers=opts.workers, evaluate=opts.select == "validation",
        seed=opts.seed, optimizer=functools.partial(make_optimizer, spec.train), resume=resume,
        progress=opts.progress, fingerprint=rundir.fingerprint(), label=built.model_label(model),
        board=functools.partial(tensorboard.writer, rundir.path, model) if opts.tensorboard else None)
    if summary["status"] == "completed":
        _export(built, rundir, model)
    return summary


def _report_twin(built: Built, rundir: RunDir, model: str, twin: str, summary: dict) -> dict:
    """`twin` (merged with `model` by the compiler) reported with `model`'s training: its engine
    folder holds only summary.json (`trained_as`); its exported policy is `model`'s."""
    done = {**summary, "trained_as": model}
    atomic_json(rundir.engine_dir(twin) / "summary.json", done)
    _export(built, rundir, twin, source=model)
    return done


def choice(opts, cfg, summary: dict) -> dict:
    """What selection.json records for one model: the rule and the episode whose policy it
    exported (validation: the best mean reward of the evaluation episodes)."""
    picked = summary.get("selected")
    if opts.select != "validation":
        return {"rule": "last", "episode": summary["episodes"], "criterion": None, "value": None}
    if not picked:                  # stopped before its first evaluation: its last policy
        return {"rule": "validation", "episode": summary["episodes"], "criterion": None, "value": None}
    return {"rule": "validation", "episode": picked["episode"], "criterion": "eval_reward",
            "value": picked["reward"], "eval_every": cfg.eval_every, "eval_episodes": cfg.eval_episodes}
def _completed(out: Path, episodes: int) -> dict | None:
    """The engine summary of a model that already completed `episodes` episodes, else None."""
    done = read_json_or_none(out / "summary.json")
    return done if done and done.get("status") == "completed" and done.get("episodes", 0) >= episodes else None


def _clear_partial(out: Path) -> None:
    """An episode log without a checkpoint (killed before the first save) cannot be resumed."""
    for name in (a3c_engine.EPISODES_CSV, "summary.json"):
        if (out / name).exists():
            print(f"note: {out / name} has no checkpoint to resume from; starting that model afresh",
                  file=sys.stderr)
            (out / name).unlink()


def _export(built: Built, rundir: RunDir, model: str, source: str | None = None) -> Path:
    """Write the trained actor and critic (generated weights) as plain torch models (those
    `source` trained, for a merged twin)."""
    pol = a3c_engine.load_policy(rundir.engine_dir(source or model))
    return rundir.export(model, {n: built.nets[n] for n in NETS},
                         {"actor": pol["actor_flat"], "critic": pol["critic_flat"]}, preprocessing(built))


def preprocessing(built: Built) -> str:
    """What the exported actor and critic expect and return (their README): the engine's
    encoding of the observation (obs_vector) and the environment's action names."""
    env_id, info = built.spec.env.id, env_info(built)
    actions = ", ".join(f"{i} {a}" for i, a in enumerate(info.actions))
    if info.minigrid:
        env_line = f"- environment: `{env_id}` (gymnasium with minigrid installed)\n"
        obs_line = (f"- input: float32, shape (N, {info.obs_size}): `obs['image']` (the 7x7x3 agent view of "
                    f"object, colour and state indices) flattened in C order to {info.obs_size} float32 raw "
                    "integers, no scaling: `torch.as_tensor(obs['image'].reshape(-1), dtype=torch.float32)`\n")
    else:
        env_line = f"- environment: `{env_id}` (gymnasium)\n"
        obs_line = (f"- input: float32, shape (N, {info.obs_size}): the observation ({info.obs_text}) "
                    "flattened in C order, no scaling: "
                    "`torch.as_tensor(obs.reshape(-1), dtype=torch.float32)`\n")
    return (env_line + obs_line +
            f"- actor output: {built.nets['actor'].output_shape[0]} logits over the actions {actions}; "
            "softmax is the policy (greedy: argmax)\n"
            "- critic output: 1 value, the state's estimated return\n")


# --------------------------------------------------------------------------------------------
# Figures and summary
# --------------------------------------------------------------------------------------------

def model_stats(rewards: np.ndarray, times: np.ndarray, window: int, threshold: float | None) -> dict:
    """Episodes, final average (last `window`), episodes to a full-window mean >= `threshold`
    (None: not reached, or no threshold), ep/s."""
    n = int(len(rewards))
    reached = threshold is not None and n >= window
    return {"episodes": n,
            "final_avg": float(rewards[-window:].mean()) if n else None,
            "to_threshold": a3c_engine.episodes_to_threshold(rewards, window, threshold) if reached else None,
            "episodes_per_s": n / float(times[-1]) if n and times[-1] > 0 else None}


def report(built: Built, rundir: RunDir, models) -> None:
    """Redraw rewards.png and rewrite summary.md from every model's episode log so far."""
    window, threshold = built.spec.a3c.window, env_info(built).threshold
    curves, rows = {}, []
    for model in models:
        summary = read_json_or_none(rundir.engine_dir(model) / "summary.json") or {}
        out = rundir.engine_dir(summary.get("trained_as") or model)    # a twin: its trained model's
        if not (out / a3c_engine.EPISODES_CSV).is_file():
            continue
        log = a3c_engine.read_episodes(out)
        stats = {**model_stats(log["reward"], log["time"], window, threshold), "selected": summary.get("selected")}
        status = summary.get("status", "running or killed")
        if summary.get("trained_as"):
            status += f" (trained as {built.model_label(summary['trained_as'])})"
        rows.append((model, status, stats))
        if len(log["reward"]):
            curves[model] = log["reward"]
    if curves:
        plots.plot_rewards(curves, window, rundir.path / "rewards.png",
                           title=f"{built.spec.name}: {built.spec.env.id}",
                           labels={m: built.model_label(m) for m in curves})
    baselines = rundir.read_json(BASELINES) if (rundir.path / BASELINES).is_file() else {}
    rundir.write_text("summary.md", summary_text(built, rows, baselines))


def _exported(s: dict) -> str:
    """Which policy a model exported, in words."""
    picked = s.get("selected")
    if picked:
        return f"episode {picked['episode']:,} (select validation: mean eval reward {picked['reward']:.3f})"
    return f"last (episode {s['episodes']:,})"


def summary_text(built: Built, rows, baselines: dict | None = None) -> str:
    """Markdown table: one row per (model, status, stats), then the cost-nothing baselines."""
    window, cfg, threshold = built.spec.a3c.window, built.spec.a3c, env_info(built).threshold
    if threshold is None:
        target = "to threshold"
        meaning = f"'{target}': {built.spec.env.id} has no reward threshold in its gymnasium spec."
    else:
        target = f"to {threshold:g}"
        meaning = f"'{target}' = episodes until the mean reward of a full window first reaches {threshold:g}."
    lines = [f"# {built.spec.name}: A3C on {built.spec.env.id}", "",
             f"Moving-average window {window} episodes; {meaning}", "",
             f"Evaluation: greedy episodes on {cfg.eval_episodes} held-out seeds (every {cfg.eval_every:,} "
             "episodes with 'select validation'); the exported policy is the one named in the last "
             "column (selection.json).", "",
             f"| model | status | episodes | final avg (last {window}) | {target} | episodes/s "
             "| exported policy |",
             "|---|---|---:|---:|---:|---:|---|"]
    for model, status, s in rows:
        final = "-" if s["final_avg"] is None else f"{s['final_avg']:.3f}"
        if s["final_avg"] is not None and s["episodes"] < window:
            final += f" (all {s['episodes']})"
        reach = "-" if threshold is None else \
            "not reached" if s["to_threshold"] is None else f"{s['to_threshold']:,}"
        rate = "-" if s["episodes_per_s"] is None else f"{s['episodes_per_s']:.2f}"
        lines.append(f"| {built.model_label(model)} | {status} | {s['episodes']:,} | {final} | "
                     f"{reach} | {rate} | {_exported(s)} |")
    if not rows:
        lines.append("| (no model trained yet) | | | | | | |")
    lines += [f"| *baseline:* {name} (uniform random actions) | - | - | - | - | - | mean eval reward "
              f"{b['eval_reward']:.3f} over {b['episodes']} episodes |" for name, b in (baselines or {}).items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# qtc play
# --------------------------------------------------------------------------------------------

def load_actor(run_path: Path | str, model: str):
    """(flat actor weights, actor network, env id, max steps) of `model` in a run folder.

    Prefers the exported ``models/<model>/actor.pt``; falls back to the engine's policy.pt (an
    interrupted model has only that). `run_path` may also be an engine directory itself.
    """
    path = Path(run_path)
    if (path / a3c_engine.POLICY).is_file() and not (path / "spec.task").is_file():
        pol = a3c_engine.load_policy(path)
        return pol["actor_flat"], pol["actor_net"], pol["env_id"], pol.get("max_episode_steps")
    if not (path / "spec.task").is_file():
        raise QtcError(f"{path} is not an A3C run folder (no spec.task, no {a3c_engine.POLICY}); "
                       "hint: pass the folder 'qtc run' printed")
    built = load_task(path / "spec.task")
    if built.spec.kind != "a3c":
        raise QtcError(f"{path} is a {built.spec.kind} run ({built.spec.name}): qtc play watches a "
                       "policy, so it needs an A3C run (e.g. of specs/cartpole.task or specs/minigrid_5x5.task)")
    net, env = built.nets["actor"], built.spec.env
    run = RunDir(path)
    exported = run.model_dir(model) / "actor.pt"
    if exported.is_file():
        state = torch.load(exported, map_location="cpu", weights_only=True)
        flat = torch.cat([state[name].reshape(-1) for name, _ in net.param_shapes])
        return flat, net, env.id, env.max_steps
    engine = run.engine_dir(model)
    if (engine / a3c_engine.POLICY).is_file():
        pol = a3c_engine.load_policy(engine)
        return pol["actor_flat"], pol["actor_net"], pol["env_id"], pol.get("max_episode_steps")
    found = sorted(p.name for p in (path / "a3c").glob("*") if (p / a3c_engine.POLICY).is_file())
    raise QtcError(f"no trained model '{model}' in {path}; trained: {', '.join(found) or 'none'}; "
                   "hint: --model diffqas, classical or fixed:K")


def play_model(rundir: Path | str, model: str = "diffqas", *, episodes: int = 1, seed: int = 0) -> int:
    """``qtc play RUNDIR --model M --episodes N --seed S``: print greedy episodes as text."""
    flat, net, env_id, max_steps = load_actor(rundir, model)
    text, rewards = a3c_engine.play(flat, net, env_id, episodes=episodes, seed=seed,
                             max_episode_steps=max_steps)
    print(text)
    print(f"{model} on {env_id}: mean reward {np.mean(rewards):.3f} over {len(rewards)} "
          f"episode(s): {', '.join(f'{r:.3f}' for r in rewards)}")
    return 0

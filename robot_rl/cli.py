"""The `robot-rl` command.

robot-rl train [hydra overrides]            train (sim by default); see configs/train.yaml
robot-rl train resume=true run_dir=<run>     continue a stopped or crashed run
robot-rl learner [--listen HOST:PORT] [overrides]
                                            the learner alone, serving actors over gRPC
robot-rl actor --learner HOST:PORT [overrides]
                                            an actor on a robot PC (or a sim worker); actor_id=N
robot-rl eval <run | weights.pt> [--episodes N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_DIR = Path(os.environ.get("ROBOT_RL_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))
USAGE = __doc__ or ""


def to_train_config(cfg: DictConfig) -> object:
    """Structured config -> TrainConfig; bad values fail here, before any process starts."""
    try:
        return OmegaConf.to_object(cfg)
    except (OmegaConfBaseException, ValueError) as err:
        raise SystemExit(f"config error: {err}") from err


def _run_app(command: str, argv: list[str]) -> None:
    """Compose the config with hydra, then run train, learner or actor on it."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from robot_rl.config import register_configs
    from robot_rl.runtime.net.client import TransportFailed
    from robot_rl.runtime.train import RunFailed

    register_configs()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        cfg.run_dir = HydraConfig.get().runtime.output_dir  # resolve ${now:...} once
        typed = to_train_config(cfg)
        try:
            if command == "train":
                from robot_rl.runtime.train import train

                train(typed)
            elif command == "learner":
                from robot_rl.runtime.learner_app import serve

                serve(typed)
            else:
                from robot_rl.runtime.actor_app import run_actor

                run_actor(typed)
        except (RunFailed, TransportFailed, OSError, ValueError, TimeoutError) as err:
            raise SystemExit(f"error: {err}") from err  # bad input or a dead peer: say what, no trace

    sys.argv = [f"{sys.argv[0]} {command}", *argv]
    _main()


def _network_overrides(command: str, argv: list[str]) -> list[str]:
    """`--learner HOST:PORT` / `--listen HOST:PORT` -> transport overrides; gRPC for both apps."""
    parser = argparse.ArgumentParser(prog=f"robot-rl {command}", add_help=False)
    flag = "--learner" if command == "actor" else "--listen"
    parser.add_argument(flag, dest="address")
    known, rest = parser.parse_known_args(argv)
    extra = ["transport.kind=grpc"]
    if known.address:
        extra.append(f"transport.{flag[2:]}={known.address}")
    return [*extra, *rest]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_overrides(argv: list[str]) -> list[str]:
    """For resume=true: the run's own overrides first, then today's (today's win per key)."""
    values = dict(a.split("=", 1) for a in argv if "=" in a)
    if values.get("resume", "false").lower() not in ("true", "1", "yes"):
        return argv
    if "run_dir" not in values:
        raise SystemExit("resume=true needs run_dir=<the run to continue>")
    saved = Path(values["run_dir"]) / ".hydra" / "overrides.yaml"
    if not saved.exists():
        raise SystemExit(f"{saved} not found: is {values['run_dir']} a robot-rl run folder?")
    now = {_key(a) for a in argv}
    kept = [o for o in OmegaConf.load(saved) if _key(o) not in now]
    return [*kept, *argv]


def load_run_config(run_dir: Path, extra: list[str] | None = None) -> object:
    """Compose a run's config from its saved overrides, as typed dataclasses."""
    from hydra import compose, initialize_config_dir

    from robot_rl.config import register_configs

    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.exists():
        raise SystemExit(f"{saved} not found: is {run_dir} a robot-rl run folder?")
    overrides = [o for o in OmegaConf.load(saved) if _key(o) not in ("resume",)]
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"run_dir={run_dir}", *(extra or [])])
    return to_train_config(cfg)


def _eval(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="robot-rl eval", description="Evaluate a trained policy.")
    parser.add_argument("target", help="a run folder, or a weights file inside one (weights/policy.pt)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=123_456)
    parser.add_argument(
        "--override", action="append", default=[], help="config override, e.g. env.randomize=false"
    )
    args = parser.parse_args(argv)

    from robot_rl.envs.factory import make_env
    from robot_rl.eval.rollout import run_episodes
    from robot_rl.runtime.setup import build_agent, set_torch_threads
    from robot_rl.runtime.transport import load_weights

    target = Path(args.target)
    weights = target / "weights" / "policy.pt" if target.is_dir() else target
    run_dir = target if target.is_dir() else weights.parent.parent
    if not weights.exists():
        raise SystemExit(f"no weights at {weights}")
    cfg = load_run_config(run_dir, args.override)
    set_torch_threads(cfg.torch_threads)
    env = make_env(cfg.env, seed=args.seed)
    agent = build_agent(cfg, env.observation_space, env.action_space, "cpu")
    version, state = load_weights(weights)
    agent.load_policy_state(state)
    print(f"evaluating weights v{version} from {weights} over {args.episodes} episodes", flush=True)
    summary = {
        "weights": str(weights),
        "weights_version": version,
        **run_episodes(env, agent, args.episodes, seed=args.seed),
    }
    print(
        f"success {summary['success_rate']:.2f} [{summary['success_ci_low']:.2f}, "
        f"{summary['success_ci_high']:.2f}] (95% Wilson) | episode length {summary['episode_length']:.1f}"
        f" | return {summary['return']:.2f} +- {summary['return_std']:.2f}"
    )
    print(json.dumps(summary))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "train":
        _run_app("train", resume_overrides(rest))
    elif command in ("learner", "actor"):
        _run_app(command, resume_overrides(_network_overrides(command, rest)))
    elif command == "eval":
        _eval(rest)
    else:
        raise SystemExit(f"unknown command '{command}'\n{USAGE}")


if __name__ == "__main__":
    main()

"""The `robot-rl` command.

robot-rl train [hydra overrides]            train (sim by default); see configs/train.yaml
robot-rl train resume=true run_dir=<run>     continue a stopped or crashed run
robot-rl learner [--listen HOST:PORT] [overrides]
                                            the learner alone, serving actors over gRPC
robot-rl actor --learner HOST:PORT [overrides]
                                            an actor on a robot PC (or a sim worker); actor_id=N
robot-rl fleet [fleet.workers=N] [fleet.address=local|auto|ray://HOST:PORT] [overrides]
                                            a learner and N sim actors as Ray actors (pip install ray)
robot-rl eval <run | weights.pt> [--episodes N]
robot-rl bringup CONFIG [key=value ...]      the robot PC's arm, camera (and twin task) nodes,
                                            e.g. configs/bringup/twin.yaml: the MuJoCo twin, no ROS
robot-rl record -o BAG [--topics TOPIC[:TYPE] ...] [--camera NAME] [--backend zenoh|rclpy]
                                            record ROS 2 topics into a rosbag2 bag (MCAP storage)
robot-rl record --recover BAG               make a bag whose recorder was killed readable
robot-rl mcap2zarr BAG STORE [--camera NAME[=TOPIC]] [--control-hz HZ] [...]
                                            convert a recording into a zarr episode store
robot-rl verify STORE [--drop-damaged]      check every chunk of an episode store; set damaged
                                            episodes aside (the original is kept) and keep the rest
robot-rl record-demos -o STORE [--episodes N] [--no-window] teleop=DEVICE [overrides]
                                            demos by hand: drive the env (env=sim | robot_twin |
                                            robot) with a teleop device; successful episodes go
                                            to STORE, for `robot-rl train demos=zarr demos.path=STORE`;
                                            a window shows the cameras (with a display)
robot-rl reward collect -o FRAMES.npz [--task T --cameras C ... | --store STORE]
                                            labelled frames: sim rollouts (the task's success) or
                                            an episode store's frames (its rewards)
robot-rl reward train FRAMES -o CLASSIFIER.pt
                                            a success classifier on them, with held-out metrics;
                                            `robot-rl train reward=classifier reward.path=CLASSIFIER.pt`
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

if TYPE_CHECKING:
    from robot_rl.data.mcap_convert import ConvertConfig
    from robot_rl.ros.transport import Transport

CONFIG_DIR = Path(os.environ.get("ROBOT_RL_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))
USAGE = __doc__ or ""


def to_train_config(cfg: DictConfig) -> object:
    """Structured config -> TrainConfig; bad values fail here, before any process starts."""
    try:
        return OmegaConf.to_object(cfg)
    except (OmegaConfBaseException, ValueError) as err:
        raise SystemExit(f"config error: {err}") from err


def _run_app(command: str, argv: list[str]) -> None:
    """Compose the config with hydra, then run train, learner, actor or fleet on it."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from robot_rl.config import register_configs
    from robot_rl.runtime.net.client import TransportFailed
    from robot_rl.runtime.run_folder import RunFailed

    register_configs()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # hydra made each job its own folder
            cfg.run_dir = HydraConfig.get().runtime.output_dir
        else:  # resolve ${now:...} once; the folder is made by the app once its start is checked
            cfg.run_dir = os.path.abspath(cfg.run_dir)
        typed = to_train_config(cfg)
        try:
            if command == "train":
                from robot_rl.runtime.train import train

                train(typed)
            elif command == "learner":
                from robot_rl.runtime.learner_app import serve

                serve(typed)
            elif command == "fleet":
                from robot_rl.runtime.fleet import run_fleet

                run_fleet(typed)
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
    """Compose a run's config from its saved overrides, as typed dataclasses. An extra override
    replaces the saved ones of its key and below it: `env=sim` drops the run's `env.*`, so a policy
    trained through the twin can be evaluated in the sim (and the other way round)."""
    from hydra import compose, initialize_config_dir

    from robot_rl.config import register_configs

    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.exists():
        raise SystemExit(f"{saved} not found: is {run_dir} a robot-rl run folder?")
    replaced = {_key(o) for o in extra or []} | {"resume"}

    def kept(override: str) -> bool:
        key = _key(override)
        return not any(key == r or key.startswith(r + ".") for r in replaced)

    overrides = [o for o in OmegaConf.load(saved) if kept(o)]
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

    from robot_rl.agents.base import make_agent
    from robot_rl.envs.factory import make_env
    from robot_rl.eval.rollout import run_episodes
    from robot_rl.runtime.process import set_torch_threads
    from robot_rl.runtime.progress import eval_summary_text
    from robot_rl.runtime.residual_base import with_base
    from robot_rl.runtime.transport import load_weights

    target = Path(args.target)
    weights = target / "weights" / "policy.pt" if target.is_dir() else target
    run_dir = target if target.is_dir() else weights.parent.parent
    if not weights.exists():
        raise SystemExit(f"no weights at {weights}")
    cfg = load_run_config(run_dir, args.override)
    set_torch_threads(cfg.torch_threads)
    env = with_base(cfg.agent, make_env(cfg.env, seed=args.seed))
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, seed=cfg.seed)
    version, state = load_weights(weights)
    agent.load_policy_state(state)
    print(f"evaluating weights v{version} from {weights} over {args.episodes} episodes", flush=True)
    try:
        episodes = run_episodes(env, agent, args.episodes, seed=args.seed)
    finally:
        env.close()  # a robot env's transport session would otherwise keep the process alive
    summary = {"weights": str(weights), "weights_version": version, **episodes}
    print(eval_summary_text(summary))
    print(json.dumps(summary))


def _print_now(line: str) -> None:
    print(line, flush=True)


def _record_parser() -> argparse.ArgumentParser:
    from robot_rl.ros.record import DEFAULT_TOPICS

    parser = argparse.ArgumentParser(
        prog="robot-rl record", description="Record ROS 2 topics into a rosbag2 bag (MCAP storage)."
    )
    parser.add_argument("-o", "--output", help="bag directory to create (never overwritten)")
    parser.add_argument(
        "--topics", nargs="+", default=list(DEFAULT_TOPICS), metavar="TOPIC[:TYPE]",
        help="topics to record; the robot stack's own need no type (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME",
        help="also /NAME/color/{image_raw,camera_info}",
    )
    parser.add_argument("--backend", choices=("zenoh", "rclpy"), default="zenoh")
    parser.add_argument("--connect", action="append", help="zenoh endpoint (default tcp/localhost:7447)")
    parser.add_argument("--listen", action="append", help="zenoh endpoint to listen on")
    parser.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0")))
    parser.add_argument("--distro", choices=("humble", "jazzy"), default="humble")
    parser.add_argument("--duration-s", type=float, help="stop after this long (default: at Ctrl-C)")
    parser.add_argument("--flush-every-s", type=float, default=1.0, help="most a SIGKILL can lose")
    parser.add_argument("--progress-every-s", type=float, default=5.0)
    parser.add_argument(
        "--recover", metavar="BAG", help="complete a bag whose recorder was killed, then exit"
    )
    return parser


def _record_transport(args: argparse.Namespace) -> Transport:
    """The transport a recording listens on: zenoh (rmw_zenoh's defaults) or rclpy."""
    from robot_rl.ros.connect import RosConfig, open_transport

    endpoints = {k: list(v) for k, v in (("connect", args.connect), ("listen", args.listen)) if v}
    ros = RosConfig(args.backend, args.domain_id, distro=args.distro, **endpoints)
    return open_transport(ros, "robot_rl_recorder")


def _record(argv: list[str]) -> None:
    """Record until Ctrl-C / SIGTERM / --duration-s, then close the bag; or --recover one."""
    from robot_rl.ros.record import Recorder, camera_topics, parse_topic, recover_bag, run_recorder

    parser = _record_parser()
    args = parser.parse_args(argv)
    if not args.recover and not args.output:
        parser.error("-o BAG is required")
    try:
        if args.recover:
            _print_now(recover_bag(args.recover, args.distro).line())
            return
        specs = [*args.topics, *(t for cam in args.camera for t in camera_topics(cam))]
        topics = [parse_topic(spec) for spec in specs]
        transport = _record_transport(args)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from err
    stop = threading.Event()
    try:
        recorder = Recorder(
            transport, args.output, topics, distro=args.distro, flush_every_s=args.flush_every_s
        )
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        _print_now(f"recording {len(topics)} topics to {args.output} (Ctrl-C to stop)")
        try:
            run_recorder(
                recorder, transport, stop, duration_s=args.duration_s,
                progress_every_s=args.progress_every_s, print_line=_print_now,
            )  # fmt: skip
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except (ValueError, OSError) as err:
        raise SystemExit(
            f"error: {err} (a bag left without metadata.yaml: robot-rl record --recover)"
        ) from err
    finally:
        transport.shutdown()


def _mcap2zarr_parser(defaults: ConvertConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-rl mcap2zarr",
        description="Convert a rosbag2 recording of the robot stack into a zarr episode store.",
    )
    parser.add_argument("bag", help="bag directory (metadata.yaml + .mcap)")
    parser.add_argument("store", help="episode store to create (never overwritten)")
    parser.add_argument(
        "--camera", action="append", default=[], metavar="NAME[=TOPIC]",
        help="a camera, stored as image_NAME; its topic defaults to /NAME/color/image_raw",
    )  # fmt: skip
    parser.add_argument(
        "--topic", action="append", default=[], metavar="ROLE=NAME",
        help="rename a topic; roles: joint_states, current_pose, gripper_state, target_pose, "
        "gripper_command, object_pose, success ('success=' for none)",
    )  # fmt: skip
    for flag in ("control_hz", "pos_scale", "episode_gap_s", "max_obs_age_s"):
        parser.add_argument(f"--{flag.replace('_', '-')}", type=float, default=getattr(defaults, flag))
    parser.add_argument("--n-joints", type=int, help="first N joints of joint_states (default: all)")
    parser.add_argument("--base-frame", default=defaults.base_frame)
    parser.add_argument("--distro", choices=("humble", "jazzy"), default=defaults.distro)
    parser.add_argument("--with-object", action="store_true", help="object_pose in the state")
    parser.add_argument("--intervened", action="store_true", help="mark the steps as human corrections")
    return parser


def _convert_config(args: argparse.Namespace) -> ConvertConfig:
    """ConvertConfig of the mcap2zarr arguments; ValueError naming a bad one."""
    from robot_rl.data.mcap_convert import ConvertConfig
    from robot_rl.ros.record import camera_topics

    cameras = dict(c.split("=", 1) if "=" in c else (c, camera_topics(c)[0]) for c in args.camera)
    renames = {}
    for item in args.topic:
        role, sep, name = item.partition("=")
        if not sep or not hasattr(ConvertConfig, f"{role}_topic"):
            raise ValueError(f"--topic takes ROLE=NAME with a known role, got {item!r}")
        renames[f"{role}_topic"] = name
    return ConvertConfig(
        control_hz=args.control_hz, pos_scale=args.pos_scale, episode_gap_s=args.episode_gap_s,
        max_obs_age_s=args.max_obs_age_s, cameras=cameras, with_object=args.with_object,
        n_joints=args.n_joints, intervened=args.intervened, base_frame=args.base_frame,
        distro=args.distro, **renames,
    )  # fmt: skip


def _mcap2zarr(argv: list[str]) -> None:
    from robot_rl.data.mcap_convert import ConvertConfig, mcap_to_zarr

    args = _mcap2zarr_parser(ConvertConfig()).parse_args(argv)
    try:
        summary = mcap_to_zarr(args.bag, args.store, _convert_config(args), print_line=_print_now)
    except (ValueError, FileExistsError) as err:  # BagError is a ValueError
        raise SystemExit(f"error: {err}") from err
    _print_now(summary.text())


def _verify(argv: list[str]) -> None:
    from robot_rl.data.integrity import drop_damaged, scan

    parser = argparse.ArgumentParser(prog="robot-rl verify", description="Check an episode store.")
    parser.add_argument("store", type=Path, help="a zarr episode store (e.g. RUN/replay.zarr)")
    parser.add_argument(
        "--drop-damaged", action="store_true",
        help="move the store aside unchanged and write one without the damaged episodes in its place",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.store.is_dir():
        raise SystemExit(f"error: {args.store} is not a folder: give the path of an episode store")
    try:
        report = scan(args.store)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from err
    _print_now(report.text())
    if not report.damages:
        return
    if not args.drop_damaged:
        how = f"`robot-rl verify {args.store} --drop-damaged` keeps the rest"
        raise SystemExit(f"{args.store} is damaged; {how}")
    aside, dropped = drop_damaged(args.store, report)
    _print_now(f"dropped {len(dropped)} damaged episodes; the original store is kept at {aside}")


def _record_demos(argv: list[str]) -> None:
    """Compose the env and teleop device like `train` does, then record (robot_rl/hil/record_demos.py)."""
    from hydra import compose, initialize_config_dir

    from robot_rl.config import register_configs
    from robot_rl.hil.record_demos import record_demos_to

    parser = argparse.ArgumentParser(
        prog="robot-rl record-demos",
        description="Record demos by hand with a teleop device; overrides as for train (env=, teleop=).",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="episode store to write or append to"
    )
    parser.add_argument("--episodes", type=int, default=10, help="successful episodes to save (default 10)")
    parser.add_argument("--max-attempts", type=int, help="stop after this many episodes, saved or not")
    parser.add_argument(
        "--no-window", action="store_true", help="no camera window (there is none without a display)"
    )
    args, overrides = parser.parse_known_args(argv)
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        parser.error(f"unknown option(s) {flags}; config overrides take the form key=value")
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, f"run_dir={args.output}"])
    except Exception as err:  # hydra's errors for an unknown group, option or key: say which, no trace
        raise SystemExit(f"config error: {err}") from err
    try:
        summary = record_demos_to(
            to_train_config(cfg), args.output, args.episodes, args.max_attempts, _print_now,
            window=not args.no_window,
        )  # fmt: skip
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from err
    _print_now(summary.text())
    if summary.saved:
        _print_now(f"train on them: robot-rl train demos=zarr demos.path={args.output}")
    if summary.stopped:  # fewer than asked: a script can tell
        raise SystemExit(1)


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
    elif command == "fleet":  # its actors and learner talk gRPC, as on separate machines
        _run_app("fleet", resume_overrides(["transport.kind=grpc", *rest]))
    elif command == "eval":
        _eval(rest)
    elif command == "bringup":
        from robot_rl.ros.bringup import main as bringup_main

        bringup_main(rest)
    elif command == "record":
        _record(rest)
    elif command == "mcap2zarr":
        _mcap2zarr(rest)
    elif command == "verify":
        _verify(rest)
    elif command == "record-demos":
        _record_demos(rest)
    elif command == "reward":
        from robot_rl.reward.commands import main as reward_main

        reward_main(rest)
    else:
        raise SystemExit(f"unknown command '{command}'\n{USAGE}")


if __name__ == "__main__":
    main()

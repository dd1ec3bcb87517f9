"""Structured configs: one dataclass per seam, registered in hydra's ConfigStore.

The env configs live in robot_rl/envs/config.py, the agents' in their modules (registered through
robot_rl.agents.base.AGENTS); this module adds the run's own and composes them into TrainConfig.

A wrong key or a wrong type fails at start-up with hydra's message naming it; values are
checked in __post_init__ so a bad value fails before any process starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from robot_rl.agents.base import agent_configs
from robot_rl.agents.dsrl import DsrlConfig
from robot_rl.envs.config import GymEnvConfig, RobotEnvConfig, SimEnvConfig
from robot_rl.hil.devices import teleop_configs
from robot_rl.reward.wrapper import RewardConfig


@dataclass
class DemoConfig:
    """Where demonstrations come from: a scripted policy, a zarr store, or nowhere."""

    source: str = "scripted"  # scripted | zarr | none
    num_episodes: int = 20
    policy: str | None = None  # "module:Class" taking (env); None: the sim task's expert
    path: str | None = None  # zarr store in the diffusion_policy layout
    only_successful: bool = True  # scripted demos that fail are re-drawn
    # clean: the scripted policy as it is; noisy: driven as a person with a SpaceMouse drives it
    # (slower, noisy, hesitating, overshooting; sim/human_style.py), seeded from the run's seed.
    style: str = "clean"
    # zarr datasets from elsewhere (diffusion_policy, LeRobot exports): their key -> ours, e.g.
    # {agent_pos: state, img: image_front}. Ours: state, image_<camera>, action. On the command
    # line: ++demos.key_map={agent_pos:state,img:image_front} (a dict field is set with ++).
    key_map: dict[str, str] = field(default_factory=dict)
    # Datasets without rewards: count each demo's last step as the success (reward 1, terminated).
    reward_last_step: bool = False

    def __post_init__(self) -> None:
        if self.source not in ("scripted", "zarr", "none"):
            raise ValueError(f"demos.source must be scripted, zarr or none, got '{self.source}'")
        if self.source == "zarr" and not self.path:
            raise ValueError("demos.source=zarr needs demos.path")
        if self.num_episodes < 0:
            raise ValueError(f"demos.num_episodes must be >= 0, got {self.num_episodes}")
        if self.style not in ("clean", "noisy"):
            raise ValueError(f"demos.style must be clean or noisy, got '{self.style}'")
        if self.style != "clean" and self.source == "zarr":
            raise ValueError("demos.style=noisy shapes scripted demos; with demos=zarr set demos.style=clean")


# a Ray cluster: this machine's own ("local"), the one this machine belongs to ("auto"), or Ray Client
_RAY_ADDRESS = re.compile(r"^(local|auto|ray://[^\s:/]+:\d{1,5})$")


@dataclass
class FleetConfig:
    """`robot-rl fleet`: a learner and `workers` sim actors as Ray actors (robot_rl/runtime/fleet.py).

    Each worker is an ordinary actor (`robot-rl actor`'s entry point) with actor id 0..workers-1,
    its own run folder (<run_dir>/workers/<id>) and the learner's token, over gRPC. Ray places
    them by the resources below and restarts a worker that dies; it resumes its own spool.
    """

    # local: a private Ray on this machine | auto: the running cluster this machine is part of |
    # ray://HOST:PORT: a remote cluster through Ray Client (the learner must listen beyond
    # loopback then: transport.listen=0.0.0.0:PORT)
    address: str = "local"
    workers: int = 2  # sim actors; at most transport.max_actors
    worker_cpus: float = 1.0  # Ray resources a worker asks for (placement, not a limit)
    worker_gpus: float = 0.0
    learner_cpus: float = 1.0
    learner_gpus: float = 0.0  # > 0 gives the learner a GPU (device=auto then uses it)
    max_restarts: int = 3  # times Ray restarts a worker that died; -1: without limit
    start_timeout_s: float = 300.0  # the learner must listen within this (demos are made first)

    def __post_init__(self) -> None:
        if not _RAY_ADDRESS.match(self.address):
            raise ValueError(f"fleet.address must be local, auto or ray://HOST:PORT, got '{self.address}'")
        if self.workers < 1:
            raise ValueError(f"fleet.workers must be >= 1, got {self.workers}")
        if min(self.worker_cpus, self.worker_gpus, self.learner_cpus, self.learner_gpus) < 0:
            raise ValueError("fleet.worker_cpus, worker_gpus, learner_cpus and learner_gpus must be >= 0")
        if self.max_restarts < -1:
            raise ValueError(f"fleet.max_restarts must be >= -1 (-1: without limit), got {self.max_restarts}")
        if not self.start_timeout_s > 0:
            raise ValueError(f"fleet.start_timeout_s must be > 0, got {self.start_timeout_s}")


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000
    demo_ratio: float = 0.5  # RLPD's symmetric sampling
    gamma: float = 0.99
    n_step: int = 3  # faster credit assignment for sparse rewards; learned pick_cube where 1 did not

    def __post_init__(self) -> None:
        if not 0.0 <= self.demo_ratio <= 1.0:
            raise ValueError(f"replay.demo_ratio must be in [0, 1], got {self.demo_ratio}")
        if not 0.0 < self.gamma <= 1.0 or self.n_step < 1 or self.capacity < 1:
            raise ValueError("replay needs 0 < gamma <= 1, n_step >= 1, capacity >= 1")


@dataclass
class TransportConfig:
    """Actor <-> learner.

    local: processes on one machine (bounded queue + weights file), what `robot-rl train` uses.
    grpc: `robot-rl learner` on the GPU box and `robot-rl actor --learner HOST:PORT` on each robot
    (robot_rl/runtime/net/). Both sides read the same config.
    """

    kind: str = "local"  # local | grpc
    queue_chunks: int = 256  # bounded: when full, transitions wait in the actor's episode store
    chunk_steps: int = 32  # most steps per message when catching up from the store
    # steps of the episode in progress sent together: the learner trains on whole episodes, so
    # this delays no learning, and a message per step cost the learner more than the step
    live_steps: int = 8
    # --- grpc ---
    listen: str = "127.0.0.1:50051"  # learner: where to listen; localhost unless set otherwise
    learner: str = "127.0.0.1:50051"  # actor: the learner's HOST:PORT
    # Every call carries this token. None: the learner writes a random one to
    # <run_dir>/transport_token (mode 600) and the actor reads token_file or ROBOT_RL_TOKEN.
    token: str | None = None
    token_file: str | None = None
    tls_cert: str | None = None  # learner: server certificate (PEM); enables TLS
    tls_key: str | None = None  # learner: its private key
    tls_ca: str | None = None  # actor: CA that signed the learner's certificate; learner: client CA
    tls_client_cert: str | None = None  # actor: client certificate, when the learner requires one
    tls_client_key: str | None = None
    require_client_cert: bool = False  # learner: mutual TLS
    call_timeout_s: float = 10.0  # deadline of every call (a chunk upload, a heartbeat, a connect)
    heartbeat_s: float = 1.0
    lost_after_s: float = 3.0  # no answer for this long: the link is lost, the actor spools
    # cap of gRPC's backoff between connection attempts (the only one): a learner back up is
    # found within about this long; an attempt is one TCP connect, cheap even every 0.5 s
    reconnect_max_s: float = 0.5
    when_lost: str = "act"  # act: keep acting on the latest weights | pause: wait for the learner
    connect_timeout_s: float = 300.0  # an actor waits this long for the learner's first weights
    max_message_mb: int = 64  # largest message either side accepts (weights, chunks)
    compression: str = "lz4"  # images on the wire: lz4 | zstd | none (lossless)
    max_actors: int = 4  # the learner serves at most this many actor ids (sizes its buffers)
    # actor: chunks sent on the stream before the first is acknowledged (a slow or distant link
    # wants more in flight); each has the call_timeout_s deadline for its acknowledgement
    chunks_in_flight: int = 4
    # actors on the learner's own host read one copy of the newest weights from shared memory
    # instead of each receiving a stream of them (net/shared_weights.py); false on either side:
    # stream to every actor
    shared_weights: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("local", "grpc"):
            raise ValueError(f"transport.kind must be local or grpc, got '{self.kind}'")
        if self.queue_chunks < 1 or self.chunk_steps < 1 or self.live_steps < 1:
            raise ValueError("transport.queue_chunks, chunk_steps and live_steps must be >= 1")
        for name in ("listen", "learner"):
            host, _, port = getattr(self, name).rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
                raise ValueError(f"transport.{name} must be HOST:PORT, got '{getattr(self, name)}'")
        if self.when_lost not in ("act", "pause"):
            raise ValueError(f"transport.when_lost must be act or pause, got '{self.when_lost}'")
        if self.compression not in ("lz4", "zstd", "none"):
            raise ValueError(f"transport.compression must be lz4, zstd or none, got '{self.compression}'")
        if min(self.call_timeout_s, self.heartbeat_s, self.reconnect_max_s, self.connect_timeout_s) <= 0:
            raise ValueError("transport timeouts and periods must be > 0")
        if self.lost_after_s <= self.heartbeat_s:
            raise ValueError("transport.lost_after_s must be longer than transport.heartbeat_s")
        if self.max_message_mb < 1 or self.max_actors < 1 or self.chunks_in_flight < 1:
            raise ValueError("transport.max_message_mb, max_actors and chunks_in_flight must be >= 1")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("transport.tls_cert and transport.tls_key go together")


@dataclass
class TrainConfig:
    env: Any = MISSING
    agent: Any = MISSING
    demos: DemoConfig = MISSING
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)  # robot-rl fleet only
    # A teleop device that can intervene while the actor collects (teleop=keyboard | spacemouse |
    # gamepad | sim_human | ros); None (teleop=none): the policy acts alone. robot_rl/hil/intervention.py
    teleop: Any = None
    # Where the collecting env's reward and episode end come from: reward=ground_truth (the env's
    # own) or reward=classifier reward.path=FILE (a learned success classifier: robot_rl/reward/)
    reward: RewardConfig = field(default_factory=RewardConfig)

    seed: int = 0
    total_env_steps: int = 10_000  # pick_cube reaches >= 0.9 well within this (benchmarks/RESULTS.md)
    random_steps: int = 0  # uniform random actions before the policy acts
    learning_starts: int = 256  # online+demo transitions before the first update
    weights_every_updates: int = 50  # how often the learner publishes weights
    checkpoint_every_updates: int = 2_000
    # ... and at least this often (seconds, written in the background): a killed learner loses
    # at most this much training
    checkpoint_every_s: float = 60.0
    # Sim only: the actor waits when it runs this many env steps ahead of what the learner has
    # trained on, so sim learning curves do not depend on the machine's speed (several actors, a
    # fleet: while the learner owes more than this many updates in all). A real robot is paced by
    # its clock: set null there and the actor never waits.
    max_actor_lead_steps: int | None = 200
    # Pace the sim actor at env.control_hz like a real robot (for timing and twin runs).
    realtime: bool = False
    eval_every_steps: int = 2_500
    eval_episodes: int = 10
    final_eval_episodes: int = 50
    torch_threads: int = 1  # per process; 2 threads on a 2-core box run far slower than 1
    device: str = "auto"  # learner device: auto | cpu | cuda | cuda:N
    # runs/<date>_<time>_<task or env id>, the id made safe for any filesystem (config.folder_name)
    run_dir: str = "runs/${now:%Y-%m-%d_%H-%M-%S}_${folder_name:${oc.select:env.task,${oc.select:env.id,env}}}"  # noqa: E501
    resume: bool = False  # continue the run in run_dir from its checkpoint and stores
    actor_id: int = 0  # `robot-rl actor`: this actor's id; each robot or sim worker needs its own
    progress: bool = True

    def __post_init__(self) -> None:
        if self.total_env_steps < 1:
            raise ValueError(f"total_env_steps must be >= 1, got {self.total_env_steps}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if self.weights_every_updates < 1 or self.checkpoint_every_updates < 1:
            raise ValueError("weights_every_updates and checkpoint_every_updates must be >= 1")
        if not self.checkpoint_every_s > 0:
            raise ValueError(f"checkpoint_every_s must be > 0 seconds, got {self.checkpoint_every_s}")
        if not 0 <= self.actor_id < 2**31:
            raise ValueError(f"actor_id must be >= 0, got {self.actor_id}")
        if isinstance(self.agent, DsrlConfig):
            demos = self.demos.source if isinstance(self.demos, DemoConfig) else "none"
            if demos != "none" or self.teleop is not None:
                raise ValueError(
                    "agent=dsrl acts in its base's noise space, and demos and teleop corrections are env "
                    f"actions: set demos=none and teleop=none (got demos={demos}, teleop="
                    f"{'none' if self.teleop is None else type(self.teleop).__name__})"
                )


def folder_name(text: str) -> str:
    """A name safe in every filesystem and shell: what is not a letter, digit, '.', '_' or '-'
    becomes '-' (`robot_rl/PickCube-v0` -> `robot_rl-PickCube-v0`, `pkg:task-v0` -> `pkg-task-v0`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", str(text)).strip(".-") or "run"


def register_configs() -> None:
    OmegaConf.register_new_resolver("folder_name", folder_name, replace=True)  # run_dir's default
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="env", name="sim", node=SimEnvConfig)
    cs.store(group="env", name="gym", node=GymEnvConfig)
    cs.store(group="env", name="robot", node=RobotEnvConfig)
    for name, config_cls in agent_configs().items():  # agent=sac | bc | ...: the agents' registry
        cs.store(group="agent", name=name, node=config_cls)
    cs.store(group="demos", name="scripted", node=DemoConfig())
    cs.store(group="demos", name="zarr", node=DemoConfig(source="zarr", path="???"))
    cs.store(group="demos", name="none", node=DemoConfig(source="none", num_episodes=0))
    # teleop=none is configs/teleop/none.yaml (teleop: null)
    for name, config_cls in teleop_configs().items():  # teleop=keyboard | ...: the devices' registry
        cs.store(group="teleop", name=name, node=config_cls)
    cs.store(group="reward", name="ground_truth", node=RewardConfig())
    cs.store(group="reward", name="classifier", node=RewardConfig(kind="classifier", path="???"))

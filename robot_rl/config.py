"""Structured configs: one dataclass per seam, registered in hydra's ConfigStore.

A wrong key or a wrong type fails at start-up with hydra's message naming it; values are
checked in __post_init__ so a bad value fails before any process starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from robot_rl.agents.bc import BCConfig
from robot_rl.agents.sac import SACConfig
from robot_rl.envs.robot_env import RobotEnvConfig


@dataclass
class DomainRandomizationConfig:
    """sim/randomize.py's ranges as lists (hydra's form), drawn at every reset; defaults: off.

    e.g. env.domain_randomization.mass_scale=[0.8,1.2] env.domain_randomization.latency_steps=[0,25]
    ++env.domain_randomization.camera_pos_m={front:0.02} (a dict field is set with ++)
    """

    mass_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # x task objects' mass
    friction_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # table, object, fingers
    latency_steps: list[int] = field(default_factory=lambda: [0, 0])  # physics steps, 2 ms each at 500 Hz
    camera_pos_m: dict[str, float] = field(default_factory=dict)  # {camera: +-m per axis}
    camera_rot_rad: dict[str, float] = field(default_factory=dict)  # {camera: most turn, rad}
    light_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # x diffuse and ambient
    light_pos_m: float = 0.0  # +-m per axis, every light

    def __post_init__(self) -> None:
        self.to_sim()  # a bad range fails here, named, before any env is built

    def to_sim(self) -> Any:
        """The sim's DomainRandomization (None when every range is off: the scene as built)."""
        from sim.randomize import DomainRandomization

        dr = DomainRandomization(
            mass_scale=tuple(self.mass_scale),
            friction_scale=tuple(self.friction_scale),
            latency_steps=tuple(self.latency_steps),
            camera_pos_m=dict(self.camera_pos_m),
            camera_rot_rad=dict(self.camera_rot_rad),
            light_scale=tuple(self.light_scale),
            light_pos_m=self.light_pos_m,
        )
        return dr if dr.enabled else None


@dataclass
class SimEnvConfig:
    """A MuJoCo task from sim/ (see sim.tasks.make_sim_env)."""

    kind: str = "sim"
    task: str = "pick_cube"
    control_hz: float = 10.0
    physics_hz: float = 500.0
    privileged: bool = True  # object poses in the state; the pixel route sets false
    cameras: list[str] = field(default_factory=list)  # e.g. [wrist, front]
    image_size: list[int] = field(default_factory=lambda: [64, 64])
    rotation: bool = False
    max_episode_steps: int | None = None  # None: the task's default
    arm_xml: str | None = None  # an external MJCF arm (e.g. MuJoCo Menagerie's panda)
    randomize: bool = True  # start placement (objects, ee); domain_randomization: the scene itself
    domain_randomization: DomainRandomizationConfig = field(default_factory=DomainRandomizationConfig)

    def __post_init__(self) -> None:
        if self.control_hz <= 0 or self.physics_hz < self.control_hz:
            raise ValueError(f"need 0 < control_hz <= physics_hz, got {self.control_hz}, {self.physics_hz}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"env.image_size must be [height, width] >= 8, got {self.image_size}")


@dataclass
class GymEnvConfig:
    """Any registered gymnasium env with Box or Dict observations and a Box action space."""

    kind: str = "gym"
    id: str = MISSING  # e.g. Hopper-v5
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None


@dataclass
class DemoConfig:
    """Where demonstrations come from: a scripted policy, a zarr store, or nowhere."""

    source: str = "scripted"  # scripted | zarr | none
    num_episodes: int = 20
    policy: str | None = None  # "module:Class" taking (env); None: the sim task's expert
    path: str | None = None  # zarr store in the diffusion_policy layout
    only_successful: bool = True  # scripted demos that fail are re-drawn
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
    reconnect_max_s: float = 5.0  # backoff cap between reconnect attempts
    when_lost: str = "act"  # act: keep acting on the latest weights | pause: wait for the learner
    connect_timeout_s: float = 300.0  # an actor waits this long for the learner's first weights
    max_message_mb: int = 64  # largest message either side accepts (weights, chunks)
    compression: str = "lz4"  # images on the wire: lz4 | zstd | none (lossless)
    max_actors: int = 4  # the learner serves at most this many actor ids (sizes its buffers)

    def __post_init__(self) -> None:
        if self.kind not in ("local", "grpc"):
            raise ValueError(f"transport.kind must be local or grpc, got '{self.kind}'")
        if self.queue_chunks < 1 or self.chunk_steps < 1:
            raise ValueError("transport.queue_chunks and transport.chunk_steps must be >= 1")
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
        if self.max_message_mb < 1 or self.max_actors < 1:
            raise ValueError("transport.max_message_mb and transport.max_actors must be >= 1")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("transport.tls_cert and transport.tls_key go together")


@dataclass
class TrainConfig:
    env: Any = MISSING
    agent: Any = MISSING
    demos: DemoConfig = MISSING
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)

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
    # trained on, so sim learning curves do not depend on the machine's speed. A real robot is
    # paced by its clock: set null there and the actor never waits.
    max_actor_lead_steps: int | None = 200
    # Pace the sim actor at env.control_hz like a real robot (for timing and twin runs).
    realtime: bool = False
    eval_every_steps: int = 2_500
    eval_episodes: int = 10
    final_eval_episodes: int = 50
    torch_threads: int = 1  # per process; 2 threads on a 2-core box run far slower than 1
    device: str = "auto"  # learner device: auto | cpu | cuda | cuda:N
    run_dir: str = "runs/${now:%Y-%m-%d_%H-%M-%S}_${oc.select:env.task,${oc.select:env.id,env}}"
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


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="env", name="sim", node=SimEnvConfig)
    cs.store(group="env", name="gym", node=GymEnvConfig)
    cs.store(group="env", name="robot", node=RobotEnvConfig)
    cs.store(group="agent", name="sac", node=SACConfig)
    cs.store(group="agent", name="bc", node=BCConfig)
    cs.store(group="demos", name="scripted", node=DemoConfig())
    cs.store(group="demos", name="zarr", node=DemoConfig(source="zarr", path="???"))
    cs.store(group="demos", name="none", node=DemoConfig(source="none", num_episodes=0))

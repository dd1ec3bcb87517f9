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
    randomize: bool = True

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
    """Actor <-> learner. `local`: processes on one machine (bounded queue + weights file)."""

    kind: str = "local"
    queue_chunks: int = 256  # bounded: when full, transitions wait in the actor's episode store
    chunk_steps: int = 32  # most steps per message when catching up from the store

    def __post_init__(self) -> None:
        if self.kind != "local":
            raise ValueError(f"transport.kind '{self.kind}' is not available; use 'local'")
        if self.queue_chunks < 1 or self.chunk_steps < 1:
            raise ValueError("transport.queue_chunks and transport.chunk_steps must be >= 1")


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
    progress: bool = True

    def __post_init__(self) -> None:
        if self.total_env_steps < 1:
            raise ValueError(f"total_env_steps must be >= 1, got {self.total_env_steps}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if self.weights_every_updates < 1 or self.checkpoint_every_updates < 1:
            raise ValueError("weights_every_updates and checkpoint_every_updates must be >= 1")


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="env", name="sim", node=SimEnvConfig)
    cs.store(group="env", name="gym", node=GymEnvConfig)
    cs.store(group="agent", name="sac", node=SACConfig)
    cs.store(group="agent", name="bc", node=BCConfig)
    cs.store(group="demos", name="scripted", node=DemoConfig())
    cs.store(group="demos", name="zarr", node=DemoConfig(source="zarr", path="???"))
    cs.store(group="demos", name="none", node=DemoConfig(source="none", num_episodes=0))

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Array(_message.Message):
    __slots__ = ("key", "dtype", "shape", "data", "codec")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    key: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    codec: str
    def __init__(self, key: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., codec: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("actor_id", "session", "seq", "episode_start", "rows", "ends_episode", "final_obs", "rerecorded")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EPISODE_START_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ENDS_EPISODE_FIELD_NUMBER: _ClassVar[int]
    FINAL_OBS_FIELD_NUMBER: _ClassVar[int]
    RERECORDED_FIELD_NUMBER: _ClassVar[int]
    actor_id: int
    session: str
    seq: int
    episode_start: int
    rows: _containers.RepeatedCompositeFieldContainer[Array]
    ends_episode: bool
    final_obs: _containers.RepeatedCompositeFieldContainer[Array]
    rerecorded: bool
    def __init__(self, actor_id: _Optional[int] = ..., session: _Optional[str] = ..., seq: _Optional[int] = ..., episode_start: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[Array, _Mapping]]] = ..., ends_episode: _Optional[bool] = ..., final_obs: _Optional[_Iterable[_Union[Array, _Mapping]]] = ..., rerecorded: _Optional[bool] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "actor_id", "spaces", "host", "incarnation", "recorded")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SPACES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    actor_id: int
    spaces: str
    host: str
    incarnation: str
    recorded: int
    def __init__(self, protocol_version: _Optional[int] = ..., actor_id: _Optional[int] = ..., spaces: _Optional[str] = ..., host: _Optional[str] = ..., incarnation: _Optional[str] = ..., recorded: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("protocol_version", "session", "next_seq", "weights_version", "learner_run", "chunk_stream", "shared_weights", "shared_key")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEARNER_RUN_FIELD_NUMBER: _ClassVar[int]
    CHUNK_STREAM_FIELD_NUMBER: _ClassVar[int]
    SHARED_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SHARED_KEY_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    session: str
    next_seq: int
    weights_version: int
    learner_run: str
    chunk_stream: bool
    shared_weights: str
    shared_key: str
    def __init__(self, protocol_version: _Optional[int] = ..., session: _Optional[str] = ..., next_seq: _Optional[int] = ..., weights_version: _Optional[int] = ..., learner_run: _Optional[str] = ..., chunk_stream: _Optional[bool] = ..., shared_weights: _Optional[str] = ..., shared_key: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("accepted", "next_seq")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    next_seq: int
    def __init__(self, accepted: _Optional[bool] = ..., next_seq: _Optional[int] = ...) -> None: ...

class WeightsRequest(_message.Message):
    __slots__ = ("actor_id", "session", "have_version", "have_incarnation", "shared")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    HAVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    HAVE_INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    actor_id: int
    session: str
    have_version: int
    have_incarnation: str
    shared: bool
    def __init__(self, actor_id: _Optional[int] = ..., session: _Optional[str] = ..., have_version: _Optional[int] = ..., have_incarnation: _Optional[str] = ..., shared: _Optional[bool] = ...) -> None: ...

class Weights(_message.Message):
    __slots__ = ("version", "payload", "run", "incarnation", "shared")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    version: int
    payload: bytes
    run: str
    incarnation: str
    shared: bool
    def __init__(self, version: _Optional[int] = ..., payload: _Optional[bytes] = ..., run: _Optional[str] = ..., incarnation: _Optional[str] = ..., shared: _Optional[bool] = ...) -> None: ...

class ActorStats(_message.Message):
    __slots__ = ("env_steps", "episodes", "success_last20", "last_return", "policy_version", "backlog", "queue_depth", "reconnects", "backpressure_events", "done")
    ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_LAST20_FIELD_NUMBER: _ClassVar[int]
    LAST_RETURN_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    env_steps: int
    episodes: int
    success_last20: float
    last_return: float
    policy_version: int
    backlog: int
    queue_depth: int
    reconnects: int
    backpressure_events: int
    done: bool
    def __init__(self, env_steps: _Optional[int] = ..., episodes: _Optional[int] = ..., success_last20: _Optional[float] = ..., last_return: _Optional[float] = ..., policy_version: _Optional[int] = ..., backlog: _Optional[int] = ..., queue_depth: _Optional[int] = ..., reconnects: _Optional[int] = ..., backpressure_events: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("actor_id", "session", "stats")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    actor_id: int
    session: str
    stats: ActorStats
    def __init__(self, actor_id: _Optional[int] = ..., session: _Optional[str] = ..., stats: _Optional[_Union[ActorStats, _Mapping]] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("weights_version", "next_seq", "trained_through", "learner_done")
    WEIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TRAINED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    LEARNER_DONE_FIELD_NUMBER: _ClassVar[int]
    weights_version: int
    next_seq: int
    trained_through: int
    learner_done: bool
    def __init__(self, weights_version: _Optional[int] = ..., next_seq: _Optional[int] = ..., trained_through: _Optional[int] = ..., learner_done: _Optional[bool] = ...) -> None: ...

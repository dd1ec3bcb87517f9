"""What crosses the wire decodes to what was sent, and anything malformed is refused by name."""

import json
import os
import struct

import gymnasium as gym
import numpy as np
import pytest
import torch
from numcodecs import Blosc

from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.codec import (
    KeyCompression,
    WireError,
    decode_array,
    decode_chunk,
    encode_array,
    encode_chunk,
    frame_chunk,
    parse_chunk,
    spaces_json,
    split_weights_message,
    weights_from_message,
    weights_message,
)
from robot_rl.runtime.transport import TransitionChunk, WeightsId
from robot_rl.transition import STEP_KEYS

LIMIT = 2**20
H, W = 12, 16


def _rows(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "state": rng.standard_normal((n, 3)).astype(np.float32),
        "image_wrist": rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "policy_action": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "terminated": np.zeros(n, bool),
        "truncated": rng.random(n) < 0.5,
        "intervened": rng.random(n) < 0.5,
        "policy_version": np.arange(n, dtype=np.int64) * 3,
        "t_obs": 1.7e9 + np.arange(n, dtype=np.float64) / 10,
    }


def _final(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "state": rng.standard_normal(3).astype(np.float32),
        "image_wrist": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
    }


def _msg(rows: dict[str, np.ndarray], final=None, seq: int = 10, start: int = 8) -> pb.Chunk:
    return encode_chunk(TransitionChunk(3, seq, start, rows, final), "s", "lz4")


# ---------------------------------------------------------------- arrays and chunks
@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.float32).reshape(4, 3) / 7,
        np.array([True, False, True]),
        np.array([-(2**62), 0, 2**62], dtype=np.int64),
        np.array([np.pi, -np.e, 1e300]),
        np.arange(6, dtype=np.int32),
        np.zeros((0, 3), np.float32),
    ],
    ids=["float32", "bool", "int64", "float64", "int32", "empty"],
)
def test_array_round_trip(value):
    arr = encode_array("x", value, "lz4")
    assert arr.codec == ""  # only images are compressed
    out = decode_array(arr, LIMIT)
    assert out.dtype == value.dtype and out.shape == value.shape
    np.testing.assert_array_equal(out, value)


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_image_round_trip(compression):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, H, W, 3), dtype=np.uint8)
    images[:, : H // 2] = 0  # a compressible half
    arr = encode_array("image_wrist", images, compression)
    assert arr.codec == ("" if compression == "none" else compression)
    if compression != "none":
        assert len(arr.data) < images.nbytes
    np.testing.assert_array_equal(decode_array(arr, LIMIT), images)


def test_big_endian_arrives_little_endian():
    value = np.arange(4, dtype=">f4")
    arr = encode_array("x", value, "none")
    assert arr.dtype == "<f4"
    np.testing.assert_array_equal(decode_array(arr, LIMIT), value)


@pytest.mark.parametrize("final", [None, {}, "obs"], ids=["mid-episode", "ends-without-obs", "ends"])
def test_chunk_round_trip(final):
    rows = _rows(6)
    final_obs = _final() if final == "obs" else final
    chunk = decode_chunk(_msg(rows, final_obs), LIMIT)
    assert (chunk.actor_id, chunk.seq, chunk.episode_start, len(chunk)) == (3, 10, 8, 6)
    assert chunk.ends_episode == (final is not None)
    assert set(chunk.rows) == set(rows)
    for key, value in rows.items():
        assert chunk.rows[key].dtype == value.dtype
        np.testing.assert_array_equal(chunk.rows[key], value)
    if final == "obs":
        for key, value in final_obs.items():
            np.testing.assert_array_equal(chunk.final_obs[key], value)
    else:
        assert chunk.final_obs == final_obs


def test_rerecord_flag_round_trips_and_needs_the_episode_end():
    """The re-record flag rides on the chunk that ends its episode; a peer without the field
    sends false; a flag on a chunk that ends nothing is refused."""
    ended = TransitionChunk(3, 10, 8, _rows(2), _final(), rerecorded=True)
    assert decode_chunk(encode_chunk(ended, "s", "lz4"), LIMIT).rerecorded is True
    assert decode_chunk(_msg(_rows(2), _final()), LIMIT).rerecorded is False
    msg = _msg(_rows(2))
    msg.rerecorded = True
    with pytest.raises(WireError, match="re-recorded but does not end it"):
        decode_chunk(msg, LIMIT)


# ---------------------------------------------------------------- malformed arrays
def test_object_dtype_refused():
    arr = pb.Array(key="state", dtype="|O", shape=[1], data=b"\0" * 8)
    with pytest.raises(WireError, match=r"'state': dtype '\|O' is not allowed"):
        decode_array(arr, LIMIT)


def test_big_endian_dtype_string_refused():
    arr = pb.Array(key="state", dtype=">f4", shape=[1], data=b"\0" * 4)
    with pytest.raises(WireError, match="not allowed"):
        decode_array(arr, LIMIT)


@pytest.mark.parametrize("n_bytes", [11, 13, 0])
def test_data_length_must_match_shape(n_bytes):
    arr = pb.Array(key="state", dtype="<f4", shape=[3], data=b"\0" * n_bytes)
    with pytest.raises(WireError, match=rf"'state': {n_bytes} bytes for shape \(3,\) <f4"):
        decode_array(arr, LIMIT)


@pytest.mark.parametrize("shape", [[-1, 3], [1, 1, 1, 1, 1, 1]])
def test_bad_shape_refused(shape):
    with pytest.raises(WireError, match="bad shape"):
        decode_array(pb.Array(key="x", dtype="<f4", shape=shape, data=b""), LIMIT)


def test_array_over_the_size_limit_refused_before_decoding():
    arr = pb.Array(key="image_wrist", dtype="|u1", shape=[1024, 1024, 3], data=b"", codec="lz4")
    with pytest.raises(WireError, match=r"3145728 bytes decoded is over the 1048576 limit"):
        decode_array(arr, LIMIT)


def test_unknown_codec_refused():
    arr = pb.Array(key="image_wrist", dtype="|u1", shape=[1, 2, 2, 3], data=b"\0" * 12, codec="gzip")
    with pytest.raises(WireError, match="unknown array codec 'gzip'"):
        decode_array(arr, LIMIT)


def _compressed(value: np.ndarray, shape: tuple[int, ...], data: bytes | None = None) -> pb.Array:
    """An lz4 image array that claims `shape`, carrying `value` compressed (or `data`)."""
    blosc = Blosc(cname="lz4", clevel=5, shuffle=Blosc.NOSHUFFLE)
    payload = data if data is not None else bytes(blosc.encode(value))
    return pb.Array(key="image_wrist", dtype="|u1", shape=list(shape), data=payload, codec="lz4")


def test_garbage_compressed_bytes_refused():
    with pytest.raises(WireError, match="'image_wrist'"):
        decode_array(_compressed(None, (1, 4, 4, 3), os.urandom(200)), LIMIT)


@pytest.mark.parametrize("cname", ["lz4", "zstd"])
def test_garbage_behind_a_valid_header_refused(cname):
    blosc = Blosc(cname=cname, clevel=5, shuffle=Blosc.NOSHUFFLE)
    payload = bytes(blosc.encode(np.zeros(4800, np.uint8)))
    body = np.random.default_rng(0).bytes(len(payload) - 16)
    arr = pb.Array(
        key="image_wrist", dtype="|u1", shape=[100, 4, 4, 3], data=payload[:16] + body, codec=cname
    )
    with pytest.raises(WireError, match=f"'image_wrist': {cname} data does not decode"):
        decode_array(arr, LIMIT)


def test_compression_bomb_refused():
    """1 MB of zeros compresses to a few KB; the shape allows 48 bytes."""
    with pytest.raises(WireError, match="'image_wrist'"):
        decode_array(_compressed(np.zeros(2**20, np.uint8), (1, 4, 4, 3)), LIMIT)


def test_compressed_payload_shorter_than_its_shape_refused():
    """Announcing fewer bytes than the shape would leave part of the image uninitialised memory."""
    with pytest.raises(WireError, match="'image_wrist'"):
        decode_array(_compressed(np.full(24, 7, np.uint8), (1, 4, 4, 3)), LIMIT)


@pytest.mark.parametrize("cut", [1, 5, 40])
@pytest.mark.parametrize("compressible", [True, False])
def test_truncated_compressed_payload_refused(cut, compressible):
    """Blosc trusts its header: a short buffer must not be read past its end."""
    rng = np.random.default_rng(0)
    value = np.zeros(48, np.uint8) if compressible else rng.integers(0, 256, 48, dtype=np.uint8)
    arr = _compressed(value, (1, 4, 4, 3))
    arr.data = arr.data[: max(0, len(arr.data) - cut)]
    with pytest.raises(WireError, match="'image_wrist'"):
        decode_array(arr, LIMIT)


def test_compressed_payload_with_trailing_bytes_refused():
    arr = _compressed(np.zeros(48, np.uint8), (1, 4, 4, 3))
    arr.data += b"tail"
    with pytest.raises(WireError, match="'image_wrist'"):
        decode_array(arr, LIMIT)


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_empty_image_array_round_trip(compression):
    value = np.zeros((0, H, W, 3), np.uint8)
    out = decode_array(encode_array("image_wrist", value, compression), LIMIT)
    assert out.shape == value.shape and out.dtype == np.uint8


# ---------------------------------------------------------------- malformed chunks
@pytest.mark.parametrize("key", ["state", *STEP_KEYS])
def test_chunk_missing_key_refused(key):
    rows = _rows(3)
    del rows[key]
    with pytest.raises(WireError, match=rf"chunk rows lack \['{key}'\]"):
        decode_chunk(_msg(rows), LIMIT)


def test_chunk_unknown_key_refused():
    rows = _rows(3) | {"secret_sauce": np.zeros(3, np.float32)}
    with pytest.raises(WireError, match=r"unknown keys \['secret_sauce'\]"):
        decode_chunk(_msg(rows), LIMIT)


def test_chunk_rows_of_different_lengths_refused():
    rows = _rows(3)
    rows["reward"] = rows["reward"][:2]
    with pytest.raises(WireError, match=r"share one length >= 1, got \[2, 3\]"):
        decode_chunk(_msg(rows), LIMIT)


def test_chunk_of_scalars_refused():
    rows = {k: v[0] for k, v in _rows(1).items()}
    with pytest.raises(WireError, match="share one length"):
        decode_chunk(_msg(rows), LIMIT)


def test_chunk_of_zero_steps_refused():
    with pytest.raises(WireError, match="share one length >= 1"):
        decode_chunk(_msg({k: v[:0] for k, v in _rows(2).items()}), LIMIT)


def test_chunk_row_key_twice_refused():
    msg = _msg(_rows(2))
    msg.rows.append(msg.rows[0])
    with pytest.raises(WireError, match="twice"):
        decode_chunk(msg, LIMIT)


@pytest.mark.parametrize(("seq", "start"), [(3, 4), (-1, -1)])
def test_chunk_seq_before_its_episode_refused(seq, start):
    with pytest.raises(WireError, match="inconsistent"):
        decode_chunk(_msg(_rows(2), seq=seq, start=start), LIMIT)


def test_final_obs_keys_must_match_the_rows():
    final = _final()
    del final["image_wrist"]
    with pytest.raises(WireError, match=r"final observation keys \['state'\] do not match"):
        decode_chunk(_msg(_rows(2), final), LIMIT)
    with pytest.raises(WireError, match="final observation keys"):
        decode_chunk(_msg(_rows(2), _final() | {"image_other": _final()["image_wrist"]}), LIMIT)


def test_final_obs_shapes_must_match_the_rows():
    final = _final() | {"state": np.zeros(4, np.float32)}
    with pytest.raises(WireError, match="final observation shapes"):
        decode_chunk(_msg(_rows(2), final), LIMIT)


def test_malformed_array_inside_a_chunk_names_it():
    msg = _msg(_rows(2))
    msg.rows[1].data = msg.rows[1].data[:-1]
    with pytest.raises(WireError, match=f"array '{msg.rows[1].key}'"):
        decode_chunk(msg, LIMIT)


# ---------------------------------------------------------------- weights
SOURCE = WeightsId("run-a", "one")


def _wire(policy: dict[str, torch.Tensor], version: int = 7) -> tuple[pb.Weights, dict[str, torch.Tensor]]:
    """A policy through the wire and back, as the actor receives it (a fresh bytes object)."""
    head, payload = split_weights_message(bytes(weights_message(version, SOURCE, policy)))
    return head, weights_from_message(payload)


def test_weights_round_trip_every_dtype_and_shape():
    policy = {
        "encoder.weight": torch.randn(4, 3),
        "head.bias": torch.arange(2.0, dtype=torch.float64),
        "steps": torch.tensor(5),  # 0-d int64
        "base_id": torch.tensor([3, 250], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "half": torch.randn(3, 5).to(torch.bfloat16),
        "empty": torch.zeros(0, 4),
    }
    head, out = _wire(policy, version=42)
    assert (head.version, head.run, head.incarnation) == (42, "run-a", "one")
    assert list(out) == list(policy)
    for key, value in policy.items():
        assert out[key].dtype == value.dtype and out[key].shape == value.shape
        assert torch.equal(out[key], value), key


def test_weights_are_read_in_place_aligned_and_load_into_a_module():
    net = torch.nn.Sequential(torch.nn.Linear(300, 64), torch.nn.Linear(64, 3))
    data = bytes(weights_message(1, SOURCE, net.state_dict()))
    _, payload = split_weights_message(data)
    out = weights_from_message(payload)
    start = np.frombuffer(data, np.uint8).ctypes.data
    for t in out.values():  # views of the bytes that arrived: no copy, each aligned for its dtype
        assert start <= t.data_ptr() < start + len(data) and t.data_ptr() % 16 == 0
    copy = torch.nn.Sequential(torch.nn.Linear(300, 64), torch.nn.Linear(64, 3))
    copy.load_state_dict(out)
    assert all(
        torch.equal(a, b) for a, b in zip(copy.state_dict().values(), net.state_dict().values(), strict=True)
    )


def test_weights_detached_and_contiguous():
    w = torch.randn(3, 4, requires_grad=True)
    _, out = _wire({"w": w.t()})
    assert not out["w"].requires_grad and out["w"].is_contiguous()
    assert torch.equal(out["w"], w.detach().t())


def test_a_dtype_the_wire_does_not_carry_is_refused_at_the_learner():
    with pytest.raises(ValueError, match="'z' has dtype complex64"):
        weights_message(1, SOURCE, {"z": torch.zeros(2, dtype=torch.complex64)})


def _payload(table: object, data: bytes = b"", pad: int = 0, magic: bytes = b"RRLW") -> memoryview:
    text = table if isinstance(table, bytes) else json.dumps(table).encode()
    return memoryview(struct.pack("<4sII", magic, len(text), pad) + text + bytes(pad) + data)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (memoryview(b"RRL"), "shorter than its header"),
        (_payload([], magic=b"PK\x03\x04"), "not robot-rl weights"),
        (_payload([], pad=10)[:-5], "table runs past its end"),
        (_payload(b"[not json"), "table does not parse"),
        (_payload({"w": 1}), "table is not a list"),
        (_payload([["w", "float32", [2]]]), "is not \\[name, dtype"),
        (_payload([["w", "object", [2], 0, 8]], bytes(8)), "is not \\[name, dtype"),
        (_payload([["w", "float32", [-2], 0, 8]], bytes(8)), "malformed shape"),
        (_payload([["w", "float32", [2], 0, 4]], bytes(8)), "do not hold a float32 tensor"),
        (_payload([["w", "float32", [2], 4, 8]], bytes(8)), "runs past the payload's end"),
        (_payload([["w", "float32", [1], 0, 4], ["w", "float32", [1], 4, 4]], bytes(8)), "appears twice"),
    ],
    ids=[
        "short",
        "magic",
        "short-table",
        "json",
        "not-list",
        "short-row",
        "dtype",
        "shape",
        "size",
        "past-end",
        "twice",
    ],
)
def test_malformed_weights_refused_naming_what(payload, match):
    with pytest.raises(WireError, match=match):
        weights_from_message(payload)


def test_weights_message_is_protobufs_own_and_splits_without_copying_the_payload():
    data = weights_message(7, SOURCE, {"w": torch.arange(300.0)})  # > 127 bytes: a multi-byte length
    parsed = pb.Weights.FromString(data)
    assert (parsed.version, parsed.run, parsed.incarnation) == (7, "run-a", "one")
    head, view = split_weights_message(data)
    assert (head.version, head.run, head.incarnation, head.payload) == (7, "run-a", "one", b"")
    assert isinstance(view, memoryview) and view.obj is data and view == parsed.payload  # a view, no copy
    # protobuf's own serialisation (any field order) splits the same way
    head, view = split_weights_message(
        pb.Weights(version=7, payload=parsed.payload, run="r").SerializeToString()
    )
    assert (head.version, head.run, bytes(view)) == (7, "r", parsed.payload)
    assert torch.equal(weights_from_message(view)["w"], torch.arange(300.0))  # copied where unaligned


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x08", "cut off"),  # a varint field without its value
        (b"\x12\x05ab", "runs past the end"),  # a payload announcing more bytes than arrived
        (b"\x0b", "wire type 3"),  # a group: not in this protocol
        (b"\x1a\x02\xff\xfe", "does not parse"),  # run: not UTF-8
    ],
    ids=["cut-varint", "short-payload", "group", "bad-string"],
)
def test_malformed_weights_message_refused(data, match):
    with pytest.raises(WireError, match=match):
        split_weights_message(data)


# ---------------------------------------------------------------- spaces
def test_spaces_json_names_the_env():
    box = gym.spaces.Box(-1, 1, (2,), np.float32)
    obs = gym.spaces.Dict(
        {
            "state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            "images": gym.spaces.Dict({"wrist": gym.spaces.Box(0, 255, (H, W, 3), np.uint8)}),
        }
    )
    same = gym.spaces.Dict({"images": obs["images"], "state": obs["state"]})  # other key order
    assert spaces_json(obs, box) == spaces_json(same, box)
    assert spaces_json(obs, box) != spaces_json(obs, gym.spaces.Box(-1, 1, (3,), np.float32))
    assert '"shape": [12, 16, 3]' in spaces_json(obs, box)


# ---------------------------------------------------------------- framed chunks, as the transport sends them
@pytest.mark.parametrize("final", [None, {}, "obs"], ids=["mid-episode", "ends-without-obs", "ends"])
def test_a_framed_chunk_is_protobufs_own_and_parses_back_without_copies(final):
    rows = _rows(6)
    rows["state"] = rows["state"].astype(">f4")  # arrives little-endian all the same
    final_obs = _final() if final == "obs" else final
    chunk = TransitionChunk(3, 10, 8, rows, final_obs, rerecorded=final is not None)
    data = frame_chunk(chunk, "s", KeyCompression("lz4"))
    for parsed in (pb.Chunk.FromString(data), parse_chunk(data)):  # an older learner, and ours
        out = decode_chunk(parsed, LIMIT)
        assert (out.actor_id, out.seq, out.episode_start, out.rerecorded) == (3, 10, 8, final is not None)
        assert out.ends_episode == (final is not None) and set(out.rows) == set(rows)
        for key, value in rows.items():
            np.testing.assert_array_equal(out.rows[key], value, err_msg=key)
        if final == "obs":
            for key, value in final_obs.items():
                np.testing.assert_array_equal(out.final_obs[key], value, err_msg=key)
        else:
            assert out.final_obs == final_obs
    wire = parse_chunk(data)
    assert wire.size == len(data) and all(a.data.obj is data for a in wire.rows)  # views, not copies
    assert not decode_chunk(wire, LIMIT).rows["reward"].flags.writeable  # read in place


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x28", "cut off"),  # ends_episode without its value
        (b"\x2a\x10abc", "runs past the end"),  # a row announcing more bytes than arrived
        (b"\x2a\x02\x22\x05", "runs past the end"),  # an array's data cut short
        (b"\x12\x02\xff\xfe", "does not parse"),  # session: not UTF-8
    ],
    ids=["cut-varint", "short-row", "short-data", "bad-string"],
)
def test_malformed_framed_chunk_refused(data, match):
    with pytest.raises(WireError, match=match):
        parse_chunk(data)


def _camera(n: int, noisy: bool) -> np.ndarray:
    """A smooth gradient (compresses well), or sensor noise (does not)."""
    if noisy:
        return np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return np.broadcast_to(np.arange(32, dtype=np.uint8)[None, :, None, None] * 4, (n, 32, 32, 3)).copy()


def _codecs(compression: KeyCompression, rows: dict[str, np.ndarray]) -> dict[str, str]:
    data = frame_chunk(TransitionChunk(0, 0, 0, rows), "s", compression)
    return {a.key: a.codec for a in parse_chunk(data).rows}


def test_compression_is_chosen_per_camera_by_the_ratio_it_achieves():
    compression = KeyCompression("lz4", min_saving=0.1, retry_every=3)
    rows = {"image_smooth": _camera(4, noisy=False), "image_noisy": _camera(4, noisy=True), **_rows(4)}
    first = _codecs(compression, rows)  # the noisy camera is tried once, found not worth it
    assert first["image_smooth"] == "lz4" and first["image_noisy"] == ""
    assert all(first[k] == "" for k in rows if not k.startswith("image_"))  # never compressed
    assert not compression.compresses("image_noisy") and compression.compresses("image_smooth")
    for _ in range(3):  # sent raw without trying, for retry_every chunks ...
        assert _codecs(compression, rows)["image_noisy"] == ""
    assert compression.compresses("image_noisy")  # ... until it is tried again
    rows["image_noisy"] = _camera(4, noisy=False)  # the scene changed: it compresses now
    assert _codecs(compression, rows) == first | {"image_noisy": "lz4"}


def test_no_compression_configured_sends_every_camera_raw():
    rows = {"image_smooth": _camera(4, noisy=False), **_rows(4)}
    assert set(_codecs(KeyCompression("none"), rows).values()) == {""}
    with pytest.raises(ValueError, match="min_saving"):
        KeyCompression("lz4", min_saving=1.0)

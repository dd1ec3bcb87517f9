"""`robot-rl reward collect` and `robot-rl reward train`: labelled frames, then a classifier.

    robot-rl reward collect -o frames.npz --task pick_cube --cameras wrist front --episodes 120
    robot-rl reward collect -o frames.npz --store demos.zarr      # labels from a store's rewards
    robot-rl reward train frames.npz -o classifier.pt              # + classifier_confusion.png
    robot-rl train env=pick_cube_pixels reward=classifier reward.path=classifier.pt

Neither overwrites a file: frames and classifiers are recordings of their own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_rl.reward.classifier import ENCODERS
from robot_rl.reward.train import TrainSettings

USAGE = """robot-rl reward collect -o FRAMES.npz [--task T --cameras C ... --episodes N | --store STORE ...]
robot-rl reward train FRAMES [FRAMES ...] -o CLASSIFIER.pt [--steps N] [--fpr-target R|--threshold P] [...]"""


def _new_file(path: Path, suffix: str) -> Path:
    if path.suffix != suffix:
        raise SystemExit(f"error: {path} must end in {suffix}")
    if path.exists():
        raise SystemExit(f"error: {path} exists; give a new path (it is never overwritten)")
    return path


def _collect(argv: list[str]) -> None:
    from robot_rl.reward.dataset import collect_sim_frames, concat, frames_from_store, save_frames

    parser = argparse.ArgumentParser(
        prog="robot-rl reward collect",
        description="Labelled frames for a success classifier: sim rollouts labelled by the task's "
        "success check, or an episode store's frames labelled by its rewards (--store).",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="frames file to write (.npz)")
    parser.add_argument("--task", default="pick_cube", help="sim task (default %(default)s)")
    parser.add_argument("--cameras", nargs="+", help="sim: default wrist front; --store: default all")
    parser.add_argument("--image-size", nargs=2, type=int, default=[64, 64], metavar=("H", "W"))
    parser.add_argument("--episodes", type=int, default=60, help="sim episodes (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", action="append", type=Path, help="an episode store; repeat for more")
    args = parser.parse_args(argv)
    out = _new_file(args.output, ".npz")
    try:
        if args.store:
            frames = concat([frames_from_store(s, args.cameras) for s in args.store])
        else:
            cameras = args.cameras or ["wrist", "front"]
            frames = collect_sim_frames(
                args.task, cameras, tuple(args.image_size), args.episodes, args.seed, log=_print
            )
        save_frames(out, frames)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from err
    _print(f"{out}: {frames.summary()}")
    _print(f"train a classifier on them: robot-rl reward train {out} -o classifier.pt")


def _train_parser() -> argparse.ArgumentParser:
    d = TrainSettings()
    parser = argparse.ArgumentParser(
        prog="robot-rl reward train",
        description="Train a success classifier on labelled frames; report its held-out metrics.",
    )
    parser.add_argument("frames", nargs="+", type=Path, help="frames files (.npz) or episode stores")
    parser.add_argument("-o", "--output", required=True, type=Path, help="classifier file to write (.pt)")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--held-out", type=float, default=d.held_out, help="fraction of episodes held out")
    parser.add_argument("--shift-pad", type=int, default=d.shift_pad, help="random shift, pixels (0: none)")
    parser.add_argument(
        "--threshold", type=float, help="a fixed P(success) of a positive frame (default: calibrated)"
    )
    parser.add_argument(
        "--fpr-target", type=float, default=d.fpr_target,
        help="false-positive rate the calibrated threshold allows on the validation episodes",
    )  # fmt: skip
    parser.add_argument(
        "--validation", type=float, default=d.validation,
        help="fraction of the not held-out episodes the threshold is calibrated on",
    )  # fmt: skip
    parser.add_argument(
        "--hard-negatives", type=float, default=d.hard_negatives,
        help="fraction of a batch's failure frames drawn from the frames next to a success",
    )  # fmt: skip
    parser.add_argument("--encoder", choices=ENCODERS, default="conv")
    parser.add_argument(
        "--resnet-weights", help="resnet18: a torchvision weights file; the trunk is then frozen"
    )
    parser.add_argument("--feature-dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device)
    return parser


def _train(argv: list[str]) -> None:
    from robot_rl.eval.plots import plot_confusion
    from robot_rl.reward.classifier import save_classifier
    from robot_rl.reward.dataset import concat, load_frames
    from robot_rl.reward.train import metrics_text, train_classifier

    args = _train_parser().parse_args(argv)
    out = _new_file(args.output, ".pt")
    try:
        settings = TrainSettings(
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, held_out=args.held_out,
            shift_pad=args.shift_pad, threshold=args.threshold, fpr_target=args.fpr_target,
            validation=args.validation, hard_negatives=args.hard_negatives, seed=args.seed,
            device=args.device,
        )  # fmt: skip
        frames = concat([load_frames(p) for p in args.frames])
        _print(f"frames: {frames.summary()}")
        spec = {
            "encoder": args.encoder, "feature_dim": args.feature_dim,
            "resnet_frozen": args.resnet_weights is not None,  # a random trunk is trained, not frozen
        }  # fmt: skip
        classifier = train_classifier(frames, settings, spec, args.resnet_weights, log=_print)
        save_classifier(out, classifier)
    except (ValueError, OSError) as err:  # ClassifierError is a ValueError
        raise SystemExit(f"error: {err}") from err
    held_out = classifier.metrics["held_out"]
    picture = plot_confusion(
        held_out["confusion"], out.with_name(out.stem + "_confusion.png"),
        title=f"held out: {held_out['frames']} frames, threshold {classifier.threshold}",
    )  # fmt: skip
    _print(f"held out: {metrics_text(held_out)}")
    _print(f"train:    {metrics_text(classifier.metrics['train'])}")
    _print(f"wrote {out} and {picture}")
    h, w = frames.image_size
    _print(
        f"use it: robot-rl train reward=classifier reward.path={out} "
        f"env.cameras=[{','.join(frames.cameras)}] env.image_size=[{h},{w}]"
    )
    _print(json.dumps({"held_out": held_out}))


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "collect":
        _collect(rest)
    elif command == "train":
        _train(rest)
    else:
        raise SystemExit(f"unknown command 'reward {command}'\n{USAGE}")

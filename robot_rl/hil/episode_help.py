"""How much a person helped in one episode: the figures a person training a robot needs.

    intervened       steps the person's command was executed (their effort, in env steps)
    takeovers        separate intervention segments (each time the person took the arm anew)
    unaided_success  1.0 when the episode succeeded with no intervened step, else 0.0
    rerecorded       1.0 when the person pressed re-record (the episode is kept out of training)

The actor counts each episode with EpisodeHelp and posts the figures with the episode's other
statistics; the progress display (runtime/progress.py) turns them into rates over recent episodes.
"""

from __future__ import annotations


class EpisodeHelp:
    """Counts one episode's interventions, step by step; reset() before the next episode."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps = 0  # intervened steps
        self.takeovers = 0
        self._acting = False  # the person acted on the previous step

    def add(self, intervened: bool) -> None:
        """One step; intervened: the person's command was executed this step."""
        if intervened and not self._acting:
            self.takeovers += 1
        self.steps += int(intervened)
        self._acting = bool(intervened)

    def stats(self, success: bool, rerecorded: bool = False) -> dict[str, float]:
        """The episode's figures (see the module docstring), given how it ended."""
        unaided = bool(success) and self.steps == 0
        return {
            "intervened": self.steps,
            "takeovers": self.takeovers,
            "unaided_success": float(unaided),
            "rerecorded": float(rerecorded),
        }

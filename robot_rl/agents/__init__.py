"""Learning algorithms: one per module (sac, bc), built by name with make_agent."""

from robot_rl.agents.base import make_agent

__all__ = ["make_agent"]

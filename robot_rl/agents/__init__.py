"""Learning algorithms: one per module (sac, bc), registered in agents/base.py and built with make_agent."""

from robot_rl.agents.base import make_agent

__all__ = ["make_agent"]

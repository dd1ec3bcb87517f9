"""MuJoCo simulation: the tasks (sim.tasks), their scripted experts, the twin and the simulated
arm and camera drivers. Importing sim registers every task with gymnasium (robot_rl/<Task>-v0)."""

from sim import tasks  # noqa: F401  (registers the gymnasium ids)

"""A learned reward: a success classifier on the camera images, trained from labelled frames.

- `dataset`: labelled frames from sim rollouts (ground-truth success) or episode stores (rewards).
- `classifier`: the model, its checkpoint (cameras, image size, threshold, metrics) and the debounce.
- `train`: balanced batches with near-success failure frames, random-shift augmentation, a
  threshold calibrated on validation episodes, a held-out split by episode, the metrics.
- `wrapper`: `reward=classifier`: the classifier as an env's reward and episode end.
- `commands`: `robot-rl reward collect` and `robot-rl reward train`.
On a robot, `robot_rl/ros/nodes/reward_node.py` publishes the classifier's verdict as the task's
success topic.
"""

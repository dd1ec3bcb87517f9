"""ROS 2 nodes written against `robot_rl.ros.transport`, so each runs on rclpy, zenoh or in-process.

- `camera_node`: a Camera driver's frames as Image + CameraInfo (realsense-ros topic names).
- `arm_node`: an Arm driver's state out, safety-filtered pose / twist commands in
  (crisp_controllers topic names), watchdog, e-stop and hold services.
- `reward_node`: a success classifier (robot_rl/reward/) on the camera images, as `task/success`.
"""

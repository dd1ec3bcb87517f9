"""ROS 2 without rclpy on the build machines.

- `codec`: standard ROS 2 messages as CDR (rosbags' typestore) and numpy helpers in robot terms.
- `transport`: the protocol nodes are written against, QoS presets, transport errors.
- backends: `inproc` (unit tests), `zenoh_backend` (rmw_zenoh's wire format, no ROS 2 needed),
  `rclpy_backend` (a ROS 2 install). Import the one you use; each pulls in only its own middleware.
"""

"""ROS-free core of the Int-Ball stack: frames, dynamics, allocation, control, guidance,
estimation and vision. Never imports rclpy or pybullet."""

__version__ = "0.1.0"

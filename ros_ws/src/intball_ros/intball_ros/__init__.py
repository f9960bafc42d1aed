"""Thin rclpy nodes, the launcher and the `intball` command line."""

"""PyBullet simulation of the Kibo pressurized module, the robot and its sensors."""

"""Onboard end of the link: the robot's side of the ground station.

``OnboardBridge`` receives uplink bytes from the link, passes them through the
:class:`~intball_teleop.link.protocol.CommandGate` (HMAC, at most once, expiry), executes
accepted commands against a :class:`RobotBackend` (the ROS graph through
``intball_ros.nodes.bridge_node``, or the kinematic stand-in of ``kinematic.py``), reports
their progress as signed acks, and sends telemetry and camera frames down at limited rates.
The LOS supervisor runs here, on ground-contact age alone: the robot's safety never waits
for the ground.

Nothing here touches ROS; the backend is the only door to the robot. Downlink messages:
JSON objects (``"t": "ack"`` from the gate, ``"t": "tm"`` telemetry) or a camera frame
(``camera.py``) or a chunk of a camera-task file (``files.py``).

| module | what |
| --- | --- |
| ``backend.py`` | the ``RobotBackend`` protocol (``Waypoint``, ``Done``) |
| ``bridge.py`` | ``OnboardBridge``, ``OnboardConfig``: gate, acks, the ticks |
| ``handlers.py`` | immediate commands (e-stop, stop, route pause / resume, keep-out edits, ...) |
| ``periodic.py`` | the LOS supervisor tick and the telemetry message |
| ``motion.py`` | motion commands as ``Motion`` records (goal, jog, dock, route, camera task), refusals |
| ``executor.py`` | ``MotionExecutor``: motion queue, routes (pause, resume, LOS suspension), acks |
| ``camera.py`` | camera frame format and the onboard camera stream |
| ``task_files.py`` | camera-task images downlinked as files |
"""

from .backend import Done, RobotBackend, Waypoint
from .bridge import OnboardBridge, OnboardConfig
from .camera import CAMERA_MAGIC, decode_camera_frame, encode_camera_frame

__all__ = [
    "CAMERA_MAGIC",
    "Done",
    "OnboardBridge",
    "OnboardConfig",
    "RobotBackend",
    "Waypoint",
    "decode_camera_frame",
    "encode_camera_frame",
]

"""Camera tasks of the main camera, ROS-free (issue #4): the cores the ``camera_task`` action
will call.

- ``pointing``: look-at attitude (target on the optical axis, defined roll)
- ``inspect``: standoff pose in front of a named rack bay, validated against keep-in
- ``survey``: capture plans covering a rack face, coverage check, stitch / mosaic / tile
- ``snapshot``: PNG + JSON sidecar (time, poses, K, resolution), atomic writes
- ``recording``: MJPG AVI or JPEG frame folder, rate limiter for the ground link
- ``reading``: ArUco and QR codes with 3D position and covariance in the kibo frame

See docs/camera_tasks.md.
"""

from intball_nav.camera_tasks.inspect import InspectPlan, plan_inspect
from intball_nav.camera_tasks.pointing import LookAt, PointingError, look_at, look_at_along, pointing_error
from intball_nav.camera_tasks.reading import CodeReading, ReaderConfig, config_for_map, read_codes
from intball_nav.camera_tasks.recording import RateLimiter, RecordingInfo, VideoRecorder, encode_preview
from intball_nav.camera_tasks.snapshot import SnapshotMeta, load_snapshot, resize_image, save_snapshot
from intball_nav.camera_tasks.survey import (
    StitchResult,
    SurveyPlan,
    coverage,
    plan_face_survey,
    plan_rotation_survey,
    stitch_images,
    tile_images,
)

__all__ = [
    "CodeReading",
    "InspectPlan",
    "LookAt",
    "PointingError",
    "RateLimiter",
    "ReaderConfig",
    "RecordingInfo",
    "SnapshotMeta",
    "StitchResult",
    "SurveyPlan",
    "VideoRecorder",
    "config_for_map",
    "coverage",
    "encode_preview",
    "load_snapshot",
    "look_at",
    "look_at_along",
    "plan_face_survey",
    "plan_inspect",
    "plan_rotation_survey",
    "pointing_error",
    "read_codes",
    "resize_image",
    "save_snapshot",
    "stitch_images",
    "tile_images",
]

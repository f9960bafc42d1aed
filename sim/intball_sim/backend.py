"""PyBullet backend: the robot as a rigid body in the Kibo module, driven by 8 fan commands.

One PyBullet client per backend, DIRECT mode, zero gravity. The robot is a single-body
multibody (collision sphere) whose mass and inertia are those of ``RobotParams`` (parsed
from ``intball2.urdf``; checked by tests against PyBullet's own dynamics info). The fans
are not bodies: per physics step the backend takes the exact mean fan thrust over the step
(the first-order lag of :func:`intball_nav.dynamics.fan_step`, vectorised over the steps of
one call), adds seeded thrust noise, forms the net wrench with the allocation matrix
(= ``body_wrench``) and applies it once at the CoM (force and torque in the world frame),
together with cabin-air drag on the velocity relative to the ventilation airflow
(:mod:`intball_nav.airflow`) and angular drag.

Integration: PyBullet's semi-implicit Euler at ``physics_hz`` (default 200 Hz; headless
runs use 100 Hz). The only differences from the analytic model are the integrator's own:
position and attitude lead the exact solution by about (v - v0) h / 2 and (w - w0) h / 2
(h = physics step). Measured over 20 s of varied commands at 200 Hz: < 0.5 mm, < 0.15 deg
at body rates up to 0.7 rad/s (``tests/test_sim_backend_agreement.py``).

Speed (2-core AMD EPYC, shared, CPU time): one ``step`` of 20 ms at 100 Hz physics in the
physics-only module costs ~40 us: 2 x ~5 us ``stepSimulation`` (the static walls use
maximal coordinates), 2 x ~4 us of other PyBullet calls (forces, contacts, state), ~8 us
of fan lag, noise and wrench arithmetic (kept to a few numpy operations on (n, 8) arrays).

Time: :meth:`PyBulletBackend.step` advances the requested dt with a fixed-step
accumulator: as many whole physics steps as fit; a remainder carries over to the next
call, so any caller rate works (50, 62.5, 100 Hz) and ``sim_time`` is always a whole number
of physics steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from intball_nav.dynamics import FanState, RigidBodyState
from intball_nav.frames import quat_conjugate, quat_from_rotmat, quat_multiply, rotmat_from_quat
from intball_nav.module import ModuleGeometry
from intball_nav.robot import NUM_FANS, RobotParams

DEFAULT_PHYSICS_HZ = 200.0
"""Physics rate, Hz. 50 and 100 Hz callers map to whole steps; 62.5 Hz uses the accumulator."""
AIRFLOW_HZ = 10.0
"""Hz, rate at which the (slowly varying) ventilation airflow is sampled at the robot."""
NOISE_BATCH = 4096
"""Thrust-noise draws (of 8 fans) pre-drawn at a time."""
CONTACT_DISTANCE = 5e-4
"""m: a contact point counts as touching when its signed distance is below this."""


@dataclass(frozen=True)
class Contact:
    """One contact point between the robot and another body (a module wall).

    body_id : PyBullet body id of the other body
    position : (3,) m, kibo frame, contact point on the other body
    normal : (3,) unit, kibo frame, from the other body toward the robot
    normal_force : N, >= 0
    """

    body_id: int
    position: np.ndarray
    normal: np.ndarray
    normal_force: float


@dataclass(frozen=True)
class CollisionEvent:
    """The start of a contact episode with the colliders (walls, dock, keep-out boxes).

    t : s, sim time; body_id : the collider pushing hardest at first touch; name : the names
    of all colliders touched then, joined by "+" (``str(id)`` if unnamed); position : (3,) m,
    kibo frame, robot CoM at first touch
    """

    t: float
    body_id: int
    name: str
    position: np.ndarray


class PyBulletBackend:
    """Ground-truth simulator of the free flyer in the Kibo module.

    robot : robot parameters (mass, inertia, fans, drag)
    module : module geometry; the walls are built by ``intball_sim.world.build_world``
    seed : seeds thrust noise and airflow (same seed + same commands -> same trajectory)
    airflow : apply the ventilation airflow of ``intball_nav.airflow`` (else still air)
    thrust_noise : add per-fan thrust noise (sigma ``robot.fan_noise_sigma``)
    world : build the module (walls, markers); False = free space (tests, model checks)
    physics_hz : physics step rate, Hz
    render : create an ``intball_sim.camera.Renderer`` (``self.renderer``) on this client
        before the world is built (EGL needs that order)
    prefer_egl : the Renderer uses the EGL plugin when it loads (else TinyRenderer)
    visuals : build the wall textures and the fiducial markers (for cameras); False gives a
        physics-only world (headless runs: ~3x faster physics steps, faster start-up)
    """

    def __init__(
        self,
        robot: RobotParams,
        module: ModuleGeometry | None,
        *,
        seed: int,
        airflow: bool = True,
        thrust_noise: bool = True,
        world: bool = True,
        physics_hz: float = DEFAULT_PHYSICS_HZ,
        render: bool = False,
        prefer_egl: bool = True,
        visuals: bool = True,
    ) -> None:
        if not 10.0 <= physics_hz <= 10000.0:
            raise ValueError(f"physics_hz must be in [10, 10000] Hz, got {physics_hz}")
        self.robot = robot
        self.module = module
        self.seed = seed
        self.physics_dt = 1.0 / physics_hz
        self._rng = np.random.default_rng(seed)
        self._noise_on = thrust_noise and robot.fan_noise_sigma > 0.0
        # Noise is held over ~one fan time constant so its effect does not depend on physics_hz.
        self._noise_hold = max(1, round(robot.fan_tau / self.physics_dt))
        self._noise_table = np.zeros((0, NUM_FANS))
        self._noise_base = 0
        self._per_n: dict[int, tuple[np.ndarray, float]] = {}
        self._air_next = 0.0

        self._client = p.connect(p.DIRECT)
        if self._client < 0:
            raise RuntimeError("cannot start a PyBullet DIRECT client")
        cid = self._client
        p.resetSimulation(physicsClientId=cid)
        p.setGravity(0.0, 0.0, 0.0, physicsClientId=cid)
        p.setPhysicsEngineParameter(
            fixedTimeStep=self.physics_dt, numSubSteps=0, deterministicOverlappingPairs=1, physicsClientId=cid
        )
        self.robot_id = self._create_robot_body()

        self.world = None
        self.renderer = None
        self._collider_names: dict[int, str] = {}
        if render:
            from intball_sim.camera import Renderer  # noqa: PLC0415 - before the world (EGL textures)

            self.renderer = Renderer(cid, prefer_egl=prefer_egl)
        if world:
            if module is None:
                raise ValueError("world=True needs the module geometry")
            from intball_nav.module import MarkerMap, load_marker_map  # noqa: PLC0415
            from intball_sim.world import build_world  # noqa: PLC0415

            # Without cameras the markers (~150 visual-only bodies) are useless but would still
            # cost PyBullet ~0.3 us each per physics step: physics-only runs leave them out.
            markers = load_marker_map() if visuals else MarkerMap("none", ())
            self.world = build_world(cid, module, markers, textures=visuals)
            self._collider_names = {b: self.world.names.get(b, str(b)) for b in self.world.colliders}

        self._airflow = None
        if airflow:
            from intball_nav import airflow as airflow_mod  # noqa: PLC0415

            self._airflow = _make_airflow(airflow_mod, seed, module)

        # Cached per-step constants. _B_pb maps thrusts to the wrench in PyBullet's base
        # (inertial) frame: the allocation matrix (= body_wrench), rotated if the inertia
        # is not diagonal in base_link.
        R_ib = rotmat_from_quat(self._q_body_inertial).T
        rot6 = np.zeros((6, 6))
        rot6[:3, :3] = rot6[3:, 3:] = R_ib
        self._B_pb = rot6 @ np.asarray(robot.allocation_matrix, dtype=float)
        self._fan_min = float(robot.fan_min)
        self._fan_max = float(robot.fan_max)
        self._decay = math.exp(-self.physics_dt / robot.fan_tau)
        self._mean_factor = robot.fan_tau / self.physics_dt * (1.0 - self._decay)

        self._fans = FanState(thrust=np.zeros(NUM_FANS))
        self._steps = 0
        self._requested = 0.0
        self._in_contact: frozenset[int] = frozenset()
        self._contacts: list[Contact] = []
        self.collision_events: list[CollisionEvent] = []
        self._air = np.zeros(3)
        self._imu_span: tuple | None = None
        self._state_cache: RigidBodyState | None = None
        self._raw: tuple | None = None
        self.reset(RigidBodyState(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]), np.zeros(3), np.zeros(3)))

    # ----------------------------------------------------------------- set-up helpers
    def _create_robot_body(self) -> int:
        """Sphere with the params' mass and inertia (principal axes as the inertial frame)."""
        cid = self._client
        inertia = np.asarray(self.robot.inertia, dtype=float)
        evals, evecs = np.linalg.eigh(inertia)
        if np.allclose(inertia, np.diag(np.diag(inertia)), rtol=0.0, atol=1e-12):
            diag, q_body_inertial = np.diag(inertia).copy(), np.array([0.0, 0.0, 0.0, 1.0])
        else:
            if np.linalg.det(evecs) < 0.0:
                evecs[:, 2] *= -1.0
            diag, q_body_inertial = evals, quat_from_rotmat(evecs)
        # PyBullet reports the pose of the inertial frame; identity unless inertia is non-diagonal.
        self._q_body_inertial = q_body_inertial
        self._principal = not np.allclose(q_body_inertial, [0.0, 0.0, 0.0, 1.0])
        col = p.createCollisionShape(p.GEOM_SPHERE, radius=self.robot.radius, physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_SPHERE, radius=self.robot.radius, rgbaColor=[0.95, 0.95, 0.95, 1.0], physicsClientId=cid
        )
        body = p.createMultiBody(
            baseMass=self.robot.mass,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            baseInertialFramePosition=[0.0, 0.0, 0.0],
            baseInertialFrameOrientation=q_body_inertial.tolist(),
            physicsClientId=cid,
        )
        # PyBullet's multibody default damping (0.04) would add unmodelled drag: switch it off.
        p.changeDynamics(
            body,
            -1,
            localInertiaDiagonal=diag.tolist(),
            linearDamping=0.0,
            angularDamping=0.0,
            lateralFriction=0.3,
            restitution=0.5,
            physicsClientId=cid,
        )
        return body

    # ----------------------------------------------------------------- public API
    @property
    def client_id(self) -> int:
        """PyBullet client id (for a camera Renderer sharing this world)."""
        return self._client

    @property
    def sim_time(self) -> float:
        """Simulated time since the last reset, s (a whole number of physics steps)."""
        return self._steps * self.physics_dt

    @property
    def fan_thrust(self) -> np.ndarray:
        """(8,) N, current (lagged, noise-free) fan thrusts."""
        return self._fans.thrust.copy()

    @property
    def collision_count(self) -> int:
        """Number of contact episodes with colliders (walls, dock, keep-out boxes) since reset."""
        return len(self.collision_events)

    def reset(self, state: RigidBodyState) -> None:
        """Place the robot at ``state``, fans at zero thrust, sim time and collision log cleared."""
        q = np.asarray(state.quat, dtype=float)
        q_pb = quat_multiply(q, self._q_body_inertial) if self._principal else q
        omega_world = rotmat_from_quat(q) @ np.asarray(state.omega, dtype=float)
        self._state_cache = None
        self._raw = None
        cid, rid = self._client, self.robot_id
        p.resetBasePositionAndOrientation(
            rid, np.asarray(state.position, dtype=float).tolist(), q_pb.tolist(), physicsClientId=cid
        )
        p.resetBaseVelocity(
            rid, np.asarray(state.velocity, dtype=float).tolist(), omega_world.tolist(), physicsClientId=cid
        )
        self._fans = FanState(thrust=np.zeros(NUM_FANS))
        self._noise_table = np.zeros((0, NUM_FANS))
        self._noise_base = 0
        self._air_next = 0.0
        self._steps = 0
        self._requested = 0.0
        self._in_contact = frozenset()
        self._contacts = []
        self.collision_events = []
        self._imu_span = None

    def step(self, fan_command: np.ndarray, dt: float) -> None:
        """Advance by dt (s) holding the fan command (8,) N (clipped to the fan limits)."""
        if not dt >= 0.0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        cmd_arr = np.asarray(fan_command, dtype=float)
        if cmd_arr.shape != (NUM_FANS,) or not math.isfinite(cmd_arr.sum()):
            raise ValueError(f"fan_command must be {NUM_FANS} finite thrusts in N, got {fan_command!r}")
        cmd = np.minimum(np.maximum(cmd_arr, self._fan_min), self._fan_max)
        self._requested += dt
        n = int(math.floor(self._requested / self.physics_dt + 1e-6)) - self._steps
        if n <= 0:
            return
        self._state_cache = None
        cid, rid, h = self._client, self.robot_id, self.physics_dt
        get_pose, get_vel, get_mat = (
            p.getBasePositionAndOrientation,
            p.getBaseVelocity,
            p.getMatrixFromQuaternion,
        )
        apply_f, apply_t, step_sim = p.applyExternalForce, p.applyExternalTorque, p.stepSimulation
        get_contacts, world_frame = p.getContactPoints, p.WORLD_FRAME
        if self._airflow is not None and self.sim_time >= self._air_next:
            # The ventilation flow varies over minutes and metres: sampled at AIRFLOW_HZ.
            pos0, _ = get_pose(rid, physicsClientId=cid)
            self._air = np.asarray(self._airflow(self.sim_time, np.asarray(pos0)), dtype=float)
            self._air_next = self.sim_time + 1.0 / AIRFLOW_HZ - 1e-9
        ax, ay, az = self._air.tolist()
        cl, ca = self.robot.drag_linear, self.robot.drag_angular

        # Fan thrust per physics step: the exact lag of intball_nav.dynamics.fan_step,
        # vectorised over the n steps (identical to n chained fan_step calls to 1e-15 N, see
        # tests/test_sim_backend.py; calling it per step costs ~10 us), then noise, then the
        # wrench. Arrays this small cost ~1 us per numpy operation: keep the count low.
        decay_col, decay_n = self._decay_powers(n)
        diff = self._fans.thrust - cmd
        self._fans = FanState(cmd + diff * decay_n)
        means = cmd + decay_col * (diff * self._mean_factor)  # (n, 8) N
        if self._noise_on:
            means += self._noise_block(n) * (cmd > 0.0)  # idle fans make no noise
            np.maximum(means, self._fan_min, out=means)
            np.minimum(means, self._fan_max, out=means)
        wrenches = (means @ self._B_pb.T).tolist()  # (n, 6) [force; torque], PyBullet base frame

        # Hot loop (one pass per physics step): PyBullet calls take physicsClientId
        # positionally (keyword parsing costs ~0.1 us a call); getContactPoints(bodyA,
        # bodyB=-1 any, linkA=-2 any, linkB=-2 any, client).
        pos, orn = get_pose(rid, cid)
        v_first, w_first = v, w = get_vel(rid, cid)
        contacts: tuple = ()
        for fx, fy, fz, tx, ty, tz in wrenches:
            r00, r01, r02, r10, r11, r12, r20, r21, r22 = get_mat(orn)
            apply_f(
                rid,
                -1,
                (
                    r00 * fx + r01 * fy + r02 * fz - cl * (v[0] - ax),
                    r10 * fx + r11 * fy + r12 * fz - cl * (v[1] - ay),
                    r20 * fx + r21 * fy + r22 * fz - cl * (v[2] - az),
                ),
                pos,
                world_frame,
                cid,
            )
            apply_t(
                rid,
                -1,
                (
                    r00 * tx + r01 * ty + r02 * tz - ca * w[0],
                    r10 * tx + r11 * ty + r12 * tz - ca * w[1],
                    r20 * tx + r21 * ty + r22 * tz - ca * w[2],
                ),
                world_frame,
                cid,
            )
            step_sim(cid)
            self._steps += 1
            cps = get_contacts(rid, -1, -2, -2, cid)
            if cps:
                contacts = cps
                self._register_contacts(cps)
            elif self._in_contact:
                contacts = ()
                self._in_contact = frozenset()
            pos, orn = get_pose(rid, cid)
            v, w = get_vel(rid, cid)
        self._contacts = [
            Contact(int(c[2]), np.array(c[6]), np.array(c[7]), float(c[9]))
            for c in contacts
            if c[2] != rid and c[8] <= CONTACT_DISTANCE
        ]
        # For imu_truth(): velocities at the start and end of the call (evaluated lazily).
        self._imu_span = (v_first, w_first, n * h)
        self._raw = (pos, orn, v, w)  # state() builds the RigidBodyState from this on demand

    def _decay_powers(self, n: int) -> tuple[np.ndarray, float]:
        """(decay**arange(n) as an (n, 1) column, decay**n) for a call of n physics steps."""
        entry = self._per_n.get(n)
        if entry is None:
            entry = self._per_n[n] = ((self._decay ** np.arange(n))[:, None], self._decay**n)
        return entry

    def _thrust_noise(self, steps: np.ndarray) -> np.ndarray:
        """(n, 8) N thrust noise for the next n physics steps (steps = arange(n)).

        One (8,) draw per block of ``_noise_hold`` physics steps, taken in block order from
        a pre-drawn table: the noise depends only on the physics step index, not on how the
        caller splits time into ``step`` calls.
        """
        blocks = (self._steps + steps) // self._noise_hold
        self._extend_noise_table(int(blocks[0]), int(blocks[-1]))
        return self._noise_table[blocks - self._noise_base]

    def _noise_block(self, n: int) -> np.ndarray:
        """``_thrust_noise(arange(n))`` for the hot path: a view of the table if one draw per step."""
        hold, s0 = self._noise_hold, self._steps
        if hold != 1:
            return self._thrust_noise(np.arange(n))
        self._extend_noise_table(s0, s0 + n - 1)
        return self._noise_table[s0 - self._noise_base : s0 + n - self._noise_base]

    def _extend_noise_table(self, first: int, last: int) -> None:
        """Make the draws of noise blocks first..last available (NOISE_BATCH at a time)."""
        last -= self._noise_base
        if last >= len(self._noise_table):
            first -= self._noise_base
            count = max(NOISE_BATCH, last - len(self._noise_table) + 1)
            fresh = self.robot.fan_noise_sigma * self._rng.standard_normal((count, NUM_FANS))
            self._noise_table = np.concatenate([self._noise_table[first:], fresh])
            self._noise_base += first

    def _register_contacts(self, cps: tuple) -> None:
        """Count a collision when the robot starts touching anything after touching nothing.

        One episode even if it touches two wall bodies at once (e.g. at a bay seam) or slides
        from one onto the next. PyBullet also reports speculative contacts shortly before
        touching: only points closer than CONTACT_DISTANCE count.
        """
        touching = [c for c in cps if c[2] != self.robot_id and c[8] <= CONTACT_DISTANCE]
        if touching and not self._in_contact:
            pos, _ = p.getBasePositionAndOrientation(self.robot_id, physicsClientId=self._client)
            bodies = sorted({int(c[2]) for c in touching})
            main = int(max(touching, key=lambda c: c[9])[2])  # largest normal force
            name = "+".join(self._collider_names.get(b, str(b)) for b in bodies)
            self.collision_events.append(CollisionEvent(self.sim_time, main, name, np.array(pos)))
        self._in_contact = frozenset(int(c[2]) for c in touching)

    def state(self) -> RigidBodyState:
        """Ground-truth state (position kibo m, q_kibo_body xyzw, velocity kibo m/s, omega body rad/s)."""
        if self._state_cache is not None:
            return self._state_cache
        if self._raw is not None:
            pos, orn, v, (wx, wy, wz) = self._raw
        else:
            cid, rid = self._client, self.robot_id
            pos, orn = p.getBasePositionAndOrientation(rid, physicsClientId=cid)
            v, (wx, wy, wz) = p.getBaseVelocity(rid, physicsClientId=cid)
        if self._principal:
            q = quat_multiply(np.array(orn), quat_conjugate(self._q_body_inertial))
            omega = rotmat_from_quat(q).T @ np.array([wx, wy, wz])
        else:
            q = np.array(orn)
            r = p.getMatrixFromQuaternion(orn)  # row-major R_kibo_body; omega_body = R^T omega_world
            omega = np.array(
                [
                    r[0] * wx + r[3] * wy + r[6] * wz,
                    r[1] * wx + r[4] * wy + r[7] * wz,
                    r[2] * wx + r[5] * wy + r[8] * wz,
                ]
            )
        if q[3] < 0.0:
            q = -q
        self._state_cache = RigidBodyState._trusted(np.array(pos), q, np.array(v), omega)
        return self._state_cache

    def imu_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True IMU inputs over the last :meth:`step` call, body frame, at the CoM.

        Returns (specific force (3,) m/s^2 = mean non-gravitational acceleration over the
        call, from the velocity change, so it includes fans, drag and contact impulses;
        angular rate (3,) rad/s at the end of the call; mean angular acceleration (3,) rad/s^2).
        """
        truth = self.state()
        if self._imu_span is None:
            return np.zeros(3), truth.omega, np.zeros(3)
        v0, w0, span = self._imu_span
        R_T = rotmat_from_quat(truth.quat).T
        w_end = rotmat_from_quat(truth.quat) @ truth.omega
        specific_force = R_T @ ((truth.velocity - np.asarray(v0)) / span)
        alpha = R_T @ ((w_end - np.asarray(w0)) / span)
        return specific_force, truth.omega, alpha

    def air_velocity(self) -> np.ndarray:
        """(3,) m/s, kibo frame: airflow applied during the last step (zero if airflow is off)."""
        return self._air.copy()

    def collisions(self) -> list[Contact]:
        """Contacts of the robot with other bodies after the last physics step."""
        return list(self._contacts)

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if self._client >= 0:
            try:
                p.disconnect(physicsClientId=self._client)
            except p.error:
                pass
            self._client = -1

    def __enter__(self) -> PyBulletBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _make_airflow(airflow_mod: object, seed: int, module: ModuleGeometry | None):  # noqa: ANN202
    """Adapter to ``intball_nav.airflow``: returns f(t s, position (3,) m kibo) -> (3,) m/s kibo."""
    params = airflow_mod.AirflowParams(seed=seed)
    velocity = airflow_mod.air_velocity
    return lambda t, position: velocity(t, position, params)

// Int-Ball ground station console. Talks only to the documented API (/api/..., /api/ws).
// Positions m, kibo frame (z up); the 3D view uses the kibo frame directly.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const S = {
  session: null, module: null, telemetry: null, predicted: null, link: null,
  commands: new Map(), alerts: [], route: [], camera: "main", lastTelemetryAt: null,
  history: [], deadman: false, keys: new Set(), zones: null, zonesKey: "", routeStatus: null, files: new Map(),
};

// ---------------------------------------------------------------- helpers
function toast(msg) {
  const t = $("ui-error");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 5000);
}
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const msg = (data && data.error) || `${r.status} ${r.statusText}`;
    throw new Error(msg);
  }
  return data;
}
const fmt = (v, n = 2) => (v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(n));
const vec = (a, n = 2) => (a ? a.map((x) => fmt(x, n)).join(", ") : "-");
const utc = (t) => new Date(t * 1000).toISOString().substring(11, 23);
async function command(kind, payload = {}) {
  try {
    await api("POST", "/api/commands", { kind, payload });
  } catch (e) { toast(`${kind}: ${e.message}`); }
}

// ---------------------------------------------------------------- login / session
function showLogin(show) { $("login-panel").classList.toggle("hidden", !show); }
$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = $("login-token").value.trim();
  const body = token ? { token } : { user: $("login-user").value, password: $("login-password").value };
  try {
    S.session = await api("POST", "/api/login", body);
    $("login-error").textContent = "";
    await start();
  } catch (e) { $("login-error").textContent = e.message; }
});
$("logout").addEventListener("click", async () => { await api("POST", "/api/logout"); location.reload(); });
$("control-take").addEventListener("click", async () => {
  try { S.session = await api("POST", "/api/control/take", {}); renderSession(); }
  catch (e) {
    if (e.message.startsWith("control is held") && confirm(`${e.message}. Take it over?`)) {
      S.session = await api("POST", "/api/control/take", { force: true }); renderSession();
    } else toast(e.message);
  }
});
$("control-release").addEventListener("click", async () => {
  try { S.session = await api("POST", "/api/control/release", {}); renderSession(); } catch (e) { toast(e.message); }
});
function renderSession() {
  const s = S.session || {};
  $("session-user").textContent = s.user || "-";
  $("session-role").textContent = s.role || "-";
  $("control-holder").textContent = s.controller || "nobody";
  const operator = s.role === "operator";
  const inControl = !!s.in_control;
  $("control-take").disabled = !operator || inControl;
  $("control-release").disabled = !inControl;
  document.querySelectorAll("[data-needs-control]").forEach((el) => { el.disabled = !inControl; });
  document.querySelectorAll('[data-testid="keepout-remove"]').forEach((el) => { el.disabled = !inControl || el.dataset.fixed === "yes"; });
  document.body.dataset.role = s.role || "";
  document.body.dataset.inControl = inControl ? "yes" : "no";
}
for (const id of ["goal-send", "route-send", "route-pause", "route-resume", "keepout-add", "action-undock", "action-dock", "action-station-keep", "action-stop",
  "action-resume", "action-cancel-pending", "los-drill", "camera-task-run", "jog-xp", "jog-xm", "jog-yp", "jog-ym", "jog-zp", "jog-zm",
  "jog-yawp", "jog-yawm"]) $(id).setAttribute("data-needs-control", "");

// ---------------------------------------------------------------- 3D view
const view = $("view3d");
let renderer = null; // null without WebGL: the rest of the console works, the 3D view says why
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  view.appendChild(renderer.domElement);
} catch (e) {
  view.textContent = `3D view unavailable (no WebGL): ${e.message}`;
  view.dataset.webgl = "no";
}
const canvasEl = renderer ? renderer.domElement : document.createElement("canvas");
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x0b0d10);
const cam = new THREE.PerspectiveCamera(50, 2, 0.05, 100);
cam.up.set(0, 0, 1);
const controls = new OrbitControls(cam, canvasEl);
scene.add(new THREE.AmbientLight(0xffffff, 0.7));
const sun = new THREE.DirectionalLight(0xffffff, 0.8);
sun.position.set(3, -4, 6);
scene.add(sun);
const sphere = (color, opacity) => new THREE.Mesh(
  new THREE.SphereGeometry(1, 24, 16),
  new THREE.MeshStandardMaterial({ color, transparent: opacity < 1, opacity }),
);
const robot = sphere(0x3d8bff, 1.0);
const predicted = sphere(0xb58cff, 0.45);
const ghost = sphere(0x3ddc84, 0.55);
const goalMarker = sphere(0xffc14d, 0.35);
const heading = new THREE.ArrowHelper(new THREE.Vector3(1, 0, 0), new THREE.Vector3(), 0.3, 0xffffff);
robot.add(heading);
for (const m of [robot, predicted, ghost, goalMarker]) { m.visible = false; scene.add(m); }
ghost.visible = true;

function boxMesh(min, max, color, opacity, wire = false) {
  const size = max.map((v, i) => v - min[i]);
  const geo = new THREE.BoxGeometry(...size);
  const mesh = wire
    ? new THREE.LineSegments(new THREE.EdgesGeometry(geo), new THREE.LineBasicMaterial({ color }))
    : new THREE.Mesh(geo, new THREE.MeshStandardMaterial({ color, transparent: true, opacity, depthWrite: false }));
  mesh.position.set(...min.map((v, i) => v + size[i] / 2));
  return mesh;
}
function buildModule(m) {
  scene.add(boxMesh(m.clear_volume.min, m.clear_volume.max, 0x6d7a8c, 1, true));
  for (const b of m.bays) {
    const plane = new THREE.Mesh(
      new THREE.PlaneGeometry(b.size[0] * 0.96, b.size[1] * 0.96),
      new THREE.MeshStandardMaterial({ color: 0x8893a3, transparent: true, opacity: 0.14, side: THREE.DoubleSide, depthWrite: false }),
    );
    plane.position.set(...b.centre);
    plane.quaternion.set(...b.quat);
    scene.add(plane);
  }
  scene.add(zonesGroup);
  scene.add(routeLine);
  setZones(m.keep_out);
  scene.add(boxMesh(m.dock.box.min, m.dock.box.max, 0xffc14d, 0.6));
  const r = m.robot_radius;
  for (const s of [robot, predicted, ghost, goalMarker]) s.scale.setScalar(r);
  ghost.position.set(3, 0, 0);
  preset("overview");
}
// keep-out zones: the module's at first, then the live ones from the telemetry (the dock body is drawn apart)
const zonesGroup = new THREE.Group();
zonesGroup.name = "keep-out";
function setZones(zones) {
  const live = zones.filter((z) => z.name !== "dock");
  const key = JSON.stringify(live);
  if (key === S.zonesKey) return;
  S.zonesKey = key;
  S.zones = live;
  zonesGroup.traverse((o) => { if (o.geometry) o.geometry.dispose(); if (o.material) o.material.dispose(); });
  zonesGroup.clear();
  for (const z of live) {
    const mesh = boxMesh(z.min, z.max, z.fixed ? 0xff4d4d : 0xff7a3d, 0.35);
    mesh.name = `zone:${z.name}`;
    zonesGroup.add(mesh);
  }
  window.__intballZones = Object.freeze(zonesGroup.children.map((o) => o.name.slice(5))); // names drawn in the 3D view
  renderZones();
  updateGhost(true);
}
function renderZones() {
  const ul = $("keepout-list");
  ul.innerHTML = "";
  const inControl = !!(S.session && S.session.in_control);
  for (const z of S.zones || []) {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "keepout-row");
    li.dataset.name = z.name;
    li.dataset.fixed = z.fixed ? "yes" : "no";
    li.textContent = `${z.name}: [${vec(z.min)}] .. [${vec(z.max)}]${z.fixed ? " (module, fixed)" : ""} `;
    if (!z.fixed) {
      const b = document.createElement("button");
      b.textContent = "remove";
      b.setAttribute("data-testid", "keepout-remove");
      b.dataset.fixed = "no";
      b.disabled = !inControl;
      b.onclick = () => command("keep_out_remove", { name: z.name });
      li.appendChild(b);
    }
    ul.appendChild(li);
  }
}
function parseVec(text) {
  const v = text.split(",").map((x) => Number.parseFloat(x.trim()));
  return v.length === 3 && v.every(Number.isFinite) ? v : null;
}
$("keepout-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = $("keepout-name").value.trim();
  const min = parseVec($("keepout-min").value), max = parseVec($("keepout-max").value);
  if (!name) { toast("keep-out zone: give it a name"); return; }
  if (!min || !max) { toast("keep-out zone: min and max must be x,y,z (3 numbers, m)"); return; }
  command("keep_out_add", { name, min, max });
});
// the route being flown: a line through its waypoints (from the route command's payload)
const routeLine = new THREE.Line(new THREE.BufferGeometry(), new THREE.LineDashedMaterial({ color: 0xffd36b, dashSize: 0.1, gapSize: 0.06 }));
routeLine.visible = false;
function preset(name) {
  S.viewPreset = name;
  const m = S.module;
  if (!m) return;
  const c = m.clear_volume.min.map((v, i) => (v + m.clear_volume.max[i]) / 2);
  if (name === "overview") { cam.position.set(c[0] - 3.5, c[1] - 5.5, c[2] + 3.5); controls.target.set(...c); }
  if (name === "overhead") { cam.position.set(c[0], c[1] - 0.01, c[2] + 9); controls.target.set(...c); }
  if (name === "follow") followCamera();
  controls.update();
}
function followCamera() {
  const p = robot.position;
  cam.position.set(p.x - 1.6, p.y - 1.2, p.z + 0.9);
  controls.target.copy(p);
}
$("view-preset-overview").onclick = () => preset("overview");
$("view-preset-follow").onclick = () => preset("follow");
$("view-preset-overhead").onclick = () => preset("overhead");

function goalCheck(p) {
  const m = S.module;
  if (!m) return "module geometry not loaded";
  if (p.some((v) => !Number.isFinite(v))) return "position must be 3 finite numbers";
  const r = m.robot_radius;
  const axes = ["x", "y", "z"];
  for (let i = 0; i < 3; i++) {
    if (p[i] > m.clear_volume.max[i] - r) return `${axes[i]}=${p[i].toFixed(2)} m is beyond the keep-in limit ${(m.clear_volume.max[i] - r).toFixed(2)} m`;
    if (p[i] < m.clear_volume.min[i] + r) return `${axes[i]}=${p[i].toFixed(2)} m is below the keep-in limit ${(m.clear_volume.min[i] + r).toFixed(2)} m`;
  }
  for (const k of S.zones || m.keep_out) {
    if (p.every((v, i) => v >= k.min[i] - r && v <= k.max[i] + r)) return `inside keep-out zone ${k.name}`;
  }
  return "";
}
function goalFromForm() {
  return ["goal-x", "goal-y", "goal-z"].map((id) => Number.parseFloat($(id).value));
}
function updateGhost(fromForm = true) {
  const p = fromForm ? goalFromForm() : [ghost.position.x, ghost.position.y, ghost.position.z];
  if (!fromForm) ["goal-x", "goal-y", "goal-z"].forEach((id, i) => { $(id).value = p[i].toFixed(2); });
  if (p.every(Number.isFinite)) ghost.position.set(...p);
  const why = goalCheck(p);
  ghost.material.color.set(why ? 0xff3b3b : 0x3ddc84);
  ghost.userData.valid = !why;
  const st = $("goal-status");
  st.textContent = why ? `goal refused: ${why}` : "goal inside keep-in, outside keep-out";
  st.className = `goal-status ${why ? "bad" : "ok"}`;
  st.dataset.valid = why ? "no" : "yes";
}
for (const id of ["goal-x", "goal-y", "goal-z"]) $(id).addEventListener("input", () => updateGhost(true));

// drag the ghost in the horizontal plane at its height (shift: vertical plane)
const ray = new THREE.Raycaster();
let dragging = null;
function pointer(ev) {
  const r = canvasEl.getBoundingClientRect();
  return new THREE.Vector2(((ev.clientX - r.left) / r.width) * 2 - 1, -((ev.clientY - r.top) / r.height) * 2 + 1);
}
canvasEl.addEventListener("pointerdown", (ev) => {
  ray.setFromCamera(pointer(ev), cam);
  if (ray.intersectObject(ghost).length) {
    controls.enabled = false;
    const normal = ev.shiftKey ? new THREE.Vector3(0, 1, 0) : new THREE.Vector3(0, 0, 1);
    dragging = new THREE.Plane().setFromNormalAndCoplanarPoint(normal, ghost.position.clone());
    canvasEl.setPointerCapture(ev.pointerId);
  }
});
canvasEl.addEventListener("pointermove", (ev) => {
  if (!dragging) return;
  ray.setFromCamera(pointer(ev), cam);
  const hit = new THREE.Vector3();
  if (ray.ray.intersectPlane(dragging, hit)) { ghost.position.copy(hit); updateGhost(false); }
});
canvasEl.addEventListener("pointerup", () => { dragging = null; controls.enabled = true; });

function resize() {
  if (!renderer) return;
  const w = view.clientWidth, h = view.clientHeight;
  renderer.setSize(w, h, false);
  canvasEl.style.width = "100%";
  canvasEl.style.height = "100%";
  cam.aspect = w / h;
  cam.updateProjectionMatrix();
}
window.addEventListener("resize", resize);
function predictNow() {
  // the server's prediction at receipt, moved on by the estimated velocity since then (<= 3 s in all)
  const est = S.telemetry && S.telemetry.estimate;
  if (!est || !S.predicted) return null;
  const since = (performance.now() - S.lastTelemetryAt) / 1000;
  const extra = Math.max(0, Math.min(3 - S.predicted.age_s, since));
  return { position: S.predicted.position.map((v, i) => v + est.velocity[i] * extra), age: S.predicted.age_s + extra };
}
function frame() {
  const p = predictNow();
  if (p) predicted.position.set(...p.position);
  if (S.viewPreset === "follow" && robot.visible) followCamera();
  replayFrame();
  controls.update();
  if (renderer) renderer.render(scene, cam);
  pollGamepad();
  requestAnimationFrame(frame);
}

// ---------------------------------------------------------------- goal, actions, LOS drill
function goalPayload() {
  return {
    position: goalFromForm(),
    rpy_deg: [0, 0, Number.parseFloat($("goal-yaw").value) || 0],
    flight_mode: $("goal-mode").value,
  };
}
$("goal-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  updateGhost(true);
  if (!ghost.userData.valid) { toast($("goal-status").textContent); return; }
  command("goal", goalPayload());
});
$("action-undock").onclick = () => command("undock");
$("action-dock").onclick = () => command("dock");
$("action-station-keep").onclick = () => command("station_keep");
$("action-stop").onclick = () => command("stop");
$("action-resume").onclick = () => command("resume");
$("action-cancel-pending").onclick = () => api("POST", "/api/commands/cancel_pending").catch((e) => toast(e.message));
$("estop").onclick = () => api("POST", "/api/emergency_stop").catch((e) => toast(`emergency stop: ${e.message}`));
$("los-drill").onclick = () => api("POST", "/api/link/los", { start_in_s: 0, duration_s: Number.parseFloat($("los-drill-duration").value) })
  .catch((e) => toast(e.message));

// ---------------------------------------------------------------- jog (short-lived relative moves)
function jog(dx, dy, dz, dyaw) {
  const step = Number.parseFloat($("jog-step").value);
  command("jog", { delta: [dx * step, dy * step, dz * step], dyaw_deg: dyaw * 10, lifetime_s: 1.5 });
}
const JOGS = { "jog-xp": [1, 0, 0, 0], "jog-xm": [-1, 0, 0, 0], "jog-yp": [0, 1, 0, 0], "jog-ym": [0, -1, 0, 0],
  "jog-zp": [0, 0, 1, 0], "jog-zm": [0, 0, -1, 0], "jog-yawp": [0, 0, 0, 1], "jog-yawm": [0, 0, 0, -1] };
for (const [id, d] of Object.entries(JOGS)) $(id).onclick = () => jog(...d); // one bounded step per click
const KEYS = { KeyW: [1, 0, 0, 0], KeyS: [-1, 0, 0, 0], KeyA: [0, 1, 0, 0], KeyD: [0, -1, 0, 0],
  KeyR: [0, 0, 1, 0], KeyF: [0, 0, -1, 0], KeyQ: [0, 0, 0, 1], KeyE: [0, 0, 0, -1] };
const typing = (ev) => ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName);
window.addEventListener("keydown", (ev) => {
  if (typing(ev)) return;
  if (ev.code === "Space") { S.deadman = true; ev.preventDefault(); }
  if (KEYS[ev.code]) S.keys.add(ev.code);
  $("jog-deadman-state").textContent = S.deadman ? "HELD" : "released";
});
window.addEventListener("keyup", (ev) => {
  if (ev.code === "Space") S.deadman = false;
  S.keys.delete(ev.code);
  $("jog-deadman-state").textContent = S.deadman ? "HELD" : "released";
});
window.addEventListener("blur", () => { S.deadman = false; S.keys.clear(); });
setInterval(() => { // while the dead-man is held, one jog per 300 ms per direction held
  if (!S.deadman || !S.session || !S.session.in_control) return;
  const d = [0, 0, 0, 0];
  for (const k of S.keys) KEYS[k].forEach((v, i) => { d[i] += v; });
  if (d.some((v) => v !== 0)) jog(d[0] * 0.5, d[1] * 0.5, d[2] * 0.5, d[3] * 0.5);
}, 300);
let padAt = 0;
function pollGamepad() {
  const pads = navigator.getGamepads ? navigator.getGamepads() : [];
  const pad = [...pads].find((p) => p);
  if (!pad || !S.session || !S.session.in_control) return;
  const held = pad.buttons[4] && pad.buttons[4].pressed; // LB = dead-man
  $("jog-deadman-state").textContent = held || S.deadman ? "HELD" : "released";
  if (!held || performance.now() - padAt < 300) return;
  const dz = (a) => (Math.abs(a) < 0.15 ? 0 : a);
  const d = [-dz(pad.axes[1] || 0), -dz(pad.axes[0] || 0), -dz(pad.axes[3] || 0), -dz(pad.axes[2] || 0)];
  if (d.some((v) => v !== 0)) { padAt = performance.now(); jog(d[0] * 0.5, d[1] * 0.5, d[2] * 0.5, d[3] * 0.5); }
}

// ---------------------------------------------------------------- route editor
function renderRoute() {
  const ol = $("route-list");
  ol.innerHTML = "";
  S.route.forEach((w, i) => {
    const li = document.createElement("li");
    li.dataset.testid = "route-item";
    li.setAttribute("data-testid", "route-item");
    li.textContent = `[${vec(w.position)}] yaw ${fmt((w.rpy_deg || [0, 0, 0])[2], 0)}°${w.hold_s ? ` hold ${w.hold_s} s` : ""} `;
    const del = document.createElement("button");
    del.textContent = "x";
    del.setAttribute("data-testid", "route-remove");
    del.onclick = () => { S.route.splice(i, 1); renderRoute(); };
    li.appendChild(del);
    ol.appendChild(li);
  });
}
function addWaypoint(w) {
  if (S.route.length >= 20) { toast("a route has at most 20 waypoints"); return; }
  S.route.push(w);
  renderRoute();
}
function holdS() {
  const h = Number.parseFloat($("route-hold").value || "0");
  return Number.isFinite(h) && h > 0 ? h : 0;
}
$("route-add-goal").onclick = () => {
  updateGhost(true);
  if (!ghost.userData.valid) { toast($("goal-status").textContent); return; }
  const { position, rpy_deg } = goalPayload();
  addWaypoint({ position, rpy_deg, hold_s: holdS() });
};
$("route-add-current").onclick = () => {
  const est = S.telemetry && S.telemetry.estimate;
  if (!est) { toast("no telemetry yet"); return; }
  addWaypoint({ position: est.pose.position.map((v) => +v.toFixed(3)), rpy_deg: [0, 0, 0], hold_s: holdS() });
};
$("route-clear").onclick = () => { S.route = []; renderRoute(); };
$("route-send").onclick = async () => {
  if (!S.route.length) { toast("the route is empty"); return; }
  // one route command: the robot flies it (FollowRoute), pause / resume below, progress in telemetry
  const waypoints = S.route.map(({ position, rpy_deg, hold_s }) => ({ position, rpy_deg: rpy_deg || [0, 0, 0], hold_s: hold_s || 0 }));
  try { await api("POST", "/api/route", { waypoints, flight_mode: $("route-mode").value }); } catch (e) { toast(`route: ${e.message}`); }
};
$("route-pause").onclick = () => command("route_pause");
$("route-resume").onclick = () => command("route_resume");
function renderRouteStatus(r) {
  S.routeStatus = r;
  const el = $("route-progress");
  if (!r) {
    el.textContent = "no route flying";
    Object.assign(el.dataset, { state: "none", index: "", n: "", paused: "no", commandId: "" });
    routeLine.visible = false;
    return;
  }
  const state = r.paused ? "paused" : r.suspended ? "suspended" : "flying";
  el.textContent = `waypoint ${r.index + 1} of ${r.n} [${vec(r.waypoint)}]${r.paused ? " · PAUSED" : ""}${r.suspended ? " · held (no ground contact)" : ""}`;
  Object.assign(el.dataset, { state, index: String(r.index), n: String(r.n), paused: r.paused ? "yes" : "no", commandId: r.command });
  const c = S.commands.get(r.command);
  const pts = c && c.payload && c.payload.waypoints;
  if (pts && routeLine.userData.command !== r.command) {
    routeLine.geometry.dispose();
    routeLine.geometry = new THREE.BufferGeometry().setFromPoints(pts.map((w) => new THREE.Vector3(...w.position)));
    routeLine.computeLineDistances();
    routeLine.userData.command = r.command;
  }
  routeLine.visible = !!pts;
}
$("route-save").onclick = async () => {
  if (!S.route.length) { toast("the route is empty"); return; }
  const est = S.telemetry && S.telemetry.estimate;
  const start = est ? { position: est.pose.position, rpy_deg: [0, 0, 0] } : S.route[0];
  try {
    const { yaml } = await api("POST", "/api/mission/export", { name: "route", start, waypoints: S.route });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([yaml], { type: "text/yaml" }));
    a.download = "route.yaml";
    a.click();
  } catch (e) { toast(`save: ${e.message}`); }
};
$("route-load").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  try {
    const m = await api("POST", "/api/mission/parse", { yaml: await file.text() });
    S.route = m.waypoints;
    renderRoute();
  } catch (e) { toast(`load: ${e.message}`); }
  ev.target.value = "";
});

// ---------------------------------------------------------------- camera
$("camera-select").addEventListener("change", (ev) => {
  S.camera = ev.target.value;
  command("camera_stream", { camera: S.camera, rate_hz: 1 });
});
$("camera-snapshot").onclick = () => {
  const a = document.createElement("a");
  a.href = `/api/camera/${S.camera}.jpg?download=1`;
  a.download = `${S.camera}.jpg`;
  a.click();
};
$("camera-task-run").onclick = () => {
  const task = $("camera-task-select").value;
  const arg = $("camera-task-arg").value.trim();
  const payload = { task };
  if (task === "look_at") payload.point = arg.split(",").map((v) => Number.parseFloat(v));
  if (task === "inspect" || (task === "survey" && arg)) payload.bay = arg;
  if (task === "record") payload.duration_s = Number.parseFloat(arg || "10");
  command("camera_task", payload);
};
function renderFiles() {
  const ul = $("files-list");
  ul.innerHTML = "";
  for (const f of [...S.files.values()].reverse()) {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "file-row");
    li.dataset.fileId = f.id;
    li.dataset.state = f.state;
    li.dataset.bytes = f.bytes;
    const kb = `${fmt(f.bytes / 1024, 0)} kB`;
    if (f.state === "complete") {
      const a = document.createElement("a");
      a.href = `/api/files/${encodeURIComponent(f.id)}`;
      a.download = f.name;
      a.textContent = f.name;
      a.setAttribute("data-testid", "file-download");
      li.appendChild(a);
      li.appendChild(document.createTextNode(` ${kb}`));
    } else {
      li.textContent = `${f.name || f.id} ${kb} ${f.state} ${f.received}/${f.chunks}${f.reason ? `: ${f.reason}` : ""}`;
    }
    ul.appendChild(li);
  }
}
function showFrame(ev) {
  if (ev.camera !== S.camera) return;
  const img = $("camera-image");
  img.src = `/api/camera/${ev.camera}.jpg?seq=${ev.seq}`;
  img.dataset.seq = ev.seq;
  $("camera-info").textContent = `frame ${ev.seq}, ${ev.camera}`;
}

// ---------------------------------------------------------------- telemetry and plots
function applyTelemetry(tm, pred) {
  S.telemetry = tm;
  S.predicted = pred;
  S.lastTelemetryAt = performance.now();
  if (Array.isArray(tm.keep_out)) setZones(tm.keep_out);
  renderRouteStatus(tm.route || null);
  const est = tm.estimate;
  $("tm-source").textContent = tm.source;
  $("tm-supervisor").textContent = `${tm.supervisor}${tm.estop ? " · EMERGENCY STOP" : ""} (contact ${fmt(tm.contact_age_s, 1)} s)`;
  $("tm-supervisor").dataset.value = tm.supervisor;
  if (!est) { $("tm-position").textContent = "no estimate yet"; return; }
  const p = est.pose.position;
  $("tm-position").textContent = vec(p, 3);
  $("tm-position").dataset.x = p[0]; $("tm-position").dataset.y = p[1]; $("tm-position").dataset.z = p[2];
  $("tm-velocity").textContent = vec(est.velocity, 3);
  $("tm-mode").textContent = `${est.mode}${est.mode_detail ? `: ${est.mode_detail}` : ""}`;
  $("tm-guidance").textContent = `${est.guidance.state}${est.guidance.message ? `: ${est.guidance.message}` : ""}`;
  $("tm-localization").textContent = `${est.localization.level}${est.localization.reason ? `: ${est.localization.reason}` : ""}`;
  $("tm-battery").textContent = est.battery ? `${fmt(est.battery.percent, 1)} %` : "n/a";
  $("tm-fan-effort").textContent = est.fan_effort === null || est.fan_effort === undefined ? "n/a" : `${fmt(est.fan_effort * 100, 0)} %`;
  robot.visible = true;
  robot.position.set(...p);
  robot.quaternion.set(...est.pose.quat);
  if (pred) {
    predicted.visible = true;
    predicted.position.set(...pred.position);
    renderPredicted();
  }
  const g = est.guidance.goal;
  goalMarker.visible = !!g && est.guidance.state === "moving";
  if (g) goalMarker.position.set(...g);
  const t = tm.at_ms / 1000;
  S.history.push([t, p[0], p[1], p[2], Math.hypot(...est.velocity), est.battery ? est.battery.percent : null]);
  while (S.history.length && S.history[0][0] < t - 120) S.history.shift();
}
function renderPredicted() {
  const p = predictNow();
  if (!p) return;
  const jogs = S.predicted.jogs_in_flight;
  $("tm-predicted").textContent = `${vec(p.position, 3)} (+${fmt(p.age, 1)} s${jogs ? `, ${jogs} jog(s) in flight` : ""})`;
}
function plot(canvas, series, colors, fixed) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const H = S.history;
  if (H.length < 2) return;
  const t0 = H[H.length - 1][0] - 120;
  let lo = Infinity, hi = -Infinity;
  for (const row of H) for (const k of series) if (row[k] !== null) { lo = Math.min(lo, row[k]); hi = Math.max(hi, row[k]); }
  if (fixed) [lo, hi] = fixed;
  if (hi - lo < 1e-6) { hi += 0.5; lo -= 0.5; }
  series.forEach((k, j) => {
    ctx.strokeStyle = colors[j];
    ctx.beginPath();
    H.forEach((row, i) => {
      const x = ((row[0] - t0) / 120) * w, y = h - 4 - ((row[k] - lo) / (hi - lo)) * (h - 8);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  });
  ctx.fillStyle = "#9aa7b6";
  ctx.font = "10px sans-serif";
  ctx.fillText(`${fmt(hi, 2)}`, 2, 10);
  ctx.fillText(`${fmt(lo, 2)}`, 2, h - 2);
}
setInterval(() => {
  plot($("plot-position"), [1, 2, 3], ["#ff6b6b", "#6bdc8b", "#6ba8ff"]);
  plot($("plot-speed"), [4], ["#ffd36b"]);
  plot($("plot-battery"), [5], ["#b58cff"], [0, 100]);
  const age = S.lastTelemetryAt === null ? null : (performance.now() - S.lastTelemetryAt) / 1000;
  $("tm-age").textContent = age === null ? "never" : `${fmt(age, 1)} s`;
  renderPredicted();
}, 500);

// ---------------------------------------------------------------- link, commands, alerts
function renderLink(l) {
  S.link = l;
  const aos = $("link-aos");
  aos.textContent = l.aos ? "AOS" : `LOS (AOS in ${fmt(l.time_to_aos_s, 0)} s)`;
  aos.className = `pill ${l.aos ? "aos" : "los"}`;
  aos.dataset.value = l.aos ? "aos" : "los";
  $("link-rtt").textContent = l.rtt_s === null ? "-" : `${fmt(l.rtt_s * 1000, 0)} ms`;
  const pct = (x) => (x === null || x === undefined ? "-" : `${fmt(x * 100, 1)}%`);
  $("link-loss").textContent = `${pct(l.uplink_loss)} / ${pct(l.downlink_loss)}`;
  $("link-next-los").textContent = l.aos ? (l.time_to_next_los_s === null ? "none scheduled" : `in ${fmt(l.time_to_next_los_s, 0)} s`) : "now";
  $("link-profile").textContent = `${l.profile}${l.held ? " · queue held (e-stop)" : ""}`;
}
function detail(c) {
  const p = c.payload || {};
  if (c.kind === "goal") return `[${vec(p.position)}]${p.label ? ` ${p.label}` : ""}`;
  if (c.kind === "route") return `${(p.waypoints || []).length} waypoints, ${p.flight_mode || "nominal"}${p.label ? ` ${p.label}` : ""}`;
  if (c.kind === "keep_out_add") return `${p.name} [${vec(p.min)}] .. [${vec(p.max)}]`;
  if (c.kind === "keep_out_remove") return p.name;
  if (c.kind === "file_resend") return `file ${p.id}: ${(p.chunks || []).length} chunk(s)`;
  if (c.kind === "jog") return `Δ[${vec(p.delta)}] yaw ${fmt(p.dyaw_deg || 0, 0)}°`;
  if (c.kind === "camera_stream") return `${p.camera} ${p.rate_hz} Hz`;
  if (c.kind === "camera_task") return `${p.task} ${p.point ? `[${vec(p.point)}]` : p.bay || p.duration_s || ""}`;
  return "";
}
function renderCommands() {
  const body = $("commands-list");
  const rows = [...S.commands.values()].sort((a, b) => b.seq - a.seq).slice(0, 100);
  body.innerHTML = "";
  for (const c of rows) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "command-row");
    tr.dataset.commandId = c.id;
    tr.dataset.kind = c.kind;
    tr.dataset.state = c.state;
    const times = c.history.map((h) => `${h.state} ${utc(h.t)}`).join(" → ");
    tr.innerHTML = `<td>${c.seq % 100000}</td><td>${c.kind}</td><td></td><td><span class="state state-${c.state}" data-testid="command-state">${c.state}</span> <span class="small"></span></td><td class="small"></td><td>${c.sends}</td><td></td>`;
    tr.children[2].textContent = detail(c);
    tr.children[3].children[1].textContent = c.reason || "";
    tr.children[4].textContent = times;
    tr.children[6].textContent = c.user || "";
    body.appendChild(tr);
  }
}
function renderAlerts() {
  const ul = $("alerts-list");
  ul.innerHTML = "";
  const unacked = S.alerts.filter((a) => !a.acknowledged_by);
  $("alerts-count").textContent = unacked.length ? `${unacked.length} to acknowledge` : "";
  for (const a of [...S.alerts].reverse()) {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "alert-row");
    li.dataset.kind = a.kind;
    li.dataset.acked = a.acknowledged_by ? "yes" : "no";
    li.className = a.acknowledged_by ? "acked" : "unacked";
    li.textContent = `${utc(a.raised)} ${a.message}${a.active ? "" : " (cleared)"}${a.acknowledged_by ? ` · ack ${a.acknowledged_by}` : ""} `;
    if (!a.acknowledged_by) {
      const b = document.createElement("button");
      b.textContent = "Acknowledge";
      b.setAttribute("data-testid", "alert-ack");
      b.onclick = () => api("POST", `/api/alerts/${a.id}/ack`).catch((e) => toast(e.message));
      li.appendChild(b);
    }
    ul.appendChild(li);
  }
}

// ---------------------------------------------------------------- competition (/api/compete, when mounted)
const CP = { missions: [], subs: [], details: new Map(), selected: null, logRun: null, timer: null, busy: false };
const CB = "/api/compete";
const cell = (tr, text, cls) => {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
};
const termsText = (terms) => Object.entries(terms || {}).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(", ") || "-";
// queued / running / scored, or failed when scored and no run ended ok (total 0 by the rules)
function subState(s, d) {
  if (s.state !== "scored" || !d) return s.state;
  return d.run_list.some((r) => r.status === "ok") ? "scored" : "failed";
}
function meanTerms(d) {
  const done = (d ? d.run_list : []).filter((r) => r.state === "done");
  if (!done.length) return {};
  const sum = {};
  for (const r of done) for (const [k, v] of Object.entries(r.terms || {})) sum[k] = (sum[k] || 0) + v;
  for (const k of Object.keys(sum)) sum[k] /= done.length;
  return sum;
}
async function competeProbe() {
  try {
    CP.missions = await api("GET", `${CB}/missions`);
  } catch (e) { return; } // not mounted (404) or not available: the panel stays hidden
  for (const id of ["compete-mission", "compete-leaderboard-mission"]) {
    const sel = $(id);
    sel.innerHTML = "";
    for (const m of CP.missions) {
      const o = document.createElement("option");
      o.value = m.id; o.textContent = m.scoring ? `${m.id} (${m.scoring})` : m.id;
      sel.appendChild(o);
    }
    const preferred = CP.missions.find((m) => m.default);
    if (preferred) sel.value = preferred.id;
  }
  $("compete-panel").classList.remove("hidden");
  document.body.dataset.compete = "yes";
  competePoll();
  CP.timer = setInterval(competePoll, 2000);
}
function uploadStatus(text, ok) {
  const el = $("compete-upload-status");
  el.textContent = text;
  el.className = `upload-status ${ok ? "ok" : "bad"}`;
  el.dataset.ok = ok ? "yes" : "no";
}
$("compete-file").addEventListener("change", (ev) => {
  const f = ev.target.files[0];
  $("compete-file-name").textContent = f ? `${f.name} (${f.size} B)` : "no file";
});
$("compete-upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("compete-file").files[0];
  if (!file) { uploadStatus("choose a .py or .zip file first", false); return; }
  const form = new FormData();
  form.append("name", $("compete-name").value.trim());
  form.append("mission", $("compete-mission").value);
  form.append("seeds", $("compete-seeds").value);
  form.append("localization", $("compete-localization").value);
  form.append("file", file, file.name);
  $("compete-upload").disabled = true;
  try {
    const r = await fetch(`${CB}/submissions`, { method: "POST", body: form, credentials: "same-origin" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
    uploadStatus(`submission ${data.id} queued (${data.runs} run${data.runs === 1 ? "" : "s"})`, true);
    CP.selected = data.id;
    $("compete-file").value = "";
    $("compete-file-name").textContent = "no file";
    competePoll();
  } catch (e) {
    uploadStatus(e.message, false);
    toast(`upload: ${e.message}`);
  } finally { $("compete-upload").disabled = false; }
});
$("compete-leaderboard-mission").addEventListener("change", () => competePoll());
async function competePoll() {
  if (CP.busy) return;
  CP.busy = true;
  try {
    CP.subs = await api("GET", `${CB}/submissions`);
    const recent = CP.subs.slice(-30);
    // details (per-run terms) for what may still change, or was never fetched
    await Promise.all(recent.filter((s) => {
      const d = CP.details.get(s.id);
      return !d || d.state !== "scored" || s.state !== "scored" || s.id === CP.selected;
    }).map(async (s) => { CP.details.set(s.id, await api("GET", `${CB}/submissions/${s.id}`)); }));
    const board = await api("GET", `${CB}/leaderboard/${encodeURIComponent($("compete-leaderboard-mission").value)}`);
    renderSubmissions(recent);
    renderRuns();
    renderLeaderboard(board);
    if (CP.logRun) await loadLog(...CP.logRun, false);
    $("compete-updated").textContent = `updated ${new Date().toISOString().substring(11, 19)} UTC`;
  } catch (e) {
    $("compete-updated").textContent = `update failed: ${e.message}`;
  } finally { CP.busy = false; }
}
function renderSubmissions(recent) {
  const body = $("compete-submissions");
  body.innerHTML = "";
  for (const s of [...recent].reverse()) {
    const d = CP.details.get(s.id);
    const st = subState(s, d);
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "compete-submission-row");
    tr.dataset.submissionId = s.id;
    tr.dataset.state = st;
    if (s.id === CP.selected) tr.classList.add("selected");
    cell(tr, String(s.id));
    cell(tr, s.name);
    cell(tr, s.mission);
    const sc = cell(tr, "");
    const span = document.createElement("span");
    span.className = `state state-${st}`;
    span.setAttribute("data-testid", "compete-submission-state");
    span.textContent = st;
    sc.appendChild(span);
    cell(tr, Object.entries(s.runs || {}).map(([k, v]) => `${v} ${k}`).join(", ") || `${s.seeds} queued`);
    const tot = cell(tr, s.mean_total === null || s.mean_total === undefined ? "-" : fmt(s.mean_total, 1));
    tot.setAttribute("data-testid", "compete-submission-total");
    const terms = cell(tr, termsText(meanTerms(d)), "small");
    terms.setAttribute("data-testid", "compete-submission-terms");
    tr.onclick = () => { CP.selected = s.id; renderSubmissions(recent); renderRuns(); };
    body.appendChild(tr);
  }
}
function renderRuns() {
  const body = $("compete-runs");
  body.innerHTML = "";
  const d = CP.selected === null ? null : CP.details.get(CP.selected);
  $("compete-runs-title").textContent = d ? `submission ${d.id} (${d.name}, ${d.localization || "truth-noise"})` : "-";
  if (!d) return;
  for (const r of d.run_list) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "compete-run-row");
    tr.dataset.seed = r.seed;
    tr.dataset.state = r.state;
    tr.dataset.status = r.status || "";
    cell(tr, String(r.seed));
    cell(tr, r.state);
    cell(tr, r.status || "-");
    cell(tr, r.total === null || r.total === undefined ? "-" : fmt(r.total, 1));
    cell(tr, termsText(r.terms), "small");
    cell(tr, r.reason || "", "small");
    const b = document.createElement("button");
    b.textContent = "log";
    b.setAttribute("data-testid", "compete-run-log");
    b.onclick = () => loadLog(d.id, r.seed, true);
    const td = cell(tr, "");
    td.appendChild(b);
    const rb = document.createElement("button");
    rb.textContent = "replay";
    rb.setAttribute("data-testid", "compete-run-replay");
    rb.disabled = r.state !== "done";
    rb.onclick = () => loadReplay(d, r.seed);
    td.appendChild(rb);
    body.appendChild(tr);
  }
}
async function loadLog(sid, seed, user) {
  CP.logRun = [sid, seed];
  $("compete-log-title").textContent = `submission ${sid}, seed ${seed} (stdout + stderr, head only)`;
  try {
    const r = await fetch(`${CB}/submissions/${sid}/runs/${seed}/log`, { credentials: "same-origin" });
    const text = await r.text();
    if (!r.ok) throw new Error(text);
    const pre = $("compete-log");
    pre.textContent = text || "(no output yet)";
    pre.dataset.submissionId = sid;
    pre.dataset.seed = seed;
  } catch (e) { if (user) toast(`log: ${e.message}`); }
}
// replay of a run in the 3D view: true path, estimate path, a marker moving along the true path at 10x
const RP = { group: null, rows: [], start: 0, speed: 10 };
function clearReplay() {
  if (RP.group) {
    scene.remove(RP.group);
    RP.group.traverse((o) => { if (o.geometry) o.geometry.dispose(); if (o.material) o.material.dispose(); });
  }
  RP.group = null;
  RP.rows = [];
  window.__intballReplay = null;
  const info = $("compete-replay-info");
  info.classList.add("hidden");
  info.dataset.points = "0";
}
async function loadReplay(d, seed) {
  let traj;
  try {
    traj = await api("GET", `${CB}/submissions/${d.id}/runs/${seed}/trajectory`);
  } catch (e) { toast(`replay: ${e.message}`); return; }
  const cols = traj.columns || ["t", "x", "y", "z", "qx", "qy", "qz", "qw", "est_x", "est_y", "est_z"];
  const ix = (name) => cols.indexOf(name);
  const [it, ixx, iy, iz, iex, iey, iez] = ["t", "x", "y", "z", "est_x", "est_y", "est_z"].map(ix);
  const rows = (traj.rows || []).filter((r) => r.length >= cols.length);
  if (!rows.length) { toast(`replay: no trajectory for submission ${d.id}, seed ${seed}`); return; }
  clearReplay();
  const line = (pts, color) => new THREE.Line(
    new THREE.BufferGeometry().setFromPoints(pts), new THREE.LineBasicMaterial({ color }));
  const truePts = rows.map((r) => new THREE.Vector3(r[ixx], r[iy], r[iz]));
  const estPts = iex >= 0 ? rows.map((r) => new THREE.Vector3(r[iex], r[iey], r[iez])) : [];
  const group = new THREE.Group();
  group.name = "replay";
  group.add(line(truePts, 0x4dd2ff));
  if (estPts.length) group.add(line(estPts, 0xff9f43));
  const marker = sphere(0x4dd2ff, 1);
  marker.scale.setScalar(0.08);
  marker.name = "replay-marker";
  marker.position.copy(truePts[0]);
  group.add(marker);
  scene.add(group);
  RP.group = group;
  RP.marker = marker;
  RP.rows = rows.map((r) => [r[it], r[ixx], r[iy], r[iz]]);
  RP.start = performance.now();
  const duration = rows[rows.length - 1][it] - rows[0][it];
  const info = $("compete-replay-info");
  $("compete-replay-text").textContent =
    `replay: ${d.name} (submission ${d.id}), seed ${seed}, ${fmt(duration, 1)} s, ${rows.length} points, ${RP.speed}x`;
  info.dataset.points = String(rows.length);
  info.dataset.submissionId = d.id;
  info.dataset.seed = seed;
  info.classList.remove("hidden");
  window.__intballReplay = Object.freeze({ submission: d.id, seed, points: rows.length, duration_s: duration });
}
function replayFrame() {
  const rows = RP.rows;
  if (!RP.group || rows.length < 1) return;
  const t0 = rows[0][0];
  const span = rows[rows.length - 1][0] - t0;
  // play from the start, hold the end for 1 s, loop
  const t = span > 0 ? t0 + (((performance.now() - RP.start) / 1000) * RP.speed) % (span + RP.speed) : t0;
  let i = 0;
  while (i < rows.length - 2 && rows[i + 1][0] < t) i++;
  const a = rows[i], b = rows[Math.min(i + 1, rows.length - 1)];
  const f = b[0] > a[0] ? Math.max(0, Math.min(1, (t - a[0]) / (b[0] - a[0]))) : 0;
  RP.marker.position.set(a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f, a[3] + (b[3] - a[3]) * f);
}
$("compete-replay-clear").onclick = () => clearReplay();
function renderLeaderboard(rows) {
  const body = $("compete-leaderboard");
  body.innerHTML = "";
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "compete-leaderboard-row");
    tr.dataset.submissionId = row.id;
    tr.dataset.rank = row.rank;
    cell(tr, String(row.rank));
    cell(tr, String(row.id));
    cell(tr, row.name);
    cell(tr, fmt(row.mean_total, 1));
    cell(tr, String(row.seeds));
    cell(tr, row.scoring || "", "small");
    tr.dataset.scoring = row.scoring || "";
    body.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    cell(tr, "no scored submission yet", "small").colSpan = 6;
    body.appendChild(tr);
  }
}

// ---------------------------------------------------------------- events
function onEvent(ev) {
  switch (ev.type) {
    case "hello": {
      S.session = { ...S.session, ...ev.session };
      renderSession();
      const st = ev.state;
      for (const c of st.commands) S.commands.set(c.id, c);
      renderCommands();
      S.alerts = st.alerts; renderAlerts();
      renderLink(st.link);
      if (st.telemetry) applyTelemetry(st.telemetry, st.predicted);
      if (st.cameras[S.camera]) showFrame({ camera: S.camera, seq: st.cameras[S.camera].seq });
      for (const f of st.files || []) S.files.set(f.id, f);
      renderFiles();
      break;
    }
    case "telemetry": applyTelemetry(ev.telemetry, ev.predicted); break;
    case "command": S.commands.set(ev.command.id, ev.command); renderCommands(); break;
    case "alerts": S.alerts = ev.alerts; renderAlerts(); break;
    case "link": renderLink(ev.link); break;
    case "camera": showFrame(ev); break;
    case "file": S.files.set(ev.file.id, ev.file); renderFiles(); break;
    case "control":
      S.session = { ...S.session, controller: ev.controller, in_control: ev.controller === S.session.user && S.session.in_control };
      api("GET", "/api/session").then((s) => { S.session = s; renderSession(); });
      renderSession();
      break;
    default: break;
  }
}
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onopen = () => { document.body.dataset.ws = "open"; };
  ws.onclose = () => {
    document.body.dataset.ws = "closed";
    if (S.session && S.session.logged_in) setTimeout(connect, 1000);
  };
}

async function start() {
  renderSession();
  showLogin(false);
  S.module = await api("GET", "/api/module");
  buildModule(S.module);
  updateGhost(true);
  resize();
  connect();
  requestAnimationFrame(frame);
  competeProbe();
}
(async () => {
  renderSession();
  try {
    S.session = await api("GET", "/api/session");
  } catch (e) { S.session = null; }
  if (S.session && S.session.logged_in) await start();
  else showLogin(true);
})();

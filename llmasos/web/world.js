import * as THREE from "/static/vendor/three/three.module.min.js";
import { connect as openSession, injectableMic, messages, tokenPlayer } from "/static/client.js";

// LLMasOS world client: the characters of a session or room in a small three.js scene (`GET /world/layout`),
// speaking with lip-sync (`viseme` events) and performing their world actions (`action` events), both scheduled
// against this page's own playback of the reply audio, which it reports to the server (`played`). Enter VR /
// Enter AR where the browser has WebXR; in a room the head pose (or a click) sets whom the player faces (`focus`).
// Query parameters as the 2D page: ?character=ID or ?room=ID, ?player=ID, ?token=..., ?autoconnect=1, ?aec=0,
// ?mic=inject (tests: window.llmasos.say(wav) speaks into the microphone), ?fps=N caps the frame rate off XR
// (30; a browser without a GPU draws in software, on the cores the voice needs too).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const useAec = params.get("aec") !== "0";
const target = params.get("room") ? { room: params.get("room") } : { character: params.get("character") || "blacksmith" };
// what is drawn: that session's characters, or a scene by itself (?scene=ID: a room opened on it, ?room=, talks)
const view = params.get("scene") ? { scene: params.get("scene") } : target;
const me = params.get("player") || safeTokenPlayer(params.get("token")) || "guest";

// What the page saw and did, for automated tests (and the curious): the layout it drew, the messages it got,
// what each character performed and when, how its mouth moved, and how many playback reports it sent.
const seen = {
  ready: false, webgl: false, frames: 0, layout: null, session: null, states: [], transcripts: [], replies: {},
  actions: [], performed: [], held: [], visemes: 0, mouth: { moves: 0, maxOpen: 0, open: 0, shapes: {} }, characters: {},
  played: 0, focus: null, errors: [], metrics: [],
};
window.llmasos = seen;

// ---- the mouth: how open and how round each OpenXR viseme is ----------------------------------------------
const MOUTH = {
  sil: [0, 1], PP: [0, 0.8], FF: [0.15, 1], TH: [0.2, 1], DD: [0.3, 1], kk: [0.35, 1], CH: [0.3, 0.7],
  SS: [0.2, 1.1], nn: [0.25, 1], RR: [0.3, 0.7], aa: [1, 1.1], E: [0.6, 1.2], IH: [0.45, 1.15], OH: [0.8, 0.7],
  OU: [0.55, 0.55],
};
const EMOTIONS = { happy: 0xffd166, excited: 0xff9f1c, sad: 0x6c8ebf, angry: 0xe63946, surprised: 0xf4a261,
                   thinking: 0x9d8df1, worried: 0xb08968 };

function safeTokenPlayer(token) {
  try { return tokenPlayer(token); } catch { return null; }
}

function showError(text) {
  $("error").textContent = text;
  seen.errors.push(text);
}

// ---- the scene ---------------------------------------------------------------------------------------------
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x1d2330);
const camera = new THREE.PerspectiveCamera(60, innerWidth / innerHeight, 0.05, 100);
camera.position.set(0, 1.6, 3.2);
camera.lookAt(0, 1.2, 0);
let renderer = null;
try {
  renderer = new THREE.WebGLRenderer({ antialias: false, alpha: true });
  renderer.setPixelRatio(1);
  renderer.setSize(innerWidth, innerHeight);
  renderer.xr.enabled = true;
  $("scene").appendChild(renderer.domElement);
  seen.webgl = true;
} catch (err) {
  showError("WebGL is not available: the scene cannot be drawn (" + (err.message || err) + ")");
}
addEventListener("resize", () => {
  camera.aspect = innerWidth / innerHeight;
  camera.updateProjectionMatrix();
  renderer?.setSize(innerWidth, innerHeight);
});
scene.add(new THREE.HemisphereLight(0xdfe8ff, 0x3a2f25, 1.2));
const sun = new THREE.DirectionalLight(0xffffff, 1.4);
sun.position.set(3, 6, 4);
scene.add(sun);
const floor = new THREE.Mesh(new THREE.CircleGeometry(6.5, 48), new THREE.MeshLambertMaterial({ color: 0x5b4a3a }));
floor.rotation.x = -Math.PI / 2;
scene.add(floor);

const mat = (color) => new THREE.MeshLambertMaterial({ color });

function label(text, size = 0.22) {
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  ctx.font = "bold 40px sans-serif";
  canvas.width = Math.ceil(ctx.measureText(text).width) + 24;
  canvas.height = 56;
  ctx.font = "bold 40px sans-serif";
  ctx.fillStyle = "rgba(0,0,0,0.55)";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, 12, 42);
  const sprite = new THREE.Sprite(new THREE.SpriteMaterial({ map: new THREE.CanvasTexture(canvas), depthTest: false }));
  sprite.scale.set((size * canvas.width) / canvas.height, size, 1);
  return sprite;
}

function colorOf(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return new THREE.Color().setHSL((h % 360) / 360, 0.45, 0.5);
}

const places = {}; // name -> Vector3 on the floor
const props = {}; // name -> mesh
const avatars = {}; // character id -> avatar

function drawPlace(p) {
  const at = new THREE.Vector3(p.x, 0, p.z);
  places[p.name] = at;
  const group = new THREE.Group();
  group.position.copy(at);
  if (p.name === "counter") {
    const top = new THREE.Mesh(new THREE.BoxGeometry(2.2, 0.95, 0.6), mat(0x8a5a35));
    top.position.y = 0.475;
    group.add(top);
  } else if (p.name === "door") {
    for (const x of [-0.55, 0.55]) {
      const post = new THREE.Mesh(new THREE.BoxGeometry(0.12, 2.1, 0.12), mat(0x6b4a2b));
      post.position.set(x, 1.05, 0);
      group.add(post);
    }
    const lintel = new THREE.Mesh(new THREE.BoxGeometry(1.22, 0.12, 0.12), mat(0x6b4a2b));
    lintel.position.y = 2.1;
    group.add(lintel);
  } else {
    const disc = new THREE.Mesh(new THREE.CylinderGeometry(0.45, 0.45, 0.04, 24), mat(0x7d8a6a));
    disc.position.y = 0.02;
    group.add(disc);
  }
  const sign = label(p.label || p.name, p.name === "counter" ? 0.14 : 0.22);
  sign.position.y = p.name === "door" ? 2.4 : p.name === "counter" ? 0.6 : 0.6;
  if (p.name === "counter") sign.position.z = 0.32; // on its front
  group.add(sign);
  scene.add(group);
}

function propMesh(name) {
  const n = name.toLowerCase();
  if (n.includes("sword")) return new THREE.Mesh(new THREE.BoxGeometry(0.06, 0.06, 0.8), mat(n.includes("steel") ? 0xc8d0dc : 0x8d8d8d));
  if (n.includes("hammer")) {
    const hammer = new THREE.Group();
    const handle = new THREE.Mesh(new THREE.CylinderGeometry(0.018, 0.018, 0.34, 8), mat(0x8b5a2b));
    handle.rotation.z = Math.PI / 2;
    const head = new THREE.Mesh(new THREE.BoxGeometry(0.07, 0.14, 0.08), mat(0x555555));
    head.position.x = 0.17;
    hammer.add(handle, head);
    return hammer;
  }
  if (n.includes("horseshoe")) return new THREE.Mesh(new THREE.TorusGeometry(0.1, 0.025, 8, 16, Math.PI * 1.6), mat(0x777777));
  if (n.includes("map") || n.includes("letter")) return new THREE.Mesh(new THREE.BoxGeometry(0.3, 0.01, 0.22), mat(0xeadfc8));
  if (n.includes("pouch") || n.includes("silver")) return new THREE.Mesh(new THREE.SphereGeometry(0.09, 12, 8), mat(0xb5b5c5));
  return new THREE.Mesh(new THREE.BoxGeometry(0.14, 0.14, 0.14), mat(0xc9a227));
}

function drawProps(list) {
  const byPlace = {};
  for (const p of list) (byPlace[p.place] ||= []).push(p);
  for (const [place, items] of Object.entries(byPlace)) {
    const at = places[place] || new THREE.Vector3();
    items.forEach((p, i) => {
      const mesh = propMesh(p.name);
      const onCounter = place === "counter";
      mesh.position.set(at.x + (i - (items.length - 1) / 2) * 0.45, onCounter ? 1.0 : 0.1, at.z + (onCounter ? 0 : 0.6));
      mesh.userData.name = p.name;
      props[p.name] = mesh;
      scene.add(mesh);
    });
  }
}

function makeAvatar(c) {
  const root = new THREE.Group();
  const tint = colorOf(c.id);
  const body = new THREE.Mesh(new THREE.CylinderGeometry(0.24, 0.3, 1.05, 16), mat(tint));
  body.position.y = 0.75;
  root.add(body);
  const head = new THREE.Group();
  head.position.y = 1.52;
  const skin = new THREE.MeshLambertMaterial({ color: 0xe0b48a, emissive: 0x000000 });
  head.add(new THREE.Mesh(new THREE.SphereGeometry(0.22, 20, 14), skin));
  for (const x of [-0.075, 0.075]) {
    const eye = new THREE.Mesh(new THREE.SphereGeometry(0.025, 8, 6), mat(0x222222));
    eye.position.set(x, 0.05, 0.2);
    head.add(eye);
  }
  const mouth = new THREE.Mesh(new THREE.CircleGeometry(0.06, 16), new THREE.MeshBasicMaterial({ color: 0x5a1f1f }));
  mouth.position.set(0, -0.08, 0.212);
  mouth.scale.set(1, 0.08, 1);
  head.add(mouth);
  root.add(head);
  const arms = {};
  for (const [side, x] of [["left", -0.33], ["right", 0.33]]) {
    const shoulder = new THREE.Group();
    shoulder.position.set(x, 1.22, 0);
    const arm = new THREE.Mesh(new THREE.BoxGeometry(0.1, 0.62, 0.1), mat(tint.clone().multiplyScalar(0.8)));
    arm.position.y = -0.31;
    shoulder.add(arm);
    root.add(shoulder);
    arms[side] = shoulder;
  }
  const name = label(c.name, 0.2);
  name.position.y = 2.0;
  root.add(name);
  const at = places[c.place] || new THREE.Vector3();
  const front = c.place === "counter" ? -0.55 : 0.3; // behind the counter, or beside its place
  root.position.set(c.x ?? at.x, 0, at.z + front);
  root.userData.id = c.id;
  scene.add(root);
  const avatar = { id: c.id, name: c.name, root, head, mouth, skin, arms, gestures: [], walk: null, yawTarget: 0,
                   mouthTarget: [0, 1], emote: null, held: null };
  avatars[c.id] = avatar;
  seen.characters[c.id] = { x: root.position.x, z: root.position.z, yaw: 0, walking: false };
  return avatar;
}

// ---- the playback clock: where this page is in each reply's audio ------------------------------------------
// A reply's audio starts when `state` says speaking; the clock starts at the first sound of it this page
// actually plays (the analyser sits after the jitter buffer), so it is what the player hears.
let analyser = null, levelBuf = null;
// start: performance.now() at the first sound; holdAt: where the voice holds while paused (ms into the reply)
const clock = { turn: null, character: null, start: null, holdAt: null };
const visemes = []; // { turn, ms, id }, in order
const pendingActions = [];
let lastReport = 0;

function position() {
  return clock.start === null ? null : performance.now() - clock.start;
}

function level() {
  if (!analyser) return 0;
  analyser.getFloatTimeDomainData(levelBuf);
  let sum = 0;
  for (const v of levelBuf) sum += v * v;
  return Math.sqrt(sum / levelBuf.length);
}

function report(final) {
  const pos = position();
  if (pos === null || !session) return;
  const now = performance.now();
  if (!final && now - lastReport < 250) return;
  lastReport = now;
  session.send(messages.played(clock.turn, pos));
  seen.played += 1;
}

function speaker() {
  return avatars[clock.character] || avatars[seen.layout?.characters?.[0]?.id];
}

// ---- world actions -----------------------------------------------------------------------------------------
function targetPoint(name) {
  if (!name || name === "player") return camera.position.clone().setY(1.4);
  if (props[name]) return props[name].position.clone();
  if (places[name]) return places[name].clone().setY(1.0);
  if (avatars[name]) return avatars[name].root.position.clone().setY(1.4);
  return null;
}

function face(avatar, point) {
  if (!point) return;
  const p = avatar.root.position;
  avatar.yawTarget = Math.atan2(point.x - p.x, point.z - p.z);
}

function perform(avatar, msg) {
  const now = performance.now();
  const args = msg.args || {};
  const record = { character: avatar.id, name: msg.name, args, turn: msg.turn, at_ms: msg.at_ms, played_ms: position(),
                   time: now };
  seen.performed.push(record);
  switch (msg.name) {
    case "wave":
      face(avatar, targetPoint(args.target));
      avatar.gestures.push({ kind: "wave", start: now, dur: 1800 });
      break;
    case "nod":
      avatar.gestures.push({ kind: "nod", start: now, dur: 900 });
      break;
    case "bow":
      avatar.gestures.push({ kind: "bow", start: now, dur: 1400 });
      break;
    case "point_at": {
      const point = targetPoint(args.target);
      face(avatar, point || camera.position);
      avatar.gestures.push({ kind: "point", start: now, dur: 2200 });
      break;
    }
    case "walk_to": {
      const to = places[args.location];
      if (to) avatar.walk = { to: to.clone().add(new THREE.Vector3(0, 0, 0.5)), then: "player" };
      break;
    }
    case "give_item": {
      face(avatar, camera.position);
      avatar.gestures.push({ kind: "give", start: now, dur: 1200 });
      const source = props[args.item];
      const item = source ? source.clone() : propMesh(args.item || "item");
      item.position.copy(avatar.root.position).add(new THREE.Vector3(0, 1.1, 0));
      scene.add(item);
      avatar.held = { mesh: item, start: now, from: item.position.clone(), dur: 1400 };
      seen.given = (seen.given || []).concat([args.item]);
      break;
    }
    case "emote": {
      const color = EMOTIONS[args.emotion] ?? 0xffffff;
      avatar.skin.emissive.setHex(color).multiplyScalar(0.35);
      if (avatar.emote) avatar.root.remove(avatar.emote.sprite);
      const sprite = label(args.emotion || "!", 0.18);
      sprite.position.y = 2.25;
      avatar.root.add(sprite);
      avatar.emote = { sprite, until: now + 2500, emotion: args.emotion };
      avatar.gestures.push({ kind: args.emotion === "happy" || args.emotion === "excited" ? "hop" : "tilt", start: now, dur: 1000 });
      break;
    }
    default:
      avatar.gestures.push({ kind: "nod", start: now, dur: 700 }); // a declared action of its own: acknowledged
  }
}

function animate(avatar, now, dt) {
  const root = avatar.root;
  // walking to a place, then turning back to the player
  if (avatar.walk) {
    const to = avatar.walk.to;
    const d = new THREE.Vector3(to.x - root.position.x, 0, to.z - root.position.z);
    const dist = d.length();
    if (dist < 0.05) {
      avatar.walk = null;
      face(avatar, camera.position);
    } else {
      avatar.yawTarget = Math.atan2(d.x, d.z);
      root.position.addScaledVector(d.normalize(), Math.min(dist, 1.2 * dt));
    }
  }
  // turning smoothly toward the yaw it wants
  let dy = avatar.yawTarget - root.rotation.y;
  dy = Math.atan2(Math.sin(dy), Math.cos(dy));
  root.rotation.y += dy * Math.min(1, dt * 5);
  // idle breathing, and gestures
  const bob = avatar.walk ? Math.abs(Math.sin(now / 120)) * 0.05 : Math.sin(now / 700) * 0.012;
  root.position.y = bob;
  let right = 0, left = 0, headPitch = Math.sin(now / 1900) * 0.03, lean = 0, hop = 0, tilt = 0, forward = 0;
  avatar.gestures = avatar.gestures.filter((g) => now - g.start < g.dur);
  for (const g of avatar.gestures) {
    const t = (now - g.start) / g.dur;
    const env = Math.sin(Math.PI * Math.min(1, t * 1.2));
    if (g.kind === "wave") right = -2.6 * env + Math.sin(now / 90) * 0.35 * env;
    if (g.kind === "nod") headPitch += Math.sin(t * Math.PI * 4) * 0.35;
    if (g.kind === "bow") lean = 0.6 * env;
    if (g.kind === "point") { right = -1.5 * env; forward = env; }
    if (g.kind === "give") { right = -1.2 * env; left = -1.2 * env; forward = env; }
    if (g.kind === "hop") hop = Math.abs(Math.sin(t * Math.PI * 3)) * 0.12;
    if (g.kind === "tilt") tilt = 0.25 * env;
  }
  avatar.arms.right.rotation.x = forward ? -1.3 * forward : 0;
  avatar.arms.right.rotation.z = forward ? 0 : right * -0.45;
  if (!forward) avatar.arms.right.rotation.x = right * 0.35;
  avatar.arms.left.rotation.x = left;
  avatar.head.rotation.x = headPitch;
  avatar.head.rotation.z = tilt;
  root.rotation.x = lean;
  root.position.y += hop;
  // an item handed over flies to the player and stays in front of them
  if (avatar.held) {
    const h = avatar.held;
    const t = Math.min(1, (now - h.start) / h.dur);
    const to = camera.position.clone().add(new THREE.Vector3(0.3, -0.45, -1.3));
    h.mesh.position.lerpVectors(h.from, to, t);
    h.mesh.position.y += Math.sin(Math.PI * t) * 0.3; // an arc
    h.mesh.rotation.y += dt;
  }
  if (avatar.emote && now > avatar.emote.until) {
    avatar.root.remove(avatar.emote.sprite);
    avatar.skin.emissive.setHex(0x000000);
    avatar.emote = null;
  }
  // the mouth eases toward the shape of the viseme now due
  const [open, width] = avatar.mouthTarget;
  const m = avatar.mouth.scale;
  m.y += (Math.max(0.08, open) - m.y) * Math.min(1, dt * 25);
  m.x += (width - m.x) * Math.min(1, dt * 25);
  const state = seen.characters[avatar.id];
  Object.assign(state, { x: +root.position.x.toFixed(2), z: +root.position.z.toFixed(2), yaw: +root.rotation.y.toFixed(2),
                         walking: Boolean(avatar.walk), mouth: +m.y.toFixed(2), emotion: avatar.emote?.emotion ?? null });
}

// what is due on the playback clock: mouth shapes and actions
function schedule() {
  const loud = level();
  if (clock.turn !== null && clock.start === null && loud > 0.01) clock.start = performance.now() - 10;
  const pos = position();
  const avatar = speaker();
  if (avatar && pos !== null) {
    let due = null;
    const until = clock.holdAt === null ? pos : Math.min(pos, clock.holdAt - 1); // held: nothing after it
    while (visemes.length && visemes[0].turn === clock.turn && visemes[0].ms <= until) due = visemes.shift();
    if (clock.holdAt !== null && pos >= clock.holdAt) due = { id: "sil" };
    while (visemes.length && visemes[0].turn !== clock.turn && visemes[0].turn < clock.turn) visemes.shift();
    if (due) {
      const shape = MOUTH[due.id] || MOUTH.sil;
      if (Math.abs(shape[0] - avatar.mouthTarget[0]) >= 0.3) seen.mouth.moves += 1;
      avatar.mouthTarget = shape;
      seen.mouth.open = shape[0];
      seen.mouth.maxOpen = Math.max(seen.mouth.maxOpen, shape[0]);
      seen.mouth.shapes[due.id] = (seen.mouth.shapes[due.id] || 0) + 1;
    }
    report(false);
  }
  // an action of the reply now playing waits for the page's playback to reach it (the server sends it when its
  // encoder does, a jitter buffer earlier; before the first sound, at most 1.5 s); any other is due at once
  const now = performance.now();
  for (let i = pendingActions.length - 1; i >= 0; i--) {
    const msg = pendingActions[i];
    const playing = msg.turn === clock.turn;
    const reached = pos !== null ? pos >= msg.at_ms - 30 : now - msg.received > 1500;
    if (!playing || reached) {
      pendingActions.splice(i, 1);
      const who = avatars[msg.character] || speaker();
      if (who) perform(who, msg);
    }
  }
}

// in a room: whom the player faces (the head pose in VR, a click otherwise) is the room's focus
let lastFocusCheck = 0;
function checkFocus(now) {
  if (!target.room || !session || now - lastFocusCheck < 500) return;
  lastFocusCheck = now;
  const xrCamera = renderer?.xr.isPresenting ? renderer.xr.getCamera() : camera;
  const forward = new THREE.Vector3(0, 0, -1).applyQuaternion(xrCamera.quaternion);
  const eye = new THREE.Vector3().setFromMatrixPosition(xrCamera.matrixWorld);
  let best = null, bestAngle = 0.45; // ~25 degrees
  for (const a of Object.values(avatars)) {
    const to = a.root.position.clone().setY(1.5).sub(eye).normalize();
    const angle = forward.angleTo(to);
    if (angle < bestAngle) { best = a.id; bestAngle = angle; }
  }
  if (renderer?.xr.isPresenting && best !== seen.focus) setFocus(best);
}

function setFocus(id) {
  seen.focus = id;
  session?.send(messages.focus(id));
}

const raycaster = new THREE.Raycaster();
addEventListener("click", (e) => {
  if (!target.room || e.target !== renderer?.domElement) return;
  raycaster.setFromCamera(new THREE.Vector2((e.clientX / innerWidth) * 2 - 1, -(e.clientY / innerHeight) * 2 + 1), camera);
  const hit = raycaster.intersectObjects(Object.values(avatars).map((a) => a.root), true)[0];
  let node = hit?.object;
  while (node && !node.userData.id) node = node.parent;
  setFocus(node ? node.userData.id : null);
});

// the player stands in front of the scene, far enough back to see all of it; the floor covers it
function frame_(layout) {
  const xs = layout.places.map((p) => p.x), zs = layout.places.map((p) => p.z);
  const cast = Object.values(avatars).map((a) => a.root.position);
  const cx = cast.length ? cast.reduce((s, p) => s + p.x, 0) / cast.length : (Math.min(...xs) + Math.max(...xs)) / 2;
  const cz = cast.length ? cast.reduce((s, p) => s + p.z, 0) / cast.length : (Math.min(...zs) + Math.max(...zs)) / 2;
  const radius = Math.max(2, ...layout.places.map((p) => Math.hypot(p.x - cx, p.z - cz)));
  floor.scale.setScalar((radius + 2.5) / 6.5);
  floor.position.set(cx, 0, cz);
  camera.position.set(cx, 1.6 + Math.max(0, radius - 3) * 0.4, cz + Math.max(3.6, radius * 1.2 + 1));
  camera.lookAt(cx, 1.1, cz - 0.5);
}

// ---- the loop ----------------------------------------------------------------------------------------------
let last = performance.now(), lastDraw = 0;
const maxFps = Math.min(60, Math.max(1, Number(params.get("fps")) || 30));
function frame() {
  const now = performance.now();
  const dt = Math.min(0.1, (now - last) / 1000);
  last = now;
  schedule();
  for (const a of Object.values(avatars)) animate(a, now, dt);
  checkFocus(now);
  // off XR at most ?fps= frames a second (30): a software renderer on a few cores shares them with the voice
  if (renderer && (renderer.xr.isPresenting || now - lastDraw >= 1000 / maxFps)) {
    renderer.render(scene, camera);
    lastDraw = now;
    seen.frames += 1;
  }
}

// ---- the session -------------------------------------------------------------------------------------------
let session = null, mic = null, injected = null;

function setState(state) {
  $("state").textContent = state;
  $("state").className = "state " + state;
}

function endOfPlayback() {
  report(true);
  const avatar = speaker();
  if (avatar) avatar.mouthTarget = MOUTH.sil;
  clock.turn = clock.character = clock.start = null;
}

function onEvent(msg) {
  switch (msg.type) {
    case "session":
      seen.session = msg.session;
      break;
    case "state":
      seen.states.push({ state: msg.state, turn: msg.turn ?? null, character: msg.character ?? null });
      setState(msg.state);
      if (msg.state === "paused" && msg.turn === clock.turn) {
        clock.holdAt = msg.at_ms ?? position() ?? 0; // its voice holds there: no mouth shape after it is due
      } else if (msg.state === "speaking" && msg.turn === clock.turn && msg.held_ms !== undefined) {
        // it plays on where it held: what was sent for after that place plays held_ms later
        for (const v of visemes) if (v.turn === msg.turn && v.ms >= msg.at_ms) v.ms += msg.held_ms;
        seen.held.push({ turn: msg.turn, at_ms: msg.at_ms, held_ms: msg.held_ms });
        clock.holdAt = null;
      } else if (msg.state === "speaking") {
        if (clock.turn !== null) endOfPlayback();
        Object.assign(clock, { turn: msg.turn, character: msg.character ?? seen.layout?.characters?.[0]?.id, start: null, holdAt: null });
        const a = speaker();
        if (a && !a.walk && !target.room) face(a, camera.position); // it turns to whoever it answers
      } else if (msg.state === "listening" && msg.turn === clock.turn) {
        endOfPlayback();
      }
      break;
    case "addressed": {
      const a = avatars[msg.character];
      if (a && msg.speaker === me) face(a, camera.position);
      break;
    }
    case "transcript":
      if (msg.speaker && msg.speaker !== me) break;
      if (msg.final) {
        seen.transcripts.push(msg.text);
        $("heard").textContent = msg.text;
        $("partial").textContent = "";
      } else {
        $("partial").textContent = msg.text;
      }
      break;
    case "reply": {
      seen.replies[msg.turn] = msg.text;
      const who = avatars[msg.character] || avatars[seen.layout?.characters?.[0]?.id];
      $("reply").dataset.name = who ? who.name : "";
      $("reply").textContent = msg.text;
      break;
    }
    case "viseme":
      seen.visemes += 1;
      for (const [offset, id] of msg.visemes) visemes.push({ turn: msg.turn, ms: msg.at_ms + offset, id });
      break;
    case "action":
      seen.actions.push(msg);
      pendingActions.push({ ...msg, received: performance.now() });
      break;
    case "interrupted": {
      $("reply").textContent = msg.heard + " …";
      const pos = position() ?? 0;
      for (let i = visemes.length - 1; i >= 0; i--) if (visemes[i].turn === msg.turn && visemes[i].ms > pos) visemes.splice(i, 1);
      if (msg.turn === clock.turn) endOfPlayback();
      break;
    }
    case "metrics": {
      seen.metrics.push(msg);
      const t = msg.timeline_ms;
      if (t.speech_end !== undefined && (t.first_audio_sent ?? t.tts_first_audio) !== undefined) {
        $("latency").textContent = `voice-to-voice ${Math.round(t.first_audio_sent ?? t.tts_first_audio)} ms (server)`;
      }
      break;
    }
    case "error":
      showError(`${msg.code}: ${msg.message}`);
      break;
  }
}

async function connect() {
  $("connect").disabled = true;
  $("error").textContent = "";
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: useAec, noiseSuppression: useAec, autoGainControl: useAec, channelCount: 1 },
    });
    let stream = mic;
    if (params.get("mic") === "inject") {
      injected = injectableMic(mic);
      seen.say = injected.say;
      stream = injected.stream;
    }
    const audio = new Audio();
    audio.autoplay = true;
    session = await openSession({
      stream,
      player: me,
      token: params.get("token") || undefined,
      name: me,
      ...target,
      onMessage: onEvent,
      onOpen: () => { $("text").disabled = false; $("send").disabled = false; },
      onTrack: (e) => {
        const remote = e.streams[0] || new MediaStream([e.track]);
        audio.srcObject = remote;
        audio.play().catch(() => {});
        const ctx = new AudioContext();
        analyser = ctx.createAnalyser();
        analyser.fftSize = 512;
        levelBuf = new Float32Array(analyser.fftSize);
        ctx.createMediaStreamSource(remote).connect(analyser);
      },
    });
  } catch (err) {
    showError(String(err.message || err));
    $("connect").disabled = false;
  }
}

async function setupXR() {
  if (!navigator.xr || !renderer) return;
  for (const [mode, id] of [["immersive-vr", "xr-vr"], ["immersive-ar", "xr-ar"]]) {
    try {
      if (!(await navigator.xr.isSessionSupported(mode))) continue;
    } catch {
      continue;
    }
    const button = $(id);
    button.hidden = false;
    button.onclick = async () => {
      const xr = await navigator.xr.requestSession(mode, { optionalFeatures: ["local-floor"] });
      if (mode === "immersive-ar") scene.background = null;
      xr.addEventListener("end", () => { scene.background = new THREE.Color(0x1d2330); });
      await renderer.xr.setSession(xr);
      if (!session) connect(); // the microphone works the same in the headset
    };
  }
}

async function start() {
  const query = new URLSearchParams(view).toString();
  const res = await fetch(`/world/layout?${query}`);
  const layout = await res.json();
  if (!res.ok) {
    showError(`${layout.error?.code}: ${layout.error?.message}`);
    return;
  }
  seen.layout = layout;
  $("place").textContent = layout.name;
  for (const p of layout.places) drawPlace(p);
  drawProps(layout.props);
  for (const c of layout.characters) makeAvatar(c);
  frame_(layout);
  for (const a of Object.values(avatars)) face(a, camera.position);
  renderer?.setAnimationLoop(frame);
  if (!renderer) setInterval(frame, 33); // no WebGL: the scene's logic still runs (and reports)
  await setupXR();
  seen.ready = true;
  if (params.get("autoconnect") === "1") connect();
}

$("connect").onclick = connect;
$("textform").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (text && session) session.send(messages.text(text));
  $("text").value = "";
};
start().catch((err) => showError(String(err.message || err)));

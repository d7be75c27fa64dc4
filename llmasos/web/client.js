// The LLMasOS client protocol (docs/protocol.md) as a reusable ES module: no dependencies, no build step. The
// browser page (app.js) is built on it; a WebXR scene or a game's web view can import it the same way
// (`import { connect, messages } from "/static/client.js"`). A test checks what it sends against the JSON Schemas
// in docs/protocol/.
//
//   const session = await connect({ stream: micStream, character: "blacksmith", player: "ann",
//                                   onMessage: (msg) => ..., onTrack: (e) => audio.srcObject = e.streams[0] });
//   session.send(messages.text("Hello!"));
//   session.send(messages.world(["It is night.", "The player holds a torch."]));

export const CHANNEL = "events"; // the data channel's label

// Client-to-server messages, as the schemas have them.
export const messages = {
  text: (text) => ({ type: "text", text: String(text) }),
  played: (turn, atMs) => ({ type: "played", turn, at_ms: Math.max(0, Math.round(atMs)) }),
  interrupt: () => ({ type: "interrupt" }),
  ping: (id) => (id === undefined ? { type: "ping" } : { type: "ping", id }),
  focus: (character) => ({ type: "focus", character: character ?? null }),
  world: (facts) => ({ type: "world", facts: Array.from(facts, String) }),
  actionResult: (turn, action, ok, reason) => {
    const msg = { type: "action_result", turn, action, ok: Boolean(ok) };
    if (reason) msg.reason = String(reason);
    return msg;
  },
};

// The body of `POST /rtc/offer`: a 1:1 session with `character`, or a place in `room` as `name`.
export function offerBody({ sdp, character, room, player, name, token, greet = true, resume }) {
  if (!player) throw new Error("a player id is needed");
  if (!character === !room) throw new Error("either a character or a room, not both");
  const body = { sdp, type: "offer", player };
  if (room) Object.assign(body, { room, name: name || player });
  else body.character = character;
  if (token) body.token = token;
  if (!greet) body.greet = false;
  if (resume) body.resume = resume;
  return body;
}

// One server-to-client message; anything that is not an object with a `type` is refused.
export function parseServerMessage(raw) {
  const msg = JSON.parse(raw);
  if (!msg || typeof msg !== "object" || Array.isArray(msg) || typeof msg.type !== "string") {
    throw new Error("a server message is a JSON object with a 'type'");
  }
  return msg;
}

// The player a session token was issued to (its body is base64url JSON with `sub`), or null.
export function tokenPlayer(token) {
  if (!token) return null;
  const body = token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
  const json = atob(body + "=".repeat((4 - (body.length % 4)) % 4));
  return JSON.parse(json).sub || null;
}

// A microphone stream routed through Web Audio, so that `say(base64 WAV)` can mix speech into what is sent
// (automated tests speak when the page shows they should, not at a time fixed in an audio file). Returns
// { stream, say, close }; `say` resolves once all of the speech has been sent.
export function injectableMic(mic) {
  const ctx = new AudioContext({ sampleRate: 48000 });
  const out = ctx.createMediaStreamDestination();
  ctx.createMediaStreamSource(mic).connect(out);
  const say = async (wavBase64) => {
    const bytes = Uint8Array.from(atob(wavBase64), (c) => c.charCodeAt(0));
    await ctx.resume();
    const node = ctx.createBufferSource();
    node.buffer = await ctx.decodeAudioData(bytes.buffer);
    node.connect(out);
    const ended = new Promise((resolve) => { node.onended = resolve; });
    node.start();
    await ended;
  };
  return { stream: out.stream, say, close: () => ctx.close() };
}

export class ClientError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    Object.assign(this, { status, code });
  }
}

export function waitIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Open a session: the ICE servers from the server, one audio track from `stream`, the `events` channel, a
// non-trickle offer. Resolves once the answer is applied, with { pc, channel, session, room, resumed, send }.
// `onMessage`, `onTrack` and `onOpen` are attached before anything can arrive.
export async function connect({ baseUrl = "", stream, onMessage, onTrack, onOpen, ...target }) {
  const config = await (await fetch(`${baseUrl}/rtc/config`)).json();
  const pc = new RTCPeerConnection({
    iceServers: config.iceServers || [],
    iceTransportPolicy: config.iceTransportPolicy || "all", // "relay": the server wants every session through TURN
  });
  try {
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream); // the server needs an audio m-line
    const channel = pc.createDataChannel(CHANNEL); // ordered and reliable, as the protocol requires
    channel.onmessage = (e) => onMessage?.(parseServerMessage(e.data));
    channel.onopen = () => onOpen?.();
    pc.ontrack = (e) => onTrack?.(e);
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc);
    const res = await fetch(`${baseUrl}/rtc/offer`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(offerBody({ sdp: pc.localDescription.sdp, ...target })),
    });
    const body = await res.json();
    if (!res.ok) {
      const err = body.error || {};
      throw new ClientError(res.status, err.code || "http_error", err.message || res.statusText);
    }
    await pc.setRemoteDescription({ type: body.type, sdp: body.sdp });
    const send = (msg) => channel.send(JSON.stringify(msg));
    return { pc, channel, session: body.session, room: body.room ?? null, resumed: Boolean(body.resumed), send };
  } catch (err) {
    pc.close();
    throw err;
  }
}

// Generate content (`POST /generate`, then `GET /generate/{id}` until it is done or failed): a character, quest,
// scene or story from a request in words, saved where the server finds it. `onProgress(job)` sees every state
// read while it runs; resolves with the finished job ({ result, report, saved, ... }), rejects with a
// ClientError (the request refused, or `generation_failed` with what failed).
export async function generate({ baseUrl = "", kind, prompt, seed, token, save = true, onProgress, everyMs = 500 }) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const body = { kind, prompt: String(prompt), save };
  if (seed !== undefined && seed !== null) body.seed = seed;
  const read = async (res) => {
    const job = await res.json();
    if (!res.ok) {
      const err = job.error || {};
      throw new ClientError(res.status, err.code || "http_error", err.message || res.statusText);
    }
    return job;
  };
  let job = await read(await fetch(`${baseUrl}/generate`, { method: "POST", headers, body: JSON.stringify(body) }));
  while (job.state === "queued" || job.state === "running") {
    onProgress?.(job);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    job = await read(await fetch(`${baseUrl}/generate/${job.id}`, { headers }));
  }
  onProgress?.(job);
  if (job.state === "failed") throw new ClientError(200, "generation_failed", job.error || "the job failed");
  return job;
}

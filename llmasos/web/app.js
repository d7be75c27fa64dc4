import { connect as openSession, generate, injectableMic, messages, tokenPlayer } from "/static/client.js";

// LLMasOS browser client: one WebRTC peer (mic up, character's voice down) and the `events` data channel.
// No build step. Query parameters: ?aec=0 turns off echo cancellation, noise suppression and gain control
// (automated tests with a fake microphone), ?character=ID or ?room=ID and ?player=ID preselect (in a room the
// player's name is its display name), ?autoconnect=1 connects at once,
// ?token=... is the session token a server bound to a public address asks for (`llmasos token`), ?mic=inject
// (automated tests) sends the microphone through Web Audio so that window.llmasos.say(wav) can speak into it.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const useAec = params.get("aec") !== "0";
const injectMic = params.get("mic") === "inject";

// What the page saw, for people (the DOM) and for automated tests (window.llmasos). `states` holds the state
// messages ({state, turn}); `levels` the loudest remote audio (RMS) heard while each turn spoke, by turn.
// In a room also: `heard` (every final transcript, {speaker, name, text}), `addressed` (the addressed events),
// `room` (the last room event) and `focus` (the character this player faces).
const seen = { states: [], transcripts: [], replies: {}, actions: [], words: [], errors: [], metrics: [], maxRemoteLevel: 0,
               levels: {}, session: null, connected: false, heard: [], addressed: [], room: null, focus: null,
               created: [] };
window.llmasos = seen;

let pc = null, channel = null, mic = null, levelTimer = null, audioCtx = null, micCtx = null;
let speakingTurn = null; // the turn whose voice the remote audio is
let characterName = "Character";
let me = null; // this player's id
const replyEls = {};
const names = {}; // character id -> name
const lastLine = {}; // speaker id -> their last line in the log (to show whom it was for)

function setState(state) {
  const el = $("state");
  el.textContent = state;
  el.className = "state " + state;
}

function showError(message) {
  $("error").textContent = message;
  seen.errors.push(message);
}

function addMessage(kind, text, name) {
  const div = document.createElement("div");
  div.className = "msg " + kind;
  if (name) div.dataset.name = name;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

async function loadCharacters() {
  try {
    const list = await (await fetch("/characters")).json();
    const rooms = await (await fetch("/rooms")).json();
    const select = $("character");
    select.innerHTML = "";
    const group = (label) => { const g = document.createElement("optgroup"); g.label = label; select.appendChild(g); return g; };
    const people = group("Characters");
    for (const c of list.characters) {
      names[c.id] = c.name;
      const opt = document.createElement("option");
      opt.value = c.id;
      opt.textContent = c.name;
      people.appendChild(opt);
    }
    if (rooms.rooms.length) {
      const places = group("Rooms");
      for (const r of rooms.rooms) {
        const opt = document.createElement("option");
        opt.value = "room:" + r.id;
        opt.textContent = `${r.name} (${r.characters.map((id) => names[id] || id).join(", ")})`;
        places.appendChild(opt);
      }
    }
    if (params.get("character")) select.value = params.get("character");
    if (params.get("room")) select.value = "room:" + params.get("room");
  } catch (err) {
    showError("cannot list characters: " + err);
  }
  const player = params.get("player") || playerOfToken(params.get("token"));
  if (player) $("player").value = player;
}

// The player a session token was issued to: ?token= alone is enough.
function playerOfToken(token) {
  try {
    return tokenPlayer(token);
  } catch (err) {
    showError("the token in the address is not a session token");
    return null;
  }
}

function watchRemoteLevel(stream) {
  audioCtx = new AudioContext();
  const analyser = audioCtx.createAnalyser();
  analyser.fftSize = 1024;
  audioCtx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  levelTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    const rms = Math.sqrt(sum / buf.length);
    if (rms > seen.maxRemoteLevel) seen.maxRemoteLevel = rms;
    if (speakingTurn !== null && rms > (seen.levels[speakingTurn] ?? 0)) seen.levels[speakingTurn] = rms;
  }, 50);
}

function onEvent(msg) {
  switch (msg.type) {
    case "session":
      seen.session = msg.session;
      break;
    case "state":
      seen.states.push({ state: msg.state, turn: msg.turn ?? null, character: msg.character ?? null });
      if (msg.state === "speaking") {
        speakingTurn = msg.turn;
        $("error").textContent = ""; // a turn worked: an error from before is stale
      }
      if (msg.character) markSpeaking("c-" + msg.character, msg.state === "speaking");
      setState(msg.state);
      break;
    case "transcript": {
      const mine = !msg.speaker || msg.speaker === me;
      if (msg.speaker) markSpeaking("p-" + msg.speaker, !msg.final);
      if (msg.final) {
        if (mine) seen.transcripts.push(msg.text);
        seen.heard.push({ speaker: msg.speaker ?? me, name: msg.name ?? null, text: msg.text });
        if (mine) $("partial").textContent = "";
        lastLine[msg.speaker ?? me] = mine ? addMessage("user", msg.text) : addMessage("person", msg.text, msg.name);
      } else if (mine) {
        $("partial").textContent = msg.text;
      }
      break;
    }
    case "addressed": {
      seen.addressed.push(msg);
      const line = lastLine[msg.speaker];
      if (line) {
        const tag = document.createElement("span");
        tag.className = "addressed";
        tag.textContent = msg.character ? ` → ${names[msg.character] || msg.character} (${msg.reason})` : ` (${msg.reason})`;
        line.appendChild(tag);
      }
      break;
    }
    case "room":
      seen.room = msg;
      showRoom(msg);
      break;
    case "reply": {
      seen.replies[msg.turn] = msg.text;
      const who = msg.character ? names[msg.character] || msg.character : characterName;
      if (!replyEls[msg.turn]) replyEls[msg.turn] = addMessage("character", "", who);
      replyEls[msg.turn].textContent = msg.text;
      break;
    }
    case "interrupted":
      if (replyEls[msg.turn]) {
        replyEls[msg.turn].textContent = msg.heard + " …";
        replyEls[msg.turn].classList.add("cut");
      }
      break;
    case "action": {
      seen.actions.push(msg);
      const li = document.createElement("li");
      const args = Object.entries(msg.args).map(([k, v]) => `${k}=${v}`).join(", ");
      li.textContent = `${msg.name}(${args}) @${msg.at_ms} ms`;
      $("actions").appendChild(li);
      break;
    }
    case "words": // when each word is heard (captions could follow the voice with it)
      seen.words.push(msg);
      break;
    case "metrics": {
      seen.metrics.push(msg);
      const t = msg.timeline_ms;
      const row = document.createElement("tr");
      // the server's part of voice-to-voice: the end of the player's speech (or typing) to the reply's first
      // audio sent; a greeting answers nobody ("–"); what the player hears comes ~0.2-0.4 s later (network, jitter buffer)
      const total = t.speech_end !== undefined ? (t.first_audio_sent ?? t.tts_first_audio) : undefined;
      const stages = Object.entries(t).map(([k, v]) => `${k} ${Math.round(v)}`).join(" · ");
      row.innerHTML = `<td>${msg.turn}</td><td>${total !== undefined ? Math.round(total) + " ms" : "–"}</td><td></td>`;
      row.lastChild.textContent = stages;
      $("latency").querySelector("tbody").appendChild(row);
      break;
    }
    case "error":
      showError(`${msg.code}: ${msg.message}`);
      break;
  }
}

// The room panel: the people (a light while they speak) and the characters (a light while they speak; click
// one to face it: your words go to it when they name nobody).
function showRoom(msg) {
  $("room").hidden = false;
  const list = $("people");
  list.innerHTML = "";
  for (const c of msg.characters) {
    const li = document.createElement("li");
    li.id = "c-" + c;
    li.className = "character" + (seen.focus === c ? " focused" : "");
    li.textContent = names[c] || c;
    li.title = "click to face (focus)";
    li.onclick = () => setFocus(seen.focus === c ? null : c);
    list.appendChild(li);
  }
  for (const p of msg.participants) {
    const li = document.createElement("li");
    li.id = "p-" + p.id;
    li.className = "person";
    li.textContent = p.id === me ? `${p.name} (you)` : p.name;
    list.appendChild(li);
  }
}

function setFocus(character) {
  if (channel?.readyState !== "open") return;
  seen.focus = character;
  channel.send(JSON.stringify(messages.focus(character)));
  for (const li of document.querySelectorAll("#people .character")) {
    li.classList.toggle("focused", li.id === "c-" + character);
  }
}

function markSpeaking(id, on) {
  const el = document.getElementById(id);
  if (el) el.classList.toggle("speaking", on);
}

async function connect() {
  $("connect").disabled = true;
  $("error").textContent = "";
  const select = $("character");
  characterName = select.options[select.selectedIndex]?.textContent || "Character";
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: useAec, noiseSuppression: useAec, autoGainControl: useAec, channelCount: 1 },
    });
    const sent = injectMic ? mixedMic(mic) : mic;
    me = $("player").value || "guest";
    const target = select.value.startsWith("room:")
      ? { room: select.value.slice(5), name: me }
      : { character: select.value };
    const session = await openSession({
      stream: sent,
      player: me,
      token: params.get("token") || undefined,
      ...target,
      onMessage: onEvent,
      onOpen: () => { $("text").disabled = false; $("send").disabled = false; },
      onTrack: (e) => {
        const stream = e.streams[0] || new MediaStream([e.track]);
        $("remote").srcObject = stream;
        $("remote").play().catch(() => {});
        watchRemoteLevel(stream);
      },
    });
    pc = session.pc;
    channel = session.channel;
    pc.onconnectionstatechange = () => {
      seen.connected = pc.connectionState === "connected";
      if (["failed", "closed", "disconnected"].includes(pc.connectionState)) setState("idle");
    };
    $("hangup").disabled = false;
    $("interrupt").disabled = false;
  } catch (err) {
    showError(String(err.message || err));
    hangup();
  }
}

// ?mic=inject: the microphone goes through Web Audio, and window.llmasos.say(base64 WAV) mixes speech into what
// is sent (client.js injectableMic).
function mixedMic(stream) {
  const injected = injectableMic(stream);
  micCtx = injected;
  seen.say = injected.say;
  return injected.stream;
}

function hangup() {
  if (levelTimer) clearInterval(levelTimer);
  if (audioCtx) audioCtx.close();
  if (micCtx) micCtx.close();
  if (pc) pc.close();
  if (mic) mic.getTracks().forEach((t) => t.stop());
  pc = channel = mic = audioCtx = micCtx = null;
  delete seen.say;
  speakingTurn = null;
  levelTimer = null;
  $("connect").disabled = false;
  $("hangup").disabled = true;
  $("interrupt").disabled = true;
  $("text").disabled = true;
  $("send").disabled = true;
  setState("idle");
}

// The create panel: a request in words becomes a character (or a scene with its room, a quest, a story) on the
// server; once it is saved, the list is read again and the new character or room is selected, ready to talk to.
$("createform").onsubmit = async (e) => {
  e.preventDefault();
  const prompt = $("createprompt").value.trim();
  if (!prompt) return;
  const kind = $("createkind").value;
  const status = $("createstatus");
  $("create").disabled = true;
  try {
    const job = await generate({
      kind, prompt, token: params.get("token"),
      onProgress: (j) => { status.textContent = `${j.state}: ${j.progress.tokens} tokens` + (j.progress.yielded ? " (waited for a conversation)" : ""); },
    });
    seen.created.push(job);
    await loadCharacters();
    const id = job.result.id;
    if (kind === "character") $("character").value = id;
    else if (kind === "scene" && job.saved.length > 1) $("character").value = "room:" + id;
    else if (kind === "quest") $("character").value = job.result.giver;
    const name = job.result.name || job.result.title || id;
    status.textContent = `created ${kind} ${name} (${job.report.tokens} tokens, ${job.report.seconds.toFixed(1)} s)`;
  } catch (err) {
    status.textContent = "";
    showError("could not create it: " + err.message);
  } finally {
    $("create").disabled = false;
  }
};

$("connect").onclick = connect;
$("hangup").onclick = hangup;
$("interrupt").onclick = () => channel?.readyState === "open" && channel.send(JSON.stringify(messages.interrupt()));
$("textform").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || channel?.readyState !== "open") return;
  channel.send(JSON.stringify(messages.text(text)));
  if (!seen.room) addMessage("user", text); // in a room the server shows it to everyone, this page included
  $("text").value = "";
};

loadCharacters().then(() => { if (params.get("autoconnect") === "1") connect(); });

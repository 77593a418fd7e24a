// The live webcam page: camera -> JPEG frames over a WebSocket -> labels drawn back.
// One frame in flight at a time: the next frame is captured only when the answer to
// the previous one has arrived, so a slow server means fewer frames, never a backlog.
"use strict";

const MAX_SIDE = 640;          // frames are scaled down to this longer side before sending
const JPEG_QUALITY = 0.8;
const RECONNECT_MS = 1000;

const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const statusEl = document.getElementById("status");
const labelEl = document.getElementById("label");
const detailEl = document.getElementById("detail");
const candidatesEl = document.getElementById("candidates");
const meterEl = document.getElementById("meter");
const grab = document.createElement("canvas");

// Read by people (and by the browser test) to see what the page has received.
window.identifyState = { results: 0, lastLabel: null, labels: [], cameraStartedAt: null,
                         firstResultAt: null, errors: 0, dropped: 0, cameraError: null,
                         cameraWaiting: false };

let socket = null;
let inFlight = false;
let minIntervalMs = 1000 / 30;
let lastSent = 0;

if (new URLSearchParams(location.search).has("token")) {
  // The server set a cookie for the token; keep it out of the address bar and history.
  history.replaceState(null, "", location.pathname);
}

function setStatus(text) { statusEl.textContent = text; }

const CAMERA_WAIT_MS = 8000;   // then say what may be wrong (the request keeps waiting)

// Why a camera did not start, in words a person can act on.
function cameraProblem(err) {
  const reasons = {
    NotAllowedError: "camera access was refused: allow it in the browser's site settings, then reload",
    NotFoundError: "no camera found: connect one and reload (or identify on the server with `identify serve --camera`)",
    NotReadableError: "the camera is in use by another program, or the system refused it",
    OverconstrainedError: "the camera cannot give a picture this page can use",
  };
  return reasons[err && err.name] || ("the camera did not start: " + (err && err.message || err));
}

function noCamera(text) {
  window.identifyState.cameraError = text;
  setStatus("no camera: " + text);
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    // Browsers offer cameras only to secure pages: https, or http on localhost itself.
    noCamera(`this browser offers no camera to ${location.origin}: open the page as ` +
             `http://localhost:${location.port || 80}/ (an SSH tunnel works) or over https`);
    return;
  }
  const slow = setTimeout(() => {
    if (window.identifyState.cameraStartedAt === null && !window.identifyState.cameraError) {
      setStatus("still waiting for the camera: answer the browser's permission prompt, " +
                "or check that a camera is connected and free");
      window.identifyState.cameraWaiting = true;
    }
  }, CAMERA_WAIT_MS);
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    video.srcObject = stream;
    await video.play();
    window.identifyState.cameraStartedAt = performance.now();
    setStatus("camera on");
    connect();
  } catch (err) {
    noCamera(cameraProblem(err));
  } finally {
    clearTimeout(slow);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/api/live`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { inFlight = false; setStatus("connected"); sendFrame(); };
  socket.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  socket.onclose = () => {
    setStatus("disconnected; reconnecting…");
    setTimeout(connect, RECONNECT_MS);
  };
}

function onMessage(msg) {
  if (msg.type === "hello") {
    minIntervalMs = 1000 / msg.max_fps;
    return;
  }
  let wait = 0;
  if (msg.type === "result") {
    show(msg);
  } else if (msg.type === "error") {
    window.identifyState.errors += 1;
    setStatus("server: " + msg.error.message);
  } else if (msg.type === "dropped") {
    window.identifyState.dropped += 1;
    // "busy": our frame in flight is still being answered; its answer restarts us.
    if (msg.reason === "busy") return;
    wait = msg.retry_ms;
  } else {
    return;
  }
  inFlight = false;
  wait = Math.max(wait, minIntervalMs - (performance.now() - lastSent));
  setTimeout(sendFrame, wait);
}

function sendFrame() {
  if (inFlight || !socket || socket.readyState !== WebSocket.OPEN || !video.videoWidth) {
    if (!video.videoWidth) setTimeout(sendFrame, 50);
    return;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  inFlight = true;
  lastSent = performance.now();
  grab.toBlob(async (blob) => {
    if (!blob || socket.readyState !== WebSocket.OPEN) { inFlight = false; return; }
    socket.send(await blob.arrayBuffer());
  }, "image/jpeg", JPEG_QUALITY);
}

function kindOf(obj) {
  if (obj.matched) return "matched";
  return obj.reason === "low_margin" ? "doubtful" : "unknown";
}

function show(msg) {
  const state = window.identifyState;
  state.results += 1;
  if (state.firstResultAt === null) state.firstResultAt = performance.now();
  const obj = msg.objects[0];
  state.lastLabel = obj ? obj.label : null;
  if (obj && obj.label && !state.labels.includes(obj.label)) state.labels.push(obj.label);
  draw(msg.objects);
  if (!obj) { labelEl.textContent = "–"; return; }
  const kind = kindOf(obj);
  labelEl.className = kind;
  labelEl.textContent = obj.matched ? obj.label
    : (kind === "doubtful" ? `unknown (maybe ${obj.candidates[0].label})` : "unknown");
  detailEl.textContent = `score ${obj.score.toFixed(2)} · margin ${obj.margin.toFixed(2)}`
    + (obj.review_id ? ` · queued for review #${obj.review_id}` : "")
    + (msg.objects.length > 1 ? ` · ${msg.objects.length} things in view` : "");
  candidatesEl.replaceChildren(...obj.candidates.slice(0, 3).map((c) => {
    const li = document.createElement("li");
    li.textContent = `${c.label} ${c.score.toFixed(2)}`;
    return li;
  }));
  meterEl.textContent = `${msg.elapsed_ms.toFixed(0)} ms on the server`;
}

function draw(objects) {
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const scale = overlay.width / (grab.width || overlay.width);
  ctx.font = `${Math.max(14, overlay.width / 30)}px system-ui, sans-serif`;
  ctx.lineWidth = Math.max(2, overlay.width / 200);
  for (const obj of objects) {
    const colour = { matched: "#4caf50", doubtful: "#ffb300", unknown: "#bbbbbb" }[kindOf(obj)];
    const [x1, y1, x2, y2] = obj.bbox ? obj.bbox.map((v) => v * scale)
      : [2, 2, overlay.width - 2, overlay.height - 2];  // whole frame
    ctx.strokeStyle = colour;
    if (obj.quad) {  // the thing's corners, when the detector found them
      ctx.beginPath();
      obj.quad.forEach(([x, y], i) => (i ? ctx.lineTo(x * scale, y * scale)
        : ctx.moveTo(x * scale, y * scale)));
      ctx.closePath();
      ctx.stroke();
    } else {
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    }
    const text = obj.matched ? `${obj.label} ${obj.score.toFixed(2)}` : "unknown";
    const pad = 6, height = parseInt(ctx.font, 10) + pad;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, y1, ctx.measureText(text).width + 2 * pad, height);
    ctx.fillStyle = "#111";
    ctx.fillText(text, x1 + pad, y1 + height - pad);
  }
}

startCamera();

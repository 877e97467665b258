// The join page: consent, then the Face Landmarker on the participant's own camera, in this
// browser; once a second the per-frame numbers (vision/signals.py's FaceNumbers) go to the server.
// No image, landmark or blendshape ever leaves the page. Definitions mirror engagement/vision/
// geometry.py and quality.py line for line; the differences are listed in docs/serve.md.
import { FaceLandmarker } from "/static/vendor/vision_bundle.mjs";

const T = JSON.parse(document.getElementById("strings").textContent);
const lang = document.documentElement.lang;
const api = location.pathname + "api/";
const $ = (id) => document.getElementById(id);
const MAX_FPS = 15; // a rate a laptop holds; the loop slows down on its own when a device cannot

function t(key, values = {}) {
  let text = T[key] || key;
  for (const [k, v] of Object.entries(values)) text = text.replace(`{${k}}`, v);
  return text;
}

for (const el of document.querySelectorAll("[data-t]")) {
  el.textContent = t(el.dataset.t, { session: el.dataset.session || "", version: "join-2026-1" });
}
$("other-language").href = "?lang=" + (lang === "id" ? "en" : "id");
setStatus(t("join.status.ready"));

function setStatus(text) { $("status").textContent = text; }

let token = null, stream = null, seq = 0, frames = [], landmarker = null, running = false, t0 = 0;
let measured = 0, lastFpsAt = 0;

async function post(action, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  let response;
  try {
    response = await fetch(api + action, { method: "POST", headers, body: JSON.stringify(body || {}) });
  } catch (e) {
    throw new Error(t("join.error.network"));
  }
  const data = await response.json();
  if (!response.ok) {
    const key = "join.error." + data.error;
    throw new Error(T[key] ? t(key) : t("join.error.generic", { detail: data.detail }));
  }
  return data;
}

$("consent-accept").addEventListener("click", async () => {
  try {
    const data = await post("consent", { identity: $("participant-id").value, lang, accept: true });
    token = data.token;
    $("participant-id").disabled = $("consent-accept").disabled = true;
    $("start").disabled = $("withdraw").disabled = false;
    setStatus(t("join.status.consented"));
  } catch (e) { setStatus(e.message); }
});

$("start").addEventListener("click", async () => {
  $("start").disabled = true;
  try {
    setStatus(t("join.status.loading"));
    if (!landmarker) landmarker = await loadLandmarker();
    const video = $("camera");
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: false })
      .catch((e) => { throw new Error(t("join.status.camera_denied", { error: e.message })); });
    // The stream's clock starts with the camera, so second N is the camera's Nth second.
    const cameraStart = performance.now();
    await video.play();
    stream = (await post("start")).stream;
    seq = 0; frames = []; t0 = cameraStart; running = true; measured = 0; lastFpsAt = performance.now();
    $("stop").disabled = false;
    setStatus(t("join.status.measuring"));
    measureLoop();
    sendLoop();
  } catch (e) { setStatus(e.message); $("start").disabled = false; }
});

async function stopMeasuring() {
  running = false;
  await flush();
  const video = $("camera");
  if (video.srcObject) { for (const track of video.srcObject.getTracks()) track.stop(); video.srcObject = null; }
  const data = await post("stop");
  showSeconds(data.recent || []);
  return data;
}

$("stop").addEventListener("click", async () => {
  $("stop").disabled = true;
  try {
    const data = await stopMeasuring();
    setStatus(t("join.status.stopped", { seconds: data.seconds }));
    $("start").disabled = false;
  } catch (e) { setStatus(e.message); }
});

$("withdraw").addEventListener("click", async () => {
  try {
    if (running) await stopMeasuring();
    const data = await post("withdraw");
    token = null;
    for (const id of ["start", "stop", "withdraw"]) $(id).disabled = true;
    $("seconds").textContent = "";
    setStatus(t("join.status.withdrawn", { receipt: data.receipt.receipt_id }));
  } catch (e) { setStatus(e.message); }
});

async function loadLandmarker() {
  // Every file from this server: the WASM beside the bundle, the project's own model bundle.
  const fileset = { wasmLoaderPath: "/static/vendor/vision_wasm_internal.js",
                    wasmBinaryPath: "/static/vendor/vision_wasm_internal.wasm" };
  return FaceLandmarker.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: "/model/face_landmarker.task", delegate: "CPU" },
    runningMode: "VIDEO", numFaces: 1, outputFaceBlendshapes: false,
    outputFacialTransformationMatrixes: true,
    minFaceDetectionConfidence: 0.5, minFacePresenceConfidence: 0.5, minTrackingConfidence: 0.5,
  });
}

function measureLoop() {
  if (!running) return;
  const started = performance.now();
  const video = $("camera");
  if (video.readyState >= 2 && video.videoWidth > 0) {
    const now = performance.now();
    const result = landmarker.detectForVideo(video, now);
    frames.push(frameNumbers(result, video, now - t0));
    measured += 1;
  }
  if (started - lastFpsAt >= 2000) {
    $("fps").textContent = t("join.fps", { fps: (measured * 1000 / (started - lastFpsAt)).toFixed(1) });
    measured = 0; lastFpsAt = started;
  }
  const spent = performance.now() - started;
  setTimeout(measureLoop, Math.max(0, 1000 / MAX_FPS - spent));
}

async function flush() {
  if (!frames.length || !stream) return;
  const video = $("camera");
  const batch = { stream, seq: seq++, w: video.videoWidth, h: video.videoHeight, frames: frames.splice(0) };
  try {
    const data = await post("frames", batch);
    showSeconds(data.seconds);
  } catch (e) { setStatus(e.message); }
}

function sendLoop() {
  if (!running) return;
  flush().finally(() => { if (running) setTimeout(sendLoop, 1000); });
}

function showSeconds(rows) {
  const body = $("seconds");
  body.textContent = "";
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.testid = "own-second";
    const share = r.on_screen_ratio == null ? "–" : Math.round(r.on_screen_ratio * 100) + " %";
    for (const text of [String(r.second), t("join.state." + r.attention), share]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

// -- the per-frame numbers, as engagement/vision computes them ------------------------------------

const RIGHT_EYE = { outer: 33, inner: 133, lids: [[161, 163], [160, 144], [159, 145], [158, 153], [157, 154]] };
const LEFT_EYE = { outer: 263, inner: 362, lids: [[388, 390], [387, 373], [386, 374], [385, 380], [384, 381]] };
const IRIS = [468, 473];
const EYE_SCALE_YAW = 0.8 * (2 / 3); // geometry.EYEBALL_RADIUS_RATIO * IRIS_LANDMARK_GAIN
const EYE_SCALE_PITCH = 0.8;
const HEAD_PIVOT_MM = [0, 0, 90];
const QUALITY_SIZE = 96;
const clamp = (v) => Math.max(-1, Math.min(1, v));
const finite = (v) => (Number.isFinite(v) ? v : null); // JSON has no NaN: null is "not measured"

function frameNumbers(result, video, tMs) {
  const t = Math.round(tMs * 10) / 10;
  if (!result.faceLandmarks || !result.faceLandmarks.length) return { t, face: false };
  const w = video.videoWidth, h = video.videoHeight;
  const points = result.faceLandmarks[0].map((p) => [p.x * w, p.y * h]);
  const pose = matrixPose(result.facialTransformationMatrixes && result.facialTransformationMatrixes[0]);
  const eyes = eyeFeatures(points);
  const [blur, bright] = faceQuality(video, points, w, h);
  const n = {
    t, face: true, yaw: pose.yaw, pitch: pose.pitch, roll: pose.roll, tz: pose.tz,
    gaze_yaw: pose.yaw + eyes.eyeYaw, gaze_pitch: pose.pitch + eyes.eyePitch,
    ear_l: eyes.earLeft, ear_r: eyes.earRight, lids_l: eyes.lidsLeft, lids_r: eyes.lidsRight,
    iod: eyes.iod, blur, bright, pivot: pose.pivot,
  };
  for (const k of Object.keys(n)) {
    if (Array.isArray(n[k])) n[k] = n[k].map(finite);
    else if (typeof n[k] === "number" && k !== "t") n[k] = finite(n[k]);
  }
  return n;
}

function matrixPose(matrix) {
  // geometry.matrix_pose: MediaPipe's transform (column-major, y up, z towards the viewer) in
  // OpenCV's camera frame (diag(1,-1,-1) on both sides), then Rz(roll) Ry(yaw) Rx(pitch).
  if (!matrix) return { yaw: NaN, pitch: NaN, roll: NaN, tz: NaN, pivot: [NaN, NaN, NaN] };
  const d = matrix.data, R = (i, j) => d[j * 4 + i];
  const g = [1, -1, -1];
  const M = (i, j) => g[i] * g[j] * R(i, j);
  const yaw = Math.asin(clamp(-M(2, 0)));
  const pitch = Math.atan2(M(2, 1), M(2, 2));
  const roll = Math.atan2(M(1, 0), M(0, 0));
  // The transform's translation (cm) stands in for solvePnP's: mm, OpenCV's frame.
  const tr = [R(0, 3) * 10, -R(1, 3) * 10, -R(2, 3) * 10];
  const pivot = [0, 1, 2].map((i) => M(i, 2) * HEAD_PIVOT_MM[2] + tr[i]);
  return { yaw, pitch, roll, tz: tr[2], pivot };
}

const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

function eyeMeasures(p, eye, iris, scale) {
  const outer = p[eye.outer], inner = p[eye.inner];
  const width = dist(outer, inner);
  const gaps = eye.lids.map(([u, d]) => dist(p[u], p[d]));
  const ear = width > 0 ? (gaps[1] + gaps[2] + gaps[3]) / (3 * width) : NaN;
  const centre = [(outer[0] + inner[0]) / 2, (outer[1] + inner[1]) / 2];
  let ax = eye === RIGHT_EYE ? [inner[0] - outer[0], inner[1] - outer[1]] : [outer[0] - inner[0], outer[1] - inner[1]];
  const norm = Math.hypot(ax[0], ax[1]) || 1;
  ax = [ax[0] / norm, ax[1] / norm];
  const ay = [-ax[1], ax[0]];
  const off = [iris[0] - centre[0], iris[1] - centre[1]];
  const half = width > 0 ? width / 2 : NaN;
  return { ear, gaps: gaps.map((g) => g / scale), gx: (off[0] * ax[0] + off[1] * ax[1]) / half,
           gy: (off[0] * ay[0] + off[1] * ay[1]) / half };
}

function eyeFeatures(p) {
  const mid = (a, b) => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  const rightCentre = mid(p[RIGHT_EYE.outer], p[RIGHT_EYE.inner]);
  const leftCentre = mid(p[LEFT_EYE.outer], p[LEFT_EYE.inner]);
  const iod = dist(rightCentre, leftCentre);
  let a = p[IRIS[0]], b = p[IRIS[1]];
  if (dist(a, rightCentre) > dist(b, rightCentre)) [a, b] = [b, a];
  const scale = iod > 0 ? iod : NaN;
  const r = eyeMeasures(p, RIGHT_EYE, a, scale);
  const l = eyeMeasures(p, LEFT_EYE, b, scale);
  const gx = (r.gx + l.gx) / 2, gy = (r.gy + l.gy) / 2;
  return { iod, earRight: r.ear, earLeft: l.ear, lidsRight: r.gaps, lidsLeft: l.gaps,
           eyeYaw: Math.asin(clamp(-gx / EYE_SCALE_YAW)), eyePitch: Math.asin(clamp(gy / EYE_SCALE_PITCH)) };
}

const qualityCanvas = new OffscreenCanvas(QUALITY_SIZE, QUALITY_SIZE);
const qualityContext = qualityCanvas.getContext("2d", { willReadFrequently: true });

function faceQuality(video, p, w, h) {
  // quality.face_box + face_quality: the landmarks' box, resized to 96x96, grey (BT.601 as
  // OpenCV), variance of the 4-neighbour Laplacian (borders reflected) and the mean grey level.
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of p) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  x0 = Math.round(Math.max(0, x0)); y0 = Math.round(Math.max(0, y0));
  x1 = Math.round(Math.min(w - 1, x1)); y1 = Math.round(Math.min(h - 1, y1));
  if (x1 - x0 < 4 || y1 - y0 < 4) return [NaN, NaN];
  qualityContext.imageSmoothingQuality = "high";
  qualityContext.drawImage(video, x0, y0, x1 - x0, y1 - y0, 0, 0, QUALITY_SIZE, QUALITY_SIZE);
  const rgba = qualityContext.getImageData(0, 0, QUALITY_SIZE, QUALITY_SIZE).data;
  const n = QUALITY_SIZE, grey = new Float32Array(n * n);
  let sum = 0;
  for (let i = 0; i < n * n; i++) {
    grey[i] = Math.round(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);
    sum += grey[i];
  }
  const at = (x, y) => grey[reflect(y, n) * n + reflect(x, n)];
  let s1 = 0, s2 = 0;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const lap = at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4 * at(x, y);
      s1 += lap; s2 += lap * lap;
    }
  }
  const mean = s1 / (n * n);
  return [s2 / (n * n) - mean * mean, sum / (n * n)];
}

function reflect(i, n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; } // OpenCV's BORDER_REFLECT_101

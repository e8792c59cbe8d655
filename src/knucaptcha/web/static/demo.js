// The demo page: read a generated sample or an image of the user's with /v1/solve (optionally
// told the site's alphabet and length), and show the reading with a coloured box per character (red:
// unsure, green: sure). No build step.
"use strict";

const $ = (id) => document.getElementById(id);
// shown and solving count the images shown and the readings asked for: a response that a newer
// request has overtaken (a slow /captcha after the user's own upload, an earlier reading) is dropped.
const state = { image: null, captchaId: null, models: [], siteLength: null, shown: 0, solving: 0 };

async function errorMessage(response) {
  try {
    return (await response.json()).error.message;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function showError(message) {
  $("error").textContent = message;
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

function showReading(result) {
  $("result-text").textContent = result.text;
  const boxes = [...result.text].map((symbol, index) => {
    const confidence = result.char_confidences[index];
    const box = document.createElement("li");
    box.style.background = `hsl(${Math.round(confidence * 120)}, 62%, 38%)`; // 0 red … 120 green
    box.setAttribute("aria-label", `${symbol}, ${percent(confidence)} sure`);
    box.title = `${percent(confidence)} sure`;
    const label = document.createElement("small");
    label.textContent = percent(confidence);
    box.append(symbol, label);
    return box;
  });
  $("result-chars").replaceChildren(...boxes);
  $("result-meta").textContent =
    `confidence ${percent(result.confidence)} · model ${result.model} · ${result.elapsed_ms.toFixed(1)} ms on the server`;
}

async function solve() {
  if (!state.image) return;
  const ticket = ++state.solving;
  const form = new FormData();
  form.append("file", state.image, state.image.name || "image");
  const query = new URLSearchParams();
  if ($("model").value) query.set("model", $("model").value);
  const symbols = $("symbols").value.trim();
  if (symbols) query.set("symbols", symbols);
  if ($("length").value) query.set("length", $("length").value);
  const url = `/v1/solve?${query}`;
  $("result").setAttribute("aria-busy", "true");
  try {
    const response = await fetch(url, { method: "POST", body: form });
    const answer = response.ok ? await response.json() : await errorMessage(response);
    if (ticket !== state.solving) return;
    if (!response.ok) {
      $("result-text").textContent = "";
      $("result-chars").replaceChildren();
      $("result-meta").textContent = "";
      showError(answer);
      return;
    }
    showError("");
    showReading(answer);
  } finally {
    if (ticket === state.solving) $("result").setAttribute("aria-busy", "false");
  }
}

function show(image, source) {
  const old = $("sample").src;
  $("sample").src = URL.createObjectURL(image);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  $("source").textContent = source;
  state.image = image;
  return solve();
}

async function newSample() {
  const ticket = ++state.shown;
  const response = await fetch("/captcha", { cache: "no-store" });
  const answer = response.ok ? await response.blob() : await errorMessage(response);
  if (ticket !== state.shown) return; // an image of the user's (or a newer sample) came first
  if (!response.ok) {
    showError(answer);
    return;
  }
  state.captchaId = response.headers.get("X-Captcha-Id");
  $("answer").value = "";
  $("answer").disabled = $("check").disabled = false;
  $("verdict").textContent = "";
  await show(answer, "A generated sample, new on every request (GET /captcha).");
}

function useFile(file) {
  if (!file) return;
  state.shown += 1;
  state.captchaId = null; // practice answers are for generated samples only
  $("answer").disabled = $("check").disabled = true;
  $("verdict").textContent = "";
  show(file, `Your image: ${file.name || "pasted"} (${file.size.toLocaleString()} bytes).`);
}

async function check(event) {
  event.preventDefault();
  if (!state.captchaId) return;
  const response = await fetch("/captcha/verify", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id: state.captchaId, answer: $("answer").value }),
  });
  state.captchaId = null; // each sample can be checked once
  $("check").disabled = true;
  if (!response.ok) {
    $("verdict").className = "bad";
    $("verdict").textContent = await errorMessage(response);
    return;
  }
  const { correct } = await response.json();
  $("verdict").className = correct ? "good" : "bad";
  $("verdict").textContent = correct ? "Correct." : "Not quite. Press New sample for another.";
}

// The length field offers no more symbols than the chosen model reads (the server refuses more) and,
// left empty, names what is read: the service's length (serve --length), else the model's own.
function limitLength() {
  const model = state.models.find((entry) => entry.name === $("model").value);
  if (model) $("length").max = model.max_length;
  const own = model ? model.read_length : null;
  const [source, length] = state.siteLength !== null ? ["site", state.siteLength] : ["model", own];
  $("length").placeholder = length ? `${source}: ${length}` : "any";
}

async function loadModels() {
  const response = await fetch("/v1/models");
  if (!response.ok) return;
  state.models = await response.json();
  const options = state.models.map(
    (model) => new Option(`${model.name} (${model.charset.length} symbols)`, model.name, model.default, model.default),
  );
  $("model").replaceChildren(...options);
  limitLength();
}

// Empty fields read with the service's own alphabet and length (serve --symbols/--length): say which.
async function showDefaults() {
  const response = await fetch("/v1/defaults");
  if (!response.ok) return;
  const { symbols, length } = await response.json();
  if (symbols !== null) $("symbols").placeholder = `site: ${symbols}`;
  state.siteLength = length;
  limitLength();
}

function setUp() {
  $("new-sample").addEventListener("click", newSample);
  $("model").addEventListener("change", () => {
    limitLength();
    solve();
  });
  $("symbols").addEventListener("change", solve); // on Enter or leaving the field, not on every key
  $("length").addEventListener("change", solve);
  $("file").addEventListener("change", (event) => useFile(event.target.files[0]));
  $("practice-form").addEventListener("submit", check);

  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.kind === "file");
    if (item) {
      event.preventDefault();
      useFile(item.getAsFile());
    }
  });
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (event.key.toLowerCase() === "n" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      newSample();
    }
  });
  showDefaults();
  loadModels().then(newSample);
}

setUp();

// The labelling page: shows the server's current image, sends save / skip / undo, renders the new state.
// Every action answers with the whole state, so the page never guesses what the server did.
"use strict";

const $ = (id) => document.getElementById(id);
let shown = null;  // the image on screen: {file, image, guess, confidence}
let busy = false;  // one request at a time, so a held-down Enter cannot label two images with one text

function say(text, kind) {
  $("message").textContent = text;
  $("message").className = kind || "";
}

function percent(confidence) {
  return `${(100 * confidence).toFixed(confidence < 0.1 ? 1 : 0)}%`;  // 0.4% says more than 0%
}

function describe(last) {
  if (!last) return "";
  if (last.action === "label") {
    return `Saved ${last.file} as ${last.label}` + (last.renamed ? ` (renamed ${last.renamed})` : "") + ".";
  }
  if (last.action === "skip") return `Skipped ${last.file}; it comes back at the end.`;
  return `Undone: ${last.file} is waiting for a label again.`;
}

function render(state) {
  const p = state.progress;
  $("folder").textContent = state.folder + "/  · writes " + state.write;
  document.querySelectorAll(".folder-name").forEach((el) => { el.textContent = state.folder; });
  $("counter").textContent = `${p.labelled} / ${p.total} labelled`;
  $("session").textContent = `${p.done} this session` + (p.skipped ? ` · ${p.skipped} skipped` : "");
  $("bar").style.width = p.total ? `${(100 * p.labelled) / p.total}%` : "100%";
  $("undo").disabled = !state.can_undo;
  $("undo-done").disabled = !state.can_undo;
  shown = state.current;
  $("work").hidden = !shown;
  $("done").hidden = !!shown;
  if (shown) {
    $("label-image").src = shown.image;
    $("label-image").dataset.file = shown.file;
    $("file-name").textContent = shown.file;
    $("guess").textContent = shown.guess === null ? "none" : shown.guess || "(empty)";
    $("confidence").textContent = shown.confidence === null ? "" : `(${percent(shown.confidence)} sure)`;
    $("label-input").value = shown.guess || "";
    $("label-input").focus();
    $("label-input").select();  // typing replaces the guess; arrow keys keep it for a small fix
  }
}

async function call(method, path, body) {
  if (busy) return;
  busy = true;
  document.body.dataset.state = "busy";
  let stale = false;
  try {
    const response = await fetch(path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json();
    if (response.ok) {
      render(answer);
      if (answer.last) say(describe(answer.last), "ok");
    } else {
      say(answer.error ? answer.error.message : `HTTP ${response.status}`, "error");
      stale = response.status === 404;  // the queue changed under us: show what is current
    }
  } catch (error) {
    say(`The server did not answer: ${error}`, "error");
  } finally {
    busy = false;
    document.body.dataset.state = "ready";
  }
  if (stale) await refresh();
}

const refresh = () => call("GET", "/label/api/state");
const save = () => shown && call("POST", "/label/api/label", { file: shown.file, label: $("label-input").value.trim() });
const skip = () => shown && call("POST", "/label/api/skip", { file: shown.file });
const undo = () => call("POST", "/label/api/undo");

$("label-form").addEventListener("submit", (event) => { event.preventDefault(); save(); });
$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);
$("undo-done").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") { event.preventDefault(); skip(); }
  else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") { event.preventDefault(); undo(); }
});
refresh();

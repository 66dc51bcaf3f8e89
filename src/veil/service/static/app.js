// veil web page: plain JavaScript, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("form"), input = $("files"), drop = $("drop"), statusLine = $("status");
const progress = $("progress"), results = $("results"), tokenField = $("token");
let urls = [];

function headers() {
  const token = sessionStorage.getItem("veil-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function failure(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

function fill(select, items, fallback) {
  const names = items.map((item) => item.name || item);
  const current = names.includes(select.value) && select.dataset.touched ? select.value : fallback;
  select.replaceChildren(...items.map((item) => {
    const option = new Option(item.name || item, item.name || item, false, (item.name || item) === current);
    if (item.summary) option.title = item.summary;
    return option;
  }));
}

async function loadMethods() {
  const response = await fetch("/api/methods", { headers: headers() });
  if (response.status === 401) return say("This server needs an API token: enter it below.", true);
  if (!response.ok) return say(await failure(response), true);
  const m = await response.json();
  fill($("method"), m.anonymizers, m.defaults.method);
  fill($("detector"), m.detectors, m.defaults.detector);
  fill($("mask"), m.masks, m.defaults.mask);
  if (m.defaults.target && !$("target").dataset.touched) $("target").value = m.defaults.target;
  $("strength").value = m.defaults.strength;
  $("strength-value").textContent = m.defaults.strength;
  say("Ready.");
}

function lines(id) {
  return $(id).value.split(/[\n;]+/).map((line) => line.trim()).filter((line) => line);
}

function settings(data) {
  for (const name of ["method", "strength", "mask", "detector", "target"]) {
    data.append(name, $(name).value);
  }
  const mode = $("consent-mode").value === "only" ? "only" : "keep";
  for (const file of $("keep").files) data.append(mode, file);
  for (const box of lines("region")) data.append("region", box);
  for (const box of lines("exclude-region")) data.append("exclude_region", box);
  return data;
}

function addResult(name, beforeUrl) {
  const node = $("result-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".name").textContent = name;
  if (beforeUrl) node.querySelector(".before").src = beforeUrl;
  else node.querySelector(".compare").remove();
  results.append(node);
  return node;
}

function offer(node, blob, filename) {
  const url = URL.createObjectURL(blob);
  urls.push(url);
  const after = node.querySelector(".after");
  if (after && blob.type.startsWith("image/")) after.src = url;
  const link = node.querySelector(".download");
  link.href = url;
  link.download = filename;
  link.textContent = "Download " + filename;
}

async function anonymizeImage(file) {
  const before = URL.createObjectURL(file);
  urls.push(before);
  const node = addResult(file.name, before);
  const data = settings(new FormData());
  data.append("image", file);
  const response = await fetch("/api/anonymize", { method: "POST", body: data, headers: headers() });
  if (!response.ok) throw new Error(file.name + ": " + (await failure(response)));
  const faces = response.headers.get("X-Veil-Faces");
  const blob = await response.blob();
  offer(node, blob, "anonymized-" + file.name.replace(/[^\w.-]/g, "_"));
  node.querySelector(".after").dataset.faces = faces;
  return Number(faces);
}

async function runJob(files) {
  const data = settings(new FormData());
  for (const file of files) data.append("files", file);
  say("Uploading…");
  let response = await fetch("/api/jobs", { method: "POST", body: data, headers: headers() });
  if (!response.ok) throw new Error(await failure(response));
  let job = await response.json();
  progress.hidden = false;
  while (job.status === "queued" || job.status === "running") {
    say(job.status === "queued" ? "Waiting in the queue…" : "Processing… " + Math.round(job.progress * 100) + "%");
    progress.value = job.progress;
    await new Promise((resolve) => setTimeout(resolve, 500));
    response = await fetch("/api/jobs/" + job.id, { headers: headers() });
    if (!response.ok) throw new Error(await failure(response));
    job = await response.json();
  }
  progress.value = 1;
  if (job.status !== "done") throw new Error("The job failed: " + job.error);
  response = await fetch("/api/jobs/" + job.id + "/result", { headers: headers() });
  if (!response.ok) throw new Error(await failure(response));
  const blob = await response.blob();
  const name = job.kind === "video" ? "anonymized-" + files[0].name.replace(/[^\w.-]/g, "_") : "anonymized.zip";
  offer(addResult(files.length === 1 ? files[0].name : files.length + " images", null), blob, name);
}

async function submit(event) {
  event.preventDefault();
  const files = Array.from(input.files);
  if (!files.length) return say("Choose or drop at least one file first.", true);
  urls.forEach((url) => URL.revokeObjectURL(url));
  urls = [];
  results.replaceChildren();
  progress.hidden = true;
  $("go").disabled = true;
  try {
    if (files.every((f) => f.type.startsWith("image/"))) {
      let faces = 0;
      for (const [k, file] of files.entries()) {
        say("Anonymizing " + (k + 1) + " of " + files.length + "…");
        faces += await anonymizeImage(file);
      }
      say("Done: " + faces + " face(s) anonymized. Use the download link.");
    } else {
      await runJob(files);
      say("Done. Use the download link.");
    }
  } catch (error) {
    say(error.message, true);
  } finally {
    $("go").disabled = false;
  }
}

function describeChoice() {
  const n = input.files.length;
  $("chosen").textContent = n ? Array.from(input.files, (f) => f.name).join(", ") : "No file chosen.";
}

tokenField.value = sessionStorage.getItem("veil-token") || "";
tokenField.addEventListener("change", () => {
  sessionStorage.setItem("veil-token", tokenField.value.trim());
  loadMethods();
});
for (const id of ["method", "mask", "detector", "target"]) {
  $(id).addEventListener("change", () => { $(id).dataset.touched = "1"; });
}
$("strength").addEventListener("input", () => { $("strength-value").textContent = $("strength").value; });
input.addEventListener("change", describeChoice);
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  input.files = e.dataTransfer.files;
  describeChoice();
});
form.addEventListener("submit", submit);
loadMethods();

// The web page of `retriever serve`: asks /ask or /similar, shows the hits, opens a hit's note beside them.
// Note text only ever enters the page as textContent: a note is the user's own file, but it may hold anything
// copied from anywhere, and here it must stay text.
"use strict";

const $ = (id) => document.getElementById(id);
let composing = false; // a Korean (or any) IME is building a syllable: Enter then ends it, it does not search
let searches = 0; // answers to an older search or note that arrive late are dropped
let opens = 0;

// The server answers only requests that carry its secret, which `retriever serve` prints in the page's URL
// (#token=…, a fragment: never sent to the server, never in its logs). The page keeps it for this tab and takes
// it out of the address bar, so it is neither bookmarked nor shown.
function token() {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem("token", given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("token") || "";
}
const secret = token();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function call(path, body) {
  const headers = { Authorization: `Bearer ${secret}` };
  const init =
    body === undefined
      ? { headers }
      : { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let reply;
  try {
    reply = await fetch(path, init);
  } catch {
    throw new Error("the server does not answer; is `retriever serve` still running?");
  }
  let data;
  try {
    data = await reply.json();
  } catch {
    throw new Error(`the server answered ${reply.status} without JSON`);
  }
  if (reply.status === 401) throw new Error("open the page by the address `retriever serve` printed, with its #token=");
  if (data && typeof data.error === "string") throw new Error(data.error);
  if (!reply.ok) throw new Error(`the server answered ${reply.status}`);
  return data;
}

function showError(message) {
  const line = $("error");
  line.textContent = message ? message.split(/\s+/).join(" ") : "";
  line.hidden = !message;
}

function listed(id) {
  return $(id)
    .value.split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

// The request body: only what the user filled in, so the server's defaults stay the server's. k goes as typed
// when it is not a whole number, and the server says what is wrong with it.
function request() {
  const body = { question: $("question").value };
  const k = $("k").value.trim();
  if (k) body.k = /^[0-9]+$/.test(k) ? Number(k) : k;
  for (const id of ["mode", "collection", "since", "until"]) {
    const value = $(id).value;
    if (value) body[id] = value;
  }
  for (const id of ["path", "tag"]) {
    const values = listed(id);
    if (values.length) body[id] = values;
  }
  return body;
}

async function search() {
  const ticket = ++searches;
  showError("");
  $("results-pane").setAttribute("aria-busy", "true");
  try {
    const body = request();
    const data = await call("/" + $("method").value, body);
    if (ticket === searches) showResults(data.results, body.question);
  } catch (error) {
    if (ticket !== searches) return;
    showResults([], null);
    showError(error.message);
  } finally {
    if (ticket === searches) $("results-pane").removeAttribute("aria-busy");
  }
}

function showResults(hits, question) {
  $("results").replaceChildren(...hits.map(resultItem));
  const nothing = question !== null && hits.length === 0;
  $("summary").textContent = nothing ? `nothing found for “${question.trim()}”` : "";
}

function headingPath(hit) {
  const headings = (hit.headings || []).filter(Boolean);
  if (headings.length) return headings.join(" › ");
  return hit.heading || "(no heading)";
}

// The text as nodes, the question's words in <mark>. The spans count Unicode code points (Python's indices),
// not the UTF-16 units of a JavaScript string, so the text is cut as an array of code points.
function marked(text, spans) {
  const chars = Array.from(text);
  const nodes = [];
  let at = 0;
  for (const [start, end] of [...(spans || [])].sort((a, b) => a[0] - b[0])) {
    if (start < at || end <= start || end > chars.length) continue;
    if (start > at) nodes.push(document.createTextNode(chars.slice(at, start).join("")));
    nodes.push(el("mark", "", chars.slice(start, end).join("")));
    at = end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(chars.slice(at).join("")));
  return nodes;
}

function resultItem(hit) {
  const item = el("li", "hit");
  item.tabIndex = 0;
  item.dataset.id = hit.id;
  const head = el("div", "hit-head");
  head.append(
    el("span", "headings", headingPath(hit)),
    el("span", "where", `${hit.path}:${hit.start_line}`),
    el("span", "score", Number(hit.score).toFixed(3)),
  );
  item.append(head);
  if (hit.question) item.append(el("p", "asked", hit.question));
  const snippet = el("p", "snippet");
  snippet.append(...marked(hit.text, hit.highlights));
  item.append(snippet);
  if (hit.tags && hit.tags.length) {
    const tags = el("p", "tags");
    tags.append(...hit.tags.map((tag) => el("span", "tag", tag)));
    item.append(tags);
  }
  item.addEventListener("click", () => openNote(hit, item));
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openNote(hit, item);
    }
  });
  return item;
}

async function openNote(hit, item) {
  const ticket = ++opens;
  for (const other of document.querySelectorAll("#results .hit[aria-current]")) other.removeAttribute("aria-current");
  item.setAttribute("aria-current", "true");
  try {
    const note = await call("/get?" + new URLSearchParams({ id: hit.path }));
    if (ticket === opens) showNote(note, hit);
  } catch (error) {
    if (ticket === opens) showError(error.message);
  }
}

// The whole note, a row per line, the passage's lines marked and scrolled to.
function showNote(note, hit) {
  const lines = note.text.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const rows = lines.map((line, index) => {
    const number = index + 1;
    const row = el("div", "line");
    row.dataset.line = String(number);
    if (number >= hit.start_line && number <= hit.end_line) row.classList.add("passage");
    row.append(el("span", "ln", String(number)), el("span", "tx", line));
    return row;
  });
  $("note").replaceChildren(...rows);
  const range = hit.end_line > hit.start_line ? `${hit.start_line}–${hit.end_line}` : `${hit.start_line}`;
  $("note-path").textContent = `${note.path}:${range}`;
  $("note-pane").hidden = false;
  document.body.classList.add("reading");
  $("note-pane").scrollIntoView({ block: "nearest" }); // below the results in a narrow window; else in sight
  const first = rows[hit.start_line - 1];
  if (first) scrollWithin($("note"), first);
}

// The passage to the middle of the note's own scroll box: scrollIntoView would scroll the page as well, and take
// the search box out of sight.
function scrollWithin(box, row) {
  box.scrollTop = row.offsetTop - (box.clientHeight - row.offsetHeight) / 2;
}

function closeNote() {
  $("note-pane").hidden = true;
  document.body.classList.remove("reading");
  const current = document.querySelector("#results .hit[aria-current]");
  if (current) current.focus();
}

async function showStatus() {
  try {
    const status = await call("/status");
    const parts = [];
    if (typeof status.notes === "number") parts.push(`${status.notes} notes`);
    if (typeof status.chunks === "number") parts.push(`${status.chunks} passages`);
    if (status.notes_dir) parts.push(status.notes_dir);
    if (status.stale) parts.push(`index out of date: ${status.stale}`);
    if (status.store && status.store.state === "unreachable") parts.push(`store unreachable: ${status.store.error}`);
    $("status").textContent = parts.join(" · ");
    const collections = Array.isArray(status.collections) ? status.collections.filter(Boolean) : [];
    $("collection").append(...collections.map((name) => el("option", "", name)));
    $("collection-control").hidden = collections.length === 0;
  } catch (error) {
    $("status").textContent = error.message;
  }
}

function start() {
  const form = $("search");
  form.addEventListener("compositionstart", () => {
    composing = true;
  });
  form.addEventListener("compositionend", () => {
    composing = false;
  });
  // Enter in a field searches, unless it ends a composition: Chrome marks that keydown isComposing, Safari sends it
  // after compositionend with keyCode 229. The form's own submission on Enter is always cancelled, since it
  // cannot tell the two apart; the button still submits.
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.target instanceof HTMLInputElement)) return;
    event.preventDefault();
    if (event.isComposing || composing || event.keyCode === 229) return;
    search();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  $("note-close").addEventListener("click", closeNote);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("note-pane").hidden) closeNote();
  });
  showStatus();
}

start();

// Ward's chat page: a conversation with the served model through /v1/chat/completions,
// streamed. The API key (when the server needs one) lives in this tab's sessionStorage only.
// Text from the model or the user is only ever set as textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "ward-api-key";
let turns = [];
let running = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error.message;
  } catch {
    return "the server answered " + response.status;
  }
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (response.status === 401) {
    $("key-form").hidden = false;
    showError(sessionStorage.getItem(KEY) ? await errorOf(response) : "");
    return;
  }
  if (!response.ok) {
    showError(await errorOf(response));
    return;
  }
  $("key-form").hidden = true;
  showError("");
  // Embedding models and rerankers are served beside the chat model: not for this page.
  const models = (await response.json()).data.filter((m) => (m.capabilities || ["chat"]).includes("chat"));
  $("model").replaceChildren(...models.map((m) => new Option(m.id, m.id)));
  if (models.length === 0) showError("this key may use no chat model on this server");
}

function addTurn(role, text) {
  const turn = document.createElement("div");
  turn.className = "turn " + role;
  if (role === "assistant") {
    const thinking = document.createElement("details");
    thinking.hidden = true;
    const summary = document.createElement("summary");
    summary.textContent = "Reasoning";
    const reasoning = document.createElement("div");
    reasoning.className = "reasoning";
    thinking.append(summary, reasoning);
    const content = document.createElement("div");
    content.className = "content";
    turn.append(thinking, content);
  } else {
    turn.textContent = text;
  }
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "end" });
  return turn;
}

// Server-sent events from a fetch body: calls `onData` with each `data:` payload.
async function readEvents(body, onData) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data: ")) onData(line.slice(6));
      }
    }
  }
}

async function send(text) {
  const system = $("system").value.trim();
  turns.push({ role: "user", content: text });
  addTurn("user", text);
  const turn = addTurn("assistant");
  const [thinking, content] = [turn.querySelector("details"), turn.querySelector(".content")];
  const reasoning = turn.querySelector(".reasoning");
  const messages = (system ? [{ role: "system", content: system }] : []).concat(turns);
  running = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  showError("");
  let answer = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: $("model").value, messages, stream: true }),
      signal: running.signal,
    });
    if (!response.ok) {
      if (response.status === 401) $("key-form").hidden = false;
      throw new Error(await errorOf(response));
    }
    await readEvents(response.body, (data) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = (chunk.choices[0] || {}).delta || {};
      if (delta.reasoning_content) {
        thinking.hidden = false;
        reasoning.textContent += delta.reasoning_content;
      }
      if (delta.content) {
        answer += delta.content;
        content.textContent = answer;
        turn.scrollIntoView({ block: "end" });
      }
    });
  } catch (e) {
    if (e.name !== "AbortError") showError(e.message);
  } finally {
    if (!answer) content.textContent = running.signal.aborted ? "(stopped)" : "(no answer)";
    turns.push({ role: "assistant", content: answer });
    running = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    turn.dataset.done = "true";
  }
}

$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || running) return;
  $("prompt").value = "";
  send(text);
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("ask").requestSubmit();
  }
});
$("stop").addEventListener("click", () => running && running.abort());
$("clear").addEventListener("click", () => {
  if (running) running.abort();
  turns = [];
  $("conversation").replaceChildren();
});
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("key").value);
  $("key").value = "";
  loadModels();
});
loadModels();

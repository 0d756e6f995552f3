// The demo page that `deno task start` serves at `/`: plain HTML and a module script on the
// bundled client (`/a2a/client.js`), to talk to the demo agent from a browser and watch streaming,
// reconnection with gap-free resume, cancel and the task list.

/** Options of {@linkcode demoPageHtml}. */
export interface DemoPageOptions {
  /**
   * A token to put in the page's token field. Only for the documented demo tokens: anyone who
   * can load the page reads it.
   */
  token?: string;
}

/** A value as a JavaScript literal that is safe inside a `<script>` element. */
function scriptLiteral(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/** Text that is safe in HTML content and attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The demo page.
 *
 * @param basePath The server's base path (`""` for none), under which the bundle and the agent
 *   are.
 * @param options The token to put in the page.
 * @returns The HTML document.
 */
export function demoPageHtml(basePath: string, options: DemoPageOptions = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>a2a-capnweb demo</title>
<style>
  :root { font: 15px/1.45 system-ui, sans-serif; color: #1d232b; background: #f4f5f7; }
  body { margin: 0; }
  header { display: flex; align-items: center; gap: 1rem; padding: .8rem 1.5rem;
    background: #1d232b; color: #fff; }
  header h1 { font-size: 1.1rem; margin: 0; font-weight: 600; }
  header a { color: #9cc4ff; font-size: .85rem; }
  #state { margin-left: auto; padding: .15rem .7rem; border-radius: 1rem; font-size: .85rem;
    background: #6b7280; }
  #state[data-state="open"] { background: #15803d; }
  #state[data-state="reconnecting"], #state[data-state="connecting"] { background: #b45309; }
  #state[data-state="closed"] { background: #b91c1c; }
  main { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem; display: grid; gap: 1rem; }
  section { background: #fff; border-radius: .5rem; padding: 1rem;
    box-shadow: 0 1px 2px #0002; }
  h2 { font-size: .95rem; margin: 0 0 .6rem; display: flex; gap: .6rem; align-items: center; }
  .row { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
  input { font: inherit; padding: .35rem .5rem; border: 1px solid #c7ccd3; border-radius: .3rem; }
  #text { flex: 1; min-width: 16rem; }
  button { font: inherit; padding: .35rem .8rem; border: 0; border-radius: .3rem;
    background: #2563eb; color: #fff; cursor: pointer; }
  button.secondary { background: #e5e7eb; color: #1d232b; }
  button:disabled { opacity: .45; cursor: default; }
  #artifact { min-height: 2.6rem; padding: .6rem; margin: .6rem 0; white-space: pre-wrap;
    background: #f8fafc; border: 1px solid #e5e7eb; border-radius: .3rem; font-size: 1.05rem; }
  #task-line { font-size: .9rem; color: #4b5563; }
  #seqs { display: flex; flex-wrap: wrap; gap: .25rem; }
  #seqs span { font: .75rem ui-monospace, monospace; padding: .05rem .35rem; border-radius: .2rem;
    background: #dbeafe; }
  #seqs span.resumed { background: #bbf7d0; }
  table { width: 100%; border-collapse: collapse; font-size: .88rem; }
  td, th { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #eef0f2; }
  td.id { font-family: ui-monospace, monospace; font-size: .8rem; }
  #log { margin: 0; padding-left: 1.2rem; font-size: .85rem; color: #374151; max-height: 12rem;
    overflow: auto; }
  .hint { font-size: .82rem; color: #6b7280; margin: .4rem 0 0; }
</style>
</head>
<body>
<header>
  <h1>a2a-capnweb demo agent</h1>
  <a href="${escapeHtml(basePath)}/.well-known/agent-card.json">agent card</a>
  <span id="state" data-state="connecting">connecting…</span>
</header>
<main>
  <section>
    <h2>Connection</h2>
    <div class="row">
      <label for="token">Token</label>
      <input id="token" value="${escapeHtml(options.token ?? "")}" size="18"
        placeholder="none for an open agent" autocomplete="off">
      <button id="connect" class="secondary">Connect</button>
      <button id="drop" class="secondary" disabled>Drop connection</button>
    </div>
    <p class="hint">The client talks capnweb over one WebSocket. Drop the connection while a
      task streams: the client reconnects and resumes the stream after the last event it got.</p>
  </section>
  <section>
    <h2>Message</h2>
    <form id="send" class="row">
      <input id="text" autocomplete="off"
        value="slow: the quick brown fox jumps over the lazy dog and runs far away">
      <button id="send-button" disabled>Send</button>
      <button id="cancel" type="button" class="secondary" disabled>Cancel task</button>
    </form>
    <p class="hint">Prefixes: <code>slow:</code> one word every 200 ms, <code>input:</code> asks
      back, <code>fail:</code> fails, <code>reply:</code> answers without a task.</p>
    <div id="task-line">No task yet.</div>
    <div id="artifact"></div>
    <div id="seqs"></div>
  </section>
  <section>
    <h2>Your tasks <button id="refresh" class="secondary" disabled>Refresh</button></h2>
    <table>
      <thead><tr><th>task</th><th>state</th><th>updated</th><th>artifact</th><th></th></tr></thead>
      <tbody id="tasks"></tbody>
    </table>
  </section>
  <section>
    <h2>Activity</h2>
    <ol id="log"></ol>
  </section>
</main>
<script type="module">
import { A2AClient, streamResponseKind, userMessage } from ${
    scriptLiteral(`${basePath}/a2a/client.js`)
  };

const BASE = location.origin + ${scriptLiteral(basePath)};
const TERMINAL = ["COMPLETED", "FAILED", "CANCELED", "REJECTED"];
const $ = (id) => document.getElementById(id);
const short = (state) => String(state).replace("TASK_STATE_", "");
const textOf = (parts) => (parts ?? []).map((p) => p.text ?? "").join("");
const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

let client;
let current; // { taskId, lastSeq, resumedAfter }
const sockets = new Set();

// Tracks the client's WebSockets so that "Drop connection" can cut one as a network would.
class TrackedWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    sockets.add(this);
    this.addEventListener("close", () => sockets.delete(this));
  }
}

function log(text) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + "  " + text;
  $("log").prepend(li);
}

function showState(state, detail) {
  const el = $("state");
  el.dataset.state = state;
  el.textContent = state === "reconnecting"
    ? "reconnecting… (attempt " + (detail?.attempt ?? 1) + ")"
    : state;
  const open = state === "open";
  $("send-button").disabled = !open;
  $("refresh").disabled = !open;
  $("drop").disabled = !open;
}

async function connect() {
  await client?.close();
  const token = $("token").value.trim();
  showState("connecting");
  try {
    client = await A2AClient.connect(BASE, {
      ...(token && { token }),
      webSocket: TrackedWebSocket,
      onStateChange(state, detail) {
        const was = $("state").dataset.state;
        showState(state, detail);
        if (state === "reconnecting") {
          log("Connection lost (" + (detail.error?.message ?? "closed") + "): reconnecting, attempt "
            + detail.attempt);
          if (current) current.resumedAfter = current.lastSeq;
        } else if (state === "open" && was === "reconnecting") {
          log("Reconnected");
        } else if (state === "closed") {
          log("Closed" + (detail.error ? ": " + detail.error.message : ""));
        }
      },
    });
    showState(client.state);
    log("Connected to " + client.agentCard.name + " over " + client.transport);
    await refresh();
  } catch (err) {
    showState("closed");
    log("Cannot connect: " + err.message);
  }
}

function seqChip(seq, resumed) {
  const span = document.createElement("span");
  span.textContent = String(seq);
  if (resumed) span.className = "resumed";
  $("seqs").append(span);
}

function showTask(id, state, note) {
  $("task-line").textContent = "Task " + id + ": " + short(state) + (note ? " — " + note : "");
  $("cancel").disabled = TERMINAL.includes(short(state));
}

async function send(text) {
  $("artifact").textContent = "";
  $("seqs").replaceChildren();
  $("task-line").textContent = "Sending…";
  current = { taskId: undefined, lastSeq: undefined, resumedAfter: undefined };
  const mine = current;
  try {
    for await (const event of client.sendStreamingMessage({ message: userMessage(text) })) {
      if (current !== mine) break;
      const resumed = mine.resumedAfter !== undefined;
      if (resumed) {
        const gapFree = event.seq === mine.resumedAfter + 1;
        log("Resumed after seq " + mine.resumedAfter + ": the next event is seq " + event.seq +
          (gapFree ? ", no gap" : ""));
        mine.resumedAfter = undefined;
      }
      mine.lastSeq = event.seq;
      seqChip(event.seq, resumed);
      switch (streamResponseKind(event)) {
        case "task":
          mine.taskId = event.task.id;
          showTask(event.task.id, event.task.status.state);
          break;
        case "statusUpdate": {
          const u = event.statusUpdate;
          mine.taskId = u.taskId;
          showTask(u.taskId, u.status.state, textOf(u.status.message?.parts));
          break;
        }
        case "artifactUpdate": {
          const u = event.artifactUpdate;
          const text = textOf(u.artifact.parts);
          if (u.append) $("artifact").textContent += text;
          else $("artifact").textContent = text;
          break;
        }
        case "message":
          $("task-line").textContent = "Direct reply (no task)";
          $("artifact").textContent = textOf(event.message.parts);
          break;
      }
    }
  } catch (err) {
    log("Stream failed: " + err.message);
  }
  await refresh();
}

async function refresh() {
  if (client?.state !== "open") return;
  const { tasks } = await client.listTasks({ pageSize: 10, includeArtifacts: true });
  const rows = tasks.map((task) => {
    const tr = document.createElement("tr");
    const state = short(task.status.state);
    const cells = [
      task.id.slice(0, 8),
      state,
      task.status.timestamp ? new Date(task.status.timestamp).toLocaleTimeString() : "",
      clip(textOf(task.artifacts?.[0]?.parts), 60),
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 0) { td.className = "id"; td.title = task.id; }
      tr.append(td);
    });
    const td = document.createElement("td");
    if (!TERMINAL.includes(state)) {
      const button = document.createElement("button");
      button.className = "secondary";
      button.textContent = "Cancel";
      button.onclick = () => cancel(task.id);
      td.append(button);
    }
    tr.append(td);
    return tr;
  });
  $("tasks").replaceChildren(...rows);
}

async function cancel(id) {
  try {
    const task = await client.cancelTask({ id });
    log("Canceled task " + id.slice(0, 8) + ": " + short(task.status.state));
  } catch (err) {
    log("Cannot cancel: " + err.message);
  }
  await refresh();
}

$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (text) send(text);
});
$("cancel").addEventListener("click", () => current?.taskId && cancel(current.taskId));
$("refresh").addEventListener("click", () => refresh());
$("connect").addEventListener("click", () => connect());
$("drop").addEventListener("click", () => {
  log("Dropping the connection");
  for (const ws of sockets) ws.close(4000, "Dropped by the demo page");
});

// Connect at once when there is a token to use or the agent needs none.
async function start() {
  const card = await fetch(BASE + "/.well-known/agent-card.json").then((r) => r.json());
  if ($("token").value.trim() || !card.securityRequirements?.length) return await connect();
  showState("closed");
  log("Enter a token and press Connect");
}

// For scripts (and the browser test) that drive the page.
window.demo = { get client() { return client; }, started: start() };
</script>
</body>
</html>
`;
}

// The demo page: draw a digit (or fill in a row), seal it here, send it to every local function
// directly, show each answer, its latency and what the network carried.
import { Client, ObliviousClient, RemoteError, NetworkError } from "/litefaas.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
const PROVIDER_NAMES = { aws: "AWS Lambda", gcp: "Google Cloud", azure: "Azure Functions" };

/** A fetch that keeps what went over the wire for the last POST (sizes, first bytes, time). */
function recordingFetch(record) {
  return async (url, init = {}) => {
    const posting = init.method === "POST";
    const started = performance.now();
    const response = await fetch(url, init);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (posting) {
      const body = init.body instanceof Uint8Array ? init.body : new TextEncoder().encode(String(init.body ?? ""));
      Object.assign(record, {
        requestBytes: body.length,
        requestType: init.headers?.["content-type"] ?? "",
        head: body.slice(0, 40),
        envelope: body[0] === 0x02 ? null : envelopeHead(body),
        responseBytes: bytes.length,
        responseType: response.headers.get("content-type") ?? "",
        networkMs: performance.now() - started,
      });
    }
    return new Response(bytes, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/** A version-1 envelope up to the first characters of its ciphertext. */
function envelopeHead(body) {
  const text = new TextDecoder().decode(body.slice(0, 400));
  const at = text.indexOf('"ct":"');
  return at < 0 ? text.slice(0, 80) : text.slice(0, at + 6 + 48);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
const fmtBytes = (n) => `${n.toLocaleString("en-US")} B`;
const fmtMs = (ms) => (ms < 10 ? ms.toFixed(1) : Math.round(ms).toString());

/** One function: its client, what it serves, its card. */
class Target {
  constructor(entry) {
    this.provider = entry.provider;
    this.url = entry.url;
    this.modelKey = entry.model;
    this.wire = {};
    this.sealedClient = new Client(entry.url, { fetch: recordingFetch(this.wire), timeoutMs: 30_000 });
    this.obliviousClient = new ObliviousClient(entry.url, { fetch: recordingFetch(this.wire), timeoutMs: 30_000 });
  }

  /** The client the page's switch chooses: litefaas's own seal, or Oblivious HTTP. */
  get client() {
    return $("oblivious").checked ? this.obliviousClient : this.sealedClient;
  }

  async load() {
    const health = await this.client.health();
    this.model = health.model;
    await this.client.keys();
    return this;
  }

  card(container) {
    const card = element("div", "card");
    card.dataset.provider = this.provider;
    card.dataset.state = "idle";
    const title = element("h3");
    title.append(element("span", "", PROVIDER_NAMES[this.provider] ?? this.provider), element("span", "url", this.url));
    this.answer = element("div", "answer");
    this.answer.append(element("span", "waiting", "no request yet"));
    this.details = element("div", "details");
    this.wireBox = element("div", "wire");
    card.append(title, this.answer, this.details, this.wireBox);
    container.append(card);
    this.node = card;
  }

  /** Marks the card as waiting for its turn (at once, on the click). */
  queue() {
    this.node.dataset.state = "queued";
    this.answer.replaceChildren(element("span", "waiting", "waiting for its turn…"));
  }

  async send(call, render) {
    this.node.dataset.state = "sending";
    this.answer.replaceChildren(element("span", "waiting", "sealing and sending…"));
    this.details.replaceChildren();
    this.wireBox.replaceChildren();
    for (const key of Object.keys(this.wire)) delete this.wire[key];
    const started = performance.now();
    try {
      const result = await call(this.client);
      const totalMs = performance.now() - started;
      render(this, result);
      this.answer.append(latency(totalMs, this.wire.networkMs));
      this.node.dataset.state = "done";
    } catch (error) {
      this.node.dataset.state = "error";
      let text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      if (error instanceof RemoteError) text = `${error.status} ${error.code}${error.sealed ? " (sealed)" : ""}: ${error.message}`;
      if (error instanceof NetworkError) text = `NetworkError: ${error.message}`;
      this.answer.replaceChildren(element("span", "error-text", text));
    }
    this.showWire();
  }

  showWire() {
    const w = this.wire;
    if (w.requestBytes === undefined) return;
    const list = element("dl");
    const row = (name, value) => list.append(element("dt", "", name), element("dd", "", value));
    row("sent", `${fmtBytes(w.requestBytes)} ${w.requestType.split(";")[0]}`);
    row("received", `${fmtBytes(w.responseBytes)} ${w.responseType.split(";")[0]}`);
    const hex = element("div", "hex");
    if (w.requestType.startsWith("message/ohttp-req")) {
      // Oblivious HTTP: key_id, KEM, KDF and AEAD ids in clear; then HPKE enc || ciphertext, padded
      hex.append(element("span", "hdr", `${hexOf(w.head.slice(0, 7))} `), document.createTextNode(`${hexOf(w.head.slice(7))} …`));
      hex.title = "Oblivious HTTP: key id and algorithm ids in clear, then the HPKE ciphertext of a padded Binary HTTP request";
    } else if (w.head[0] === 0x02) {
      // version 2: 0x02, kid length, kid, three suite ids in clear; then HPKE enc || ciphertext
      const header = Math.min(w.head.length, 2 + w.head[1] + 6);
      hex.append(element("span", "hdr", `${hexOf(w.head.slice(0, header))} `), document.createTextNode(`${hexOf(w.head.slice(header))} …`));
      hex.title = "header in clear (version, kid, suite ids), then the HPKE ciphertext";
    } else {
      hex.textContent = `${w.envelope}…`;
      hex.title = "version 1 envelope: kid and suite in clear, the rest is the HPKE ciphertext";
    }
    this.wireBox.append(list, element("div", "", "first bytes on the wire:"), hex);
  }
}

function latency(totalMs, networkMs) {
  const node = element("span", "latency", `${fmtMs(totalMs)} ms`);
  if (networkMs !== undefined) node.append(element("small", "", ` (network ${fmtMs(networkMs)} ms)`));
  return node;
}

function probabilityBars(values, labels, top) {
  const bars = element("div", "bars");
  values.forEach((p, i) => {
    const bar = element("div", i === top ? "bar top" : "bar");
    const fill = element("i");
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    bar.append(fill);
    bars.append(element("span", "", labels[i] ?? String(i)), bar, element("span", "", p.toFixed(3)));
  });
  return bars;
}

function softmax(values) {
  const top = Math.max(...values);
  const exp = values.map((v) => Math.exp(v - top));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / sum);
}

// What one output row shows, by the kind the model file gives it (/health's outputs[].kind):
// probabilities as bars, logits through a softmax first, a mask as its value range, boxes listed.
function showOutput(t, spec, output, labels) {
  const values = Array.from(output.data, Number);
  const kind = spec?.kind;
  if (kind === "mask" || kind === "boxes") {
    const low = Math.min(...values).toPrecision(3);
    const high = Math.max(...values).toPrecision(3);
    const text = kind === "mask" ? `mask ${output.shape.slice(1).join("×")}` : `${output.shape[1]} box(es)`;
    t.answer.replaceChildren(element("span", "top-class word", text), element("span", "top-p", `values ${low}..${high}`));
    t.details.replaceChildren();
    return;
  }
  const probabilities = kind === "logits" ? softmax(values) : values;
  const top = argmax(probabilities);
  const note = kind === "logits" ? ` (softmax of logit ${values[top].toFixed(3)})` : "";
  t.answer.replaceChildren(element("span", "top-class", labels[top] ?? String(top)), element("span", "top-p", `p = ${probabilities[top].toFixed(3)}${note}`));
  t.details.replaceChildren(probabilityBars(probabilities, labels, top));
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

// ---- the drawing pad -------------------------------------------------------------------------

function setUpPad(canvas) {
  const context = canvas.getContext("2d");
  const clear = () => {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.ink = "0";
  };
  clear();
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = 18;
  context.strokeStyle = "#111";
  let last = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [((event.clientX - box.left) * canvas.width) / box.width, ((event.clientY - box.top) * canvas.height) / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    context.beginPath();
    context.arc(last[0], last[1], context.lineWidth / 2, 0, Math.PI * 2);
    context.fillStyle = "#111";
    context.fill();
    canvas.dataset.ink = "1";
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event);
    context.beginPath();
    context.moveTo(...last);
    context.lineTo(...next);
    context.stroke();
    last = next;
  });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  return clear;
}

async function setUpDigits(targets, imageInput) {
  const model = targets[0].model;
  $("digits").hidden = false;
  $("digits-model").textContent = `${model.name} ${model.version}, input “${imageInput.name}” ${imageInput.image.height}×${imageInput.image.width}, sent as PNG (version 2, BYTES)`;
  const canvas = $("pad");
  const clear = setUpPad(canvas);
  const cards = $("digit-cards");
  for (const target of targets) target.card(cards);
  $("clear").addEventListener("click", () => { clear(); $("plain").textContent = "Draw one digit, dark on light, then send it."; });
  const button = $("send-digit");
  button.addEventListener("click", async () => {
    button.disabled = true;
    for (const target of targets) target.queue();
    try {
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      const png = new Uint8Array(await blob.arrayBuffer());
      $("plain").textContent = `The image: ${fmtBytes(png.length)} PNG, starts ${hexOf(png.slice(0, 8))} (‰PNG). It never leaves this page in clear.`;
      for (const target of targets) {
        const labels = target.model.labels ?? [];
        await target.send(
          (client) => client.predictImages({ [imageInput.name]: [blob] }),
          (t, result) => {
            const [name, output] = Object.entries(result.outputs)[0];
            showOutput(t, (target.model.outputs ?? []).find((o) => o.name === name), output, labels);
          },
        );
      }
    } finally {
      button.disabled = false;
    }
  });
}

// ---- the tabular form ------------------------------------------------------------------------

function setUpTabular(targets, input, extras) {
  const model = targets[0].model;
  const width = input.shape[input.shape.length - 1];
  $("tabular").hidden = false;
  $("tabular-model").textContent = `${model.name} ${model.version}, ${width} features, version 1 (JSON numbers, sealed)`;
  $("meaning").textContent = extras.meaning ? `Output: ${extras.meaning}.` : "";
  const names = extras.feature_names?.length === width ? extras.feature_names : Array.from({ length: width }, (_, i) => `feature ${i}`);
  const samples = extras.samples ?? [{ row: new Array(width).fill(0), label: null }];
  const fields = $("fields");
  const inputs = names.map((name, i) => {
    const label = element("label", "", name);
    const field = element("input");
    Object.assign(field, { type: "number", step: "any", required: true, name: `f${i}` });
    label.append(field);
    fields.append(label);
    return field;
  });
  const select = $("sample");
  samples.forEach((sample, i) => {
    const label = sample.label === null ? "" : ` (label ${sample.label === 1 ? "1, benign" : "0, malignant"})`;
    select.append(new Option(`row ${i + 1}${label}`, String(i)));
  });
  const fill = () => samples[Number(select.value)].row.forEach((value, i) => { inputs[i].value = String(value); });
  select.addEventListener("change", fill);
  fill();
  const cards = $("row-cards");
  for (const target of targets) target.card(cards);
  const button = $("send-row");
  $("features").addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    for (const target of targets) target.queue();
    try {
      const row = inputs.map((field) => Number(field.value));
      for (const target of targets) {
        await target.send(
          (client) => client.predict([row]),
          (t, result) => {
            const values = [result.outputs[0]].flat().map(Number);
            const p = values[0];
            const text = values.length === 1 ? (p >= 0.5 ? "benign" : "malignant") : String(argmax(values));
            t.answer.replaceChildren(element("span", "top-class word", text), element("span", "top-p", `p = ${p.toFixed(3)}`));
            t.details.replaceChildren(probabilityBars(values, values.length === 1 ? ["p"] : [], argmax(values)));
          },
        );
      }
    } finally {
      button.disabled = false;
    }
  });
}

// ---- start -----------------------------------------------------------------------------------

async function main() {
  const config = await (await fetch("/config.json")).json();
  const targets = await Promise.all(config.functions.map((entry) => new Target(entry).load().catch((error) => {
    console.error(entry.provider, error);
    return null;
  })));
  const live = targets.filter(Boolean);
  const failed = config.functions.length - live.length;
  const groups = new Map();
  for (const target of live) {
    if (!groups.has(target.modelKey)) groups.set(target.modelKey, []);
    groups.get(target.modelKey).push(target);
  }
  let images = 0;
  for (const [key, group] of groups) {
    const inputs = group[0].model.inputs ?? [];
    const imageInput = inputs.find((input) => input.image);
    if (imageInput && !images) {
      images += 1;
      await setUpDigits(group, imageInput);
    } else if (!imageInput && inputs.length === 1 && inputs[0].shape.length === 2 && $("tabular").hidden) {
      setUpTabular(group, inputs[0], config.models?.[key] ?? {});
    }
  }
  if (!images) {
    $("no-image").hidden = false;
    const served = [...groups.values()].map((group) => group[0].model.name).join(", ") || "no model";
    $("no-image-text").textContent = `The served model (${served}) has no image input, so there is nothing to draw for. ` +
      "Serve one that has, e.g. litefaas serve --ui --model model/artifacts/digits_cnn.";
  }
  status.textContent = failed ? `ready (${failed} function(s) did not answer /health)` : "ready";
  if (failed) status.classList.add("error");
}

main().catch((error) => {
  status.textContent = `error: ${error.message}`;
  status.classList.add("error");
});

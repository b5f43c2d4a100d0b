/* mloop edge bundle: score a registered model's ONNX twin in the browser with onnxruntime-web (WebAssembly).
 *
 * window.mloop.ready      Promise resolving to {name, version, columns, output, runtime} once the session exists
 *                         (rejects with the reason if the model or runtime cannot load).
 * window.mloop.predict(rows)
 *                         rows: a list of objects keyed by input column. Resolves to the model's first ONNX output
 *                         as nested arrays, one per row: class probabilities for a classifier ([[p0, p1], ...], the
 *                         classes in the order of samples.json's output.classes), [[prediction], ...] for a
 *                         regressor; the same numbers as Python's `onnxruntime` `session.run(None, feed)[0].tolist()`.
 *                         Missing values: null number → NaN; null or absent string → the missing token (no category).
 *                         Rejects with an Error naming the field (error.field) on an unknown or missing column, or a
 *                         value of the wrong type.
 */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  let spec = null;
  let session = null;
  let queue = Promise.resolve(); // one run at a time: an onnxruntime-web session does not take concurrent runs

  function fieldError(message, field) {
    const error = new Error(message);
    error.field = field;
    return error;
  }

  function describe(value) {
    return Array.isArray(value) ? "a list" : typeof value === "string" ? `string ${JSON.stringify(value)}` : `${typeof value} ${String(value)}`;
  }

  /** Check every row against the columns; returns one array of values per column (missing values filled). */
  function columnsOf(rows) {
    if (!Array.isArray(rows)) throw fieldError(`rows must be a list of objects keyed by input column, got ${describe(rows)}`, "rows");
    const known = new Map(spec.columns.map((c) => [c.name, c]));
    const values = new Map(spec.columns.map((c) => [c.name, []]));
    rows.forEach((row, i) => {
      if (row === null || typeof row !== "object" || Array.isArray(row)) {
        throw fieldError(`row ${i} must be an object keyed by input column, got ${describe(row)}`, "rows");
      }
      for (const key of Object.keys(row)) {
        if (!known.has(key)) {
          throw fieldError(`row ${i}: unknown field '${key}'; the model's inputs are ${spec.columns.map((c) => c.name).join(", ")}`, key);
        }
      }
      for (const column of spec.columns) {
        const value = row[column.name];
        values.get(column.name).push(cell(column, value, i));
      }
    });
    return values;
  }

  function cell(column, value, i) {
    if (column.kind === "number") {
      if (value === undefined) throw fieldError(`row ${i}: missing field '${column.name}' (a number, or null when missing)`, column.name);
      if (value === null) return NaN;
      if (typeof value !== "number") throw fieldError(`row ${i}: field '${column.name}' must be a number or null, got ${describe(value)}`, column.name);
      return value;
    }
    if (column.kind === "string") {
      // onnxruntime-web passes strings as C strings: one holding NUL would be cut short, so it counts as unseen (missing), as in Python.
      if (value === undefined || value === null || (typeof value === "string" && value.includes("\u0000"))) return spec.missing_token;
      if (typeof value !== "string") throw fieldError(`row ${i}: field '${column.name}' must be a string or null, got ${describe(value)}`, column.name);
      return value;
    }
    return value; // a column the twin does not read
  }

  function feedOf(values, n) {
    const feed = {};
    if (spec.feed.matrix) {
      const k = spec.columns.length;
      const data = new Float64Array(n * k);
      spec.columns.forEach((c, j) => values.get(c.name).forEach((v, i) => { data[i * k + j] = v; }));
      feed.X = new ort.Tensor("float64", data, [n, k]);
      return feed;
    }
    for (const input of spec.feed.inputs) {
      const column = values.get(input.name);
      feed[input.name] = input.type === "string" ? new ort.Tensor("string", column, [n, 1])
        : new ort.Tensor("float64", Float64Array.from(column), [n, 1]);
    }
    return feed;
  }

  function nested(tensor) {
    const data = Array.from(tensor.data, Number);
    if (tensor.dims.length < 2) return data;
    const width = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
    const out = [];
    for (let i = 0; i < tensor.dims[0]; i++) out.push(data.slice(i * width, (i + 1) * width));
    return out;
  }

  async function run(rows) {
    await ready;
    const values = columnsOf(rows);
    if (rows.length === 0) return [];
    const results = await session.run(feedOf(values, rows.length));
    return nested(results[session.outputNames[0]]);
  }

  function predict(rows) {
    const result = queue.then(() => run(rows));
    queue = result.catch(() => undefined);
    return result;
  }

  async function load() {
    const response = await fetch("samples.json");
    if (!response.ok) throw new Error(`samples.json: HTTP ${response.status}`);
    spec = await response.json();
    ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static server does not give
    session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
    return { name: spec.model.name, version: spec.model.version, columns: spec.columns, output: spec.output, runtime: spec.runtime };
  }

  const ready = load();

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function outputHeaders(width) {
    const classes = spec.output.classes;
    if (classes && classes.length === width) return classes.map((c) => `P(${c})`);
    if (width === 1) return [spec.output.name];
    return Array.from({ length: width }, (_, j) => `${spec.output.name}[${j}]`);
  }

  function td(text, className) {
    const cellNode = document.createElement("td");
    cellNode.textContent = text;
    if (className) cellNode.className = className;
    return cellNode;
  }

  function render(outputs) {
    const table = $("samples");
    const width = outputs.length ? outputs[0].length : 0;
    const head = document.createElement("tr");
    for (const name of [...spec.columns.map((c) => c.name), ...outputHeaders(width)]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    table.tHead.replaceChildren(head);
    table.tBodies[0].replaceChildren(...spec.rows.map((row, i) => {
      const tr = document.createElement("tr");
      for (const c of spec.columns) {
        const v = row[c.name];
        const shown = typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(6))) : String(v);
        tr.appendChild(v === null || v === undefined ? td("missing", "missing") : td(shown));
      }
      for (const v of outputs[i]) tr.appendChild(td(v.toFixed(6), "out"));
      return tr;
    }));
  }

  window.mloop = { ready, predict };

  ready.then(async (info) => {
    document.title = `${info.name} v${info.version} · mloop edge`;
    $("title").textContent = `${info.name} v${info.version}`;
    $("rows").value = JSON.stringify(spec.rows.slice(0, 2), null, 1);
    const started = performance.now();
    const outputs = await predict(spec.rows);
    const ms = (performance.now() - started).toFixed(1);
    render(outputs);
    setStatus("ready", `Ready: ${spec.rows.length} sample row(s) scored in ${ms} ms by ${spec.runtime.name} ${spec.runtime.version} (WebAssembly), offline.`);
  }).catch((error) => setStatus("error", `Error: ${error.message}`));

  $("run").addEventListener("click", () => {
    let rows;
    try {
      rows = JSON.parse($("rows").value);
    } catch (error) {
      $("result").textContent = `Not JSON: ${error.message}`;
      return;
    }
    predict(rows).then((out) => { $("result").textContent = JSON.stringify(out, null, 1); },
      (error) => { $("result").textContent = `Error: ${error.message}`; });
  });
})();

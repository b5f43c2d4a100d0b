// mloop's dashboard: one page over the operations' API (/api), signed in with a session cookie. No framework, no CDN:
// every node is built with textContent (nothing the server sends is parsed as HTML), every change sends the session's
// CSRF token, and the view in sight refreshes itself every POLL_MS while the tab is visible.
"use strict";
(() => {
  const POLL_MS = 2000;
  const NOTICE_MS = 8000;  // how long an action's outcome stays in the status line
  const ROLES = ["viewer", "predictor", "operator", "admin"];
  const S = { session: null, timer: null, busy: false, again: false, first: true, live: {}, notice: null };
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else if (k === "width") e.style.width = v;  // through the CSSOM: the page's CSP allows no inline style attribute
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined && kid !== false) e.append(kid instanceof Node ? kid : String(kid));
    return e;
  }
  function s(tag, attrs, ...kids) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const kid of kids.flat()) if (kid) e.append(kid instanceof Node ? kid : String(kid));
    return e;
  }
  const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x) ? "—" : Number(x).toPrecision(d));
  const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "—");
  const ago = (sec) => (sec === null || sec === undefined ? "—" : sec < 120 ? `${Math.round(sec)} s` : sec < 7200 ? `${Math.round(sec / 60)} min` : `${(sec / 3600).toFixed(1)} h`);
  const pill = (text, kind) => h("span", { class: `pill ${kind || text}` }, text);
  const can = (role) => S.session && ROLES.indexOf(S.session.role) >= ROLES.indexOf(role);
  const enc = encodeURIComponent;

  async function api(path, options) {
    const { method = "GET", body } = options || {};
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && S.session && S.session.csrf) headers["x-csrf-token"] = S.session.csrf;
    const r = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (r.headers.get("content-type") || "").includes("json") ? await r.json() : null;
    if (r.status === 401 && path !== "ui/session") { showSignIn(json && json.error); throw new Error(json ? json.error : "signed out"); }
    if (!r.ok) { const err = new Error((json && json.error) || `HTTP ${r.status}`); err.status = r.status; throw err; }
    return json;
  }

  // -- signing in -------------------------------------------------------------------------------
  function showSignIn(message) {
    S.session = null;
    clearTimeout(S.timer);
    $("nav").hidden = true; $("signout").hidden = true; $("who").textContent = "";
    $("view").replaceChildren();
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("key").focus();
  }
  function signedIn(session) {
    S.session = session;
    $("signin").hidden = true; $("nav").hidden = false; $("signout").hidden = session.via === "no-auth";
    $("who").textContent = `${session.subject} · ${session.role}`;
    if (!location.hash) location.hash = "#/deployments"; else refresh();
  }
  async function signIn(event) {
    event.preventDefault();
    try {
      const session = await api("ui/session", { method: "POST", body: { key: $("key").value } });  // sets the cookie
      $("key").value = "";
      signedIn(session);
    } catch (err) { $("signin-error").textContent = err.message; }
  }
  async function signOut() { await api("ui/session", { method: "DELETE" }).catch(() => null); showSignIn("Signed out."); }

  // -- the views --------------------------------------------------------------------------------
  function split(weights) {
    const entries = Object.entries(weights || {});
    return h("div", { class: "split", role: "img", "aria-label": entries.map(([a, w]) => `${a} ${Math.round(w * 100)}%`).join(", ") },
      entries.map(([arm, w]) => h("span", { width: `${(w * 100).toFixed(1)}%`, title: `${arm} ${(w * 100).toFixed(1)}%` }, w > 0.08 ? `${arm} ${Math.round(w * 100)}%` : "")));
  }
  function table(head, rows, opts) {
    const numeric = (opts && opts.numeric) || [];
    return h("table", {}, h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, c)))),
      h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c))))
        : h("tr", {}, h("td", { colspan: head.length, class: "muted" }, (opts && opts.empty) || "nothing yet"))));
  }

  async function viewDeployments() {
    const { deployments } = await api("api/deployments");
    const stats = await Promise.all(deployments.map((d) => api(`v2/models/${enc(d.name)}/stats`).catch(() => null)));
    const rows = deployments.map((d, i) => {
      const st = stats[i];
      const versions = st ? Object.values(st.versions) : [];
      const rps = versions.reduce((a, v) => a + (v.requests_per_s || 0), 0);
      const p50 = versions.map((v) => v.latency_ms.p50).filter((x) => x !== null);
      const p99 = versions.map((v) => v.latency_ms.p99).filter((x) => x !== null);
      const weights = d.rollout ? d.rollout.weights : { [`v${d.serves}`]: 1 };
      return [h("a", { href: `#/deployment/${enc(d.name)}`, "data-key": `dep-${d.name}` }, d.name), `${d.model}@${d.alias}`, d.serves === null ? "—" : `v${d.serves}`,
        d.rollout ? `${d.rollout.kind} r${d.rollout.revision} (${d.rollout.status})` : "—", split(weights),
        p50.length ? `${fmt(Math.max(...p50))} / ${fmt(Math.max(...p99))}` : "—", rps.toFixed(1)];
    });
    return [h("h1", {}, "Deployments"), table(["name", "serves", "version", "rollout", "traffic split", "latency p50 / p99 (ms)", "req/s"], rows,
      { numeric: [5, 6], empty: "no deployments yet: mloop deploy NAME --model M --version V" })];
  }

  function decisionChart(decisions) {
    // Recorded decisions (filled dots), then the live evidence this page has polled since it opened (hollow dots).
    const points = [];
    decisions.forEach((d, i) => (d.decision.evidence || []).forEach((e) => {
      if (e.log_ratio !== null && e.log_ratio !== undefined) points.push({ i, metric: e.metric, y: e.log_ratio, bound: e.threshold, live: !!d.live });
    }));
    if (!points.length) return h("p", { class: "muted" }, "No decision with a sequential statistic yet: the canary's first stage is still gathering outcomes.");
    const W = 900, H = 220, P = 36;
    const metrics = [...new Set(points.map((p) => p.metric))];
    const ys = points.flatMap((p) => [p.y, p.bound]);
    const lo = Math.min(0, ...ys), hi = Math.max(...ys) * 1.1 || 1;
    const x = (i) => P + (decisions.length > 1 ? (i / (decisions.length - 1)) * (W - 2 * P) : (W - 2 * P) / 2);
    const y = (v) => H - P - ((v - lo) / (hi - lo)) * (H - 2 * P);
    const bound = points[0].bound;
    return s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `decision statistic (log likelihood ratio) per decision against the boundary ${fmt(bound)}` },
      s("line", { class: "boundary", x1: P, x2: W - P, y1: y(bound), y2: y(bound) }), s("text", { x: W - P - 150, y: y(bound) - 4 }, `boundary ${fmt(bound)}: roll back above`),
      s("text", { x: 4, y: P - 8 }, "log likelihood ratio"), s("text", { x: W / 2 - 40, y: H - 8 }, "decision (oldest → newest)"),
      metrics.map((m, k) => {
        const mine = points.filter((p) => p.metric === m);
        return s("g", { class: `s${k % 3}` }, s("polyline", { class: `series s${k % 3}`, points: mine.map((p) => `${x(p.i)},${y(p.y)}`).join(" ") }),
          mine.map((p) => s("circle", { cx: x(p.i), cy: y(p.y), r: 3, class: p.live ? "live" : "recorded" }, s("title", {}, `${m}: ${fmt(p.y)}${p.live ? " (now)" : ""}`))),
          s("text", { x: P + 150 + 90 * k, y: P - 8 }, m));
      }));
  }

  async function act(name, action) {
    const path = `api/deployments/${enc(name)}/rollout/${action}`;
    try {
      const plan = await api(`${path}?dry_run=true`, { method: "POST" });
      const dialog = h("dialog", { "aria-label": `${action} ${name}` }, h("h2", {}, `${action} ${name}?`), h("p", {}, "This is what would change:"),
        h("pre", {}, JSON.stringify(plan.would, null, 2)),
        h("div", { class: "actions" }, h("button", { class: "primary", value: "yes", "data-key": "confirm" }, `Yes, ${action}`), h("button", { value: "no" }, "Cancel")));
      dialog.addEventListener("click", async (ev) => {
        const value = ev.target && ev.target.value;
        if (!value) return;
        dialog.close(); dialog.remove();
        if (value !== "yes") return;
        try { notice(`${action}: ${JSON.stringify(await api(path, { method: "POST" }))}`); } catch (err) { notice(`${action} refused: ${err.message}`, true); }
        refresh();
      });
      document.body.append(dialog);
      dialog.showModal();
    } catch (err) { status(`${action} refused: ${err.message}`, true); }
  }

  async function viewDeployment(name) {
    const [st, loop] = await Promise.all([api(`api/deployments/${enc(name)}/rollout?last=100`), api(`api/deployments/${enc(name)}/loop`).catch(() => null)]);
    const live = st.live;
    const operator = can("operator");
    const buttons = ["promote", "rollback", "pause", "resume"].map((a) => h("button", { type: "button", "data-key": `act-${a}`, disabled: !operator,
      title: operator ? null : "needs the operator role", onclick: () => act(name, a) }, a));
    const decisions = st.decisions.slice().reverse();
    const series = (S.live[name] = (S.live[name] || []).concat(live && live.now ? [{ decision: live.now, live: true }] : []).slice(-120));
    return [h("h1", {}, `Deployment ${name}`),
      h("p", {}, `Serves version ${st.serves}. `, live ? `Live ${live.kind} policy, revision ${live.revision} (${live.status}).` : "No rollout in progress."),
      live ? split(live.weights) : null,
      h("div", { class: "actions", role: "group", "aria-label": "rollout actions" }, buttons),
      h("h2", {}, "Decision statistic against its boundary"), decisionChart([...st.decisions, ...series]),
      live && live.now ? h("p", { class: "muted" }, `Now: ${live.now.action} — ${live.now.reason}`) : null,
      h("h2", {}, "Decisions"), table(["when", "action", "by", "why"], decisions.map((d) => [when(d.created_at), d.action, d.actor, String(d.decision.reason || "")]), { empty: "no decisions yet" }),
      h("h2", {}, "Policies"), table(["revision", "kind", "status", "by", "why"], st.history.map((p) => [String(p.revision), p.kind, pill(p.status), p.actor, p.reason])),
      h("h2", {}, "Retraining"), loop ? h("p", {}, loop.policy ? `Policy revision ${loop.policy.revision}; ` : "No retraining policy; ",
        loop.in_flight ? `attempt ${loop.in_flight.id} in flight at ${loop.in_flight.step}.` : "no attempt in flight.", " ", h("a", { href: "#/loop" }, "history")) : null];
  }

  async function viewMonitors() {
    const { monitors } = await api("api/monitors");
    return [h("h1", {}, "Monitors"), table(["deployment", "monitor", "watches", "windows", "last", "alarm", "error"], monitors.map((m) => [m.deployment,
      h("a", { href: `#/monitor/${enc(m.deployment)}/${enc(m.name)}`, "data-key": `mon-${m.deployment}-${m.name}` }, m.name), m.kind, String(m.windows),
      pill(m.last.split(":")[0] || "—"), m.alarm ? pill("alarm") : "no", m.error]), { numeric: [3], empty: "no monitors: mloop monitors apply monitors.yaml" })];
  }

  function driftChart(windows) {
    if (!windows.length) return h("p", { class: "muted" }, "No window evaluated yet.");
    const W = 900, H = 220, P = 36;
    const x = (i) => P + (windows.length > 1 ? (i / (windows.length - 1)) * (W - 2 * P) : (W - 2 * P) / 2);
    const y = (v) => H - P - v * (H - 2 * P);
    const share = (w) => (w.summary && typeof w.summary.share_drifted === "number" ? w.summary.share_drifted : w.drift ? 1 : 0);
    return s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `share of features drifted in each of the last ${windows.length} windows` },
      s("text", { x: 4, y: P - 8 }, "share of features drifted"), s("text", { x: W / 2 - 30, y: H - 8 }, "window (oldest → newest)"),
      s("line", { x1: P, x2: W - P, y1: y(0), y2: y(0), stroke: "#d8dde6" }), s("line", { x1: P, x2: W - P, y1: y(1), y2: y(1), stroke: "#d8dde6" }),
      s("polyline", { class: "series s0", points: windows.map((w, i) => `${x(i)},${y(share(w))}`).join(" ") }),
      windows.map((w, i) => s("g", {}, s("circle", { class: w.drift ? "dot-drift" : "dot-stable", cx: x(i), cy: y(share(w)), r: 4 },
        s("title", {}, `window ${w.id}: ${w.rows} rows, ${w.drift ? "drift" : "stable"}${w.alarm ? ", alarm" : ""}`)),
      w.alarm ? s("circle", { class: "dot-alarm", cx: x(i), cy: y(share(w)), r: 8 }) : null)));
  }

  async function viewMonitor(dep, name) {
    const data = await api(`api/monitors/${enc(dep)}/${enc(name)}/windows?last=60&features=true`);
    const newest = data.windows.slice().reverse();
    const chosen = newest.find((w) => String(w.id) === S.window) || newest[0];
    const features = chosen && chosen.summary && Array.isArray(chosen.summary.features) ? chosen.summary.features : [];
    return [h("h1", {}, `Monitor ${dep}/${name}`), h("p", {}, `${data.total} windows evaluated; the last ${data.windows.length} below.`), driftChart(data.windows),
      h("h2", {}, "Windows"), table(["window", "ended", "rows", "verdict", "alarm", "drifted features", "report"], newest.map((w) => [
        h("button", { type: "button", "data-key": `win-${w.id}`, "aria-pressed": chosen === w ? "true" : "false", onclick: () => { S.window = String(w.id); refresh(); } }, String(w.id)),
        when(w.end), String(w.rows), pill(w.drift ? "drift" : "stable"), w.alarm ? pill("alarm") : "no", w.drifted.join(", "),
        w.report ? h("a", { href: `ui/reports/${enc(dep)}/${enc(name)}/${w.id}`, target: "_blank", rel: "noopener" }, "report") : "—"]), { numeric: [2] }),
      chosen ? h("h2", {}, `Features of window ${chosen.id}`) : null,
      chosen ? table(["feature", "test", "statistic", "p", "p adjusted", "effect", "drift"], features.map((f) => [f.name, f.test, fmt(f.statistic), fmt(f.p_value),
        fmt(f.p_value_adjusted), fmt(f.effect_size), f.drift ? pill("drift") : pill("stable")]), { numeric: [2, 3, 4, 5], empty: "this window has no per-feature statistics" }) : null];
  }

  function stepText(step) {
    const d = step.detail || {};
    const stat = ["p_value", "statistic", "auc_champion", "auc_challenger", "delta", "version"].filter((k) => k in d).map((k) => `${k}=${typeof d[k] === "number" ? fmt(d[k]) : d[k]}`);
    return [d.reason || "", stat.length ? ` (${stat.join(", ")})` : ""].join("");
  }
  async function viewLoop() {
    const { attempts } = await api("api/loop/history?last=50");
    return [h("h1", {}, "The loop"), attempts.length ? attempts.map((a) => h("section", { "aria-label": `attempt ${a.id}` },
      h("h2", {}, `Attempt ${a.id} · ${a.deployment} · `, pill(a.result || "in flight", (a.result || "").startsWith("rejected") ? "rejected" : a.result)),
      h("p", { class: "muted" }, `${a.trigger.kind} trigger at ${when(a.trigger.at)}${a.human ? " · a person took part" : " · no person needed"}`),
      h("pre", {}, JSON.stringify(a.trigger.detail, null, 1).slice(0, 1200)),
      table(["step", "outcome", "started", "evidence"], a.steps.map((st) => [st.name, st.outcome || "running", when(st.started_at), stepText(st)]))))
      : h("p", { class: "muted" }, "No retraining attempts yet: apply a policy with mloop loop apply policy.yaml.")];
  }

  async function viewModels() {
    const { models } = await api("api/models");
    return [h("h1", {}, "Models"), table(["model", "versions", "newest", "aliases"], models.map((m) => [h("a", { href: `#/model/${enc(m.name)}`, "data-key": `model-${m.name}` }, m.name),
      String(m.versions), m.latest_version ? `v${m.latest_version}` : "—", Object.entries(m.aliases).map(([a, v]) => `${a}→v${v}`).join(", ")]), { numeric: [1], empty: "no registered models" })];
  }
  async function viewModel(name) {
    const m = await api(`api/models/${enc(name)}?version=${enc(S.version || "latest")}&card=true&lineage=true`);
    return [h("h1", {}, `Model ${name}`), table(["version", "aliases", "run", "registered", "manifest"], m.versions.slice().reverse().map((v) => [
      h("button", { type: "button", "data-key": `ver-${v.version}`, "aria-pressed": v.version === m.version ? "true" : "false", onclick: () => { S.version = String(v.version); refresh(); } }, `v${v.version}`),
      v.aliases.join(", "), v.run_id || "—", when(v.created_at), (v.manifest_sha256 || "").slice(0, 16)])),
      h("h2", {}, `Card of version ${m.version}`), h("pre", {}, m.card || "no card"), h("h2", {}, "Lineage"), h("pre", {}, m.lineage ? JSON.stringify(m.lineage, null, 2) : "no lineage recorded")];
  }

  async function viewFeatures() {
    const f = await api("api/features");
    return [h("h1", {}, "Feature views"), table(["view", "version", "entities", "features", "TTL", "newest event", "state"], f.views.map((v) => [v.name, String(v.version),
      v.entities.join(", "), v.features.join(", "), v.ttl_seconds ? ago(v.ttl_seconds) : "—", v.materialized ? `${ago(v.age_seconds)} ago` : "never materialised",
      !v.materialized ? pill("not materialised", "drift") : v.ttl_seconds && v.age_seconds > v.ttl_seconds ? pill("stale", "drift") : pill("fresh")]), { empty: "no feature views: mloop features apply features.yaml" }),
      h("h2", {}, "Feature services"), table(["service", "views"], Object.entries(f.services).map(([n, vs]) => [n, vs.join(", ")]), { empty: "no feature services" })];
  }

  async function viewRuns(query) {
    const offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0), limit = Math.min(500, parseInt(query.get("limit") || "50", 10) || 50);
    const page = await api(`api/runs?offset=${offset}&limit=${limit}`);
    const go = (o, l) => { location.hash = `#/runs?offset=${Math.max(0, o)}&limit=${l}`; };
    const last = offset + page.runs.length;
    const pager = h("div", { class: "pager", role: "navigation", "aria-label": "pages of runs" },
      h("button", { type: "button", "data-key": "prev", disabled: offset === 0, onclick: () => go(offset - limit, limit) }, "← newer"),
      h("span", { id: "runs-range" }, page.total ? `runs ${offset + 1}–${last} of ${page.total.toLocaleString("en")}` : "no runs"),
      h("button", { type: "button", "data-key": "next", disabled: last >= page.total, onclick: () => go(offset + limit, limit) }, "older →"),
      h("label", { for: "page-size" }, "per page"),
      h("select", { id: "page-size", "data-key": "size", onchange: (e) => go(0, e.target.value) }, [25, 50, 100, 200].map((n) => h("option", { value: n, selected: n === limit }, String(n)))));
    return [h("h1", {}, "Runs"), pager, table(["run", "name", "experiment", "status", "started", "metrics"], page.runs.map((r) => [r.run_id.slice(0, 12), r.name, r.experiment,
      r.status, when(r.start_time), Object.entries(r.metrics).slice(0, 4).map(([k, v]) => `${k}=${fmt(v)}`).join("  ")]), { empty: "no runs yet" })];
  }

  // -- routing and refreshing -------------------------------------------------------------------
  function route() {
    const [path, q] = (location.hash || "#/deployments").slice(2).split("?");
    const parts = path.split("/").map(decodeURIComponent);
    const query = new URLSearchParams(q || "");
    const table = {
      deployments: () => viewDeployments(), deployment: () => viewDeployment(parts[1]), monitors: () => viewMonitors(), monitor: () => viewMonitor(parts[1], parts[2]),
      loop: () => viewLoop(), models: () => viewModels(), model: () => viewModel(parts[1]), features: () => viewFeatures(), runs: () => viewRuns(query),
    };
    const section = { deployment: "deployments", monitor: "monitors", model: "models" }[parts[0]] || parts[0];
    document.querySelectorAll("#nav a").forEach((a) => (a.dataset.view === section ? a.setAttribute("aria-current", "page") : a.removeAttribute("aria-current")));
    return table[parts[0]] || table.deployments;
  }
  function status(text, bad) { $("status").textContent = text; $("status").className = bad ? "error" : ""; }
  // The outcome of an action stays in the status line for a while: the refresh after it does not wipe it out.
  function notice(text, bad) { S.notice = { text, bad, until: Date.now() + NOTICE_MS }; status(text, bad); }

  async function refresh() {
    clearTimeout(S.timer);
    if (S.busy) { S.again = true; return; }  // one refresh at a time; a navigation during one runs right after it
    if (!S.session || document.querySelector("dialog[open]")) { S.timer = setTimeout(refresh, POLL_MS); return; }
    S.busy = true;
    const view = $("view");
    const focusKey = view.contains(document.activeElement) && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    try {
      const nodes = await route()();
      view.replaceChildren(...nodes.filter(Boolean));
      if (focusKey) { const again = view.querySelector(`[data-key="${CSS.escape(focusKey)}"]`); if (again) again.focus(); }
      if (S.notice && Date.now() < S.notice.until) status(S.notice.text, S.notice.bad); else status(`updated ${new Date().toLocaleTimeString()}`);
      if (S.first) { S.first = false; performance.mark("mloop:interactive"); }
    } catch (err) {
      if (S.session) status(err.message, true);
    } finally {
      S.busy = false;
      if (S.again) { S.again = false; refresh(); return; }
      if (S.session) S.timer = setTimeout(() => (document.visibilityState === "visible" ? refresh() : (S.timer = setTimeout(refresh, POLL_MS))), POLL_MS);
    }
  }

  window.addEventListener("hashchange", () => {
    // A new view: focus moves to its content (for screen readers), unless it came from a control inside the view (the
    // runs pager), whose focus the refresh restores.
    const fromView = $("view").contains(document.activeElement);
    S.window = null; S.version = null;
    refresh().then(() => { if (!fromView) $("main").focus({ preventScroll: true }); });
  });
  document.addEventListener("DOMContentLoaded", async () => {
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    try {
      const session = await api("ui/session");
      if (session.signed_in) signedIn(session); else showSignIn();
    } catch (err) { showSignIn(err.message); }
  });
})();

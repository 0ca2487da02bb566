// The live drop page: polls GET /v1/coupons/{id}/live once a second and
// renders it. Every value goes in through textContent or a numeric
// attribute, never as HTML: coupon names are user data.
"use strict";
(function () {
  const id = location.pathname.split("/").filter(Boolean).pop();
  const $ = (x) => document.getElementById(x);
  const fmt = new Intl.NumberFormat("en");
  const SVG = "http://www.w3.org/2000/svg";
  let period = 1000;

  function text(el, s) { $(el).textContent = s; }
  function num(n) { return n === null || n === undefined ? "–" : fmt.format(n); }
  function clock(iso) { return iso ? new Date(iso).toISOString().slice(11, 23) + " UTC" : "–"; }
  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    const m = Math.floor(s / 60);
    return m + " min " + Math.round(s - 60 * m) + " s";
  }

  function chart(history) {
    const svg = $("chart");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!history || history.length < 2) return;
    const W = 600, H = 160, t0 = history[0].t, t1 = history[history.length - 1].t;
    const top = Math.max(1, ...history.map((p) => p.rate));
    const span = Math.max(1, t1 - t0);
    const pts = history.map((p) => [((p.t - t0) / span) * W, H - (p.rate / top) * (H - 8)]);
    const line = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
    const area = document.createElementNS(SVG, "path");
    area.setAttribute("class", "area");
    area.setAttribute("d", line + " L" + W + " " + H + " L0 " + H + " Z");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("class", "line");
    path.setAttribute("d", line);
    svg.appendChild(area);
    svg.appendChild(path);
    text("chart-max", "peak " + fmt.format(Math.round(top)) + " /s");
    text("chart-span", "last " + duration(span / 1000));
  }

  function render(v) {
    document.title = v.name + " · coupon drop";
    text("name", v.name);
    text("coupon", "coupon " + v.id);
    text("strategy", v.strategy);
    text("supply", num(v.supply));
    text("admitted", num(v.admitted));
    text("issued", num(v.issued));
    text("pending", num(v.pending));
    text("remaining", num(v.remaining));
    text("rate", fmt.format(Math.round(v.admissionsPerSecond)));
    const state = $("state");
    state.className = "state " + (v.soldOut ? "soldout" : "live");
    state.textContent = v.soldOut ? "sold out" : "live";
    $("bar-issued").style.width = (100 * v.issued / v.supply) + "%";
    $("bar-pending").style.width = (100 * v.pending / v.supply) + "%";
    if (v.soldOut) {
      text("soldout", "sold out at " + clock(v.soldOutAt) + (v.soldOutExact ? "" : " (approximate: rows still being written)"));
    } else {
      text("soldout", "not yet");
    }
    text("selltime", v.sellOutSeconds === null ? "–" : duration(v.sellOutSeconds) + " from " + clock(v.openedAt));
    if (v.sinkerLag) {
      text("lag", num(v.sinkerLag.records) + " records on partition " + v.sinkerLag.partition);
    } else {
      text("lag", v.lagError || (v.strategy === "async" ? "unknown" : "none (written synchronously)"));
    }
    text("updated", clock(v.sampledAt));
    chart(v.history);
    if (v.refreshSeconds > 0) period = Math.min(1000, v.refreshSeconds * 1000);
  }

  function fail(msg) {
    const state = $("state");
    state.className = "state error";
    state.textContent = msg;
  }

  async function poll() {
    try {
      const r = await fetch("/v1/coupons/" + encodeURIComponent(id) + "/live", { cache: "no-store" });
      const v = await r.json();
      if (r.ok) render(v); else fail((v && v.message) || "HTTP " + r.status);
    } catch (e) {
      fail("gateway unreachable; retrying");
    }
    setTimeout(poll, period);
  }
  poll();
})();

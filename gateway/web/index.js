// The drops index: lists the coupons newest first through the admin API
// (the token stays in sessionStorage) and links each to its live page.
// Values go in through textContent only: coupon names are user data.
"use strict";
(function () {
  const $ = (x) => document.getElementById(x);
  const fmt = new Intl.NumberFormat("en");

  function cell(tr, value, href) {
    const td = document.createElement("td");
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = value;
      td.appendChild(a);
    } else {
      td.textContent = value;
    }
    tr.appendChild(td);
  }

  let cursor = "";
  let seq = 0; // the latest list call: an answer to an earlier one is dropped

  // list shows a page of GET /v1/coupons (admin), newest first, following
  // its cursor. "More" is disabled while a page loads, so a second click
  // cannot fetch the same page again.
  async function list(more) {
    const token = sessionStorage.getItem("coupon.adminToken");
    if (!token) { $("msg").textContent = "Enter the admin token to list the coupons."; return; }
    if (!more) cursor = "";
    const n = ++seq;
    $("more").disabled = true;
    try {
      const q = "/v1/coupons?order=desc&limit=50" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      const r = await fetch(q, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      const v = await r.json();
      if (n !== seq) return;
      if (!r.ok) { $("msg").textContent = (v && v.message) || "HTTP " + r.status; return; }
      const rows = $("rows");
      if (!more) while (rows.firstChild) rows.removeChild(rows.firstChild);
      for (const c of v.coupons || []) {
        const tr = document.createElement("tr");
        const href = "/drops/" + encodeURIComponent(c.id);
        cell(tr, String(c.id), href);
        cell(tr, c.name, href);
        cell(tr, c.strategy);
        cell(tr, c.state || "");
        cell(tr, fmt.format(c.totalQuantity));
        cell(tr, fmt.format(c.admitted));
        cell(tr, c.createdAt ? new Date(c.createdAt).toISOString().slice(0, 19).replace("T", " ") + " UTC" : "");
        rows.appendChild(tr);
      }
      cursor = v.nextCursor || "";
      $("more").hidden = !cursor;
      $("list").hidden = false;
      $("msg").textContent = rows.childElementCount ? "" : "No coupons yet.";
    } catch (e) {
      if (n === seq) $("msg").textContent = "The gateway did not answer.";
    } finally {
      if (n === seq) $("more").disabled = false;
    }
  }

  $("more").addEventListener("click", () => list(true));
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("coupon.adminToken", $("token").value);
    $("token").value = "";
    list(false);
  });
  $("open").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("open-id").value.trim();
    if (/^[1-9][0-9]*$/.test(id)) location.href = "/drops/" + id;
  });
  list(false);
})();

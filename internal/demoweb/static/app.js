"use strict";
// The demo page's logic. The gateway URL comes from the page's data-gateway attribute (set by the
// server, HTML-escaped); every item field is written with textContent, never as HTML.
(function () {
  const root = document.getElementById("app");
  const gateway = root.dataset.gateway || "";
  const statusEl = document.getElementById("status");
  const itemsEl = document.getElementById("items");
  const servedEl = document.getElementById("served-by");
  const form = document.getElementById("create");

  document.getElementById("origin").textContent = location.origin;
  document.getElementById("gateway").textContent = gateway || "(not configured)";

  function setStatus(text, ok) {
    statusEl.textContent = text;
    statusEl.className = ok ? "ok" : "error";
  }

  // call sends one request to the gateway and returns the parsed JSON body (null when empty).
  async function call(method, path, body) {
    if (!gateway) {
      throw new Error("the gateway URL is not configured or not a valid http(s) URL");
    }
    const init = { method: method, headers: {}, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(gateway + path, init);
    } catch (e) {
      throw new Error(method + " " + path + " was blocked or could not reach the gateway (" + e.message +
        "). If this page's origin is not allowed by the gateway's CORS policy, that is the expected result.");
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { /* not JSON: report the status below */ }
    }
    if (!resp.ok) {
      const msg = data && typeof data.message === "string" ? data.message : resp.statusText;
      throw new Error(method + " " + path + ": " + resp.status + " " + msg);
    }
    return data;
  }

  function itemElement(item) {
    const li = document.createElement("li");
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = "#" + item.id;
    const name = document.createElement("strong");
    name.textContent = item.name;
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = item.note || "";
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "Delete";
    del.addEventListener("click", async function () {
      try {
        await call("DELETE", "/items/" + encodeURIComponent(String(item.id)));
        await load();
      } catch (e) {
        setStatus("error: " + e.message, false);
      }
    });
    li.append(id, name, note, del);
    return li;
  }

  async function load() {
    try {
      const items = await call("GET", "/items");
      if (!Array.isArray(items)) {
        throw new Error("GET /items did not return a list");
      }
      itemsEl.replaceChildren(...items.map(itemElement));
      setStatus("ok: " + items.length + " items", true);
    } catch (e) {
      setStatus("error: " + e.message, false);
    }
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      await call("POST", "/items", { name: String(data.get("name")), note: String(data.get("note")) });
      form.reset();
      await load();
    } catch (e) {
      setStatus("error: " + e.message, false);
    }
  });

  document.getElementById("reload").addEventListener("click", load);

  document.getElementById("whoami").addEventListener("click", async function () {
    try {
      const who = await call("GET", "/whoami");
      const names = Object.keys(who.headers || {}).sort();
      servedEl.textContent = "Served by app instance " + who.instance + " (connection from " + who.remote_addr +
        "). Headers the app received: " + names.join(", ") + ".";
    } catch (e) {
      servedEl.textContent = "";
      setStatus("error: " + e.message, false);
    }
  });

  load();
})();

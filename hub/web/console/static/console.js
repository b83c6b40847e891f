// The console's only script (CSP: script-src 'self'). Pages work without it; it adds live
// refresh of the event list and a bulk replay's progress bar. Everything it inserts is HTML
// the server rendered and escaped, or text set with textContent.
"use strict";

function liveEvents() {
  const toggle = document.getElementById("live");
  const rows = document.getElementById("event-rows");
  if (!toggle || !rows) return;
  const refresh = async () => {
    if (!toggle.checked || document.hidden) return;
    try {
      const answer = await fetch(toggle.dataset.refresh, { credentials: "same-origin" });
      if (!answer.ok || answer.redirected) return;
      const html = new DOMParser().parseFromString(
        "<table>" + (await answer.text()) + "</table>", "text/html");
      const fresh = html.getElementById("event-rows");
      const current = document.getElementById("event-rows");
      if (fresh && current) current.replaceWith(document.adoptNode(fresh));
    } catch (err) {
      // The next tick tries again: a hub restarting must not break the page.
    }
  };
  window.setInterval(refresh, 5000);
}

function replayProgress() {
  const box = document.getElementById("replay");
  if (!box) return;
  const bar = document.getElementById("replay-bar");
  const text = document.getElementById("replay-text");
  const statuses = document.getElementById("replay-status");
  const cancel = document.getElementById("cancel-form");
  const tick = async () => {
    let p;
    try {
      const answer = await fetch(box.dataset.progress, { credentials: "same-origin" });
      if (!answer.ok) return;
      p = await answer.json();
    } catch (err) {
      return window.setTimeout(tick, 2000);
    }
    bar.max = Math.max(p.replayed, 1);
    bar.value = p.replayed ? p.settled : 1;
    bar.textContent = p.settled + " of " + p.replayed;
    text.textContent = p.settled + " of " + p.replayed + " settled" + (p.done ? ": done" : "");
    statuses.replaceChildren(...Object.entries(p.by_status).map(([status, n]) => {
      const item = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = status;
      dd.textContent = String(n);
      item.append(dt, dd);
      return item;
    }));
    if (p.done) {
      if (cancel) cancel.remove();
      return;
    }
    window.setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  liveEvents();
  replayProgress();
});

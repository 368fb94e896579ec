// The events console's only script (the page's Content-Security-Policy allows no other):
// the live tail, the copy button, and keys: `/` filters by type, `j`/`k` move between events.
"use strict";

function liveTail() {
  const toggle = document.getElementById("live-toggle");
  const status = document.getElementById("live-status");
  const body = document.querySelector("#events tbody");
  if (!toggle || !body) return;
  // The newest sequence on the page: the tail shows only what comes after it, once.
  let last = Number(new URL(toggle.dataset.href, location.href).searchParams.get("after") || 0);
  for (const row of body.rows) last = Math.max(last, Number(row.dataset.sequence || 0));
  let source = null;

  const say = (text, on) => {
    status.textContent = text;
    status.classList.toggle("on", Boolean(on));
  };
  const start = () => {
    const url = new URL(toggle.dataset.href, location.href);
    url.searchParams.set("after", String(last));
    source = new EventSource(url);
    source.addEventListener("ready", () => say("live: new events appear at the top", true));
    source.addEventListener("event", (message) => {
      const sequence = Number(message.lastEventId);
      if (!(sequence > last)) return;
      last = sequence;
      body.insertAdjacentHTML("afterbegin", message.data);
      body.rows[0].classList.add("new");
      document.getElementById("empty")?.remove();
    });
    source.addEventListener("skipped", (message) => say(message.data, true));
    source.addEventListener("end", () => say("stream ended; reconnecting…"));
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        say("live tail stopped (reload the page to log in again)");
        toggle.checked = false;
      } else {
        say("reconnecting…");
      }
    };
  };
  const stop = () => {
    source?.close();
    source = null;
    say("");
  };
  const remember = () => {
    const url = new URL(location.href);
    if (toggle.checked) url.searchParams.set("live", "1");
    else url.searchParams.delete("live");
    history.replaceState(null, "", url);
  };
  toggle.addEventListener("change", () => {
    remember();
    if (toggle.checked) start();
    else stop();
  });
  if (new URL(location.href).searchParams.get("live") === "1") {
    toggle.checked = true;
    start();
  }
}

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy)?.textContent ?? "";
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        // No clipboard outside a secure context: select it for Ctrl+C instead.
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => (button.textContent = "Copy"), 2000);
    });
  }
}

function keys() {
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName ?? "");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      const filter = document.getElementById("type-filter");
      if (filter) {
        event.preventDefault();
        filter.focus();
      }
    } else if (event.key === "j" || event.key === "k") {
      const links = [...document.querySelectorAll("#events tbody tr td:first-child a")];
      if (!links.length) return;
      const at = links.indexOf(document.activeElement);
      const next = event.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
      links[at === -1 ? 0 : next].focus();
      event.preventDefault();
    }
  });
}

liveTail();
copyButtons();
keys();

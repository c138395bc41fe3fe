// Marketer: the little the pages need beyond HTML. Every feature starts
// from a data- attribute in the page; no inline script (the
// Content-Security-Policy forbids it), no framework, no build step.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Times in the reader's time zone; "12 s ago" where asked.
  const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function ago(date) {
    const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return absolute.format(date);
  }
  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) continue;
      el.title = absolute.format(date);
      el.textContent = el.hasAttribute("data-relative") ? ago(date) : absolute.format(date);
    }
  }
  localTimes(document);
  setInterval(() => {
    for (const el of document.querySelectorAll("time[data-relative]")) {
      const date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) el.textContent = ago(date);
    }
  }, 1000);

  // Confirmations before destructive forms.
  document.addEventListener("submit", (event) => {
    const message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Text being edited is kept in this browser until it is saved, so a
  // session that ends mid-edit (or a closed tab) loses nothing: when the
  // page comes back with other text, the kept text is put back and said so.
  for (const form of document.querySelectorAll("form[data-keep]")) {
    const key = "marketer-draft:" + form.getAttribute("data-keep");
    const area = form.querySelector("textarea");
    if (!area) continue;
    let kept = null;
    try { kept = window.localStorage.getItem(key); } catch (_) { /* storage off */ }
    if (kept !== null && kept === area.value) {
      window.localStorage.removeItem(key); // it was saved
    } else if (kept !== null) {
      area.value = kept;
      const details = form.closest("details");
      if (details) details.open = true;
      const note = document.createElement("p");
      note.className = "notice";
      note.id = "draft-restored";
      note.setAttribute("role", "status");
      note.textContent = "Your unsaved text is back. Save it as a new version, or ";
      const discard = document.createElement("button");
      discard.type = "button";
      discard.textContent = "discard it";
      discard.addEventListener("click", () => {
        window.localStorage.removeItem(key);
        area.value = area.defaultValue;
        note.remove();
      });
      note.append(discard);
      form.prepend(note);
    }
    const keep = () => {
      try { window.localStorage.setItem(key, area.value); } catch (_) { /* storage full or off */ }
    };
    area.addEventListener("input", keep);
    form.addEventListener("submit", keep);
  }

  // Copy buttons.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => (button.textContent = "Copy"), 2000);
    });
  }

  // A form that came back with errors: each field with one is marked
  // invalid, and focus goes to a summary at the top whose links lead to
  // the fields, so a keyboard or screen reader user hears what to fix.
  const fieldErrors = Array.from(document.querySelectorAll(".field-error")).filter(
    (el) => el.id && el.textContent.trim() !== "",
  );
  if (fieldErrors.length) {
    const summary = document.createElement("div");
    summary.className = "error-summary";
    summary.setAttribute("role", "alert");
    summary.tabIndex = -1;
    const heading = document.createElement("h2");
    heading.textContent = fieldErrors.length === 1 ? "There is a problem" : `There are ${fieldErrors.length} problems`;
    const list = document.createElement("ul");
    for (const error of fieldErrors) {
      const field = document.querySelector(`[aria-describedby~="${CSS.escape(error.id)}"]`);
      if (field) field.setAttribute("aria-invalid", "true");
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "#" + (field?.id || error.id);
      // The field's label names it: "Name: must not be empty".
      const label = field?.id ? document.querySelector(`label[for="${CSS.escape(field.id)}"]`) : null;
      const message = error.textContent.trim();
      link.textContent = label ? `${label.textContent.trim()}: ${message}` : message;
      item.append(link);
      list.append(item);
    }
    summary.append(heading, list);
    const form = fieldErrors[0].closest("form");
    (form || document.getElementById("main")).prepend(summary);
    summary.focus();
  }

  // Tabs (social variants): arrows, Home and End move between them, as
  // ARIA tabs do.
  for (const list of document.querySelectorAll('[role="tablist"]')) {
    const tabs = Array.from(list.querySelectorAll('[role="tab"]'));
    const select = (tab) => {
      for (const other of tabs) {
        const selected = other === tab;
        other.setAttribute("aria-selected", selected ? "true" : "false");
        other.tabIndex = selected ? 0 : -1;
        const panel = document.getElementById(other.getAttribute("aria-controls"));
        if (panel) panel.hidden = !selected;
      }
      tab.focus();
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => select(tab));
      tab.addEventListener("keydown", (event) => {
        if (event.key === "ArrowRight") select(tabs[(i + 1) % tabs.length]);
        if (event.key === "ArrowLeft") select(tabs[(i - 1 + tabs.length) % tabs.length]);
        if (event.key === "Home") select(tabs[0]);
        if (event.key === "End") select(tabs[tabs.length - 1]);
        if (["ArrowRight", "ArrowLeft", "Home", "End"].includes(event.key)) event.preventDefault();
      });
    });
  }

  // The editor's preview: the server renders Markdown exactly as the
  // result view does.
  for (const button of document.querySelectorAll("[data-preview]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.getAttribute("data-preview"));
      const target = document.getElementById(button.getAttribute("data-preview-target"));
      const body = new URLSearchParams({ content: source.value, _csrf: csrf() });
      const response = await fetch(button.getAttribute("data-preview-url"), {
        method: "POST",
        body,
        headers: { "x-csrf-token": csrf() },
        credentials: "same-origin",
      });
      target.innerHTML = response.ok ? await response.text() : "<p class=\"error\">The preview is not available.</p>";
    });
  }

  // The bell: its number follows the server (every 5 s while the page is
  // shown, and at once when it is shown again). A rise is announced once.
  const bell = document.querySelector("[data-unread]");
  if (bell) {
    const count = document.getElementById("bell-count");
    const words = document.getElementById("bell-words");
    const status = document.getElementById("bell-status");
    let shown = parseInt(count.textContent, 10) || 0;
    const check = async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(bell.getAttribute("data-unread"), { credentials: "same-origin" });
        if (!response.ok) return;
        const unread = (await response.json()).unread;
        if (typeof unread !== "number" || unread === shown) return;
        count.textContent = String(unread);
        count.hidden = unread === 0;
        words.textContent = unread === 0 ? ", none unread" : ", " + unread + " unread";
        if (unread > shown && status) status.textContent = "New notification: " + unread + " unread";
        shown = unread;
      } catch (_) {
        // Offline for a moment: the next tick tries again.
      }
    };
    setInterval(check, 5000);
    document.addEventListener("visibilitychange", check);
  }

  // Sections that follow the server (the documents list as agents index):
  // the page itself is fetched again every few seconds while it is shown,
  // and the section replaced by its fresh copy; never while someone is
  // typing in one of its forms (a reply, an address), which would be lost.
  const editing = (section) =>
    section.contains(document.activeElement) && document.activeElement.matches("input, textarea, select") ||
    Array.from(section.querySelectorAll("textarea, input:not([type=hidden])")).some((f) => f.value !== f.defaultValue);
  for (const section of document.querySelectorAll("[data-live][id]")) {
    const every = parseInt(section.getAttribute("data-live"), 10) || 4000;
    setInterval(async () => {
      if (document.hidden || editing(section)) return;
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById(section.id);
        if (fresh && fresh.innerHTML !== section.innerHTML) {
          section.innerHTML = fresh.innerHTML;
          localTimes(section);
        }
      } catch (_) {
        // Offline for a moment: the next tick tries again.
      }
    }, every);
  }

  // The fleet table refreshes itself every 2 s, in place: cells change
  // only where their content did, so keyboard focus stays where it is and
  // nothing is read out again. Only an agent changing state is announced.
  // A person can pause the updates (WCAG 2.2.2).
  const fleet = document.querySelector("[data-refresh]");
  if (fleet) {
    const announce = document.getElementById("fleet-announce");
    const pause = document.getElementById("fleet-pause");
    let paused = false;
    if (pause) {
      pause.hidden = false;
      pause.addEventListener("click", () => {
        paused = !paused;
        pause.setAttribute("aria-pressed", String(paused));
        pause.textContent = paused ? "Resume live updates" : "Pause live updates";
      });
    }
    const stateOf = (row) => row.querySelector("[data-state]")?.textContent.trim() ?? "";
    const refresh = async () => {
      if (paused || document.hidden) return;
      try {
        const response = await fetch(fleet.getAttribute("data-refresh"), { credentials: "same-origin" });
        if (!response.ok) return;
        const holder = document.createElement("tbody");
        holder.innerHTML = await response.text();
        localTimes(holder);
        const fresh = Array.from(holder.rows);
        const current = Array.from(fleet.rows);
        const sameRows =
          fresh.length === current.length &&
          fresh.every((row, i) => row.getAttribute("data-agent") === current[i].getAttribute("data-agent"));
        const changes = [];
        if (sameRows) {
          fresh.forEach((row, i) => {
            const before = stateOf(current[i]);
            const after = stateOf(row);
            if (before && after && before !== after) {
              changes.push(row.getAttribute("data-agent") + " is now " + after);
            }
            Array.from(row.cells).forEach((cell, j) => {
              const old = current[i].cells[j];
              if (old && old.innerHTML !== cell.innerHTML) old.innerHTML = cell.innerHTML;
            });
          });
        } else {
          // Agents came or went: the rows are replaced, and focus goes back
          // to the same link if it is still there.
          const focused = document.activeElement?.closest("#fleet-rows a")?.getAttribute("href");
          fleet.replaceChildren(...fresh);
          if (focused) fleet.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
          changes.push("The list of agents changed: " + fresh.length + " shown");
        }
        if (announce && changes.length) announce.textContent = changes.join(". ");
      } catch (_) {
        // Offline for a moment: the next tick tries again.
      }
    };
    setInterval(refresh, 2000);
  }

  // Generation progress: the activity's event stream. EventSource resumes
  // after a dropped connection with Last-Event-ID; after a reload the stream
  // replays from the start of the run, so the page rebuilds its state.
  const progress = document.getElementById("progress");
  if (progress) {
    const bar = document.getElementById("progress-bar");
    const percent = document.getElementById("progress-percent");
    const message = document.getElementById("progress-message");
    const connection = document.getElementById("progress-connection");
    const draft = document.getElementById("draft");
    const badge = document.getElementById("status-badge");
    const generating = () => {
      if (badge && badge.textContent !== "generating") {
        badge.textContent = "generating";
        badge.className = "badge busy";
      }
    };
    const steps = Array.from(progress.querySelectorAll("[data-step]"));
    let started = false;
    let currentStep = null;
    const stepGroup = (step) =>
      step === "refining" ? "editing" : step === "extend" ? "writing" : step === "social_shorten" ? "social" : step;
    const setPercent = (value) => {
      bar.value = value;
      bar.textContent = value + "%";
      percent.textContent = value + "%";
    };
    const markStep = (name) => {
      const index = steps.findIndex((el) => el.getAttribute("data-step") === name);
      if (index < 0) return;
      steps.forEach((el, i) => {
        el.classList.toggle("done", i < index);
        el.classList.toggle("current", i === index);
        // Not by colour alone: the current step says so.
        if (i === index) el.setAttribute("aria-current", "step");
        else el.removeAttribute("aria-current");
      });
    };
    const source = new EventSource(progress.getAttribute("data-events"));
    source.addEventListener("open", () => (connection.hidden = true));
    source.addEventListener("error", () => {
      // The browser reconnects by itself and resumes where it was.
      if (source.readyState !== EventSource.CLOSED) {
        connection.textContent = "Connection to the server lost; reconnecting…";
        connection.hidden = false;
      }
    });
    source.addEventListener("status", (event) => {
      const data = JSON.parse(event.data);
      if (data.status === "running") generating();
      if (data.status === "running" || data.status === "assigned") {
        message.textContent = data.status === "running" ? "Starting…" : "An agent took it…";
      } else if (data.status === "retrying") {
        // The draft so far belongs to the attempt that failed: clear it, and
        // say which attempt comes next and why.
        const next = data.next_attempt ? "attempt " + data.next_attempt : "another attempt";
        message.textContent =
          "Retrying (" + next + "): " + (data.error?.message || "the last attempt did not finish");
        draft.textContent = "Appears here as it is written.";
        started = false;
        currentStep = null;
        setPercent(0);
        steps.forEach((el) => el.classList.remove("done", "current"));
      } else if (data.status === "queued") {
        message.textContent = "Waiting for an agent to take it…";
      } else if (data.status === "waiting_for_agent") {
        message.textContent =
          "The agent running this disconnected. Waiting for it to come back; another agent takes over if it does not.";
      }
    });
    source.addEventListener("step", (event) => {
      const data = JSON.parse(event.data);
      generating();
      setPercent(data.percent);
      message.textContent = data.message;
      const group = stepGroup(data.step);
      if (group !== currentStep) {
        currentStep = group;
        markStep(group);
      }
      // Each writing step, and each draft written again after a quality
      // check, starts the draft afresh.
      if (data.step === "writing" || data.step === "extend" || data.step === "refining") {
        draft.textContent = "";
        started = true;
      }
    });
    source.addEventListener("partial", (event) => {
      const data = JSON.parse(event.data);
      if (!started) {
        draft.textContent = "";
        started = true;
      }
      draft.textContent += data.text;
      draft.scrollTop = draft.scrollHeight;
    });
    source.addEventListener("done", () => {
      source.close();
      setPercent(100);
      steps.forEach((el) => {
        el.classList.add("done");
        el.classList.remove("current");
      });
      message.textContent = "Finished. Loading the result…";
      setTimeout(() => window.location.assign(progress.getAttribute("data-done")), 600);
    });
  }
  // Publishing. The reader's time zone: when the server has none, the
  // browser's is sent once, and the page shows times in it.
  const zoneForm = document.querySelector("form[data-detect-zone]");
  if (zoneForm) {
    let zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (_) { /* old browser */ }
    const input = zoneForm.querySelector('input[name="time_zone"]');
    if (zone && input && zone !== input.value) {
      input.value = zone;
      fetch(zoneForm.action, { method: "POST", body: new URLSearchParams(new FormData(zoneForm)), credentials: "same-origin" })
        .then((r) => { if (r.ok) window.location.reload(); })
        .catch(() => {});
    }
  }

  // Characters as each platform counts them (links count 23; on X,
  // characters outside the Latin and punctuation ranges count 2).
  function platformLength(text, network) {
    let total = 0;
    const parts = text.split(/(https?:\/\/\S+)/);
    parts.forEach((part, i) => {
      if (i % 2 === 1) { total += 23; return; }
      for (const ch of part) {
        const c = ch.codePointAt(0);
        const light = c <= 0x10ff || (c >= 0x2000 && c <= 0x200d) || (c >= 0x2010 && c <= 0x201f) || (c >= 0x2032 && c <= 0x2037);
        total += network === "x" && !light ? 2 : 1;
      }
    });
    return total;
  }
  function counter(area, fallback) {
    const out = document.querySelector(`[data-count-for="${CSS.escape(area.id)}"]`);
    const preview = document.querySelector(`[data-preview-for="${CSS.escape(area.id)}"] .post`);
    const limit = Number(area.getAttribute("data-limit"));
    const update = () => {
      const text = area.value.trim() === "" && fallback ? fallback.value : area.value;
      const n = platformLength(text, area.getAttribute("data-network"));
      if (out) {
        out.textContent = `${n} / ${limit} characters`;
        out.classList.toggle("over", n > limit);
      }
      if (preview) preview.textContent = text;
    };
    area.addEventListener("input", update);
    if (fallback) fallback.addEventListener("input", update);
    update();
  }
  for (const area of document.querySelectorAll("textarea[data-limit]")) {
    const composer = area.closest("form[data-composer]");
    counter(area, composer ? composer.querySelector("#text") : null);
  }
  // The composer shows a version for each chosen account.
  for (const box of document.querySelectorAll("form[data-composer] input[data-variant]")) {
    const variant = document.getElementById(box.getAttribute("data-variant") + "-box");
    const sync = () => { if (variant) variant.hidden = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  }

  // The calendar: a scheduled post dragged to another day moves there at
  // the same local time (the post's page has a date field for keyboards).
  const reschedule = document.getElementById("reschedule-form");
  if (reschedule) {
    let dragged = null;
    for (const item of document.querySelectorAll(".calendar [data-post]")) {
      item.addEventListener("dragstart", (event) => {
        dragged = item;
        event.dataTransfer.setData("text/plain", item.getAttribute("data-post"));
        event.dataTransfer.effectAllowed = "move";
      });
    }
    for (const day of document.querySelectorAll(".calendar td[data-date]")) {
      day.addEventListener("dragover", (event) => { if (dragged) { event.preventDefault(); day.classList.add("drop"); } });
      day.addEventListener("dragleave", () => day.classList.remove("drop"));
      day.addEventListener("drop", (event) => {
        event.preventDefault();
        day.classList.remove("drop");
        if (!dragged) return;
        reschedule.action = reschedule.getAttribute("data-action-base") + dragged.getAttribute("data-post") + "/reschedule";
        reschedule.querySelector('input[name="local_time"]').value = day.getAttribute("data-date") + "T" + dragged.getAttribute("data-time");
        reschedule.submit();
      });
    }
  }
})();

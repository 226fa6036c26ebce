// crontask status page: refresh the live regions in place, and apply filters without a reload.
// Everything also works without this script (plain links and forms).
//
// The live regions are #live (whose data-refresh gives the seconds between refreshes) and any
// element with data-live (the task page's history): each is replaced by the element of the
// same id in the answer. A refresh that is due while a person works in a region (focus on one
// of its links, text selected in it) waits for the next tick: replacing the region would take
// the focus or the selection away. <html data-refreshes data-refreshes-held> count the
// refreshes done and held (the browser tests wait on them). What only this script makes true
// ("refreshed every 5 s") is hidden in the HTML, data-script-only, and shown here: in the page,
// and in each region a refresh brings. A refresh also brings the page's form token (<meta
// name="csrf-token">), put in the forms outside the live regions (Run now, Sign out): one kept
// from before a restart of crontask (a token of the old process's secret) or a new sign-in
// was refused as stale, on a page that had refreshed as current. And it brings the footer,
// which says when the page was rendered.
"use strict";
(function () {
  const HELD_NOTICE_MS = 30000; // a refresh held this long says so
  let inFlight = null; // the AbortController of the request being made
  let timer = null;
  let shownAt = new Date(); // when what the page shows was last known current
  const counts = { refreshes: 0, refreshesHeld: 0 };

  // In UTC, and saying so: the page's other times are in UTC or in their task's zone, never
  // in the browser's.
  function clock(at) {
    return [at.getUTCHours(), at.getUTCMinutes(), at.getUTCSeconds()]
      .map(function (n) { return String(n).padStart(2, "0"); })
      .join(":") + " UTC";
  }

  function counted(name) {
    counts[name] += 1;
    document.documentElement.dataset[name] = String(counts[name]);
  }

  function shown(element) {
    element.querySelectorAll("[data-script-only]").forEach(function (found) {
      found.hidden = false;
    });
    return element;
  }

  function regions() {
    return Array.from(document.querySelectorAll("#live, [data-live]"));
  }

  // Focus a keyboard moved (not a click's: a link opened in a new tab with Ctrl+click keeps the
  // focus here, and held the refresh for good).
  function byKeyboard(element) {
    try {
      return element.matches(":focus-visible");
    } catch (error) {
      return true; // a browser without :focus-visible: as before
    }
  }

  // Whether a person works in a live region: focus a keyboard moved onto something in it, or
  // text selected in it.
  function inUse() {
    const focused = document.activeElement;
    const selection = window.getSelection();
    const selecting = selection && selection.rangeCount > 0 && !selection.isCollapsed;
    return regions().some(function (region) {
      // A selection that begins or ends in the region, or spans it (browsers differ on
      // whether containsNode counts a region that holds the whole selection).
      return (focused && focused !== region && region.contains(focused) && byKeyboard(focused)) ||
        (selecting && (region.contains(selection.anchorNode) ||
          region.contains(selection.focusNode) || selection.containsNode(region, true)));
    });
  }

  // The banner of that id, made (a <p> of that class and ARIA role, in ``parent`` before
  // ``before``, at its end for null) if the page has none yet.
  function banner(id, className, role, parent, before) {
    let found = document.getElementById(id);
    if (!found) {
      found = document.createElement("p");
      found.id = id;
      found.className = className;
      found.setAttribute("role", role);
      parent.insertBefore(found, before);
    }
    return found;
  }

  // A refresh that failed says so: the page no longer shows what is, and a person must see it.
  function stale(why) {
    const live = document.getElementById("live");
    if (!live) return;
    const said = banner("stale", "banner stale", "status", live.parentNode, live);
    said.textContent = "Not refreshed since " + clock(shownAt) + " (" + why + "): " +
      "what this page shows may be out of date.";
  }

  function fresh() {
    const notice = document.getElementById("stale");
    if (notice) notice.remove();
    shownAt = new Date();
  }

  // The answer's form token in this page's meta and in each form field that holds this page's
  // token: the one the server now expects of this browser (the server checks it as strictly).
  function renewToken(answer) {
    const meta = document.querySelector('meta[name="csrf-token"]');
    const given = answer.querySelector('meta[name="csrf-token"]');
    const token = given && given.getAttribute("content");
    if (!meta || !token) return;
    const old = meta.getAttribute("content");
    if (!old || token === old) return;
    document.querySelectorAll('input[type="hidden"]').forEach(function (field) {
      if (field.value === old) field.value = token;
    });
    meta.setAttribute("content", token);
  }

  // The answer's footer (when the page was rendered) in place of this page's: it said the
  // first load's moment while the regions above it were current. Not while text of it is
  // selected (the version, being copied): a later refresh renews it.
  function renewFooter(answer) {
    const given = answer.querySelector("footer");
    const footer = document.querySelector("footer");
    if (!given || !footer) return;
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed && selection.containsNode(footer, true)) return;
    footer.replaceWith(document.importNode(given, true));
  }

  // A refresh answered with another page that has a live region (a task taken out of its
  // file, a run pruned: "Not found") shows that page: it is what is now.
  function replacePage(answer) {
    const main = answer.querySelector("main");
    const current = document.querySelector("main");
    if (!main || !current || !answer.getElementById("live")) return false;
    current.replaceWith(shown(document.importNode(main, true)));
    document.title = answer.title;
    renewToken(answer);
    renewFooter(answer);
    fresh();
    return true;
  }

  // A filter the server refused (a 4xx problem: a namespace in capitals, a status no run
  // has), in its own words under the filters until a filter is applied: the regions stay as
  // they were, and a "not refreshed" banner, gone at the next refresh, left the list of the
  // filter before reading as the one asked for.
  function refused(text) {
    let detail = null;
    try {
      detail = JSON.parse(text).detail;
    } catch (error) {
      return false; // no problem's words: not said here
    }
    const form = document.querySelector("form[data-live-filter]");
    if (typeof detail !== "string" || !form) return false;
    const said = banner("filter-problem", "banner error-text", "alert", form.parentNode,
      form.nextSibling);
    said.textContent = "This filter is not applied: " + detail +
      ". What is shown below is for the filter before.";
    return true;
  }

  async function swap(url, asked) {
    if (inFlight) {
      if (!asked) return; // a refresh never interrupts; a person's filter does
      inFlight.abort();
    }
    const controller = new AbortController();
    inFlight = controller;
    try {
      const response = await fetch(url, {
        headers: { "X-Crontask-Refresh": "1" },
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
      if (response.status === 401) {
        // The page itself, asked for as a page: the server sends it to the sign-in with the
        // way back (under the path a proxy serves it at, which this script does not know).
        location.assign(url);
        return;
      }
      const text = await response.text();
      if (asked && response.status >= 400 && response.status < 500 && refused(text)) return;
      const page = new DOMParser().parseFromString(text, "text/html");
      if (!response.ok) {
        if (!replacePage(page)) stale("status " + response.status);
        return;
      }
      let replaced = 0;
      for (const current of regions()) {
        const answer = current.id && page.getElementById(current.id);
        if (answer) {
          current.replaceWith(shown(document.importNode(answer, true)));
          replaced += 1;
        }
      }
      if (replaced) {
        renewToken(page);
        renewFooter(page);
        fresh();
        counted("refreshes");
        if (asked) {
          const said = document.getElementById("filter-problem");
          if (said) said.remove();
          history.replaceState(null, "", url);
        }
      }
    } catch (error) {
      // Aborted (a person's filter goes first), or no answer (the server is restarting): the
      // next refresh tries again, and meanwhile the page says it is behind.
      if (error.name !== "AbortError") stale("no answer");
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        schedule();
      }
    }
  }

  function schedule() {
    clearTimeout(timer);
    const live = document.getElementById("live");
    const seconds = live && Number(live.dataset.refresh);
    if (!seconds) return;
    timer = setTimeout(function () {
      if (document.hidden) {
        schedule();
      } else if (inUse()) {
        counted("refreshesHeld");
        if (Date.now() - shownAt.getTime() >= HELD_NOTICE_MS) {
          stale("held while you are on it: click elsewhere to resume");
        }
        schedule(); // try again at the next tick
      } else {
        swap(location.href, false);
      }
    }, seconds * 1000);
  }

  function filterUrl(form) {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (value) params.append(name, value);
    }
    const query = params.toString();
    return (form.getAttribute("action") || location.pathname) + (query ? "?" + query : "");
  }

  function filterOf(event) {
    return event.target.closest && event.target.closest("form[data-live-filter]");
  }

  let typing = null;
  document.addEventListener("change", function (event) {
    const form = filterOf(event);
    if (form) swap(filterUrl(form), true);
  });
  document.addEventListener("input", function (event) {
    const form = filterOf(event);
    if (!form || event.target.tagName !== "INPUT") return;
    clearTimeout(typing);
    typing = setTimeout(function () { swap(filterUrl(form), true); }, 250);
  });
  document.addEventListener("submit", function (event) {
    const form = filterOf(event);
    if (!form) return;
    event.preventDefault();
    swap(filterUrl(form), true);
  });
  // Run now sends once: a second click while the first waits for its answer (up to 5 s with
  // replicas or Replace) posted again, and under Allow started a second run. A page brought
  // back from the history (Back) may send again.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("run-now")) return;
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    form.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form.run-now").forEach(function (form) {
      delete form.dataset.sent;
      form.querySelectorAll("button").forEach(function (button) { button.disabled = false; });
    });
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) schedule();
  });
  document.addEventListener("DOMContentLoaded", function () {
    shown(document.documentElement);
    schedule();
  });
})();

// crontask status page: refresh the live region in place, and apply filters without a reload.
// Everything also works without this script (plain links and forms).
"use strict";
(function () {
  let inFlight = null; // the AbortController of the request being made
  let timer = null;

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
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("live");
      const current = document.getElementById("live");
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
        if (asked) history.replaceState(null, "", url);
      }
    } catch (error) {
      // Aborted, or the server is restarting: the next refresh tries again.
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
      if (document.hidden) schedule();
      else swap(location.href, false);
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
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) schedule();
  });
  document.addEventListener("DOMContentLoaded", schedule);
})();

// Makes the wizard quicker: every change re-renders the form in place (the server decides
// what to show, as it does for the plain form), the extension list filters as you type,
// and copy buttons copy. Without this file the page works one step per submit.
"use strict";
(function () {
  const form = document.getElementById("wizard");
  function filterExtensions() {
    const search = document.getElementById("extension-search");
    if (!search) return;
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const item of document.querySelectorAll("#extension-list .extension")) {
      const text = item.dataset.search;
      item.hidden = !words.every((word) => text.includes(word));
    }
  }
  async function refresh() {
    form.dataset.busy = "1";
    try {
      await rerender();
    } finally {
      delete form.dataset.busy;
    }
  }
  async function rerender() {
    const params = new URLSearchParams(new FormData(form));
    const answer = await fetch("/?" + params, { headers: { "X-Wizard-Fragment": "1" } });
    if (!answer.ok) return;
    const focused = document.activeElement && document.activeElement.id;
    const search = document.getElementById("extension-search");
    const query = search ? search.value : "";
    form.innerHTML = await answer.text();
    history.replaceState(null, "", "/?" + params);
    const again = document.getElementById("extension-search");
    if (again) { again.value = query; filterExtensions(); }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }
  if (form) {
    form.addEventListener("change", (event) => {
      if (event.target.id !== "extension-search") refresh();
    });
    form.addEventListener("input", (event) => {
      if (event.target.id === "extension-search") filterExtensions();
    });
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (button && navigator.clipboard) {
      navigator.clipboard.writeText(button.dataset.copy).then(() => {
        button.textContent = "Copied";
      });
    }
  });
})();

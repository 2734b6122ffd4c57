// The dashboard shell: theme, Ctrl/Cmd+K page search, the phone-width menu, tabs and copy.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function theme() {
  const button = document.getElementById("theme-toggle");
  button?.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("irisgate-theme", next);
    window.dispatchEvent(new Event("irisgate-theme"));
  });
}

function search() {
  const input = document.getElementById("page-search");
  if (!input) return;
  const options = [...document.querySelectorAll("#page-list option")];
  // Enter fires both "change" and "keydown": navigate once, or the second navigation aborts
  // the first.
  let leaving = false;
  const go = () => {
    const wanted = input.value.trim().toLowerCase();
    if (!wanted || leaving) return;
    const hit = options.find((o) => o.value.toLowerCase() === wanted) ||
      options.find((o) => o.value.toLowerCase().includes(wanted));
    if (hit) {
      leaving = true;
      location.assign(hit.dataset.path);
    }
  };
  input.addEventListener("change", go);
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") go(); });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
      event.preventDefault();
      input.focus();
      input.select();
    }
  });
}

function menu() {
  const button = document.getElementById("menu-button");
  const sidebar = document.getElementById("sidebar");
  button?.addEventListener("click", () => {
    const open = sidebar.classList.toggle("open");
    button.setAttribute("aria-expanded", String(open));
  });
}

export function tabs(root = document) {
  const list = root.querySelector("[role=tablist]");
  if (!list) return;
  const all = [...list.querySelectorAll("[role=tab]")];
  const select = (tab) => {
    for (const other of all) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
    tab.dispatchEvent(new CustomEvent("tab-selected", { bubbles: true }));
  };
  for (const tab of all) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const i = all.indexOf(tab);
      if (event.key === "ArrowRight") select(all[(i + 1) % all.length]);
      if (event.key === "ArrowLeft") select(all[(i - 1 + all.length) % all.length]);
    });
  }
}

export function copyButtons() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = button.parentElement.querySelector("code").textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(button.parentElement.querySelector("code"));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
}

// The notification bell (top bar, every page of a viewer with a role): the unread count of
// /api/alerts/unread now and every 30 s while the page is shown.
export function showUnread(count) {
  const badge = document.getElementById("bell-count");
  if (!badge) return;
  badge.hidden = !count;
  badge.textContent = count > 99 ? "99+" : String(count);
  document.getElementById("bell").setAttribute(
    "aria-label", count ? `Notifications: ${count} unread` : "Notifications");
}

function bell() {
  if (!document.getElementById("bell")) return;
  const load = async () => {
    try {
      const response = await fetch("/api/alerts/unread", { headers: { accept: "application/json" } });
      if (response.ok) showUnread((await response.json()).unread);
    } catch { /* offline for a moment: keep the last count */ }
  };
  load();
  setInterval(() => { if (!document.hidden) load(); }, 30000);
}

theme();
search();
menu();
bell();

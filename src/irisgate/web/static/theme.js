// The saved (or the system's) colour theme, set before the page paints. A classic script
// loaded from the head: the pages' Content-Security-Policy allows no inline script.
document.documentElement.dataset.theme = localStorage.getItem("irisgate-theme") ||
  (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");

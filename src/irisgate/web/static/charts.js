// uPlot charts of the dashboard: bars by category and lines over days, redrawn on resize and
// on theme changes. Each chart's container shows its data-empty text when there is no data.
import uPlot from "/ui/static/vendor/uPlot.esm.js";

const charts = new Map();

function colors() {
  const style = getComputedStyle(document.documentElement);
  return {
    text: style.getPropertyValue("--muted").trim() || "#666",
    grid: style.getPropertyValue("--line").trim() || "#ddd",
    series: ["--accent", "--accent-2", "--accent-3"].map((v) => style.getPropertyValue(v).trim()),
  };
}

function axis(c, values) {
  return { stroke: c.text, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid }, values };
}

// The value axis of every chart starts at zero, so bar heights and line levels compare
// (a model with half the tokens has half the bar); the top is rounded up to a tick.
const fromZero = { range: (u, min, max) => [0, max > 0 ? uPlot.rangeNum(0, max, 0.1, true)[1] : 1] };

function draw(container, build) {
  charts.get(container)?.destroy();
  container.replaceChildren();
  const chart = build(container.clientWidth || 600);
  container.__chart = chart;
  if (chart) charts.set(container, chart);
  else {
    charts.delete(container);
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = container.dataset.empty || "No data.";
    container.append(empty);
  }
}

// Bars: labels along x, one value each.
export function barChart(container, labels, values, format = (v) => v) {
  const render = () => draw(container, (width) => {
    if (!labels.length) return null;
    const c = colors();
    const xs = labels.map((_, i) => i);
    return new uPlot({
      width, height: 260, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: fromZero },
      axes: [
        { ...axis(c, (u, ticks) => ticks.map((t) => labels[t] ?? "")), grid: { show: false },
          splits: () => xs, size: 40 },
        { ...axis(c, (u, ticks) => ticks.map(format)), size: 70 },
      ],
      series: [{}, {
        label: "value", fill: c.series[0], stroke: c.series[0],
        paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false },
      }],
    }, [xs, values], container);
  });
  container.__render = render;
  render();
}

// Lines over days: days as YYYY-MM-DD, series as [{label, values}].
export function lineChart(container, days, series, format = (v) => v, { integer = false } = {}) {
  const render = () => draw(container, (width) => {
    if (!days.length) return null;
    const c = colors();
    const xs = days.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
    return new uPlot({
      width, height: 260, legend: { show: series.length > 1 }, scales: { y: fromZero }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      axes: [axis(c), { ...axis(c, (u, ticks) => ticks.map(format)), size: 70,
        ...(integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] } : {}) }],
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: c.series[i % c.series.length], width: 2,
        fill: series.length === 1 ? c.series[0] + "33" : undefined,
        points: { show: days.length < 40 },
      }))],
    }, [xs, ...series.map((s) => s.values)], container);
  });
  container.__render = render;
  render();
}

// Stacked bars over days: days as YYYY-MM-DD, series as [{label, values}] stacked bottom to
// top in the given order. Each bar is drawn at its cumulative height, tallest first, so the
// lower segments paint over it; the legend and the cursor show each series' own value.
export function stackedBars(container, days, series, format = (v) => v, { integer = false } = {}) {
  const render = () => draw(container, (width) => {
    if (!days.length || !series.length) return null;
    const c = colors();
    const palette = [...c.series, "#8e6bbf", "#e0b03b", "#3d9970", "#b85c8a", "#6c7a89", "#c0a030"];
    const xs = days.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
    const stacked = [];
    let running = days.map(() => 0);
    for (const s of series) {
      running = running.map((v, i) => v + (s.values[i] || 0));
      stacked.push(running.map((v) => v || null)); // no zero-height bar outlines
    }
    const half = 43200; // half a day: the first and last bars whole
    const order = series.map((_, i) => series.length - 1 - i); // tallest (top of stack) first
    return new uPlot({
      width, height: 280, legend: { show: true },
      scales: { y: fromZero, x: { time: true, range: (u, min, max) => [min - half, max + half] } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      axes: [axis(c), { ...axis(c, (u, ticks) => ticks.map(format)), size: 70,
        ...(integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 1e5, 1e6] } : {}) }],
      series: [{}, ...order.map((i) => {
        const color = palette[i % palette.length];
        return {
          label: series[i].label, stroke: color, fill: color, width: 1,
          paths: uPlot.paths.bars({ size: [0.7, 40] }), points: { show: false },
          value: (u, v, si, idx) => (idx === null || idx === undefined ? "" : format(series[i].values[idx] || 0)),
        };
      })],
    }, [xs, ...order.map((i) => stacked[i])], container);
  });
  container.__render = render;
  render();
}

let pending = 0;
function redrawAll() {
  cancelAnimationFrame(pending);
  pending = requestAnimationFrame(() => {
    for (const container of document.querySelectorAll(".chart")) container.__render?.();
  });
}
window.addEventListener("resize", redrawAll);
window.addEventListener("irisgate-theme", redrawAll);

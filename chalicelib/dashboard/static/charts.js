// Line charts in SVG: titled axes (with units), ticks at both ends and the middle, one line
// per series with a legend when there are several (the compare view overlays runs).

const SVG = "http://www.w3.org/2000/svg";
const [W, H, LEFT, RIGHT, TOP, BOTTOM] = [480, 220, 58, 12, 12, 42];
export const COLORS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

export function svgEl(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function tick(value) {
  if (!Number.isFinite(value)) return "";
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 1e-2 || abs >= 1e4) ? value.toExponential(1) : value.toPrecision(3);
}

/**
 * Draws `series` ([{name, points: [[x, y]...], color}] or one bare list of points) with the
 * axis titles `labels` ({x, y}). `data-points` on the svg counts the first series' points
 * and `data-series` the series, so a test (or a reader of the DOM) sees what was drawn.
 */
export function drawChart(svg, series, labels = {}) {
  const lines = Array.isArray(series) && series.length && !Array.isArray(series[0]) ? series : [{ points: series || [] }];
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  svg.dataset.points = String(lines[0].points.length);
  svg.dataset.series = String(lines.filter((s) => s.points.length).length);
  const [x0px, x1px, y0px, y1px] = [LEFT, W - RIGHT, H - BOTTOM, TOP];
  svg.append(
    svgEl("path", { class: "axis", d: `M${x0px},${y1px} V${y0px} H${x1px}` }),
    svgEl("text", { class: "axis-title", x: (x0px + x1px) / 2, y: H - 6, "text-anchor": "middle" }, labels.x || ""),
    svgEl(
      "text",
      { class: "axis-title", x: 12, y: (y0px + y1px) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(y0px + y1px) / 2})` },
      labels.y || "",
    ),
  );
  const all = lines.flatMap((s) => s.points);
  if (!all.length) {
    svg.append(svgEl("text", { x: (x0px + x1px) / 2, y: (y0px + y1px) / 2, "text-anchor": "middle" }, "no data yet"));
    return;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [xa, xb] = [Math.min(...xs), Math.max(...xs)];
  let [ya, yb] = [Math.min(...ys), Math.max(...ys)];
  if (xa === xb) [xa, xb] = [xa - 1, xb + 1];
  if (ya === yb) [ya, yb] = [ya - (Math.abs(ya) * 0.1 || 1), yb + (Math.abs(yb) * 0.1 || 1)];
  const sx = (x) => x0px + ((x - xa) / (xb - xa)) * (x1px - x0px);
  const sy = (y) => y0px - ((y - ya) / (yb - ya)) * (y0px - y1px);
  // Epochs and steps are whole numbers: their middle tick is one too, or none.
  const whole = xs.every(Number.isInteger);
  const middle = whole ? Math.round((xa + xb) / 2) : (xa + xb) / 2;
  const xTicks = whole && (middle === xa || middle === xb) ? [xa, null, xb] : [xa, middle, xb];
  for (const [i, value] of xTicks.entries()) {
    if (value === null) continue;
    const anchor = ["start", "middle", "end"][i];
    svg.append(
      svgEl("path", { class: "tick", d: `M${sx(value)},${y0px} v4` }),
      svgEl("text", { x: sx(value), y: y0px + 15, "text-anchor": anchor }, tick(value)),
    );
  }
  for (const value of [ya, (ya + yb) / 2, yb]) {
    svg.append(
      svgEl("path", { class: "grid", d: `M${x0px},${sy(value)} H${x1px}` }),
      svgEl("text", { x: x0px - 4, y: sy(value) + 4, "text-anchor": "end" }, tick(value)),
    );
  }
  const smoothing = Number(labels.smoothing) || 0;
  lines.forEach((line, i) => {
    if (!line.points.length) return;
    const color = line.color || COLORS[i % COLORS.length];
    const polyline = (points, cls) =>
      svgEl("polyline", { class: cls, points: points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "), stroke: color });
    if (smoothing > 0 && line.points.length > 2) {
      svg.append(polyline(line.points, "line raw"), polyline(smooth(line.points, smoothing), "line"));
    } else {
      svg.append(polyline(line.points, "line"));
    }
    // Each point says its values on hover (an SVG <title>), as TensorBoard's tooltips do.
    const radius = line.points.length <= 40 ? 2.5 : 1.2;
    for (const p of line.points.length <= 400 ? line.points : []) {
      const dot = svgEl("circle", { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: radius, fill: color });
      dot.append(svgEl("title", {}, `${line.name ? `${line.name}\n` : ""}${labels.x || "x"} ${tick(p[0])}: ${labels.y || "y"} ${p[1]}`));
      svg.append(dot);
    }
  });
}

/** TensorBoard's smoothing: an exponential moving average, debiased at the start. */
export function smooth(points, weight) {
  let last = 0;
  return points.map((p, i) => {
    last = last * weight + (1 - weight) * p[1];
    return [p[0], last / (1 - weight ** (i + 1))];
  });
}

/** The legend beside an overlay chart: a colour swatch and the run's name per series. */
export function legend(box, names) {
  box.replaceChildren(
    ...names.map((name, i) => {
      const item = document.createElement("span");
      item.className = "legend-item";
      const swatch = document.createElement("i");
      swatch.className = `swatch c${i % COLORS.length}`;
      item.append(swatch, name);
      return item;
    }),
  );
}

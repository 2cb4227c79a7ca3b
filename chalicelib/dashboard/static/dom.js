// Small DOM helpers: every text goes in as textContent, never as HTML.

export const $ = (id) => document.getElementById(id);

export function el(name, text, className) {
  const node = document.createElement(name);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function button(text, onClick, data = {}) {
  const node = el("button", text);
  node.type = "button";
  Object.assign(node.dataset, data);
  node.addEventListener("click", onClick);
  return node;
}

export function wrap(...children) {
  const td = document.createElement("td");
  td.append(...children);
  return td;
}

/** Rows of cells (text or nodes); a row may be {cells, data, className}. */
export function fillTable(table, rows) {
  table.tBodies[0].replaceChildren(
    ...rows.map((row) => {
      const cells = Array.isArray(row) ? row : row.cells;
      const tr = document.createElement("tr");
      if (!Array.isArray(row)) {
        Object.assign(tr.dataset, row.data || {});
        if (row.className) tr.className = row.className;
      }
      tr.append(...cells.map((cell) => (cell instanceof Node ? wrap(cell) : el("td", cell))));
      return tr;
    }),
  );
}

export function fillHead(table, names) {
  const row = document.createElement("tr");
  row.append(...names.map((name) => el("th", name)));
  table.tHead.replaceChildren(row);
}

export function fmt(value) {
  if (typeof value !== "number") return String(value ?? "");
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) < 1e-3 && value !== 0 ? value.toExponential(2) : value.toFixed(4);
}

export function bytes(n) {
  if (!(n >= 0)) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) [n, i] = [n / 1024, i + 1];
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** ETA in hours (both APIs' `eta_hr`) as people read it. */
export function duration(hours) {
  if (!(hours > 0)) return "";
  const s = Math.round(hours * 3600);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** A JPEG the API sent as base64 into an <img>; its caption says why when there is none. */
export function showImage(img, base64, note) {
  img.hidden = !base64;
  if (base64) img.src = `data:image/jpeg;base64,${base64}`;
  else img.removeAttribute("src");
  if (note) note.textContent = "";
}

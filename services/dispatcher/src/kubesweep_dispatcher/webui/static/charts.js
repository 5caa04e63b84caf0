// Small SVG charts for the kubesweep web UI: scatter, lines and parallel coordinates.
// No dependencies; every chart redraws from scratch into its container.
"use strict";

(() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = [
    "#2f6fde", "#e4572e", "#29a36a", "#9b5de5", "#f0a202",
    "#0fa3b1", "#d1495b", "#6c757d", "#8ac926", "#ff7eb6",
  ];
  const MARGIN = { top: 12, right: 16, bottom: 34, left: 56 };

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({ x, y }, attrs), parent);
    node.textContent = content;
    return node;
  }

  function fmt(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
    const abs = Math.abs(value);
    if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(2);
    return String(Number(value.toPrecision(4)));
  }

  function extent(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo === Infinity) return [0, 1];
    if (lo === hi) return [lo - (Math.abs(lo) || 1) * 0.5, hi + (Math.abs(hi) || 1) * 0.5];
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  function ticks(lo, hi, count) {
    const span = hi - lo;
    const raw = span / Math.max(1, count);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || mag * 10;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }

  function linear(d0, d1, r0, r1) {
    const k = (r1 - r0) / (d1 - d0 || 1);
    return (v) => r0 + (v - d0) * k;
  }

  function setup(container, height) {
    container.replaceChildren();
    const width = Math.max(280, container.clientWidth || 480);
    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width: "100%",
      height,
      role: "img",
      class: "chart-svg",
    }, container);
    return { svg, width, height };
  }

  function empty(container, message) {
    container.replaceChildren();
    const note = document.createElement("p");
    note.className = "chart-empty";
    note.textContent = message || "No data yet";
    container.appendChild(note);
  }

  // Axes for numeric x and y domains; returns the scales and the plot group.
  function axes(svg, width, height, xDomain, yDomain, labels) {
    const x = linear(xDomain[0], xDomain[1], MARGIN.left, width - MARGIN.right);
    const y = linear(yDomain[0], yDomain[1], height - MARGIN.bottom, MARGIN.top);
    const grid = el("g", { class: "grid" }, svg);
    for (const t of ticks(yDomain[0], yDomain[1], 5)) {
      el("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(t), y2: y(t) }, grid);
      text(grid, MARGIN.left - 6, y(t) + 4, fmt(t), { "text-anchor": "end", class: "tick" });
    }
    const xTicks = labels.integerX
      ? ticks(xDomain[0], xDomain[1], 8).filter((t) => Number.isInteger(t))
      : ticks(xDomain[0], xDomain[1], 8);
    for (const t of xTicks) {
      text(grid, x(t), height - MARGIN.bottom + 16, fmt(t), { "text-anchor": "middle", class: "tick" });
    }
    el("line", {
      x1: MARGIN.left, x2: width - MARGIN.right,
      y1: height - MARGIN.bottom, y2: height - MARGIN.bottom, class: "axis",
    }, svg);
    text(svg, (MARGIN.left + width - MARGIN.right) / 2, height - 4, labels.x || "", {
      "text-anchor": "middle", class: "axis-label",
    });
    text(svg, 12, MARGIN.top + (height - MARGIN.top - MARGIN.bottom) / 2, labels.y || "", {
      "text-anchor": "middle", class: "axis-label",
      transform: `rotate(-90 12 ${MARGIN.top + (height - MARGIN.top - MARGIN.bottom) / 2})`,
    });
    return { x, y, plot: el("g", { class: "plot" }, svg) };
  }

  function polyline(plot, pts, x, y, attrs) {
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    return el("path", Object.assign({ d, fill: "none" }, attrs), plot);
  }

  /** Points [{x, y, color?, title?, id?}] with an optional step line [[x, y]]. */
  function scatter(container, points, opts) {
    const o = opts || {};
    if (!points.length) return empty(container, o.emptyText);
    const { svg, width, height } = setup(container, o.height || 240);
    const line = o.line || [];
    const xd = extent(points.map((p) => p.x).concat(line.map((p) => p[0])));
    const yd = extent(points.map((p) => p.y).concat(line.map((p) => p[1])));
    const { x, y, plot } = axes(svg, width, height, xd, yd, { x: o.xLabel, y: o.yLabel, integerX: true });
    if (line.length) polyline(plot, line, x, y, { class: "step", stroke: o.lineColor || "#e4572e" });
    for (const p of points) {
      const dot = el("circle", {
        cx: x(p.x).toFixed(1), cy: y(p.y).toFixed(1), r: o.radius || 4,
        fill: p.color || PALETTE[0], class: "dot",
      }, plot);
      if (p.id) dot.setAttribute("data-trial-id", p.id);
      if (p.title) el("title", {}, dot).textContent = p.title;
    }
    return svg;
  }

  /** Series [{name, points: [[x, y]]}], one colour each. */
  function lines(container, series, opts) {
    const o = opts || {};
    const drawn = series.filter((s) => s.points.length);
    if (!drawn.length) return empty(container, o.emptyText);
    const { svg, width, height } = setup(container, o.height || 240);
    const all = drawn.flatMap((s) => s.points);
    const xd = extent(all.map((p) => p[0]));
    const yd = extent(all.map((p) => p[1]));
    const { x, y, plot } = axes(svg, width, height, xd, yd, { x: o.xLabel, y: o.yLabel, integerX: true });
    drawn.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const path = polyline(plot, s.points, x, y, { stroke: color, class: "series" });
      el("title", {}, path).textContent = s.name;
      for (const p of s.points) {
        el("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5, fill: color }, plot);
      }
    });
    return svg;
  }

  // Blue (worst) to orange (best) for a metric scaled to [0, 1].
  function heat(t) {
    const a = [47, 111, 222];
    const b = [240, 162, 2];
    const mix = a.map((c, i) => Math.round(c + (b[i] - c) * t));
    return `rgb(${mix.join(",")})`;
  }

  /**
   * Parallel coordinates. dims: [{name, kind: "num"|"cat", log?, categories?}]; rows: [{values,
   * score (0..1 or null), title}]. Numeric axes span their values; categorical axes space
   * their categories evenly.
   */
  function parallel(container, dims, rows, opts) {
    const o = opts || {};
    if (!dims.length || !rows.length) return empty(container, o.emptyText);
    const { svg, width, height } = setup(container, o.height || 300);
    const top = 34;
    const bottom = height - 28;
    const left = 60;
    const right = width - 60;
    const step = dims.length > 1 ? (right - left) / (dims.length - 1) : 0;
    const scales = dims.map((dim, i) => {
      if (dim.kind === "cat") {
        const cats = dim.categories;
        const pos = (v) => {
          const k = cats.indexOf(v);
          return cats.length > 1 ? bottom - (k / (cats.length - 1)) * (bottom - top) : (top + bottom) / 2;
        };
        return { x: left + i * step, pos, labels: cats.map((c) => [pos(c), String(c)]) };
      }
      const nums = rows.map((r) => r.values[i]).filter((v) => typeof v === "number");
      if (dim.log && nums.length && nums.every((v) => v > 0)) {
        // loguniform parameters: equal distance per decade.
        const [lo, hi] = extent(nums.map(Math.log10));
        const inner = linear(lo, hi, bottom, top);
        const pos = (v) => inner(Math.log10(v));
        const decades = [];
        for (let k = Math.ceil(lo); k <= Math.floor(hi); k += 1) decades.push(k);
        return { x: left + i * step, pos, labels: decades.map((k) => [inner(k), fmt(10 ** k)]) };
      }
      const [lo, hi] = extent(nums);
      const pos = linear(lo, hi, bottom, top);
      return { x: left + i * step, pos, labels: ticks(lo, hi, 4).map((t) => [pos(t), fmt(t)]) };
    });
    const plot = el("g", { class: "plot" }, svg);
    const ordered = rows.slice().sort((a, b) => (a.score ?? -1) - (b.score ?? -1));
    for (const row of ordered) {
      const pts = [];
      row.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        pts.push(`${pts.length ? "L" : "M"}${scales[i].x.toFixed(1)},${scales[i].pos(v).toFixed(1)}`);
      });
      const path = el("path", {
        d: pts.join(""), fill: "none", class: "pc-line",
        stroke: row.score === null || row.score === undefined ? "#b8bec6" : heat(row.score),
      }, plot);
      if (row.title) el("title", {}, path).textContent = row.title;
    }
    dims.forEach((dim, i) => {
      const s = scales[i];
      const g = el("g", { class: "pc-axis" }, svg);
      el("line", { x1: s.x, x2: s.x, y1: top, y2: bottom, class: "axis" }, g);
      text(g, s.x, top - 20, dim.name, { "text-anchor": "middle", class: "axis-label" });
      for (const [py, label] of s.labels) {
        text(g, s.x - 4, py + 3, label.length > 10 ? `${label.slice(0, 9)}…` : label, {
          "text-anchor": "end", class: "tick",
        });
      }
    });
    return svg;
  }

  window.KSCharts = { scatter, lines, parallel, palette: PALETTE, fmt };
})();

// Small SVG charts for the dashboard: stacked bars and lines over a per-minute series, no libraries.
"use strict";

window.Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 200, LEFT = 44, RIGHT = 8, TOP = 10, BOTTOM = 22;

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A round number at or above `max`, so axis labels read well.
  function niceMax(max) {
    if (!(max > 0)) return 1;
    const magnitude = Math.pow(10, Math.floor(Math.log10(max)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= max) return step * magnitude;
    return 10 * magnitude;
  }

  function frame(svg, yMax, formatY, points) {
    svg.replaceChildren();
    const plotH = H - TOP - BOTTOM;
    for (let i = 0; i <= 4; i++) {
      const y = TOP + plotH - (plotH * i) / 4;
      svg.append(el("line", { class: "grid-line", x1: LEFT, x2: W - RIGHT, y1: y, y2: y }));
      svg.append(el("text", { class: "axis-label", x: LEFT - 6, y: y + 4, "text-anchor": "end" }, formatY((yMax * i) / 4)));
    }
    const n = points.length;
    for (const back of [60, 45, 30, 15, 0]) {
      const index = n - 1 - back;
      if (index < 0 || index >= n) continue;
      const x = LEFT + ((index + 0.5) * (W - LEFT - RIGHT)) / n;
      svg.append(el("text", { class: "axis-label", x, y: H - 6, "text-anchor": "middle" }, back ? `-${back}m` : "now"));
    }
  }

  function xOf(index, n) {
    return LEFT + (index * (W - LEFT - RIGHT)) / n;
  }

  function yOf(value, yMax) {
    const plotH = H - TOP - BOTTOM;
    return TOP + plotH - (plotH * value) / yMax;
  }

  function empty(svg, message) {
    svg.append(el("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, message));
  }

  // Stacked bars: `stacks` is [[field, cssClass], ...] drawn bottom up.
  function bars(svg, points, stacks, formatY) {
    const totals = points.map((p) => stacks.reduce((sum, [field]) => sum + (p[field] || 0), 0));
    const yMax = Math.max(niceMax(Math.max(0, ...totals)), 4); // whole-number ticks for small counts
    frame(svg, yMax, formatY, points);
    const slot = (W - LEFT - RIGHT) / points.length;
    points.forEach((point, index) => {
      let base = 0;
      for (const [field, cls] of stacks) {
        const value = point[field] || 0;
        if (value <= 0) continue;
        const top = yOf(base + value, yMax), bottom = yOf(base, yMax);
        const rect = el("rect", { class: `bar ${cls}`, x: xOf(index, points.length) + 1, y: top,
                                  width: Math.max(slot - 2, 1), height: Math.max(bottom - top, 1) });
        rect.append(el("title", {}, `${new Date(point.start).toLocaleTimeString()}: ${value} ${field}`));
        svg.append(rect);
        base += value;
      }
    });
    if (!totals.some((t) => t > 0)) empty(svg, "no jobs finished in the last hour");
  }

  // Lines with a dot per known value; gaps where a minute had no value.
  function lines(svg, points, series, formatY) {
    const values = points.flatMap((p) => series.map(([field]) => p[field]).filter((v) => v !== null && v !== undefined));
    const yMax = niceMax(Math.max(0, ...values));
    frame(svg, yMax, formatY, points);
    const slot = (W - LEFT - RIGHT) / points.length;
    for (const [field, cls] of series) {
      let path = "", pen = false;
      points.forEach((point, index) => {
        const value = point[field];
        if (value === null || value === undefined) { pen = false; return; }
        const x = xOf(index, points.length) + slot / 2, y = yOf(value, yMax);
        path += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
        pen = true;
        const dot = el("circle", { class: `point ${cls}`, cx: x, cy: y, r: 2.5 });
        dot.append(el("title", {}, `${new Date(point.start).toLocaleTimeString()}: ${field} ${formatY(value)}`));
        svg.append(dot);
      });
      if (path) svg.append(el("path", { class: `line ${cls}`, d: path.trim() }));
    }
    if (!values.length) empty(svg, "no latency samples in the last hour");
  }

  return { bars, lines };
})();

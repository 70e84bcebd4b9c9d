// A uPlot time-series chart that follows its container's width.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#be185d', '#4b5563'];

export function colorOf(i) {
  return COLORS[(i < 0 ? COLORS.length - 1 : i) % COLORS.length];
}

const pad = (n) => String(n).padStart(2, '0');

/** Axis labels: 24-hour clock, dates as MM-DD, in UTC or local time. */
function axisValues(utc, step) {
  return (u, splits) =>
    splits.map((ts) => {
      const d = new Date(ts * 1000);
      const [M, D, h, m, s] = utc
        ? [d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
        : [d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
      if (step >= 86400 || (step >= 3600 && h === 0 && m === 0)) return `${pad(M)}-${pad(D)}`;
      if (step >= 3600 || s === 0) return `${pad(h)}:${pad(m)}`;
      return `${pad(h)}:${pad(m)}:${pad(s)}`;
    });
}

function legendTime(utc, step) {
  return (u, ts) => {
    if (ts === null || ts === undefined) return '–';
    const d = new Date(ts * 1000);
    const iso = utc ? d.toISOString() : new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString();
    if (step >= 86400) return iso.slice(0, 10);
    if (step >= 3600) return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
    return iso.slice(11, 19);
  };
}

/**
 * data: [xs (Unix seconds), ys1, ys2, ...]; series: [{label, color?, kind?}]
 * for each y, kind `line` (default), `bar-left` or `bar-right` (two bar
 * series side by side). `step`: seconds between points (the axis labels,
 * and room for the bars at both ends); `window`: show the last `window`
 * seconds. `label` names the chart for screen readers.
 */
export function TimeChart({ data, series, height = 220, label, yFormat, utc = true, step = 3600, window }) {
  const box = useRef(null);
  const plot = useRef(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const width = Math.max(200, el.clientWidth);
    const hasBars = series.some((s) => s.kind && s.kind.startsWith('bar'));
    const opts = {
      width,
      height,
      tzDate: utc ? (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC') : undefined,
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: {
          time: true,
          range: (u, min, max) => {
            // The last `window` seconds, or less while there is less data.
            if (window) return [Math.min(Math.max(min, max - window), max - 2 * step), max];
            return hasBars ? [min - step / 2, max + step / 2] : [min, max];
          },
        },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
      },
      axes: [
        { stroke: '#475569', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#cbd5e1' }, values: axisValues(utc, step), space: 60 },
        {
          stroke: '#475569',
          grid: { stroke: '#eef2f7' },
          ticks: { stroke: '#cbd5e1' },
          size: 56,
          values: (u, vals) => vals.map((v) => (yFormat ? yFormat(v) : Number.isInteger(v) ? String(v) : v.toFixed(1))),
        },
      ],
      series: [
        { label: 'Time', value: legendTime(utc, step) },
        ...series.map((s, i) => {
          const color = s.color || colorOf(i);
          const bar = s.kind === 'bar-left' || s.kind === 'bar-right';
          return {
            label: s.label,
            stroke: color,
            width: bar ? 0 : 2,
            fill: bar ? color : `${color}14`,
            points: { show: !bar && data[0].length <= 60, size: 5, fill: color },
            paths: bar ? uPlot.paths.bars({ size: [0.38, 28], align: s.kind === 'bar-left' ? -1 : 1 }) : undefined,
            value: (u, v) => (v === null || v === undefined ? '–' : yFormat ? yFormat(v) : String(v)),
          };
        }),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => {
      if (plot.current) plot.current.setSize({ width: Math.max(200, el.clientWidth), height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
    // A new set of series (or another step) builds a new chart; new data
    // only updates it (below).
  }, [series.map((s) => `${s.label}:${s.kind || ''}`).join('|'), height, step, utc, window]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);

  return <div class="chart" ref={box} role="img" aria-label={label} />;
}

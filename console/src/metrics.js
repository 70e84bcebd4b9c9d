// Reading GET /admin/metrics.json: sums, rates and quantiles from the
// difference between two polls.
//
// Shape: {"at_ms": <unix ms>, "families": {"<name>": {"type": "counter" |
// "gauge" | "histogram", "series": [{"labels": {...}, "value": 1}] or
// [{"labels": {...}, "count": 10, "sum": 0.5, "buckets": [[0.0001, 3], ...,
// ["+Inf", 10]]}]}}}, buckets cumulative as in Prometheus.
//
// Labels are those of gateway/src/metrics/*.rs: gateway_requests_total
// {kind, code}, gateway_request_duration_seconds{kind}, the upstream
// families by {upstream}, gateway_route_rate_limited_total{route}.

export function series(snap, name) {
  const f = snap && snap.families && snap.families[name];
  return (f && f.series) || [];
}

export function has(snap, name) {
  return Boolean(snap && snap.families && snap.families[name]);
}

const keyOf = (labels) =>
  Object.keys(labels || {})
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');

/** Sum of the values of `name`'s series that pass `filter(labels)`. */
export function sum(snap, name, filter = () => true) {
  let s = 0;
  for (const x of series(snap, name)) if (filter(x.labels || {})) s += Number(x.value) || 0;
  return s;
}

/** Sums of `name` grouped by label `by`: {value: sum}. */
export function sumBy(snap, name, by, filter = () => true) {
  const out = {};
  for (const x of series(snap, name)) {
    const l = x.labels || {};
    if (!filter(l)) continue;
    const k = l[by] ?? '';
    out[k] = (out[k] || 0) + (Number(x.value) || 0);
  }
  return out;
}

/**
 * Increase of a counter between two snapshots, per series, summed; a series
 * that went down (a restart, a pool rebuilt on reload) counts from zero.
 */
export function increase(prev, cur, name, filter = () => true) {
  const before = new Map();
  for (const x of series(prev, name)) before.set(keyOf(x.labels), Number(x.value) || 0);
  let s = 0;
  for (const x of series(cur, name)) {
    const l = x.labels || {};
    if (!filter(l)) continue;
    const v = Number(x.value) || 0;
    const b = before.get(keyOf(l)) ?? 0;
    s += v >= b ? v - b : v;
  }
  return s;
}

/** Increases grouped by label `by`. */
export function increaseBy(prev, cur, name, by, filter = () => true) {
  const before = new Map();
  for (const x of series(prev, name)) before.set(keyOf(x.labels), Number(x.value) || 0);
  const out = {};
  for (const x of series(cur, name)) {
    const l = x.labels || {};
    if (!filter(l)) continue;
    const v = Number(x.value) || 0;
    const b = before.get(keyOf(l)) ?? 0;
    const k = l[by] ?? '';
    out[k] = (out[k] || 0) + (v >= b ? v - b : v);
  }
  return out;
}

const bound = (b) => (b === '+Inf' || b === 'Inf' || b === Infinity ? Infinity : Number(b));

/** Cumulative buckets of a histogram summed over the series passing `filter`: [[le, count]...]. */
export function buckets(snap, name, filter = () => true) {
  const acc = new Map();
  for (const x of series(snap, name)) {
    if (!filter(x.labels || {})) continue;
    for (const [le, c] of x.buckets || []) {
      const k = bound(le);
      acc.set(k, (acc.get(k) || 0) + (Number(c) || 0));
    }
  }
  return [...acc.entries()].sort((a, b) => a[0] - b[0]);
}

/** Bucket counts of `cur` minus those of `prev` (both cumulative). */
export function bucketDelta(prev, cur, name, filter) {
  const a = new Map(buckets(prev, name, filter));
  const d = buckets(cur, name, filter).map(([le, c]) => [le, c - (a.get(le) || 0)]);
  // A restart or a reset series: fall back to the current counts.
  if (d.some(([, c]) => c < 0)) return buckets(cur, name, filter);
  return d;
}

/**
 * The q-quantile (0..1) of cumulative buckets, interpolated linearly within
 * the bucket as Prometheus' histogram_quantile does; null without
 * observations; the highest finite bound when it falls in +Inf.
 */
export function quantile(q, cumulative) {
  if (!cumulative.length) return null;
  const total = cumulative[cumulative.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevC = 0;
  for (const [le, c] of cumulative) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      if (c === prevC) return le;
      return prevLe + ((le - prevLe) * (rank - prevC)) / (c - prevC);
    }
    prevLe = le === Infinity ? prevLe : le;
    prevC = c;
  }
  return prevLe;
}

/** Request kinds of gateway_requests_total, in the order shown. */
export const KINDS = ['redirect', 'proxy', 'respond', 'not_found', 'gone', 'bad_request', 'rate_limited', 'error'];

/** The status code label of gateway_requests_total. */
export const codeOf = (l) => Number(l.code ?? l.status ?? 0);
/** The pool label of the upstream families. */
export const poolOf = (l) => l.upstream ?? l.pool ?? '';

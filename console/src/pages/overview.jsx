// Overview: live request rate by kind, error rates, p50/p99 (from the
// difference between two polls of /admin/metrics.json), pool health, the
// live rules, the link store and the click sink.
import { useState, useRef } from 'preact/hooks';
import { get } from '../api.js';
import { ErrorBox, Loading, Stat, Badge, fmtNumber, fmtRate, fmtSeconds, fmtPercent, fmtTime, usePoll } from '../ui.jsx';
import { TimeChart, colorOf } from '../chart.jsx';
import * as M from '../metrics.js';

const POLL_MS = 3000;
const HISTORY = 100;

const REQ = 'gateway_requests_total';
const DUR = 'gateway_request_duration_seconds';

const KIND_LABEL = {
  redirect: 'Redirects',
  proxy: 'Proxied',
  respond: 'Fixed responses',
  not_found: 'Not found (404)',
  gone: 'Gone (410)',
  bad_request: 'Bad requests (400)',
  rate_limited: 'Rate limited (429)',
  error: 'Gateway errors',
};

/** What changed between two metric snapshots, per second. */
function windowOf(prev, cur) {
  const dt = prev ? (cur.at_ms - prev.at_ms) / 1000 : 0;
  const out = { dt, kinds: {} };
  const totals = M.sumBy(cur, REQ, 'kind');
  const deltas = prev && dt > 0 ? M.increaseBy(prev, cur, REQ, 'kind') : null;
  for (const k of new Set([...M.KINDS, ...Object.keys(totals)])) {
    const f = (l) => l.kind === k;
    const b = prev && dt > 0 ? M.bucketDelta(prev, cur, DUR, f) : M.buckets(cur, DUR, f);
    out.kinds[k] = {
      total: totals[k] || 0,
      rate: deltas ? (deltas[k] || 0) / dt : null,
      p50: M.quantile(0.5, b),
      p99: M.quantile(0.99, b),
    };
  }
  const all = prev && dt > 0 ? M.bucketDelta(prev, cur, DUR) : M.buckets(cur, DUR);
  out.p50 = M.quantile(0.5, all);
  out.p99 = M.quantile(0.99, all);
  out.total = M.sum(cur, REQ);
  if (deltas) {
    const n = M.increase(prev, cur, REQ);
    const e5 = M.increase(prev, cur, REQ, (l) => M.codeOf(l) >= 500);
    const e4 = M.increase(prev, cur, REQ, (l) => M.codeOf(l) >= 400 && M.codeOf(l) < 500);
    out.rate = n / dt;
    out.err5 = n ? e5 / n : 0;
    out.err4 = n ? e4 / n : 0;
    out.err5rate = e5 / dt;
  } else {
    const n = out.total;
    out.err5 = n ? M.sum(cur, REQ, (l) => M.codeOf(l) >= 500) / n : null;
    out.err4 = n ? M.sum(cur, REQ, (l) => M.codeOf(l) >= 400 && M.codeOf(l) < 500) / n : null;
    out.rate = null;
  }
  return out;
}

function storeHealth(prev, cur) {
  if (!M.has(cur, 'gateway_store_lag_seconds') && !M.has(cur, 'gateway_store_errors_total')) return null;
  const lag = M.sum(cur, 'gateway_store_lag_seconds');
  const behind = M.sum(cur, 'gateway_store_changes_behind');
  const errorsTotal = Object.fromEntries(
    Object.entries(M.sumBy(cur, 'gateway_store_errors_total', 'kind')).filter(([, v]) => v > 0),
  );
  const recent = prev ? M.increase(prev, cur, 'gateway_store_errors_total') : 0;
  const unavailable = prev ? M.increase(prev, cur, 'gateway_store_errors_total', (l) => l.kind === 'unavailable') : 0;
  let state = 'ok';
  if (unavailable > 0 || lag > 30) state = 'bad';
  else if (recent > 0 || lag > 2) state = 'warn';
  return { lag, behind, errorsTotal, recent, state };
}

function clickHealth(prev, cur) {
  const events = M.sum(cur, 'gateway_click_events_total');
  const delivered = M.sumBy(cur, 'gateway_click_events_delivered_total', 'sink');
  const spilled = M.sum(cur, 'gateway_click_events_spilled_total');
  const dropped = M.sum(cur, 'gateway_click_events_dropped_total');
  const depth = M.sum(cur, 'gateway_click_queue_depth');
  const dt = prev ? (cur.at_ms - prev.at_ms) / 1000 : 0;
  const rate = prev && dt > 0 ? M.increase(prev, cur, 'gateway_click_events_total') / dt : null;
  const newDropped = prev ? M.increase(prev, cur, 'gateway_click_events_dropped_total') : 0;
  const newSpilled = prev ? M.increase(prev, cur, 'gateway_click_events_spilled_total') : 0;
  const analyticsErrors = prev
    ? M.increase(prev, cur, 'gateway_analytics_flushes_total', (l) => l.result === 'error')
    : 0;
  const analyticsFlushes = M.sum(cur, 'gateway_analytics_flushes_total', (l) => l.result === 'ok');
  let state = 'ok';
  if (newDropped > 0) state = 'bad';
  else if (newSpilled > 0 || analyticsErrors > 0) state = 'warn';
  return { events, delivered, spilled, dropped, depth, rate, state, analyticsFlushes, pending: M.sum(cur, 'gateway_analytics_pending_rows'), analyticsErrors };
}

const STATE_TEXT = { ok: 'healthy', warn: 'degraded', bad: 'failing' };

export function Overview() {
  const prev = useRef(null);
  const [metrics, setMetrics] = useState(null);
  const [win, setWin] = useState(null);
  const [history, setHistory] = useState({ t: [], kinds: {} });
  const [rules, setRules] = useState(null);
  const [pools, setPools] = useState(null);
  const [error, setError] = useState(null);
  const [health, setHealth] = useState({ store: null, clicks: null });

  usePoll(async () => {
    try {
      const [cur, r, u] = await Promise.all([
        get('/admin/metrics.json'),
        get('/admin/rules'),
        get('/admin/upstreams'),
      ]);
      const w = windowOf(prev.current, cur);
      setHealth({ store: storeHealth(prev.current, cur), clicks: clickHealth(prev.current, cur) });
      if (w.rate !== null) {
        setHistory((h) => {
          const t = [...h.t, cur.at_ms / 1000].slice(-HISTORY);
          const kinds = {};
          for (const k of Object.keys(w.kinds)) {
            const old = h.kinds[k] || new Array(h.t.length).fill(0);
            kinds[k] = [...old, w.kinds[k].rate || 0].slice(-HISTORY);
          }
          return { t, kinds };
        });
      }
      prev.current = cur;
      setMetrics(cur);
      setWin(w);
      setRules(r);
      setPools(u);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, POLL_MS);

  if (!metrics) {
    return (
      <section>
        <h1>Overview</h1>
        <ErrorBox error={error} title="Cannot read the gateway's state" />
        {!error && <Loading what="Reading the metrics" />}
      </section>
    );
  }
  const kinds = Object.keys(win.kinds).filter((k) => win.kinds[k].total > 0 || M.KINDS.slice(0, 4).includes(k));
  const shown = kinds.filter((k) => history.kinds[k] && history.kinds[k].some((v) => v > 0));
  const chartKinds = shown.length ? shown : ['redirect'];
  const chartData = [history.t, ...chartKinds.map((k) => history.kinds[k] || history.t.map(() => 0))];
  const poolList = (pools && pools.pools) || [];
  const { store, clicks } = health;

  return (
    <section>
      <div class="page-head">
        <h1>Overview</h1>
        <span class="muted small" role="status">
          Live, every {POLL_MS / 1000} s · {new Date(metrics.at_ms).toLocaleTimeString()}
        </span>
      </div>
      <ErrorBox error={error} title="Last refresh failed" />
      <div class="stats">
        <Stat label="Requests / s" value={<span data-stat="rate">{fmtRate(win.rate)}</span>} sub={<span data-stat="total">{fmtNumber(win.total)} since start</span>} />
        <Stat label="5xx errors" value={fmtPercent(win.err5)} sub={win.err5rate !== undefined ? `${fmtRate(win.err5rate)} / s` : 'since start'} kind={win.err5 > 0.01 ? 'bad' : undefined} />
        <Stat label="4xx answers" value={fmtPercent(win.err4)} sub={win.rate === null ? 'since start' : 'of requests now'} />
        <Stat label="Latency p50" value={fmtSeconds(win.p50)} sub={win.rate === null ? 'since start' : `last ${fmtNumber(win.dt, 1)} s`} />
        <Stat label="Latency p99" value={fmtSeconds(win.p99)} sub={win.rate === null ? 'since start' : `last ${fmtNumber(win.dt, 1)} s`} />
      </div>
      <div class="card">
        <h2 class="h3">Requests per second by kind</h2>
        {history.t.length < 2 ? (
          <p class="muted small">The chart starts after two polls.</p>
        ) : (
          <TimeChart
            data={chartData}
            series={chartKinds.map((k) => ({ label: KIND_LABEL[k] || k, color: colorOf(M.KINDS.indexOf(k)) }))}
            height={200}
            utc={false}
            step={POLL_MS / 1000}
            window={HISTORY * (POLL_MS / 1000)}
            yFormat={(v) => fmtRate(v)}
            label="Requests per second by kind over the last minutes"
          />
        )}
        <table class="table compact" aria-label="Requests by kind">
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col" class="num">
                Now / s
              </th>
              <th scope="col" class="num">
                Since start
              </th>
              <th scope="col" class="num">
                p50
              </th>
              <th scope="col" class="num">
                p99
              </th>
            </tr>
          </thead>
          <tbody>
            {kinds.map((k) => (
              <tr key={k} data-kind={k}>
                <th scope="row">{KIND_LABEL[k] || k}</th>
                <td class="num">{fmtRate(win.kinds[k].rate)}</td>
                <td class="num" data-total={win.kinds[k].total}>
                  {fmtNumber(win.kinds[k].total)}
                </td>
                <td class="num">{fmtSeconds(win.kinds[k].p50)}</td>
                <td class="num">{fmtSeconds(win.kinds[k].p99)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <div class="cards">
        <div class="card">
          <h2 class="h3">
            Rules <a href="#/rules" class="small">details</a>
          </h2>
          {rules ? (
            <>
              <p class="big">
                Version <strong data-stat="rules-version">{rules.version}</strong>
              </p>
              <p class="small muted">
                {rules.trigger} · {fmtTime(rules.loaded_at)}
                <br />
                <span class="mono">{String(rules.hash || '').slice(0, 16)}</span>
              </p>
              {rules.counts && (
                <p class="small">
                  {Object.entries(rules.counts)
                    .filter(([, v]) => typeof v === 'number' && v > 0)
                    .map(([k, v]) => `${fmtNumber(v)} ${k.replace(/_/g, ' ')}`)
                    .join(' · ')}
                </p>
              )}
              {rules.last_refused && (
                <p class="alert alert-warn small">
                  Last reload refused {fmtTime(rules.last_refused.at)} ({(rules.last_refused.errors || []).length} errors).{' '}
                  <a href="#/rules">See why</a>
                </p>
              )}
            </>
          ) : (
            <Loading />
          )}
        </div>
        <div class="card">
          <h2 class="h3">
            Upstream pools <a href="#/upstreams" class="small">details</a>
          </h2>
          {poolList.length === 0 ? (
            <p class="muted small">No upstream pools in the live rules.</p>
          ) : (
            <ul class="plain">
              {poolList.map((p) => (
                <li key={p.name} data-pool={p.name}>
                  <strong>{p.name}</strong>{' '}
                  <Badge kind={p.healthy === p.total ? 'ok' : p.healthy === 0 ? 'bad' : 'warn'}>
                    {p.healthy}/{p.total} healthy
                  </Badge>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div class="card">
          <h2 class="h3">Link store</h2>
          {!store ? (
            <p class="muted small">This gateway has no link store.</p>
          ) : (
            <>
              <p>
                <Badge kind={store.state}>{STATE_TEXT[store.state]}</Badge>
              </p>
              <dl class="props small">
                <dt>Lag</dt>
                <dd>{fmtSeconds(store.lag)}</dd>
                <dt>Changes behind</dt>
                <dd>{fmtNumber(store.behind)}</dd>
                <dt>Errors</dt>
                <dd>
                  {Object.keys(store.errorsTotal).length === 0
                    ? 'none'
                    : Object.entries(store.errorsTotal)
                        .map(([k, v]) => `${fmtNumber(v)} ${k}`)
                        .join(', ')}
                </dd>
              </dl>
            </>
          )}
        </div>
        <div class="card">
          <h2 class="h3">Click events</h2>
          <p>
            <Badge kind={clicks.state}>{STATE_TEXT[clicks.state]}</Badge>
          </p>
          <dl class="props small">
            <dt>Produced</dt>
            <dd>
              {fmtNumber(clicks.events)}
              {clicks.rate !== null && ` (${fmtRate(clicks.rate)} / s)`}
            </dd>
            <dt>Delivered</dt>
            <dd>
              {Object.keys(clicks.delivered).length === 0
                ? '0'
                : Object.entries(clicks.delivered)
                    .map(([k, v]) => `${fmtNumber(v)} (${k})`)
                    .join(', ')}
            </dd>
            <dt>Spilled</dt>
            <dd>{fmtNumber(clicks.spilled)}</dd>
            <dt>Dropped</dt>
            <dd>{fmtNumber(clicks.dropped)}</dd>
            <dt>Queue</dt>
            <dd>{fmtNumber(clicks.depth)}</dd>
            <dt>Analytics</dt>
            <dd>
              {fmtNumber(clicks.analyticsFlushes)} flushes, {fmtNumber(clicks.pending)} rows pending
            </dd>
          </dl>
        </div>
      </div>
    </section>
  );
}

// Upstreams: each pool's backends with their health and ejection, and the
// pool's traffic, errors, ejections and the routes' rate limits
// (/admin/upstreams and /admin/metrics.json).
import { useState, useRef } from 'preact/hooks';
import { get } from '../api.js';
import { ErrorBox, Loading, Badge, Stat, fmtNumber, fmtRate, fmtSeconds, usePoll } from '../ui.jsx';
import * as M from '../metrics.js';

const POLL_MS = 3000;

function poolStats(prev, cur, name) {
  const f = (l) => M.poolOf(l) === name;
  const dt = prev ? (cur.at_ms - prev.at_ms) / 1000 : 0;
  const b = prev && dt > 0 ? M.bucketDelta(prev, cur, 'gateway_upstream_duration_seconds', f) : M.buckets(cur, 'gateway_upstream_duration_seconds', f);
  return {
    requests: M.sum(cur, 'gateway_upstream_requests_total', f),
    rate: prev && dt > 0 ? M.increase(prev, cur, 'gateway_upstream_requests_total', f) / dt : null,
    byCode: M.sumBy(cur, 'gateway_upstream_requests_total', 'code', f),
    errors: M.sumBy(cur, 'gateway_upstream_errors_total', 'reason', f),
    retries: M.sum(cur, 'gateway_upstream_retries_total', f),
    ejections: M.sum(cur, 'gateway_upstream_ejections_total', f),
    ejectedNow: M.sum(cur, 'gateway_upstream_ejected_backends', f),
    p50: M.quantile(0.5, b),
    p99: M.quantile(0.99, b),
  };
}

export function UpstreamsPage() {
  const prev = useRef(null);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);

  usePoll(async () => {
    try {
      const [u, cur] = await Promise.all([get('/admin/upstreams'), get('/admin/metrics.json')]);
      const pools = (u.pools || []).map((p) => ({ ...p, stats: poolStats(prev.current, cur, p.name) }));
      const limited = M.sumBy(cur, 'gateway_route_rate_limited_total', 'route');
      prev.current = cur;
      setData({ pools, limited });
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, POLL_MS);

  if (!data) {
    return (
      <section>
        <h1>Upstreams</h1>
        <ErrorBox error={error} title="Cannot read the pools" />
        {!error && <Loading what="Reading the pools" />}
      </section>
    );
  }
  const routes = Object.entries(data.limited);
  return (
    <section>
      <div class="page-head">
        <h1>Upstreams</h1>
        <span class="muted small" role="status">
          Live, every {POLL_MS / 1000} s
        </span>
      </div>
      <ErrorBox error={error} title="Last refresh failed" />
      {data.pools.length === 0 && <p class="empty">The live rules have no upstream pools.</p>}
      {data.pools.map((p) => {
        const s = p.stats;
        const errs = Object.entries(s.errors).filter(([, v]) => v > 0);
        return (
          <div class="card pool" key={p.name} data-pool={p.name}>
            <div class="page-head">
              <h2 class="h3">
                Pool <span class="mono">{p.name}</span>
                {p.balance && <span class="muted small"> · {p.balance.replace(/_/g, ' ')}</span>}
              </h2>
              <Badge kind={p.healthy === p.total ? 'ok' : p.healthy === 0 ? 'bad' : 'warn'}>
                {p.healthy}/{p.total} healthy
              </Badge>
            </div>
            <div class="stats">
              <Stat label="Requests / s" value={fmtRate(s.rate)} sub={`${fmtNumber(s.requests)} since start`} />
              <Stat label="Latency p50 / p99" value={`${fmtSeconds(s.p50)} / ${fmtSeconds(s.p99)}`} sub={s.rate === null ? 'since start' : 'last poll'} />
              <Stat label="Ejections" value={<span data-stat="ejections">{fmtNumber(s.ejections)}</span>} sub={`${fmtNumber(s.ejectedNow)} ejected now`} kind={s.ejectedNow > 0 ? 'warn' : undefined} />
              <Stat label="Errors" value={fmtNumber(errs.reduce((a, [, v]) => a + v, 0))} sub={errs.length ? errs.map(([k, v]) => `${v} ${k}`).join(', ') : `${fmtNumber(s.retries)} retries`} kind={errs.length ? 'warn' : undefined} />
            </div>
            <table class="table compact" aria-label={`Backends of pool ${p.name}`}>
              <thead>
                <tr>
                  <th scope="col">Backend</th>
                  <th scope="col">Health check</th>
                  <th scope="col">Outlier ejection</th>
                </tr>
              </thead>
              <tbody>
                {(p.backends || []).map((b) => (
                  <tr key={b.address} data-backend={b.address}>
                    <td class="mono">{b.address}</td>
                    <td>
                      <Badge kind={b.healthy ? 'ok' : 'bad'}>{b.healthy ? 'healthy' : 'down'}</Badge>
                    </td>
                    <td>
                      <Badge kind={b.ejected ? 'warn' : 'neutral'}>{b.ejected ? 'ejected' : 'in the pool'}</Badge>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {Object.keys(s.byCode).length > 0 && (
              <p class="small muted">
                Answers by status:{' '}
                {Object.entries(s.byCode)
                  .sort()
                  .map(([c, v]) => `${c}: ${fmtNumber(v)}`)
                  .join(' · ')}
              </p>
            )}
          </div>
        );
      })}
      <h2>Route rate limits</h2>
      {routes.length === 0 ? (
        <p class="muted small">No request has been refused by a route's rate_limit since the gateway started (or no route has one).</p>
      ) : (
        <table class="table compact" aria-label="Requests refused by route rate limits">
          <thead>
            <tr>
              <th scope="col">Route</th>
              <th scope="col" class="num">
                Rate-limited (429)
              </th>
            </tr>
          </thead>
          <tbody>
            {routes.map(([r, v]) => (
              <tr key={r} data-route={r}>
                <td class="mono">{r}</td>
                <td class="num" data-limited={v}>
                  {fmtNumber(v)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

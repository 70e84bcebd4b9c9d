// A link and its analytics: clicks over time (by hour or day), by device,
// country and referrer, people against bots, unique visitors
// (GET /api/v1/links/{id}/stats, one call per grouping).
import { useState, useEffect, useMemo } from 'preact/hooks';
import { get, del, query } from '../api.js';
import { navigate } from '../router.js';
import { ErrorBox, Loading, ConfirmDialog, Stat, fmtNumber, fmtPercent, fmtTime, usePoll } from '../ui.jsx';
import { TimeChart } from '../chart.jsx';
import { QrImage, setFlash, takeFlash } from './link-common.jsx';

const RANGES = [
  { id: '24h', label: 'Last 24 hours, by hour', interval: 'hour', seconds: 24 * 3600 },
  { id: '7d', label: 'Last 7 days, by hour', interval: 'hour', seconds: 7 * 24 * 3600 },
  { id: '30d', label: 'Last 30 days, by day', interval: 'day', seconds: 30 * 24 * 3600 },
  { id: '90d', label: 'Last 90 days, by day', interval: 'day', seconds: 90 * 24 * 3600 },
];
const GROUPS = [
  ['device', 'Device'],
  ['country', 'Country'],
  ['referrer', 'Referrer'],
];

const REFRESH_MS = 5000;

function rangeParams(range) {
  const now = Math.floor(Date.now() / 1000);
  const step = range.interval === 'hour' ? 3600 : 86400;
  // Whole buckets: from the start of the bucket `seconds` ago to the end of
  // the current one.
  const from = Math.floor((now - range.seconds) / step) * step + step;
  return { from, interval: range.interval };
}

function GroupTable({ title, groupBy, report }) {
  const groups = (report && report.groups) || [];
  const max = Math.max(1, ...groups.map((g) => g.clicks + g.bot_clicks));
  const name = (k) => {
    if (k) return k;
    if (groupBy === 'country') return '(unknown)';
    if (groupBy === 'referrer') return '(none)';
    return '(none)';
  };
  return (
    <div class="card group-card" data-group={groupBy}>
      <h3>By {title.toLowerCase()}</h3>
      {groups.length === 0 ? (
        <p class="muted small">No clicks in this range.</p>
      ) : (
        <table class="table compact" aria-label={`Clicks by ${title.toLowerCase()}`}>
          <thead>
            <tr>
              <th scope="col">{title}</th>
              <th scope="col" class="num">
                Clicks
              </th>
              <th scope="col" class="num">
                Visitors
              </th>
              <th scope="col" class="num">
                Bots
              </th>
            </tr>
          </thead>
          <tbody>
            {groups.slice(0, 20).map((g) => (
              <tr key={g.key}>
                <td>
                  <div class="barcell">
                    <span class="bar" style={{ width: `${(100 * (g.clicks + g.bot_clicks)) / max}%` }} aria-hidden="true" />
                    <span class="barlabel">{name(g.key)}</span>
                  </div>
                </td>
                <td class="num">{fmtNumber(g.clicks)}</td>
                <td class="num">{fmtNumber(g.visitors)}</td>
                <td class="num">{fmtNumber(g.bot_clicks)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {groups.length > 20 && <p class="muted small">and {groups.length - 20} more</p>}
    </div>
  );
}

export function LinkDetail({ session, id }) {
  const [link, setLink] = useState(null);
  const [linkError, setLinkError] = useState(null);
  const [rangeId, setRangeId] = useState('24h');
  const [reports, setReports] = useState({});
  const [statsError, setStatsError] = useState(null);
  const [updated, setUpdated] = useState(null);
  const [deleting, setDeleting] = useState(false);
  const [deleteBusy, setDeleteBusy] = useState(false);
  const [deleteError, setDeleteError] = useState(null);
  const [flash] = useState(takeFlash);
  const range = RANGES.find((r) => r.id === rangeId);

  useEffect(() => {
    setLink(null);
    setLinkError(null);
    get(`/api/v1/links/${encodeURIComponent(id)}`).then(setLink, setLinkError);
  }, [id]);

  const loadStats = async () => {
    if (!link) return;
    const p = rangeParams(range);
    const fetchAll = () =>
      Promise.all(GROUPS.map(([g]) => get(`/api/v1/links/${encodeURIComponent(id)}/stats${query({ ...p, group_by: g })}`)));
    const same = (reports) => new Set(reports.map((r) => JSON.stringify(r.totals))).size === 1;
    try {
      let all = await fetchAll();
      // A flush between the three reads: read them again, once.
      if (!same(all)) all = await fetchAll();
      const out = {};
      GROUPS.forEach(([g], i) => (out[g] = all[i]));
      setReports(out);
      setStatsError(null);
      setUpdated(new Date());
    } catch (err) {
      setStatsError(err);
    }
  };
  usePoll(loadStats, REFRESH_MS, [link && link.id, rangeId]);

  const main = reports.device;
  const chart = useMemo(() => {
    if (!main) return null;
    const s = main.series || [];
    return [
      s.map((b) => Date.parse(b.start) / 1000),
      s.map((b) => b.clicks),
      s.map((b) => b.visitors),
      s.map((b) => b.bot_clicks),
    ];
  }, [main]);

  const confirmDelete = async () => {
    setDeleteBusy(true);
    try {
      await del(`/api/v1/links/${encodeURIComponent(id)}`);
      setFlash(`Deleted ${link.short_url}.`);
      navigate('/links');
    } catch (err) {
      setDeleteError(err);
    } finally {
      setDeleteBusy(false);
    }
  };

  if (linkError) {
    return (
      <section>
        <nav class="crumbs" aria-label="Breadcrumb">
          <a href="#/links">Links</a> / {id}
        </nav>
        <h1>{linkError.status === 404 ? 'Link not found' : 'Cannot load the link'}</h1>
        <ErrorBox error={linkError} />
        <p>
          <a href="#/links">Back to links</a>
        </p>
      </section>
    );
  }
  if (!link) return <Loading what="Loading the link" />;

  const totals = (main && main.totals) || { clicks: 0, visitors: 0, bot_clicks: 0 };
  const all = totals.clicks + totals.bot_clicks;
  const people = all ? totals.clicks / all : 0;
  const devices = Object.entries({ ios: link.ios, android: link.android, desktop: link.desktop }).filter(([, v]) => v);
  const countries = Object.entries(link.countries || {});

  return (
    <section>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="#/links">Links</a> / {link.host}/{link.code}
      </nav>
      <div class="page-head">
        <h1 class="break">
          <span class="mono">
            {link.host}/{link.code}
          </span>
        </h1>
        {session.can_write !== false && (
          <div class="actions">
            <a class="btn" href={`#/links/${link.id}/edit`}>
              Edit
            </a>
            <button type="button" class="btn btn-danger" onClick={() => setDeleting(true)}>
              Delete
            </button>
          </div>
        )}
      </div>
      {flash && (
        <p class="alert alert-ok" role="status">
          {flash}
        </p>
      )}
      <div class="detail-top">
        <div class="card">
          <dl class="props">
            <dt>Short URL</dt>
            <dd class="break">
              <span class="mono">{link.short_url}</span>
            </dd>
            <dt>Destination</dt>
            <dd class="break">{link.to}</dd>
            <dt>Status</dt>
            <dd>{link.status}</dd>
            {devices.map(([d, u]) => [<dt key={`${d}t`}>{d === 'ios' ? 'iOS' : d === 'android' ? 'Android' : 'Desktop'}</dt>, <dd key={d} class="break">{u}</dd>])}
            {countries.length > 0 && (
              <>
                <dt>Countries</dt>
                <dd class="break">
                  {countries.map(([c, u]) => (
                    <div key={c}>
                      <strong>{c}</strong> {u}
                    </div>
                  ))}
                </dd>
              </>
            )}
            {link.expires_at && (
              <>
                <dt>Expires</dt>
                <dd>
                  {fmtTime(link.expires_at)}
                  {link.expired_to ? `, then ${link.expired_to}` : ', then 410 Gone'}
                </dd>
              </>
            )}
            <dt>Query</dt>
            <dd>{link.query}</dd>
            {link.tags && link.tags.length > 0 && (
              <>
                <dt>Tags</dt>
                <dd>
                  {link.tags.map((t) => (
                    <a key={t} class="tag" href={`#/links?tag=${encodeURIComponent(t)}`}>
                      {t}
                    </a>
                  ))}
                </dd>
              </>
            )}
            {link.external_id && (
              <>
                <dt>External id</dt>
                <dd class="break">{link.external_id}</dd>
              </>
            )}
            <dt>Version</dt>
            <dd>
              {link.version}, updated {fmtTime(link.updated_at)}
            </dd>
          </dl>
        </div>
        <div class="card qr-card">
          <QrImage link={link} size={160} />
        </div>
      </div>

      <div class="page-head">
        <h2>Analytics</h2>
        <div class="inline-field">
          <label for="range">Range</label>
          <select id="range" value={rangeId} onChange={(e) => setRangeId(e.currentTarget.value)}>
            {RANGES.map((r) => (
              <option key={r.id} value={r.id}>
                {r.label}
              </option>
            ))}
          </select>
          <button type="button" class="btn" onClick={loadStats}>
            Refresh
          </button>
        </div>
      </div>
      <ErrorBox error={statsError} title="Cannot read the analytics" />
      {!main && !statsError && <Loading what="Loading analytics" />}
      {main && (
        <>
          <div class="stats" aria-live="polite">
            <Stat label="Clicks" value={<span data-stat="clicks">{fmtNumber(totals.clicks)}</span>} sub="people" />
            <Stat label="Unique visitors" value={<span data-stat="visitors">{fmtNumber(totals.visitors)}</span>} sub="first click within the dedup window" />
            <Stat label="Bot clicks" value={<span data-stat="bot_clicks">{fmtNumber(totals.bot_clicks)}</span>} sub="crawlers, link previews" />
            <div class="stat">
              <div class="stat-label">People vs bots</div>
              <div class="split" role="img" aria-label={`${fmtPercent(people)} people, ${fmtPercent(all ? 1 - people : 0)} bots`}>
                <span class="split-people" style={{ width: `${all ? people * 100 : 0}%` }} />
                <span class="split-bots" style={{ width: `${all ? (1 - people) * 100 : 0}%` }} />
              </div>
              <div class="stat-sub">
                {all ? `${fmtPercent(people)} people · ${fmtPercent(1 - people)} bots` : 'no clicks yet'}
              </div>
            </div>
          </div>
          <div class="card">
            <h3>
              Clicks {range.interval === 'hour' ? 'per hour' : 'per day'} <span class="muted small">(UTC)</span>
            </h3>
            <TimeChart
              data={chart}
              step={range.interval === 'hour' ? 3600 : 86400}
              series={[
                { label: 'Clicks', kind: 'bar-left', color: '#2563eb' },
                { label: 'Visitors', color: '#16a34a' },
                { label: 'Bot clicks', kind: 'bar-right', color: '#d97706' },
              ]}
              label={`Clicks ${range.interval === 'hour' ? 'per hour' : 'per day'}: ${totals.clicks} clicks, ${totals.visitors} visitors, ${totals.bot_clicks} bot clicks in all`}
            />
            <p class="muted small">
              {fmtTime(main.from)} to {fmtTime(main.to)}. Counts arrive with the gateway's next analytics flush.
              {updated && ` Read at ${updated.toLocaleTimeString()}.`}
            </p>
          </div>
          <div class="groups">
            {GROUPS.map(([g, title]) => (
              <GroupTable key={g} groupBy={g} title={title} report={reports[g]} />
            ))}
          </div>
        </>
      )}
      <ConfirmDialog
        open={deleting}
        title="Delete this link?"
        confirm="Delete"
        danger
        busy={deleteBusy}
        onConfirm={confirmDelete}
        onCancel={() => setDeleting(false)}
      >
        <p>
          <strong class="mono">{link.short_url}</strong> stops answering at once. Its click counts stay in the store.
        </p>
        <ErrorBox error={deleteError} title="Not deleted" />
      </ConfirmDialog>
    </section>
  );
}

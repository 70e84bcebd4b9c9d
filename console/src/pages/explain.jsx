// Explain: what the live rules (and the link store) do with a request —
// which rule or link answers, the steps of the decision, the final Location
// (GET /admin/explain).
import { useState, useEffect } from 'preact/hooks';
import { get, query } from '../api.js';
import { navigate, useRoute } from '../router.js';
import { ErrorBox, Loading, Badge } from '../ui.jsx';

export const DEVICES = [
  ['', 'No User-Agent', ''],
  ['iphone', 'iPhone', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'],
  ['android', 'Android phone', 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36'],
  ['desktop', 'Desktop (Windows, Chrome)', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'],
  ['mac', 'Desktop (macOS, Safari)', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15'],
  ['bot', 'Bot (Googlebot)', 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'],
  ['custom', 'Other User-Agent…', null],
];

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];

const TARGET_TEXT = {
  default: 'the default destination (to)',
  device: 'the destination for this device',
  country: 'the destination for this country',
  split: 'a split variant',
  expired: 'the expired_to destination (the rule has expired)',
};

/** The explanation's fields as the steps of the decision, in order. */
export function steps(x) {
  const out = [];
  if (x.host) {
    if (x.host_level) out.push(['Host', `${x.host} matched rules of the ${x.host_level} host level`]);
    else if (x.host_rules) out.push(['Host', `${x.host}: ${x.host_rules} rules apply, but none matches this path`]);
    else out.push(['Host', `${x.host}: no rule for this host`]);
  }
  if (x.store) {
    const s = x.store;
    if (s.result === 'found') out.push(['Link store', `link ${s.id} (version ${s.version}) has the code ${s.code}`]);
    else if (s.result === 'absent') out.push(['Link store', `no stored link has the code ${s.code}`]);
    else out.push(['Link store', `the store was not asked for ${s.code}`]);
  }
  if (x.matched_by) out.push(['Matched by', x.matched_by + (x.code ? `, code ${x.code}` : '')]);
  else if (x.code) out.push(['Code', x.code]);
  const caps = Object.entries(x.captures || {});
  if (caps.length) out.push(['Captures', caps.map(([k, v]) => `${k} = ${v}`).join(', ')]);
  if (x.expires_at) out.push(['Expiry', `${x.expires_at}: ${x.expired ? 'expired' : 'not yet expired'}`]);
  if (x.device) out.push(['Device', x.device + (x.bot ? ' (a bot: it gets the default destination)' : '')]);
  if (x.country) out.push(['Country', x.country]);
  if (x.target) out.push(['Destination', (TARGET_TEXT[x.target] || x.target) + (x.variant !== null && x.variant !== undefined ? `, variant ${x.variant}` : '')]);
  if (x.cache_control) out.push(['Cache-Control', x.cache_control]);
  if (x.upstream) out.push(['Upstream', `pool ${x.upstream}, path ${x.upstream_path || ''}`]);
  if (x.reason) out.push(['Why', x.reason]);
  return out;
}

function Result({ data }) {
  const x = data.explanation || {};
  const rule = x.rule;
  const kind = x.rule_kind;
  let headline;
  if (kind === 'store') headline = <>Answered by stored link <strong>{x.store && x.store.id !== undefined ? `#${x.store.id}` : x.code}</strong> of domain <strong>{rule}</strong></>;
  else if (rule) headline = <>Answered by {kind || 'rule'} <strong class="mono" data-testid="explain-rule">{rule}</strong></>;
  else headline = <>No rule matched</>;
  return (
    <div class="card explain-result" aria-live="polite">
      <p class="muted small">Live rules version {data.rules_version}</p>
      <h2 class="h3">{headline}</h2>
      <p>
        <Badge kind={x.action === 'redirect' || x.action === 'respond' || x.action === 'proxy' ? 'ok' : 'warn'}>{x.action}</Badge>{' '}
        {x.status && <strong>{x.status}</strong>}
      </p>
      {x.location && (
        <div class="location">
          <div class="stat-label">Location</div>
          <div class="mono break" data-testid="explain-location">
            {x.location}
          </div>
        </div>
      )}
      {x.upstream && (
        <div class="location">
          <div class="stat-label">Forwarded to</div>
          <div class="mono break">
            {x.upstream} {x.upstream_path}
          </div>
        </div>
      )}
      <h3>Steps</h3>
      <ol class="steps">
        {steps(x).map(([k, v], i) => (
          <li key={i}>
            <strong>{k}:</strong> <span class="break">{v}</span>
          </li>
        ))}
        <li>
          <strong>Decision:</strong> {x.action}
          {x.status ? ` ${x.status}` : ''}
          {x.location ? ` → ${x.location}` : ''}
        </li>
      </ol>
      <details>
        <summary>JSON</summary>
        <pre class="code">{JSON.stringify(data, null, 2)}</pre>
      </details>
    </div>
  );
}

export function ExplainPage() {
  const { params } = useRoute();
  const initial = {
    url: params.get('url') || '',
    device: params.get('device') || '',
    ua: params.get('ua') || '',
    country: params.get('country') || '',
    ip: params.get('ip') || '',
    method: params.get('method') || 'GET',
  };
  const [form, setForm] = useState(initial);
  const [state, setState] = useState({});
  const key = params.toString();

  useEffect(() => {
    setForm(initial);
    if (!initial.url) {
      setState({});
      return;
    }
    const preset = DEVICES.find(([id]) => id === initial.device);
    const ua = preset && preset[2] !== null ? preset[2] : initial.ua;
    let live = true;
    setState({ loading: true });
    get(
      `/admin/explain${query({
        url: initial.url,
        ua,
        country: initial.country.toUpperCase(),
        ip: initial.ip,
        method: initial.method === 'GET' ? '' : initial.method,
      })}`,
    ).then(
      (data) => live && setState({ data }),
      (error) => live && setState({ error }),
    );
    return () => {
      live = false;
    };
  }, [key]);

  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const submit = (e) => {
    e.preventDefault();
    let url = form.url.trim();
    if (url && !/^https?:\/\//i.test(url)) url = `http://${url}`;
    navigate('/explain', { ...form, url, ua: form.device === 'custom' ? form.ua : '', method: form.method === 'GET' ? '' : form.method });
  };

  return (
    <section>
      <h1>Explain a request</h1>
      <p class="muted">Which rule or link of the live rules answers a URL, why, and the final Location. Nothing is sent anywhere and no click is counted.</p>
      <form class="card form" onSubmit={submit} aria-label="Request to explain">
        <div class="url-row">
          <div class="field">
            <label for="x-method">Method</label>
            <select id="x-method" value={form.method} onChange={set('method')}>
              {METHODS.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="x-url">URL</label>
            <input id="x-url" type="url" value={form.url} onInput={set('url')} placeholder="https://go.example.com/p/SKU-1042?utm_source=mail" required spellcheck={false} />
          </div>
        </div>
        <div class="grid3">
          <div class="field">
            <label for="x-device">Device</label>
            <select id="x-device" value={form.device} onChange={set('device')}>
              {DEVICES.map(([id, label]) => (
                <option key={id} value={id}>
                  {label}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="x-country">Country</label>
            <input id="x-country" value={form.country} onInput={set('country')} placeholder="DE" maxLength={2} autoComplete="off" aria-describedby="x-country-hint" />
            <div class="hint" id="x-country-hint">
              ISO code, as the country header would send it.
            </div>
          </div>
          <div class="field">
            <label for="x-ip">Client IP</label>
            <input id="x-ip" value={form.ip} onInput={set('ip')} placeholder="203.0.113.7" autoComplete="off" aria-describedby="x-ip-hint" />
            <div class="hint" id="x-ip-hint">
              Decides a split variant.
            </div>
          </div>
        </div>
        {form.device === 'custom' && (
          <div class="field field-wide">
            <label for="x-ua">User-Agent</label>
            <input id="x-ua" value={form.ua} onInput={set('ua')} spellcheck={false} />
          </div>
        )}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={!form.url.trim()}>
            Explain
          </button>
        </div>
      </form>
      {state.loading && <Loading what="Asking the live rules" />}
      <ErrorBox error={state.error} title="Cannot explain" />
      {state.data && <Result data={state.data} />}
    </section>
  );
}

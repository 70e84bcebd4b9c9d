// Create (POST /api/v1/links) or change (PATCH /api/v1/links/{id}, with
// If-Match) a link. Errors of the problem JSON are shown at the field they
// name (`to`, `code`, `countries.DE`, `tags[0]`, ...).
import { useState, useEffect } from 'preact/hooks';
import { get, post, patch, fieldErrors } from '../api.js';
import { navigate } from '../router.js';
import { ErrorBox, Field, Loading } from '../ui.jsx';
import { useDomains, setFlash } from './link-common.jsx';

const STATUSES = [302, 301, 303, 307, 308];

const EMPTY = {
  host: '',
  code: '',
  to: '',
  status: '302',
  ios: '',
  android: '',
  desktop: '',
  countries: '',
  expires_at: '',
  expired_to: '',
  query: 'merge',
  cache_control: '',
  tags: '',
  external_id: '',
};

function formOf(link) {
  return {
    host: link.host,
    code: link.code,
    to: link.to,
    status: String(link.status),
    ios: link.ios || '',
    android: link.android || '',
    desktop: link.desktop || '',
    countries: Object.entries(link.countries || {})
      .map(([c, u]) => `${c}=${u}`)
      .join('\n'),
    expires_at: link.expires_at || '',
    expired_to: link.expired_to || '',
    query: link.query || 'merge',
    cache_control: link.cache_control || '',
    tags: (link.tags || []).join(', '),
    external_id: link.external_id || '',
  };
}

/** `DE=https://…` (or `DE https://…`) per line; {value, error}. */
function parseCountries(text) {
  const out = {};
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (const line of lines) {
    const m = line.match(/^([A-Za-z]{2})\s*(?:=|\s)\s*(\S.*)$/);
    if (!m) return { error: `\`${line}\` is not COUNTRY=URL (e.g. DE=https://shop.example.com/de)` };
    out[m[1]] = m[2].trim();
  }
  return { value: out };
}

const tagsOf = (text) =>
  text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);

/** The JSON field named in an error → the form field showing it. */
function formField(field) {
  if (!field) return '';
  if (field === 'destination') return 'to';
  if (field.startsWith('countries')) return 'countries';
  if (field.startsWith('tags')) return 'tags';
  return field;
}

export function LinkEdit({ session, id }) {
  const editing = id !== undefined;
  const hosts = useDomains();
  const [link, setLink] = useState(null);
  const [form, setForm] = useState(EMPTY);
  const [loadError, setLoadError] = useState(null);
  const [error, setError] = useState(null);
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const [more, setMore] = useState(false);

  useEffect(() => {
    if (!editing) return;
    get(`/api/v1/links/${encodeURIComponent(id)}`).then(
      (l) => {
        setLink(l);
        const f = formOf(l);
        setForm(f);
        setMore(Boolean(f.ios || f.android || f.desktop || f.countries || f.expires_at || f.expired_to || f.cache_control || f.external_id || f.query !== 'merge'));
      },
      setLoadError,
    );
  }, [id]);

  useEffect(() => {
    if (!editing && hosts && hosts.length > 0) setForm((f) => (f.host ? f : { ...f, host: hosts[0] }));
  }, [hosts]);

  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const local = {};
    const countries = parseCountries(form.countries);
    if (countries.error) local.countries = [countries.error];
    if (!form.to.trim()) local.to = ['A destination is required.'];
    if (!form.host.trim()) local.host = ['A host is required.'];
    if (Object.keys(local).length) {
      setErrors(local);
      return;
    }
    const full = {
      host: form.host.trim(),
      code: form.code.trim() || null,
      to: form.to.trim(),
      status: Number(form.status),
      ios: form.ios.trim() || null,
      android: form.android.trim() || null,
      desktop: form.desktop.trim() || null,
      countries: countries.value,
      expires_at: form.expires_at.trim() || null,
      expired_to: form.expired_to.trim() || null,
      query: form.query,
      cache_control: form.cache_control.trim() || null,
      tags: tagsOf(form.tags),
      external_id: form.external_id.trim() || null,
    };
    let body;
    if (!editing) {
      // A create sends only what is set.
      body = {};
      for (const [k, v] of Object.entries(full)) {
        if (v === null || v === '' || (Array.isArray(v) && v.length === 0)) continue;
        if (k === 'countries' && Object.keys(v).length === 0) continue;
        if (k === 'status' && v === 302) continue;
        if (k === 'query' && v === 'merge') continue;
        body[k] = v;
      }
    } else {
      // A change sends only what changed; a cleared optional field is null.
      body = {};
      const before = formOf(link);
      for (const k of Object.keys(EMPTY)) {
        if (form[k] === before[k]) continue;
        if (k === 'countries') body.countries = Object.keys(full.countries).length ? full.countries : null;
        else if (k === 'tags') body.tags = full.tags.length ? full.tags : null;
        else if ((k === 'code' || k === 'host' || k === 'to') && !full[k]) body[k] = form[k];
        else body[k] = full[k];
      }
      if (Object.keys(body).length === 0) {
        navigate(`/links/${id}`);
        return;
      }
    }
    setBusy(true);
    setErrors({});
    try {
      const saved = editing
        ? await patch(`/api/v1/links/${encodeURIComponent(id)}`, body, { headers: { 'If-Match': `"${link.version}"` } })
        : await post('/api/v1/links', body);
      setFlash(`${editing ? 'Saved' : 'Created'} ${saved.short_url}.`);
      if (editing) navigate(`/links/${saved.id}`);
      else navigate('/links', { q: saved.code, host: saved.host });
    } catch (err) {
      const byField = {};
      const other = [];
      for (const [f, msgs] of Object.entries(fieldErrors(err))) {
        const k = formField(f);
        if (k && k in EMPTY) byField[k] = [...(byField[k] || []), ...msgs.map((m) => (f !== k && f !== 'destination' ? `${f}: ${m}` : m))];
        else other.push(...msgs.map((m) => (f ? `${f}: ${m}` : m)));
      }
      setErrors(byField);
      if (Object.keys(byField).some((k) => !['host', 'code', 'to', 'status', 'tags'].includes(k))) setMore(true);
      if (err.status === 412) {
        err.message = 'Someone changed this link since you opened it. Reload it and apply your change again.';
      }
      err.errors = other.map((message) => ({ message }));
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (editing && loadError) {
    return (
      <section>
        <h1>Edit link</h1>
        <ErrorBox error={loadError} title={loadError.status === 404 ? 'Link not found' : 'Cannot load the link'} />
        <a href="#/links">Back to links</a>
      </section>
    );
  }
  if (editing && !link) return <Loading what="Loading the link" />;

  const hostsLoading = hosts === null;
  const hostOptions = [...new Set([...(hosts || []), ...(form.host ? [form.host] : [])])];
  const f = (name, label, props = {}, hint) => (
    <Field id={`link-${name}`} label={label} errors={errors[name]} hint={hint} wide={props.wide}>
      {({ id: fid, invalid, describedBy }) => (
        <input
          id={fid}
          name={name}
          value={form[name]}
          onInput={set(name)}
          aria-invalid={invalid ? 'true' : undefined}
          aria-describedby={describedBy}
          spellcheck={false}
          {...props}
          wide={undefined}
        />
      )}
    </Field>
  );

  return (
    <section>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="#/links">Links</a> / {editing ? <a href={`#/links/${id}`}>{link.host}/{link.code}</a> : 'New link'}
        {editing && ' / Edit'}
      </nav>
      <h1>{editing ? 'Edit link' : 'New link'}</h1>
      <form class="card form" onSubmit={submit} noValidate aria-label={editing ? 'Edit link' : 'New link'}>
        <div class="grid2">
          <Field id="link-host" label="Host" errors={errors.host} hint={hostsLoading || hostOptions.length ? undefined : 'A link domain of the rules ([[domain]] with store = true).'}>
            {({ id: fid, invalid, describedBy }) =>
              hostsLoading ? (
                <select id={fid} name="host" disabled aria-describedby={describedBy}>
                  <option>Loading the link domains…</option>
                </select>
              ) : hostOptions.length > 0 ? (
                <select id={fid} name="host" value={form.host} onChange={set('host')} aria-invalid={invalid ? 'true' : undefined} aria-describedby={describedBy}>
                  {hostOptions.map((h) => (
                    <option key={h} value={h}>
                      {h}
                    </option>
                  ))}
                </select>
              ) : (
                <input id={fid} name="host" value={form.host} onInput={set('host')} aria-invalid={invalid ? 'true' : undefined} aria-describedby={describedBy} />
              )
            }
          </Field>
          {f('code', 'Code', { placeholder: editing ? '' : 'generated when empty' }, 'The path after the host, e.g. summer-sale.')}
        </div>
        {f('to', 'Destination', { type: 'url', placeholder: 'https://shop.example.com/summer', wide: true, required: true })}
        <div class="grid2">
          <Field id="link-status" label="Redirect status" errors={errors.status}>
            {({ id: fid, invalid, describedBy }) => (
              <select id={fid} name="status" value={form.status} onChange={set('status')} aria-invalid={invalid ? 'true' : undefined} aria-describedby={describedBy}>
                {STATUSES.map((s) => (
                  <option key={s} value={String(s)}>
                    {s}
                    {s === 302 ? ' (default)' : s === 301 ? ' (permanent)' : ''}
                  </option>
                ))}
              </select>
            )}
          </Field>
          {f('tags', 'Tags', { placeholder: 'promo, summer' }, 'Comma-separated.')}
        </div>
        <details class="more" open={more} onToggle={(e) => setMore(e.currentTarget.open)}>
          <summary>Devices, countries, expiry and more</summary>
          <div class="grid3">
            {f('ios', 'iOS destination', { type: 'url' })}
            {f('android', 'Android destination', { type: 'url' })}
            {f('desktop', 'Desktop destination', { type: 'url' })}
          </div>
          <Field id="link-countries" label="Destinations by country" errors={errors.countries} hint="One per line: DE=https://shop.example.com/de">
            {({ id: fid, invalid, describedBy }) => (
              <textarea id={fid} name="countries" rows={3} value={form.countries} onInput={set('countries')} aria-invalid={invalid ? 'true' : undefined} aria-describedby={describedBy} spellcheck={false} />
            )}
          </Field>
          <div class="grid2">
            {f('expires_at', 'Expires at', { placeholder: '2027-01-31T23:59:59Z' }, 'RFC 3339 with a zone; empty: never.')}
            {f('expired_to', 'After expiry, go to', { type: 'url' }, 'Empty: 410 Gone.')}
          </div>
          <div class="grid3">
            <Field id="link-query" label="Visitor's query string" errors={errors.query}>
              {({ id: fid, invalid, describedBy }) => (
                <select id={fid} name="query" value={form.query} onChange={set('query')} aria-invalid={invalid ? 'true' : undefined} aria-describedby={describedBy}>
                  <option value="merge">merge into the destination's</option>
                  <option value="drop">drop</option>
                </select>
              )}
            </Field>
            {f('cache_control', 'Cache-Control', { placeholder: "the rules' default" })}
            {f('external_id', 'External id', {}, 'Your own id, unique among your links.')}
          </div>
        </details>
        <ErrorBox error={error} title={editing ? 'Not saved' : 'Not created'} />
        <div class="actions">
          <a class="btn" href={editing ? `#/links/${id}` : '#/links'}>
            Cancel
          </a>
          <button type="submit" class="btn btn-primary" disabled={busy || hostsLoading}>
            {busy ? 'Saving…' : editing ? 'Save changes' : 'Create link'}
          </button>
        </div>
      </form>
    </section>
  );
}

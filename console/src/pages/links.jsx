// Links: search (q, host, tag), a paged list, delete with confirmation and
// a QR code for any link. Create and edit are in link-edit.jsx.
import { useState, useEffect, useRef } from 'preact/hooks';
import { get, del, query } from '../api.js';
import { navigate, useRoute } from '../router.js';
import { ErrorBox, Loading, ConfirmDialog, fmtTime } from '../ui.jsx';
import { takeFlash, useDomains, QrDialog } from './link-common.jsx';

const PAGE = 25;

export function LinksPage({ session }) {
  const { params } = useRoute();
  const hosts = useDomains();
  const filters = { q: params.get('q') || '', host: params.get('host') || '', tag: params.get('tag') || '' };
  const [form, setForm] = useState(filters);
  // Cursors of the pages before this one, to go back.
  const [cursors, setCursors] = useState([]);
  const cursor = params.get('cursor') || '';
  const [state, setState] = useState({ loading: true, error: null, page: null });
  const [n, setN] = useState(0);
  const [deleting, setDeleting] = useState(null);
  const [deleteBusy, setDeleteBusy] = useState(false);
  const [deleteError, setDeleteError] = useState(null);
  const [qr, setQr] = useState(null);
  const [flash, setFlash] = useState(takeFlash);

  const key = `${filters.q}|${filters.host}|${filters.tag}|${cursor}`;
  // A message of the last change stays until the next search or page.
  const firstKey = useRef(key);
  useEffect(() => {
    if (key !== firstKey.current) setFlash(null);
  }, [key]);
  useEffect(() => {
    setForm(filters);
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    get(`/api/v1/links${query({ ...filters, cursor, limit: PAGE })}`).then(
      (page) => live && setState({ loading: false, error: null, page }),
      (error) => live && setState({ loading: false, error, page: null }),
    );
    return () => {
      live = false;
    };
  }, [key, n]);

  const search = (e) => {
    e.preventDefault();
    setCursors([]);
    navigate('/links', { q: form.q.trim(), host: form.host, tag: form.tag.trim() });
  };
  const clear = () => {
    setCursors([]);
    navigate('/links');
  };
  const next = () => {
    setCursors([...cursors, cursor]);
    navigate('/links', { ...filters, cursor: state.page.next_cursor });
  };
  const prev = () => {
    const c = cursors.slice(0, -1);
    const back = cursors[cursors.length - 1] || '';
    setCursors(c);
    navigate('/links', { ...filters, cursor: back });
  };

  const confirmDelete = async () => {
    setDeleteBusy(true);
    setDeleteError(null);
    try {
      await del(`/api/v1/links/${encodeURIComponent(deleting.id)}`);
      setFlash(`Deleted ${deleting.short_url}.`);
      setDeleting(null);
      setN((x) => x + 1);
    } catch (err) {
      setDeleteError(err);
    } finally {
      setDeleteBusy(false);
    }
  };

  const links = (state.page && state.page.links) || [];
  return (
    <section>
      <div class="page-head">
        <h1>Links</h1>
        {session.can_write !== false && (
          <a class="btn btn-primary" href="#/links/new">
            New link
          </a>
        )}
      </div>
      <p class="muted">
        {session.kind === 'operator'
          ? 'Every link of the link store, on every link domain.'
          : `Your links (key ${session.key || session.name}) on ${(session.hosts || []).join(', ')}.`}
      </p>
      <form class="filters" onSubmit={search} role="search" aria-label="Search links">
        <div class="field">
          <label for="f-q">Search</label>
          <input
            id="f-q"
            type="search"
            placeholder="code, destination or external id"
            value={form.q}
            onInput={(e) => setForm({ ...form, q: e.currentTarget.value })}
          />
        </div>
        <div class="field">
          <label for="f-host">Host</label>
          <select id="f-host" value={form.host} onChange={(e) => setForm({ ...form, host: e.currentTarget.value })}>
            <option value="">Any host</option>
            {[...new Set([...(hosts || []), ...(filters.host ? [filters.host] : [])])].map((h) => (
              <option key={h} value={h}>
                {h}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-tag">Tag</label>
          <input id="f-tag" value={form.tag} onInput={(e) => setForm({ ...form, tag: e.currentTarget.value })} />
        </div>
        <div class="filter-actions">
          <button type="submit" class="btn btn-primary">
            Search
          </button>
          <button type="button" class="btn" onClick={clear}>
            Clear
          </button>
        </div>
      </form>
      {flash && (
        <p class="alert alert-ok" role="status">
          {flash}
        </p>
      )}
      <ErrorBox error={state.error} title="Cannot list links" />
      {state.loading && !state.page && <Loading what="Loading links" />}
      {state.page && (
        <>
          {links.length === 0 ? (
            <p class="empty">No links{filters.q || filters.host || filters.tag ? ' match these filters' : ' yet'}.</p>
          ) : (
            <table class="table links-table" aria-label="Links">
              <thead>
                <tr>
                  <th scope="col">Short URL</th>
                  <th scope="col">Destination</th>
                  <th scope="col">Status</th>
                  <th scope="col">Tags</th>
                  <th scope="col">Updated</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {links.map((l) => (
                  <tr key={l.id} data-link-id={l.id} data-code={l.code}>
                    <td data-label="Short URL">
                      <a href={`#/links/${l.id}`} class="mono">
                        {l.host}/{l.code}
                      </a>
                      {l.expires_at && <div class="small muted">expires {fmtTime(l.expires_at)}</div>}
                    </td>
                    <td data-label="Destination" class="dest">
                      <div class="clamp" title={l.to}>
                        {l.to}
                      </div>
                    </td>
                    <td data-label="Status">{l.status}</td>
                    <td data-label="Tags">
                      {(l.tags || []).map((t) => (
                        <a key={t} class="tag" href={`#/links?tag=${encodeURIComponent(t)}`}>
                          {t}
                        </a>
                      ))}
                    </td>
                    <td data-label="Updated" class="nowrap">
                      {fmtTime(l.updated_at)}
                    </td>
                    <td class="row-actions">
                      <a class="btn btn-small" href={`#/links/${l.id}`} aria-label={`Analytics of ${l.host}/${l.code}`}>
                        Analytics
                      </a>
                      <button type="button" class="btn btn-small" onClick={() => setQr(l)} aria-label={`QR code of ${l.host}/${l.code}`}>
                        QR
                      </button>
                      {session.can_write !== false && (
                        <>
                          <a class="btn btn-small" href={`#/links/${l.id}/edit`} aria-label={`Edit ${l.host}/${l.code}`}>
                            Edit
                          </a>
                          <button
                            type="button"
                            class="btn btn-small btn-danger"
                            onClick={() => {
                              setDeleteError(null);
                              setDeleting(l);
                            }}
                            aria-label={`Delete ${l.host}/${l.code}`}
                          >
                            Delete
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <nav class="pager" aria-label="Pages">
            <button type="button" class="btn" onClick={prev} disabled={!cursor}>
              Previous page
            </button>
            <span class="muted">
              {links.length} link{links.length === 1 ? '' : 's'} on this page
            </span>
            <button type="button" class="btn" onClick={next} disabled={!state.page.next_cursor}>
              Next page
            </button>
          </nav>
        </>
      )}
      <ConfirmDialog
        open={Boolean(deleting)}
        title="Delete this link?"
        confirm="Delete"
        danger
        busy={deleteBusy}
        onConfirm={confirmDelete}
        onCancel={() => setDeleting(null)}
      >
        {deleting && (
          <>
            <p>
              <strong class="mono">{deleting.short_url}</strong> stops answering at once. Its click counts stay in the
              store.
            </p>
            <ErrorBox error={deleteError} title="Not deleted" />
          </>
        )}
      </ConfirmDialog>
      <QrDialog link={qr} onClose={() => setQr(null)} />
    </section>
  );
}

// Rules: the live version, the kept versions, a diff between any two, a
// rollback to any kept version (with confirmation), "Reload now", the live
// version's [[test]] count, and the last refused reload with its errors.
import { useState, useEffect } from 'preact/hooks';
import { get, post, query } from '../api.js';
import { ErrorBox, Loading, ConfirmDialog, Badge, fmtNumber, fmtTime, usePoll } from '../ui.jsx';

const POLL_MS = 3000;

const versionOf = (v) => (v && typeof v === 'object' ? v.version : v);

export function errorLine(e) {
  const where = [e.file, e.line, e.column].filter((x) => x !== undefined && x !== null && x !== '').join(':');
  const rule = e.rule ? `rule ${e.rule}: ` : '';
  return `${where ? `${where}: ` : ''}${rule}${e.message}`;
}

function ErrorList({ errors }) {
  return (
    <ul class="errors mono">
      {errors.map((e, i) => (
        <li key={i}>{errorLine(e)}</li>
      ))}
    </ul>
  );
}

function Diff({ text }) {
  if (text === '') return <p class="muted">The two versions have the same rules text.</p>;
  const lines = text.replace(/\n$/, '').split('\n');
  return (
    <pre class="diff" aria-label="Unified diff">
      {lines.map((l, i) => {
        let cls = '';
        if (l.startsWith('+++') || l.startsWith('---')) cls = 'd-head';
        else if (l.startsWith('@@')) cls = 'd-hunk';
        else if (l.startsWith('+')) cls = 'd-add';
        else if (l.startsWith('-')) cls = 'd-del';
        return (
          <span key={i} class={cls}>
            {l}
            {'\n'}
          </span>
        );
      })}
    </pre>
  );
}

function countsText(counts) {
  if (!counts) return '';
  return Object.entries(counts)
    .filter(([k, v]) => typeof v === 'number' && v > 0 && k !== 'tests')
    .map(([k, v]) => `${fmtNumber(v)} ${k.replace(/_/g, ' ')}`)
    .join(', ');
}

export function RulesPage() {
  const [live, setLive] = useState(null);
  const [versions, setVersions] = useState(null);
  const [error, setError] = useState(null);
  const [reloading, setReloading] = useState(false);
  const [result, setResult] = useState(null);
  const [rollbackTo, setRollbackTo] = useState(null);
  const [rollbackBusy, setRollbackBusy] = useState(false);
  const [rollbackError, setRollbackError] = useState(null);
  const [forceOpen, setForceOpen] = useState(false);
  const [diffA, setDiffA] = useState('');
  const [diffB, setDiffB] = useState('');
  const [diff, setDiff] = useState(null);
  const [viewing, setViewing] = useState(null);

  const refresh = async () => {
    try {
      const [r, v] = await Promise.all([get('/admin/rules'), get('/admin/versions')]);
      setLive(r);
      setVersions(v.versions || []);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  usePoll(refresh, POLL_MS);

  // Default diff: the version before the live one against the live one.
  useEffect(() => {
    if (!versions || versions.length < 2 || diffA || diffB) return;
    const a = String(versions[1].version);
    const b = String(versions[0].version);
    setDiffA(a);
    setDiffB(b);
    showDiff(a, b);
  }, [versions]);

  const showDiff = async (a, b) => {
    if (!a || !b) return;
    setDiff({ loading: true, a, b });
    try {
      const text = await get(`/admin/versions/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`, { text: true });
      setDiff({ a, b, text: text || '' });
    } catch (err) {
      setDiff({ a, b, error: err });
    }
  };

  const view = async (v) => {
    if (viewing && viewing.v === v) {
      setViewing(null);
      return;
    }
    setViewing({ v, loading: true });
    try {
      const text = await get(`/admin/versions/${encodeURIComponent(v)}/rules`, { text: true });
      setViewing({ v, text });
    } catch (err) {
      setViewing({ v, error: err });
    }
  };

  const reload = async (force) => {
    setReloading(true);
    setResult(null);
    try {
      const r = await post(`/admin/reload${query({ force: force ? 'true' : '' })}`);
      setResult({ ok: true, result: r.result, version: versionOf(r.version) });
    } catch (err) {
      if (err.status === 422 && !err.problem.detail) {
        err.message = `the new rules have ${err.errors.length} error(s); the live rules keep serving`;
      }
      setResult({ ok: false, error: err, held: err.status === 409 });
    } finally {
      setReloading(false);
      setForceOpen(false);
      refresh();
    }
  };

  const rollback = async () => {
    setRollbackBusy(true);
    setRollbackError(null);
    try {
      const r = await post(`/admin/rollback${query({ to: rollbackTo })}`);
      setResult({ ok: true, result: 'rollback', version: versionOf(r.version), to: rollbackTo });
      setRollbackTo(null);
      refresh();
    } catch (err) {
      if (err.status === 422 && !err.problem.detail) {
        err.message = `version ${rollbackTo} cannot go live again (${err.errors.length} error(s))`;
      }
      setRollbackError(err);
    } finally {
      setRollbackBusy(false);
    }
  };

  if (!live) {
    return (
      <section>
        <h1>Rules</h1>
        <ErrorBox error={error} title="Cannot read the rules" />
        {!error && <Loading what="Reading the live rules" />}
      </section>
    );
  }
  const refused = live.last_refused;
  const tests = live.counts && typeof live.counts.tests === 'number' ? live.counts.tests : null;
  const kept = versions || [];

  return (
    <section>
      <div class="page-head">
        <h1>Rules</h1>
        <div class="actions">
          <button type="button" class="btn btn-primary" onClick={() => reload(false)} disabled={reloading}>
            {reloading ? 'Reloading…' : 'Reload now'}
          </button>
        </div>
      </div>
      <ErrorBox error={error} title="Last refresh failed" />
      {result && result.ok && (
        <p class="alert alert-ok" role="status">
          {result.result === 'success' && `Reloaded: version ${result.version} is live.`}
          {result.result === 'unchanged' && `Unchanged: the files are those of version ${result.version}; nothing to reload.`}
          {result.result === 'rollback' && `Rolled back to version ${result.to}: version ${result.version} is live.`}
        </p>
      )}
      {result && !result.ok && (
        <div class="alert alert-error" role="alert">
          <strong>{result.held ? 'Reload held back' : 'Reload refused'}:</strong> {result.error.message}
          {result.error.errors.some((e) => e.file || e.line) && <ErrorList errors={result.error.errors} />}
          {result.held && (
            <p>
              <button type="button" class="btn btn-danger btn-small" onClick={() => setForceOpen(true)}>
                Reload anyway…
              </button>
            </p>
          )}
        </div>
      )}

      <div class="cards">
        <div class="card" aria-labelledby="live-title">
          <h2 class="h3" id="live-title">
            Live version
          </h2>
          <p class="big">
            <strong data-testid="live-version">{live.version}</strong>{' '}
            <span class="muted small">
              {live.trigger}, {fmtTime(live.loaded_at)}
            </span>
          </p>
          <dl class="props small">
            <dt>Source</dt>
            <dd class="break">{live.source}</dd>
            <dt>Hash</dt>
            <dd class="mono break">{live.hash}</dd>
            <dt>Contents</dt>
            <dd>{countsText(live.counts) || '–'}</dd>
          </dl>
        </div>
        <div class="card">
          <h2 class="h3">Tests</h2>
          {tests === null ? (
            <p class="muted small">The gateway does not report the test count.</p>
          ) : (
            <>
              <p class="big">
                <strong data-testid="tests-count">{fmtNumber(tests)}</strong> [[test]]
                {tests === 1 ? '' : 's'}
              </p>
              <p class="small">
                {tests > 0 ? (
                  <Badge kind="ok">all passed</Badge>
                ) : (
                  <Badge kind="warn">no tests</Badge>
                )}{' '}
                <span class="muted">A rule set with a failing test is refused, so the live one passed them all.</span>
              </p>
            </>
          )}
        </div>
        <div class={`card${refused ? ' card-warn' : ''}`} data-testid="last-refused">
          <h2 class="h3">Last refused reload</h2>
          {!refused ? (
            <p class="muted small">No reload has been refused since the gateway started.</p>
          ) : (
            <>
              <p class="small">
                {fmtTime(refused.at)} · {refused.trigger} · <span class="break">{refused.source}</span>
              </p>
              <p class="small">The live rules kept serving. {(refused.errors || []).length} error(s):</p>
              <ErrorList errors={refused.errors || []} />
            </>
          )}
        </div>
      </div>

      <h2>Versions</h2>
      <p class="muted small">The gateway keeps the rules text of its last versions, newest first.</p>
      {kept.length === 0 ? (
        <Loading />
      ) : (
        <table class="table versions-table" aria-label="Kept versions">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Made by</th>
              <th scope="col">Loaded</th>
              <th scope="col">Contents</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {kept.map((v) => {
              const isLive = v.version === live.version;
              return (
                <tr key={v.version} data-version={v.version}>
                  <td data-label="Version">
                    <strong>{v.version}</strong> {isLive && <Badge kind="ok">live</Badge>}
                  </td>
                  <td data-label="Made by">
                    {v.trigger}
                    <div class="small muted break">{v.source}</div>
                  </td>
                  <td data-label="Loaded" class="nowrap">
                    {fmtTime(v.loaded_at)}
                  </td>
                  <td data-label="Contents" class="small">
                    {countsText(v.counts)}
                  </td>
                  <td class="row-actions">
                    <button type="button" class="btn btn-small" onClick={() => view(v.version)} aria-expanded={viewing && viewing.v === v.version ? 'true' : 'false'} aria-label={`Rules text of version ${v.version}`}>
                      Text
                    </button>
                    {!isLive && (
                      <button
                        type="button"
                        class="btn btn-small"
                        onClick={() => {
                          setRollbackError(null);
                          setRollbackTo(v.version);
                        }}
                        aria-label={`Roll back to version ${v.version}`}
                      >
                        Roll back to this
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {viewing && (
        <div class="card">
          <h3>Rules text of version {viewing.v}</h3>
          {viewing.loading && <Loading />}
          <ErrorBox error={viewing.error} />
          {viewing.text !== undefined && <pre class="code">{viewing.text}</pre>}
        </div>
      )}

      <h2 id="diff-title">Compare versions</h2>
      <form
        class="filters"
        aria-labelledby="diff-title"
        onSubmit={(e) => {
          e.preventDefault();
          showDiff(diffA, diffB);
        }}
      >
        <div class="field">
          <label for="diff-a">From version</label>
          <select id="diff-a" value={diffA} onChange={(e) => setDiffA(e.currentTarget.value)}>
            <option value="">choose</option>
            {kept.map((v) => (
              <option key={v.version} value={String(v.version)}>
                {v.version}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="diff-b">To version</label>
          <select id="diff-b" value={diffB} onChange={(e) => setDiffB(e.currentTarget.value)}>
            <option value="">choose</option>
            {kept.map((v) => (
              <option key={v.version} value={String(v.version)}>
                {v.version}
              </option>
            ))}
          </select>
        </div>
        <div class="filter-actions">
          <button type="submit" class="btn btn-primary" disabled={!diffA || !diffB}>
            Show diff
          </button>
        </div>
      </form>
      {diff && (
        <div class="card" data-testid="diff">
          <h3>
            Version {diff.a} → version {diff.b}
          </h3>
          {diff.loading && <Loading />}
          <ErrorBox error={diff.error} />
          {diff.text !== undefined && <Diff text={diff.text} />}
        </div>
      )}
      {kept.length < 2 && <p class="muted small">Only one version so far: a diff needs two.</p>}

      <ConfirmDialog
        open={rollbackTo !== null}
        title={`Roll back to version ${rollbackTo}?`}
        confirm={`Roll back to version ${rollbackTo}`}
        danger
        busy={rollbackBusy}
        onConfirm={rollback}
        onCancel={() => setRollbackTo(null)}
      >
        <p>
          The rules of version {rollbackTo} go live at once, as a new version, and their text is written back over the
          rules file. CSV and body files are not versioned: a later reload reads them as they are on disk.
        </p>
        <ErrorBox error={rollbackError} title="Not rolled back" />
        {rollbackError && rollbackError.errors.some((e) => e.file || e.line) && <ErrorList errors={rollbackError.errors} />}
      </ConfirmDialog>
      <ConfirmDialog
        open={forceOpen}
        title="Reload anyway?"
        confirm="Reload anyway"
        danger
        busy={reloading}
        onConfirm={() => reload(true)}
        onCancel={() => setForceOpen(false)}
      >
        <p>
          The new rules remove a large share of the live rules and links (or all of them). Make them live only if that
          is what you meant.
        </p>
      </ConfirmDialog>
    </section>
  );
}

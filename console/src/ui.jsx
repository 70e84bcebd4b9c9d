// Small shared pieces: formatting, polling, the confirmation dialog, error
// boxes and labelled form fields.
import { useEffect, useRef, useState, useCallback } from 'preact/hooks';

export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtRate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (n >= 100) return fmtNumber(n, 0);
  if (n >= 10) return fmtNumber(n, 1);
  return fmtNumber(n, 2);
}

export function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '–';
  if (!Number.isFinite(s)) return `> ${fmtNumber(10)} s`;
  if (s === 0) return '0 s';
  if (s < 0.001) return `${fmtNumber(s * 1e6, 0)} µs`;
  if (s < 1) return `${fmtNumber(s * 1000, s < 0.01 ? 2 : 1)} ms`;
  return `${fmtNumber(s, 2)} s`;
}

export function fmtPercent(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return `${fmtNumber(x * 100, x < 0.1 ? 2 : 1)} %`;
}

/** RFC 3339 → a short UTC date and time. */
export function fmtTime(t) {
  if (!t) return '–';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Runs `fn` now and every `ms` while mounted (and the page is visible). */
export function usePoll(fn, ms, deps = []) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    let stopped = false;
    let timer = null;
    const tick = async () => {
      if (stopped) return;
      try {
        await saved.current();
      } finally {
        if (!stopped) timer = setTimeout(tick, ms);
      }
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, deps);
}

/** Loads `fn()` whenever deps change: {data, error, loading, reload}. */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [n, setN] = useState(0);
  const reload = useCallback(() => setN((x) => x + 1), []);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(fn)
      .then(
        (data) => live && setState({ data, error: null, loading: false }),
        (error) => live && setState({ data: null, error, loading: false }),
      );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...state, reload };
}

export function ErrorBox({ error, title }) {
  if (!error) return null;
  // Field errors are shown at their field, rule errors (file, line) by the
  // caller; the rest here.
  const lines = (error.errors || []).filter(
    (e) => e && e.message && !e.field && !e.file && !e.line && e.message !== error.message,
  );
  return (
    <div class="alert alert-error" role="alert">
      {title && <strong>{title}: </strong>}
      {error.message}
      {lines.length > 0 && (
        <ul>
          {lines.map((e, i) => (
            <li key={i}>{e.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Loading({ what = 'Loading' }) {
  return (
    <p class="muted" role="status">
      {what}…
    </p>
  );
}

/**
 * A modal confirmation built on <dialog>: focus moves into it, Escape
 * cancels, and the confirm button is named by `confirm`.
 */
let dialogs = 0;

export function ConfirmDialog({ open, title, children, confirm = 'Confirm', danger, busy, onConfirm, onCancel }) {
  const ref = useRef(null);
  const [titleId] = useState(() => `dialog-title-${++dialogs}`);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          onConfirm();
        }}
      >
        <h2 id={titleId}>{title}</h2>
        <div class="dialog-body">{children}</div>
        <div class="actions">
          <button type="button" class="btn" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
          <button type="submit" class={danger ? 'btn btn-danger' : 'btn btn-primary'} disabled={busy}>
            {busy ? 'Working…' : confirm}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** A labelled input with its error messages tied to it (aria-describedby). */
export function Field({ id, label, hint, errors, children, wide }) {
  const errId = `${id}-error`;
  const hintId = `${id}-hint`;
  const has = errors && errors.length > 0;
  const describedBy = [hint ? hintId : null, has ? errId : null].filter(Boolean).join(' ') || undefined;
  const child = typeof children === 'function' ? children({ id, invalid: has, describedBy }) : children;
  return (
    <div class={`field${has ? ' field-invalid' : ''}${wide ? ' field-wide' : ''}`}>
      <label for={id}>{label}</label>
      {child}
      {hint && (
        <div class="hint" id={hintId}>
          {hint}
        </div>
      )}
      {has && (
        <div class="field-error" id={errId} role="alert" data-field={id}>
          {errors.map((m, i) => (
            <div key={i}>{m}</div>
          ))}
        </div>
      )}
    </div>
  );
}

export function Badge({ kind = 'neutral', children }) {
  return <span class={`badge badge-${kind}`}>{children}</span>;
}

export function Stat({ label, value, sub, kind }) {
  return (
    <div class={`stat${kind ? ` stat-${kind}` : ''}`}>
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
      {sub && <div class="stat-sub">{sub}</div>}
    </div>
  );
}

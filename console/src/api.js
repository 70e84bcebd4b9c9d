// Every request the console makes goes through here: same-origin cookie,
// the CSRF header on writes, problem JSON read into an ApiError, and a 401
// anywhere sends the console back to the login screen.
//
// The CSRF value is kept in this module's memory only (never localStorage);
// after a page load it is read again with GET /console/session.

let csrf = null;
let onUnauthorized = () => {};

export function setCsrf(value) {
  csrf = value || null;
}

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export class ApiError extends Error {
  constructor(status, problem) {
    const p = problem || {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.status = status;
    this.type = p.type || null;
    this.problem = p;
    // [{field, message}] (problem JSON) or [{file, line, column, rule, message}]
    // (refused rules).
    this.errors = Array.isArray(p.errors) ? p.errors : [];
  }
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Sends a request and returns the answer's body: parsed JSON, text, or null
 * for an empty answer. Throws ApiError for any status >= 400.
 *
 * options: method, body (an object is sent as JSON), headers, text (read the
 * answer as text), raw (return the Response too), auth (false: do not treat
 * 401 as an expired session, for the login itself).
 */
export async function request(path, options = {}) {
  const method = (options.method || 'GET').toUpperCase();
  const headers = { Accept: 'application/json, application/problem+json, text/plain', ...options.headers };
  let body;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  if (WRITES.has(method) && csrf) headers['X-CSRF-Token'] = csrf;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, { title: 'Network error', detail: `The gateway cannot be reached (${e.message}).` });
  }
  const type = resp.headers.get('content-type') || '';
  let data = null;
  const raw = await resp.text();
  if (raw.length > 0) {
    if (!options.text && type.includes('json')) {
      try {
        data = JSON.parse(raw);
      } catch {
        data = { detail: raw };
      }
    } else {
      data = raw;
    }
  }
  if (resp.status === 401 && options.auth !== false) {
    onUnauthorized();
  }
  if (resp.status >= 400) {
    let problem = data;
    if (typeof problem === 'string') problem = { detail: problem.trim() };
    if (!problem) problem = { title: resp.statusText || `HTTP ${resp.status}` };
    throw new ApiError(resp.status, problem);
  }
  return options.raw ? { data, resp } : data;
}

export const get = (path, options) => request(path, { ...options, method: 'GET' });
export const post = (path, body, options) => request(path, { ...options, method: 'POST', body });
export const patch = (path, body, options) => request(path, { ...options, method: 'PATCH', body });
export const del = (path, options) => request(path, { ...options, method: 'DELETE' });

/** A query string of the defined, non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Field errors of an ApiError by field name (`to`, `countries.DE`, `tags[0]`, ...). */
export function fieldErrors(err) {
  const out = {};
  for (const e of (err && err.errors) || []) {
    const key = e.field || '';
    (out[key] = out[key] || []).push(e.message);
  }
  return out;
}

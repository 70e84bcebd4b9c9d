// Hash routing (#/links, #/links/42, ...): the gateway only ever serves
// index.html and the built files, whatever the page.
import { useEffect, useState } from 'preact/hooks';

export function currentPath() {
  const h = window.location.hash.replace(/^#/, '');
  const [path, q = ''] = h.split('?');
  return { path: path || '/', params: new URLSearchParams(q) };
}

export function useRoute() {
  const [route, setRoute] = useState(currentPath);
  useEffect(() => {
    const on = () => setRoute(currentPath());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function navigate(path, params) {
  let h = `#${path}`;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    const s = q.toString();
    if (s) h += `?${s}`;
  }
  if (window.location.hash !== h) window.location.hash = h;
}

/** Matches `/links/:id` style patterns; returns the params or null. */
export function match(pattern, path) {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const out = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

// The console: session, navigation and pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { get, del, setCsrf, setUnauthorizedHandler } from './api.js';
import { useRoute, match, navigate } from './router.js';
import { Login } from './pages/login.jsx';
import { Overview } from './pages/overview.jsx';
import { LinksPage } from './pages/links.jsx';
import { LinkEdit } from './pages/link-edit.jsx';
import { LinkDetail } from './pages/link-detail.jsx';
import { RulesPage } from './pages/rules.jsx';
import { ExplainPage } from './pages/explain.jsx';
import { UpstreamsPage } from './pages/upstreams.jsx';
import { Loading } from './ui.jsx';

const OPERATOR_NAV = [
  ['/overview', 'Overview'],
  ['/links', 'Links'],
  ['/rules', 'Rules'],
  ['/explain', 'Explain'],
  ['/upstreams', 'Upstreams'],
];
const PARTNER_NAV = [['/links', 'Links']];

function routes(session, path) {
  const operator = session.kind === 'operator';
  let m;
  if (path === '/links') return <LinksPage session={session} />;
  if (path === '/links/new') return <LinkEdit session={session} />;
  if ((m = match('/links/:id/edit', path))) return <LinkEdit session={session} id={m.id} />;
  if ((m = match('/links/:id', path))) return <LinkDetail session={session} id={m.id} />;
  const operatorPages = {
    '/overview': () => <Overview />,
    '/rules': () => <RulesPage />,
    '/explain': () => <ExplainPage />,
    '/upstreams': () => <UpstreamsPage />,
  };
  if (operatorPages[path]) {
    if (operator) return operatorPages[path]();
    return (
      <section>
        <h1>Not available</h1>
        <p role="alert">This page is for operators. A partner session sees its links only.</p>
        <p>
          <a href="#/links">Go to your links</a>
        </p>
      </section>
    );
  }
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no page <code>{path}</code>. <a href={operator ? '#/overview' : '#/links'}>Go to the start page</a>.
      </p>
    </section>
  );
}

function Shell({ session, onLogout }) {
  const { path } = useRoute();
  const [menuOpen, setMenuOpen] = useState(false);
  const nav = session.kind === 'operator' ? OPERATOR_NAV : PARTNER_NAV;
  useEffect(() => {
    if (path === '/' || path === '/login') navigate(session.kind === 'operator' ? '/overview' : '/links');
    setMenuOpen(false);
  }, [path]);
  const active = (p) => path === p || path.startsWith(`${p}/`);
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <div class="brand">
          <span class="logo" aria-hidden="true">⇢</span> Gateway console
        </div>
        <button
          type="button"
          class="btn menu-toggle"
          aria-expanded={menuOpen ? 'true' : 'false'}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="nav" class={`nav${menuOpen ? ' open' : ''}`} aria-label="Main">
          <ul>
            {nav.map(([p, label]) => (
              <li key={p}>
                <a href={`#${p}`} aria-current={active(p) ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
          <div class="who">
            <span class="who-name" title={session.key ? `key ${session.key}` : undefined}>
              {session.kind === 'operator' ? 'Operator' : `Partner ${session.name || ''}`}
            </span>
            <button type="button" class="btn btn-small" onClick={onLogout}>
              Log out
            </button>
          </div>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {routes(session, path)}
      </main>
    </div>
  );
}

function App() {
  // undefined: still asking GET /console/session; null: logged out.
  const [session, setSession] = useState(undefined);
  const [notice, setNotice] = useState(null);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setCsrf(null);
      setSession((s) => {
        if (s) setNotice('Your session has ended. Log in again.');
        return null;
      });
    });
    get('/console/session', { auth: false }).then(
      (s) => {
        setCsrf(s.csrf);
        setSession(s);
      },
      () => setSession(null),
    );
  }, []);

  const login = (s) => {
    setCsrf(s.csrf);
    setNotice(null);
    setSession(s);
  };
  const logout = async () => {
    try {
      await del('/console/session', { auth: false });
    } catch {
      // Logged out either way: the cookie is cleared or no longer valid.
    }
    setCsrf(null);
    setSession(null);
    setNotice('You are logged out.');
  };

  if (session === undefined) return <main class="center"><Loading what="Opening the console" /></main>;
  if (!session) return <Login onLogin={login} notice={notice} />;
  return <Shell session={session} onLogout={logout} />;
}

render(<App />, document.getElementById('app'));

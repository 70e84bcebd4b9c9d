// Login: the admin token (admin listener) or an API key secret (API
// listener), exchanged for an HttpOnly session cookie. The token is sent
// once and kept nowhere.
import { useState, useRef, useEffect } from 'preact/hooks';
import { post } from '../api.js';

export function Login({ onLogin, notice }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => input.current && input.current.focus(), []);

  const submit = async (e) => {
    e.preventDefault();
    if (!token.trim()) {
      setError('Enter the admin token or your API key.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await post('/console/session', { token: token.trim() }, { auth: false });
      setToken('');
      onLogin(s);
    } catch (err) {
      setError(
        err.status === 401
          ? `Login refused: ${err.message || 'wrong token or key'}.`.replace('..', '.')
          : err.message || 'Login failed.',
      );
      if (input.current) input.current.select();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="card login-card" onSubmit={submit} aria-labelledby="login-title" noValidate>
        <h1 id="login-title">
          <span class="logo" aria-hidden="true">⇢</span> Gateway console
        </h1>
        {notice && (
          <p class="alert alert-info" role="status">
            {notice}
          </p>
        )}
        <div class="field">
          <label for="login-token">Admin token or API key</label>
          <input
            ref={input}
            id="login-token"
            name="token"
            type="password"
            autoComplete="current-password"
            spellcheck={false}
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            aria-invalid={error ? 'true' : undefined}
            aria-describedby={error ? 'login-error login-hint' : 'login-hint'}
          />
          <div class="hint" id="login-hint">
            Operators: the admin token, on the admin listener. Partners: your API key (<code>gwk_…</code>), on the
            Links API listener.
          </div>
          {error && (
            <div class="field-error" id="login-error" role="alert">
              {error}
            </div>
          )}
        </div>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <p class="muted small">
          The session is an HttpOnly cookie valid for 8 hours on this gateway; the token itself is not stored.
        </p>
      </form>
    </main>
  );
}

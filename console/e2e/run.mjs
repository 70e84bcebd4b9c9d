// End-to-end tests of the console: a real gateway binary, a real browser.
//
//   GATEWAY_BIN=/abs/path/to/gateway node e2e/run.mjs
//
// Starts the gateway ($GATEWAY_BIN run --config <tmp>/gateway.toml) in a
// temporary directory on free loopback ports, with a SQLite link store,
// click events to files, analytics, an upstream pool whose backend is a
// small HTTP server of this script, and rules with [[test]]s. Then drives
// Debian's Chromium through playwright-core, a fresh browser context per
// test. The gateway is stopped (SIGTERM) at the end, whatever happens.
//
// Environment:
//   GATEWAY_BIN          the gateway binary (absolute path; required)
//   GATEWAY_CONSOLE_DIR  passed on to the gateway: serve the console from this
//                        directory instead of the embedded files
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   CONSOLE_SCREENSHOTS  a directory: save a PNG of each page there
//   E2E_KEEP=1           keep the temporary directory (its path is printed)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const GATEWAY_BIN = process.env.GATEWAY_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS ? path.resolve(process.env.CONSOLE_SCREENSHOTS) : null;
const TEST_TIMEOUT = 45_000;
// The whole run, whatever hangs: well under 3 minutes.
const RUN_TIMEOUT = 170_000;

const UA = {
  desktop: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  iphone:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
  bot: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
};

if (!GATEWAY_BIN || !path.isAbsolute(GATEWAY_BIN) || !fs.existsSync(GATEWAY_BIN)) {
  console.error('e2e: set GATEWAY_BIN to the absolute path of a gateway binary');
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One HTTP request with node:http (fetch may not set Host). */
function httpReq({ port, method = 'GET', path: p = '/', headers = {}, body, timeout = 5000 }) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: p,
        headers: { ...(data !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}), ...headers },
        timeout,
        agent: false,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Thrown by an `until` probe to stop waiting at once. */
class Fatal extends Error {}

/** Polls `fn` until it returns a truthy value; fails with `what` after `ms`. */
async function until(what, fn, ms = 10_000, every = 250) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      if (e instanceof Fatal) throw e;
      last = e;
    }
    if (Date.now() > end) {
      const why = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${why})`);
    }
    await sleep(every);
  }
}

/** Writes a file atomically (temporary file + rename), as deploy tools do. */
function writeAtomic(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------
// The world: temp dir, ports, backend, gateway, browser
// ---------------------------------------------------------------------------

const W = {
  dir: null,
  ports: {},
  token: crypto.randomBytes(24).toString('base64url').slice(0, 32),
  gateway: null,
  gatewayExit: null,
  backend: null,
  browser: null,
  keys: {},
  links: {},
  failed: [],
};

const adminUrl = (p = '/console/') => `http://127.0.0.1:${W.ports.admin}${p}`;
const apiUrl = (p = '/console/') => `http://127.0.0.1:${W.ports.api}${p}`;

function rulesV1(backendPort) {
  return `# e2e rules, version 1
[settings]
country_header = "CloudFront-Viewer-Country"

[[domain]]
id = "go-domain"
host = "go.example.com"
store = true

[[redirect]]
id = "docs"
host = "go.example.com"
path = "/docs"
to = "https://docs.example.com/start"

[[redirect]]
id = "product"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/products/{sku}"
ios = "https://apps.example.com/p/{sku}"

[[route]]
id = "api-v1"
host = "api.example.com"
prefix = "/v1/"
upstream = "backend"

# At most 2 requests a minute per client address.
[[route]]
id = "api-limited"
host = "api.example.com"
prefix = "/limited/"
upstream = "backend"
rate_limit = { key = "ip", rate = "2/m", burst = 2 }

[upstream.backend]
servers = ["127.0.0.1:${backendPort}"]
health_check = { type = "http", path = "/healthz", interval = "1s", timeout = "500ms", unhealthy_after = 2, healthy_after = 1 }

[[test]]
name = "docs"
url = "https://go.example.com/docs"
expect_status = 302
expect_rule = "docs"
expect_location = "https://docs.example.com/start"

[[test]]
name = "product on an iPhone opens the app"
url = "https://go.example.com/p/42"
user_agent = "${UA.iphone}"
expect_rule = "product"
expect_location = "https://apps.example.com/p/42"

[[test]]
name = "the API route goes to the backend"
url = "https://api.example.com/v1/orders?x=1"
expect_upstream = "backend"
expect_path = "/v1/orders?x=1"
`;
}

const rulesV2 = (backendPort) =>
  rulesV1(backendPort)
    .replace('# e2e rules, version 1', '# e2e rules, version 2')
    .replaceAll('https://docs.example.com/start', 'https://docs.example.com/start-v2');

// A rule whose path lacks its leading slash: refused with its position.
const rulesBroken = (backendPort) =>
  `${rulesV2(backendPort)}
[[redirect]]
id = "broken"
host = "go.example.com"
path = "no-slash"
to = "https://docs.example.com/"
`;

async function startBackend(port) {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ backend: true, path: req.url }));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return server;
}

async function startGateway() {
  const d = W.dir;
  const config = `# e2e: console tests
[server]
listen = ["127.0.0.1:${W.ports.server}"]
threads = 1
grace_period = "1s"
pid_file = "${d}/gateway.pid"
upgrade_sock = "${d}/upgrade.sock"

[admin]
listen = "127.0.0.1:${W.ports.admin}"
token = "${W.token}"

[rules]
path = "${d}/rules.toml"
debounce = "100ms"

[api]
listen = "127.0.0.1:${W.ports.api}"
short_url_scheme = "http"

[store]
url = "sqlite://${d}/gateway.db"
poll_interval = "100ms"

[clicks]
enabled = true
sink = "file"
dir = "${d}/clicks"

[analytics]
enabled = true
flush_every = "200ms"

[log]
level = "info"
format = "text"
`;
  fs.writeFileSync(path.join(d, 'gateway.toml'), config);
  writeAtomic(path.join(d, 'rules.toml'), rulesV1(W.ports.backend));
  const log = fs.openSync(path.join(d, 'gateway.log'), 'a');
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('GATEWAY_') && k !== 'GATEWAY_CONSOLE_DIR') delete env[k];
  W.gateway = spawn(GATEWAY_BIN, ['run', '--config', path.join(d, 'gateway.toml')], {
    cwd: d,
    env,
    stdio: ['ignore', log, log],
  });
  W.gatewayExit = new Promise((r) => W.gateway.on('exit', (code, signal) => r({ code, signal })));
  W.gateway.on('exit', (code, signal) => {
    W.gateway.exited = { code, signal };
  });
  await until(
    'GET /ready on the admin listener',
    async () => {
      if (W.gateway.exited) {
        throw new Fatal(`the gateway exited at start (${JSON.stringify(W.gateway.exited)}); its log:\n${logTail(15)}`);
      }
      const r = await httpReq({ port: W.ports.admin, path: '/ready', timeout: 1000 });
      return r.status === 200;
    },
    40_000,
    200,
  );
}

function stopGateway() {
  if (W.gateway && !W.gateway.exited) {
    try {
      W.gateway.kill('SIGTERM');
    } catch {
      // gone already
    }
  }
}

function logTail(lines = 40) {
  try {
    const t = fs.readFileSync(path.join(W.dir, 'gateway.log'), 'utf8').trimEnd().split('\n');
    return t.slice(-lines).join('\n');
  } catch {
    return '(no gateway log)';
  }
}

/** Admin API with the bearer token. */
const admin = (method, p, body) =>
  httpReq({ port: W.ports.admin, method, path: p, body, headers: { authorization: `Bearer ${W.token}` } });

/** Links API with an API key. */
const api = (key, method, p, body) =>
  httpReq({ port: W.ports.api, method, path: p, body, headers: { authorization: `Bearer ${key}` } });

/** A request to the redirect listener for go.example.com. */
const visit = (p, ua, extra = {}) =>
  httpReq({ port: W.ports.server, path: p, headers: { host: 'go.example.com', 'user-agent': ua, ...extra } });

async function makeKey(name) {
  const r = await admin('POST', '/admin/keys', { name, hosts: ['go.example.com'] });
  assert.equal(r.status, 201, `POST /admin/keys for ${name}: ${r.status} ${r.text}`);
  return { id: r.json.key.id, secret: r.json.secret };
}

async function makeLink(key, body) {
  const r = await api(key.secret, 'POST', '/api/v1/links', body);
  assert.equal(r.status, 201, `POST /api/v1/links ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.json;
}

// ---------------------------------------------------------------------------
// Browser helpers
// ---------------------------------------------------------------------------

async function newPage(viewport = { width: 1280, height: 800 }) {
  const context = await W.browser.newContext({ viewport, deviceScaleFactor: 1, locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`  [page error] ${e.message}`));
  return { context, page };
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

async function login(page, url, token) {
  await page.goto(url);
  await page.getByLabel('Admin token or API key').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('main#main').waitFor();
  // The shell sends a new session to its start page just after its first
  // paint: a test that navigated before that would be sent back there.
  await page.waitForURL(/#\/(overview|links)$/);
}

const loginOperator = (page) => login(page, adminUrl(), W.token);

/** Every form control and button of the page has an accessible name. */
async function assertLabelled(page, where) {
  const unnamed = await page.evaluate(() => {
    const out = [];
    const visible = (el) => el.getClientRects().length > 0;
    for (const el of document.querySelectorAll('input, select, textarea, button')) {
      if (!visible(el) || el.type === 'hidden') continue;
      const named =
        (el.labels && el.labels.length > 0) ||
        el.getAttribute('aria-label') ||
        el.getAttribute('aria-labelledby') ||
        (el.tagName === 'BUTTON' && el.textContent.trim());
      if (!named) out.push(el.outerHTML.slice(0, 120));
    }
    return out;
  });
  assert.deepEqual(unnamed, [], `controls without a label on ${where}`);
}

async function heading(page, text) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor();
}

/** A test with a fresh browser context, a screenshot of the page on failure. */
function e2e(name, fn, opts = {}) {
  test(name, { timeout: TEST_TIMEOUT }, async () => {
    const { context, page } = await newPage(opts.viewport);
    try {
      await fn(page, context);
    } catch (e) {
      W.failed.push(name);
      try {
        const f = path.join(W.dir, `failure-${W.failed.length}.png`);
        await page.screenshot({ path: f, fullPage: true, timeout: 5000 });
        console.error(`  [${name}] failed at ${page.url()}; screenshot ${f}`);
      } catch {
        // no screenshot
      }
      throw e;
    } finally {
      await context.close().catch(() => {});
    }
  });
}

// ---------------------------------------------------------------------------
// Set-up and tear-down
// ---------------------------------------------------------------------------

const runTimer = setTimeout(() => {
  console.error(`e2e: the run took longer than ${RUN_TIMEOUT / 1000} s; stopping`);
  stopGateway();
  process.exit(1);
}, RUN_TIMEOUT);
runTimer.unref();

process.on('exit', stopGateway);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopGateway();
    process.exit(1);
  });
}

before(async () => {
  try {
    await setUp();
  } catch (e) {
    W.failed.push(`set-up: ${e.message.split('\n')[0]}`);
    throw e;
  }
});

async function setUp() {
  W.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-e2e-'));
  console.log(`# e2e: working directory ${W.dir}`);
  for (const k of ['server', 'admin', 'api', 'backend']) W.ports[k] = await freePort();
  W.backend = await startBackend(W.ports.backend);
  await startGateway();

  // Two partners on the same link domain, each with a link of its own.
  W.keys.a = await makeKey('partner-a');
  W.keys.b = await makeKey('partner-b');
  W.links.a = await makeLink(W.keys.a, { host: 'go.example.com', code: 'a-spring', to: 'https://a.example.com/spring', tags: ['spring'] });
  W.links.aLong = await makeLink(W.keys.a, {
    host: 'go.example.com',
    code: 'a-very-long-campaign-code-for-the-autumn-catalogue-2026',
    to: `https://a.example.com/campaigns/autumn/${'x'.repeat(180)}?utm_source=partner&utm_medium=email&utm_campaign=autumn`,
  });
  W.links.b = await makeLink(W.keys.b, { host: 'go.example.com', code: 'b-secret', to: 'https://b.example.com/secret' });

  W.browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
    timeout: 30_000,
  });
}

after(async () => {
  if (W.browser) await W.browser.close().catch(() => {});
  stopGateway();
  if (W.gateway) {
    const done = await Promise.race([W.gatewayExit, sleep(8000).then(() => null)]);
    if (!done) {
      console.error('e2e: the gateway did not stop within 8 s of SIGTERM; killing it');
      W.gateway.kill('SIGKILL');
    }
  }
  if (W.backend) W.backend.close();
  if (W.failed.length) {
    console.error(`\n# e2e FAILED: ${W.failed.join('; ')}`);
    console.error(`# last lines of the gateway log (${W.dir}/gateway.log):\n${logTail()}`);
  } else if (W.dir && !process.env.E2E_KEEP) {
    fs.rmSync(W.dir, { recursive: true, force: true });
  }
  clearTimeout(runTimer);
});

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

e2e('1. operator login: HttpOnly SameSite=Strict cookie; a wrong token is refused', async (page, context) => {
  await page.goto(adminUrl());
  const field = page.getByLabel('Admin token or API key');
  await field.waitFor();
  await shot(page, 'login');

  await field.fill('not-the-admin-token-at-all');
  await page.getByRole('button', { name: 'Log in' }).click();
  const err = page.locator('#login-error');
  await err.waitFor();
  assert.match(await err.textContent(), /refused|wrong/i, 'a wrong token shows an error');
  assert.equal((await context.cookies()).filter((c) => c.name.startsWith('gateway_console')).length, 0, 'no session cookie for a wrong token');

  await field.fill(W.token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await heading(page, 'Overview');

  const cookies = (await context.cookies()).filter((c) => c.name.startsWith('gateway_console'));
  assert.equal(cookies.length, 1, `one session cookie, got ${JSON.stringify(cookies)}`);
  const [c] = cookies;
  assert.equal(c.httpOnly, true, 'the session cookie is HttpOnly');
  assert.equal(c.sameSite, 'Strict', 'the session cookie is SameSite=Strict');
  assert.equal(c.secure, true, 'the session cookie is Secure');
  assert.ok(!(await page.evaluate(() => document.cookie)).includes(c.value), 'scripts cannot read the session cookie');

  // Nothing secret in web storage; a reload keeps the session (GET /console/session).
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!storage.includes(W.token), 'the token is not in web storage');
  await page.reload();
  await heading(page, 'Overview');

  // Log out: back to the login form, and the session is gone on the server.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('Admin token or API key').waitFor();
  const status = await page.evaluate(async () => (await fetch('/console/session', { credentials: 'same-origin' })).status);
  assert.equal(status, 401, 'GET /console/session after logout');

  // A 401 on any page (here: the cookie is gone) leads back to the login form.
  await loginOperator(page);
  await heading(page, 'Overview');
  // (The overview's next poll may meet the 401 first: go to Links by the
  // address, which works whether the menu is still there or not.)
  await context.clearCookies();
  await page.evaluate(() => {
    window.location.hash = '#/links';
  });
  await page.getByLabel('Admin token or API key').waitFor();
  await page.getByText('Your session has ended').waitFor();
});

e2e('2. create a link on the Links page; an invalid destination is shown at its field', async (page) => {
  await loginOperator(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Links' }).click();
  await heading(page, 'Links');
  await page.getByRole('link', { name: 'New link' }).click();
  await heading(page, 'New link');
  await page.getByText('Devices, countries, expiry and more').click();
  await assertLabelled(page, 'the new link form');

  await page.getByLabel('Host').selectOption('go.example.com');
  await page.getByLabel('Code').fill('summer-e2e');
  const dest = page.getByLabel('Destination', { exact: true });
  await dest.fill('javascript:alert(1)');
  await page.getByRole('button', { name: 'Create link' }).click();
  const destError = page.locator('#link-to-error');
  await destError.waitFor();
  assert.match(await destError.textContent(), /javascript/, 'the error names the bad destination');
  assert.equal(await dest.getAttribute('aria-invalid'), 'true', 'the destination field is marked invalid');
  assert.equal(
    await dest.getAttribute('aria-describedby').then((v) => (v || '').split(' ').includes('link-to-error')),
    true,
    'the error is tied to the destination field',
  );
  // The error sits in the destination's own field, not in a summary elsewhere.
  assert.equal(await page.locator('.field', { has: dest }).locator('#link-to-error').count(), 1);

  await dest.fill('https://shop.example.com/summer');
  await page.getByRole('button', { name: 'Create link' }).click();
  await heading(page, 'Links');
  const row = page.locator('tr[data-code="summer-e2e"]');
  await row.waitFor();
  assert.match(await row.textContent(), /https:\/\/shop\.example\.com\/summer/);
  await page.getByRole('status').filter({ hasText: 'Created' }).waitFor();

  // Edit it: a tag (PATCH with If-Match), shown on its page.
  await row.getByRole('link', { name: 'Edit go.example.com/summer-e2e' }).click();
  await heading(page, 'Edit link');
  await page.getByLabel('Tags').fill('summer, e2e');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'Analytics' }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  assert.match(await page.locator('dl.props').first().textContent(), /summer\s*e2e/);

  // Another link, deleted through the confirmation dialog.
  await page.goto(adminUrl('/console/#/links/new'));
  await page.getByLabel('Code').fill('delete-me');
  await page.getByLabel('Destination', { exact: true }).fill('https://shop.example.com/gone');
  await page.getByRole('button', { name: 'Create link' }).click();
  const doomed = page.locator('tr[data-code="delete-me"]');
  await doomed.waitFor();
  await doomed.getByRole('button', { name: 'Delete go.example.com/delete-me' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await doomed.count(), 1, 'cancel keeps the link');
  await doomed.getByRole('button', { name: 'Delete go.example.com/delete-me' }).click();
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await until('the deleted link to leave the list', async () => (await doomed.count()) === 0, 5000);
  assert.equal((await visit('/delete-me', UA.desktop)).status, 404, 'the deleted link no longer answers');

  // The new link is in the unfiltered list.
  await page.goto(adminUrl('/console/#/links'));
  await page.locator('tr[data-code="summer-e2e"]').waitFor();
  await assertLabelled(page, 'the links page');
  await shot(page, 'links');
});

e2e('3. a click on the link redirects, and its analytics page counts it', async (page) => {
  await loginOperator(page);
  await page.goto(adminUrl('/console/#/links?q=summer-e2e'));
  const link = page.getByRole('link', { name: 'go.example.com/summer-e2e', exact: true });
  await link.waitFor({ timeout: 5000 }).catch(() => {
    throw new Error('the link summer-e2e is not listed (test 2 creates it)');
  });
  await link.click();
  await page.getByRole('heading', { name: 'Analytics' }).waitFor();
  const id = page.url().match(/#\/links\/(\d+)/)[1];

  // Real requests to the redirect listener: two from one desktop visitor,
  // one from an iPhone, one from a bot.
  const expected = 'https://shop.example.com/summer';
  for (const [ua, country] of [
    [UA.desktop, 'DE'],
    [UA.desktop, 'DE'],
    [UA.iphone, 'FR'],
    [UA.bot, 'US'],
  ]) {
    const r = await visit('/summer-e2e', ua, { referer: 'https://news.example.org/post/1', 'cloudfront-viewer-country': country });
    assert.ok([301, 302].includes(r.status), `GET go.example.com/summer-e2e: ${r.status} ${r.text}`);
    assert.equal(r.headers.location, expected, 'Location is the destination');
  }

  // Counts arrive with the next analytics flush; the page refreshes itself.
  const stat = (k) => page.locator(`[data-stat="${k}"]`).textContent();
  await until(
    'the analytics page to show 3 clicks, and them by country',
    async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await sleep(400);
      return (await stat('clicks')).trim() === '3' && /DE/.test(await page.locator('[data-group="country"]').textContent());
    },
    10_000,
    300,
  );
  assert.equal((await stat('bot_clicks')).trim(), '1', 'one bot click');
  assert.equal((await stat('visitors')).trim(), '2', 'two visitors (the desktop repeat is not a new visitor)');
  const devices = page.locator('[data-group="device"]');
  assert.match(await devices.textContent(), /desktop/);
  assert.match(await devices.textContent(), /ios/);
  assert.match(await page.locator('[data-group="referrer"]').textContent(), /news\.example\.org/);
  const countries = await page.locator('[data-group="country"]').textContent();
  assert.match(countries, /DE\s*2/, 'two clicks from DE');
  assert.match(countries, /FR\s*1/, 'one click from FR');
  assert.equal(await page.locator(`img[src="/api/v1/links/${id}/qr.svg"]`).count(), 1, 'the QR code is shown');
  const qr = await page.evaluate(async (u) => {
    const r = await fetch(u, { credentials: 'same-origin' });
    return { status: r.status, type: r.headers.get('content-type') };
  }, `/api/v1/links/${id}/qr.svg`);
  assert.equal(qr.status, 200);
  assert.match(qr.type, /image\/svg\+xml/);
  await page.locator('.chart canvas').first().waitFor();
  await assertLabelled(page, 'the link analytics page');
  await page.evaluate(() => window.scrollTo(0, document.querySelector('.detail-top').getBoundingClientRect().bottom + window.scrollY - 60));
  await shot(page, 'link-analytics');
});

e2e('4. rules: a new version goes live, a broken one is refused with file:line, a diff, a rollback', async (page) => {
  const rulesFile = path.join(W.dir, 'rules.toml');
  await loginOperator(page);
  await page.goto(adminUrl('/console/#/rules'));
  const live = page.getByTestId('live-version');
  await live.waitFor();
  const v1 = Number(await live.textContent());
  assert.equal(await page.getByTestId('tests-count').textContent(), '3', 'the live version has 3 [[test]]s');

  // "Reload now" with nothing changed.
  await page.getByRole('button', { name: 'Reload now' }).click();
  await page.getByRole('status').filter({ hasText: /Unchanged|Reloaded/ }).waitFor();

  // A valid change on disk goes live; the page follows it.
  writeAtomic(rulesFile, rulesV2(W.ports.backend));
  await until('the Rules page to show a new live version', async () => Number(await live.textContent()) > v1, 12_000);
  const v2 = Number(await live.textContent());
  const r2 = await visit('/docs', UA.desktop);
  assert.equal(r2.headers.location, 'https://docs.example.com/start-v2', 'the new version answers');

  // A broken change is refused, with where.
  writeAtomic(rulesFile, rulesBroken(W.ports.backend));
  const refused = page.getByTestId('last-refused');
  await until('the refused reload on the Rules page', async () => /rules\.toml:\d+:\d+/.test(await refused.textContent()), 12_000);
  assert.match(await refused.textContent(), /broken|slash|\//i);
  assert.equal(Number(await live.textContent()), v2, 'the live version did not change');

  // A diff between the two versions.
  await page.getByLabel('From version', { exact: true }).selectOption(String(v1));
  await page.getByLabel('To version', { exact: true }).selectOption(String(v2));
  await page.getByRole('button', { name: 'Show diff' }).click();
  const diff = page.getByTestId('diff');
  await until('the diff', async () => (await diff.textContent()).includes('+to = "https://docs.example.com/start-v2"'), 5000);
  assert.ok((await diff.textContent()).includes('-to = "https://docs.example.com/start"'));
  await assertLabelled(page, 'the rules page');
  await diff.scrollIntoViewIfNeeded();
  await shot(page, 'rules');

  // Roll back to the first version through the confirmation dialog.
  await page.getByRole('button', { name: `Roll back to version ${v1}` }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), new RegExp(`version ${v1}`));
  await dialog.getByRole('button', { name: `Roll back to version ${v1}` }).click();
  await until('a new live version after the rollback', async () => Number(await live.textContent()) > v2, 10_000);
  await page.getByRole('status').filter({ hasText: `Rolled back to version ${v1}` }).waitFor();
  assert.equal(await dialog.isVisible(), false, 'the dialog closed');
  const r3 = await visit('/docs', UA.desktop);
  assert.equal(r3.headers.location, 'https://docs.example.com/start', 'version 1 answers again');
});

e2e('5. explain: a URL answered by a rule shows the rule, the steps and the final Location', async (page) => {
  await loginOperator(page);
  await page.getByRole('link', { name: 'Explain' }).click();
  await heading(page, 'Explain a request');
  await page.getByLabel('URL').fill('https://go.example.com/p/SKU-42?utm_source=mail');
  await page.getByLabel('Device').selectOption({ label: 'iPhone' });
  await page.getByLabel('Country').fill('DE');
  await page.getByLabel('Client IP').fill('203.0.113.7');
  await page.getByRole('button', { name: 'Explain' }).click();
  await page.getByTestId('explain-rule').waitFor();
  assert.equal(await page.getByTestId('explain-rule').textContent(), 'product');
  assert.equal(await page.getByTestId('explain-location').textContent(), 'https://apps.example.com/p/SKU-42?utm_source=mail');
  const steps = await page.locator('.steps').textContent();
  assert.match(steps, /pattern \/p\/\{sku\}/, 'the step that matched');
  assert.match(steps, /sku = SKU-42/, 'the capture');
  assert.match(steps, /ios/, 'the device');
  await assertLabelled(page, 'the explain page');
  await page.evaluate(() => window.scrollTo(0, document.querySelector('form.card').getBoundingClientRect().top + window.scrollY - 68));
  await shot(page, 'explain');

  // The same URL from a desktop gets the default destination.
  await page.getByLabel('Device').selectOption({ label: 'Desktop (Windows, Chrome)' });
  await page.getByRole('button', { name: 'Explain' }).click();
  await until(
    'the desktop Location',
    async () => (await page.getByTestId('explain-location').textContent()) === 'https://shop.example.com/products/SKU-42?utm_source=mail',
    5000,
  );
});

e2e('6. a partner sees its own links only, and no operator page', async (page) => {
  await login(page, apiUrl(), W.keys.a.secret);
  await heading(page, 'Links');
  const nav = page.getByRole('navigation', { name: 'Main' });
  assert.deepEqual(await nav.getByRole('link').allTextContents(), ['Links'], 'a partner has only the Links page');

  await page.locator('tr[data-code="a-spring"]').waitFor();
  assert.equal(await page.locator('tr[data-code="b-secret"]').count(), 0, "partner B's link is not listed");
  assert.equal(await page.locator('tr[data-code="summer-e2e"]').count(), 0, "the operator's link is not listed");
  await shot(page, 'partner-links');

  // B's link by id: not found.
  await page.goto(apiUrl(`/console/#/links/${W.links.b.id}`));
  await heading(page, 'Link not found');
  assert.ok(!(await page.content()).includes('b.example.com/secret'), "nothing of B's link is shown");

  // Operator pages: not available in the console, and refused by the server.
  await page.goto(apiUrl('/console/#/rules'));
  await heading(page, 'Not available');
  const statuses = await page.evaluate(async () => {
    const out = {};
    for (const p of ['/admin/rules', '/admin/metrics.json', '/admin/upstreams']) {
      out[p] = (await fetch(p, { credentials: 'same-origin' })).status;
    }
    return out;
  });
  for (const [p, s] of Object.entries(statuses)) assert.notEqual(s, 200, `${p} on the API listener answered ${s}`);
});

e2e('7. CSRF: a write with the session cookie but without X-CSRF-Token is refused', async (page) => {
  for (const [where, doLogin] of [
    ['admin listener', () => loginOperator(page)],
    ['API listener', () => login(page, apiUrl(), W.keys.a.secret)],
  ]) {
    await doLogin();
    const r = await page.evaluate(async () => {
      const body = JSON.stringify({ host: 'go.example.com', to: 'https://csrf.example.com/' });
      const without = await fetch('/api/v1/links', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body,
      });
      const problem = await without.json().catch(() => null);
      const s = await (await fetch('/console/session', { credentials: 'same-origin' })).json();
      const wrong = await fetch('/api/v1/links', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'x'.repeat(64) },
        body,
      });
      const withToken = await fetch('/api/v1/links', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf },
        body,
      });
      const created = await withToken.json().catch(() => null);
      if (created && created.id) {
        await fetch(`/api/v1/links/${created.id}`, { method: 'DELETE', credentials: 'same-origin', headers: { 'X-CSRF-Token': s.csrf } });
      }
      return { without: without.status, problem, wrong: wrong.status, withToken: withToken.status };
    });
    assert.equal(r.without, 403, `${where}: POST without X-CSRF-Token`);
    assert.equal(r.problem && r.problem.type, 'urn:gateway:problem:csrf', `${where}: the problem type`);
    assert.equal(r.wrong, 403, `${where}: POST with a wrong X-CSRF-Token`);
    assert.equal(r.withToken, 201, `${where}: the same POST with the session's token`);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Admin token or API key').waitFor();
  }
});

e2e('8. the Overview and Upstreams pages show live data', async (page) => {
  // Traffic: redirects, a 404 and proxied requests to the pool's backend.
  for (let i = 0; i < 5; i++) await visit('/docs', UA.desktop);
  await visit('/no-such-code', UA.desktop);
  for (let i = 0; i < 3; i++) {
    const r = await httpReq({ port: W.ports.server, path: `/v1/orders/${i}`, headers: { host: 'api.example.com' } });
    assert.equal(r.status, 200, `proxied request: ${r.status} ${r.text}`);
  }

  const limited = [];
  for (let i = 0; i < 4; i++) {
    limited.push((await httpReq({ port: W.ports.server, path: `/limited/${i}`, headers: { host: 'api.example.com' } })).status);
  }
  assert.ok(limited.includes(429), `the rate-limited route refused a request: ${limited}`);

  await loginOperator(page);
  await heading(page, 'Overview');
  const total = page.locator('[data-stat="total"]');
  await total.waitFor();
  const n = Number((await total.textContent()).replace(/[^0-9]/g, ''));
  assert.ok(n >= 13, `requests since start: ${n}`);
  const redirects = Number(await page.locator('tr[data-kind="redirect"] td[data-total]').getAttribute('data-total'));
  assert.ok(redirects >= 5, `redirects counted: ${redirects}`);
  const proxied = Number(await page.locator('tr[data-kind="proxy"] td[data-total]').getAttribute('data-total'));
  assert.ok(proxied >= 3, `proxied requests counted: ${proxied}`);
  const rules = await admin('GET', '/admin/rules');
  assert.equal(await page.locator('[data-stat="rules-version"]').textContent(), String(rules.json.version), 'the live rules version');
  assert.match(await page.locator('li[data-pool="backend"]').textContent(), /1\/1 healthy/);
  // A second poll gives rates and the chart; keep traffic going meanwhile.
  // (Longer when taking screenshots, so the chart has a few points.)
  const traffic = (async () => {
    for (let i = 0; i < (SHOTS ? 40 : 12); i++) {
      await visit(i % 7 === 3 ? '/nope' : '/docs', UA.desktop);
      if (i % 4 === 0) await httpReq({ port: W.ports.server, path: `/v1/items/${i}`, headers: { host: 'api.example.com' } });
      await sleep(300);
    }
  })();
  await until('the request-rate chart', async () => (await page.locator('.chart canvas').count()) > 0, 10_000);
  await traffic;
  await until('a non-zero request rate', async () => Number(await page.locator('[data-stat="rate"]').textContent()) > 0, 8000);
  await assertLabelled(page, 'the overview');
  await shot(page, 'overview');

  await page.getByRole('link', { name: 'Upstreams' }).click();
  await heading(page, 'Upstreams');
  const pool = page.locator('[data-pool="backend"]');
  await pool.waitFor();
  const backend = pool.locator(`tr[data-backend="127.0.0.1:${W.ports.backend}"]`);
  await backend.waitFor();
  assert.match(await backend.textContent(), /healthy/);
  assert.match(await backend.textContent(), /in the pool/, 'not ejected');
  assert.match(await pool.textContent(), /1\/1 healthy/);
  assert.equal((await pool.locator('[data-stat="ejections"]').textContent()).trim(), '0');
  const limitedRow = page.locator('tr[data-route="api-limited"]');
  await limitedRow.waitFor();
  assert.equal(
    Number(await limitedRow.locator('td[data-limited]').getAttribute('data-limited')),
    limited.filter((s) => s === 429).length,
    'the route\'s rate-limited count',
  );
  await assertLabelled(page, 'the upstreams page');
  await shot(page, 'upstreams');
});

e2e(
  '9. mobile: at 360 px the Links page does not overflow and the menu works',
  async (page) => {
    await loginOperator(page);
    await heading(page, 'Overview');
    const menu = page.getByRole('button', { name: 'Menu' });
    assert.equal(await menu.isVisible(), true, 'a menu button on a narrow screen');
    const linksNav = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Links' });
    assert.equal(await linksNav.isVisible(), false, 'the menu starts closed');
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await linksNav.click();
    await heading(page, 'Links');
    await page.locator('tr[data-code="a-spring"]').waitFor();
    await page.locator('tr[data-code^="a-very-long"]').waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `no horizontal overflow: scrollWidth ${width}`);
    await assertLabelled(page, 'the links page at 360 px');
    await shot(page, 'mobile-links');

    // Keyboard: the row's actions are reachable and the QR dialog opens and closes.
    await page.getByRole('button', { name: 'QR code of go.example.com/a-spring' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await until('the dialog to close', async () => !(await dialog.isVisible()), 3000);
    const width2 = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width2 <= 360, `no horizontal overflow after the dialog: ${width2}`);
  },
  { viewport: { width: 360, height: 740 } },
);

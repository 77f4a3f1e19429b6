// The query port serves the web UI (ui-api/jaeger/jaeger_ui.c) from the real binary:
// - the built-in UI (ui-api/web/, embedded at build time): index.html with the base path
//   injected for `/` and every SPA route (Jaeger's `/search`, `/trace/<id>`,
//   `/dependencies`, anything else outside /api/ and static/), the static files byte for
//   byte with their types, ETag and 304, gzip when asked, HEAD, 404 under static/, the API
//   untouched, path traversal refused;
// - with base_path /jaeger everything moves under it and nothing is served outside;
// - with ui.assets_path (tests/integration/fixtures/jaeger-ui, a stand-in for a Jaeger UI
//   build) index.html gets Jaeger's substitutions from a .json and a .js ui.config_file,
//   checked as text and by running the page in headless Chromium; a symlink out of the
//   directory is not served; a bad assets dir or config stops the start with a clear error.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import { freePort, SOURCE_DIR, Tracehouse } from './lib/harness.mjs';

const WEB_DIR = path.join(SOURCE_DIR, 'ui-api', 'web');
const FIXTURE = path.join(SOURCE_DIR, 'tests', 'integration', 'fixtures', 'jaeger-ui');

/** The query extension on `qport`, with extra keys under jaeger_query (YAML lines). */
function config(qport, queryExtra = '') {
  return `
extensions:
  jaeger_storage:
    backends:
      main:
        lmdb:
          path: {out}-data
  jaeger_query:
    storage:
      traces: main
    http:
      endpoint: 127.0.0.1:${qport}
${queryExtra}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  jaeger_storage_exporter:
    trace_storage: main
service:
  extensions: [jaeger_storage, jaeger_query]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
`;
}

/**
 * A raw request: the path goes out exactly as written (node does not normalise `..`).
 * @returns {Promise<{status, headers, body: Buffer, text: string}>}
 */
function request(port, p, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      });
    req.on('error', reject);
    req.end();
  });
}

/** The built-in UI's substitutions (ui-api/web/README.md), to compute the expected page. */
function injectBuiltin(page, base) {
  let out = page;
  if (base) {
    out = out.replaceAll('<base href="/"', `<base href="${base}/"`);
  }
  return out.replaceAll("'TH_BASE_PATH'", `'${base}'`).replaceAll('"TH_BASE_PATH"', `"${base}"`);
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/vnd.microsoft.icon',
  '.woff2': 'font/woff2',
};

/** Every file of ui-api/web/static, relative to ui-api/web. */
function staticFiles() {
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else out.push(path.relative(WEB_DIR, full).split(path.sep).join('/'));
    }
  };
  walk(path.join(WEB_DIR, 'static'));
  return out.sort();
}

/** Start tracehouse with a query port; returns {th, qport}. */
async function startQuery(extra) {
  const qport = await freePort();
  const th = await Tracehouse.start({ yaml: config(qport, extra) });
  // the OTLP port is open once every component started, the query port included
  return { th, qport };
}

/** Start a config that must fail; returns the output. */
async function startFails(extra) {
  const qport = await freePort();
  await assert.rejects(Tracehouse.start({ yaml: config(qport, extra) }), (err) => {
    startFails.last = err.message;
    return /exited early/.test(err.message);
  });
  return startFails.last;
}

const PAGE_PATHS = ['/', '/search?service=frontend&operation=GET%20%2F&tags=%7B%7D',
  '/trace/0123456789abcdef0123456789abcdef', '/trace/abc...def', '/dependencies',
  '/index.html', '/some/other/route'];

describe('built-in UI at the root', () => {
  let th;
  let qport;
  before(async () => { ({ th, qport } = await startQuery()); });
  after(async () => { await th?.stopClean(); });

  test('index.html for / and every SPA route, base injected, not cached', async () => {
    const want = injectBuiltin(fs.readFileSync(path.join(WEB_DIR, 'index.html'), 'utf8'), '');
    let etag;
    for (const p of PAGE_PATHS) {
      const r = await request(qport, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8', p);
      assert.equal(r.headers['cache-control'], 'no-cache', p);
      assert.equal(r.text, want, `${p}: the page is ui-api/web/index.html with the base injected (rebuild after changing ui-api/web)`);
      assert.match(r.headers.etag, /^"[0-9a-f]{32}"$/);
      etag ??= r.headers.etag;
      assert.equal(r.headers.etag, etag);
    }
    const nm = await request(qport, '/trace/1', { headers: { 'if-none-match': etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.body.length, 0);
  });

  test('static files byte for byte, with type, ETag and 304', async () => {
    const files = staticFiles();
    assert.ok(files.length > 0, 'ui-api/web/static has files');
    for (const rel of files) {
      const want = fs.readFileSync(path.join(WEB_DIR, rel));
      const r = await request(qport, `/${rel}`);
      assert.equal(r.status, 200, rel);
      assert.ok(want.equals(r.body), `${rel}: the served bytes are the file's (rebuild after changing ui-api/web)`);
      const type = TYPES[path.extname(rel).toLowerCase()];
      if (type) assert.equal(r.headers['content-type'], type, rel);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['cache-control'], 'no-cache');
      assert.match(r.headers.etag, /^"[0-9a-f]{32}"$/, rel);
      const again = await request(qport, `/${rel}`, { headers: { 'if-none-match': r.headers.etag } });
      assert.equal(again.status, 304, rel);
      assert.equal(again.body.length, 0);
      assert.equal(again.headers.etag, r.headers.etag);
      const changed = await request(qport, `/${rel}`, { headers: { 'if-none-match': '"0000"' } });
      assert.equal(changed.status, 200);
    }
  });

  test('gzip when accepted, identity otherwise', async () => {
    const files = staticFiles().filter((f) => /\.(js|css)$/.test(f))
      .map((f) => [f, fs.statSync(path.join(WEB_DIR, f)).size]).sort((a, b) => b[1] - a[1]);
    assert.ok(files.length > 0);
    const [rel, size] = files[0];
    assert.ok(size > 1024, `${rel} is large enough to be compressed`);
    const gz = await request(qport, `/${rel}`, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.ok(gz.body.length < size);
    assert.ok(zlib.gunzipSync(gz.body).equals(fs.readFileSync(path.join(WEB_DIR, rel))));
    const id = await request(qport, `/${rel}`, { headers: { 'accept-encoding': 'gzip;q=0' } });
    assert.equal(id.headers['content-encoding'], undefined);
    assert.equal(id.body.length, size);
    assert.notEqual(id.headers.etag, gz.headers.etag);
  });

  test('HEAD: headers and length, no body', async () => {
    const g = await request(qport, '/search');
    const h = await request(qport, '/search', { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    assert.equal(Number(h.headers['content-length']), g.body.length);
    assert.equal(h.headers.etag, g.headers.etag);
  });

  test('404 for a missing asset; the API keeps its routes and its 404', async () => {
    const miss = await request(qport, '/static/nope.js');
    assert.equal(miss.status, 404);
    assert.equal(miss.text, '404 page not found\n');
    const api = await request(qport, '/api/nope');
    assert.equal(api.status, 404);
    assert.equal(api.text, '404 page not found\n');
    const v3 = await request(qport, '/api/v3/nope');
    assert.equal(v3.status, 404);
    const services = await request(qport, '/api/services');
    assert.equal(services.status, 200);
    assert.equal(services.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(services.text).data, []);
    const post = await request(qport, '/search', { method: 'POST' });
    assert.equal(post.status, 405);
  });

  test('path traversal is refused', async () => {
    for (const p of ['/static/../../../etc/passwd', '/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd',
      '/static/%2E%2E/%2e%2e/etc/passwd', '/static/..%2f..%2fetc%2fpasswd', '/static/.%2e/index.html',
      '/static/..\\..\\etc\\passwd', '/static/%5c..%5cx', '/static/a%00b.js']) {
      const r = await request(qport, p);
      assert.ok(r.status === 400 || r.status === 404, `${p}: ${r.status}`);
      assert.doesNotMatch(r.text, /root:/, p);
    }
  });
});

describe('built-in UI under base_path /jaeger', () => {
  let th;
  let qport;
  before(async () => { ({ th, qport } = await startQuery('    base_path: /jaeger/')); });
  after(async () => { await th?.stopClean(); });

  test('everything moves under the base path', async () => {
    const want = injectBuiltin(fs.readFileSync(path.join(WEB_DIR, 'index.html'), 'utf8'), '/jaeger');
    for (const p of PAGE_PATHS) {
      const r = await request(qport, `/jaeger${p}`);
      assert.equal(r.status, 200, p);
      assert.equal(r.text, want, p);
    }
    assert.ok(want.includes("'/jaeger'") || want.includes('"/jaeger"') || want.includes('<base href="/jaeger/"'),
      'index.html carries a base path marker');
    for (const rel of staticFiles()) {
      const r = await request(qport, `/jaeger/${rel}`);
      assert.equal(r.status, 200, rel);
      assert.ok(r.body.equals(fs.readFileSync(path.join(WEB_DIR, rel))));
    }
    const api = await request(qport, '/jaeger/api/services');
    assert.equal(api.status, 200);
    const redirect = await request(qport, '/jaeger?service=a');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/jaeger/?service=a');
  });

  test('nothing outside it', async () => {
    for (const p of ['/', '/search', '/search?service=x', '/trace/abc', '/dependencies',
      '/static/app.js', '/api/services', '/jaegerx/search', '/index.html']) {
      const r = await request(qport, p);
      assert.equal(r.status, 404, p);
      assert.equal(r.text, '404 page not found\n', p);
    }
  });
});

describe('Jaeger UI assets (ui.assets_path)', () => {
  let dir;
  before(async () => {
    // a copy of the fixture plus what must not leak: a file beside it and a link to that file
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-ui-'));
    await fsp.cp(FIXTURE, path.join(dir, 'ui'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'secret.txt'), 'top secret\n');
    await fsp.symlink(path.join(dir, 'secret.txt'), path.join(dir, 'ui', 'static', 'leak.txt'));
    await fsp.symlink('main.js', path.join(dir, 'ui', 'static', 'alias.js'));
    await fsp.writeFile(path.join(dir, 'ui-config.json'), JSON.stringify({
      dependencies: { menuEnabled: true },
      menu: [{ label: 'About </script> & more', url: 'https://example.com/?a=1&b=2' }],
      search: { maxLimit: 1500 },
    }, null, 2));
    await fsp.writeFile(path.join(dir, 'ui-config.js'),
      '\nfunction UIConfig() {\n  return { fromJs: true, archiveEnabled: false };\n}\n');
    await fsp.writeFile(path.join(dir, 'bad.json'), '{"menu": [');
  });
  after(async () => { await fsp.rm(dir, { recursive: true, force: true }); });

  test('JSON config: the page carries config, version, capabilities and base', async () => {
    const { th, qport } = await startQuery(`    base_path: /jaeger
    ui:
      assets_path: ${JSON.stringify(path.join(dir, 'ui'))}
      config_file: ${JSON.stringify(path.join(dir, 'ui-config.json'))}`);
    try {
      for (const p of ['/jaeger/', '/jaeger/search?service=x', '/jaeger/trace/abc', '/jaeger/dependencies']) {
        const r = await request(qport, p);
        assert.equal(r.status, 200, p);
        assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
        assert.equal(r.headers['cache-control'], 'no-cache');
        assert.match(r.text, /<base href="\/jaeger\/" data-inject-target="BASE_URL" \/>/);
        const cfg = /const JAEGER_CONFIG = (.*);\n/.exec(r.text);
        assert.ok(cfg, 'JAEGER_CONFIG is injected');
        assert.doesNotMatch(cfg[1], /<\/script>/, 'the config cannot close the script');
        assert.deepEqual(JSON.parse(cfg[1]), {
          dependencies: { menuEnabled: true },
          menu: [{ label: 'About </script> & more', url: 'https://example.com/?a=1&b=2' }],
          search: { maxLimit: 1500 },
        });
        const ver = /const JAEGER_VERSION = (.*);\n/.exec(r.text);
        assert.match(JSON.parse(ver[1]).gitVersion, /^tracehouse-/);
        assert.deepEqual(JSON.parse(/const JAEGER_BACKEND_CAPABILITIES = (.*);\n/.exec(r.text)[1]),
          { archiveStorage: false, metricsStorage: false, searchWithoutServiceName: false, aiAssistant: false });
        assert.deepEqual(JSON.parse(/const JAEGER_STORAGE_CAPABILITIES = (.*);\n/.exec(r.text)[1]),
          { archiveStorage: false, metricsStorage: false });
        assert.match(r.text, /\/\/ JAEGER_CONFIG_JS/, 'a JSON config leaves the JS hook alone');
      }
      const js = await request(qport, '/jaeger/static/main.js');
      assert.equal(js.status, 200);
      assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.ok(js.body.equals(fs.readFileSync(path.join(FIXTURE, 'static', 'main.js'))));
      const nm = await request(qport, '/jaeger/static/main.js', { headers: { 'if-none-match': js.headers.etag } });
      assert.equal(nm.status, 304);
      const css = await request(qport, '/jaeger/static/main.css');
      assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
      const alias = await request(qport, '/jaeger/static/alias.js');
      assert.equal(alias.status, 200, 'a link inside the directory is served');
      assert.equal((await request(qport, '/jaeger/static/missing.js')).status, 404);
      assert.equal((await request(qport, '/jaeger/api/services')).status, 200);
      assert.equal((await request(qport, '/search')).status, 404);
      for (const p of ['/jaeger/static/leak.txt', '/jaeger/static/../../secret.txt',
        '/jaeger/static/%2e%2e/%2e%2e/secret.txt', '/jaeger/%2e%2e/secret.txt', '/jaeger/../secret.txt']) {
        const r = await request(qport, p);
        assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
        assert.doesNotMatch(r.text, /top secret/, p);
      }
      await checkInBrowser(`http://127.0.0.1:${qport}/jaeger/trace/abc`, (shown) => {
        assert.equal(shown.config.search.maxLimit, 1500);
        assert.equal(shown.config.menu[0].label, 'About </script> & more');
        assert.match(shown.version.gitVersion, /^tracehouse-/);
        assert.equal(shown.backend.searchWithoutServiceName, false);
        assert.equal(shown.storage.metricsStorage, false);
        assert.equal(shown.base, `http://127.0.0.1:${qport}/jaeger/`);
      });
    } finally {
      await th.stopClean();
    }
  });

  test('a config file changed while running is followed; a bad edit keeps the last good one',
    async () => {
      const live = path.join(dir, 'live-config.json');
      await fsp.writeFile(live, JSON.stringify({ search: { maxLimit: 100 } }));
      const { th, qport } = await startQuery(`    ui:
      assets_path: ${JSON.stringify(path.join(dir, 'ui'))}
      config_file: ${JSON.stringify(live)}`);
      const shown = async () => {
        const r = await request(qport, '/search');
        assert.equal(r.status, 200);
        return { cfg: JSON.parse(/const JAEGER_CONFIG = (.*);\n/.exec(r.text)[1]), etag: r.headers.etag };
      };
      const until = async (what, ok) => {
        const deadline = Date.now() + 5000;
        for (;;) {
          const v = await shown();
          if (ok(v.cfg)) {
            return v;
          }
          assert.ok(Date.now() < deadline, `${what}: still ${JSON.stringify(v.cfg)}`);
          await new Promise((res) => setTimeout(res, 100));
        }
      };
      try {
        const first = await shown();
        assert.equal(first.cfg.search.maxLimit, 100);
        // replaced by a rename, as configuration tools do
        await fsp.writeFile(`${live}.new`, JSON.stringify({ search: { maxLimit: 200 } }));
        await fsp.rename(`${live}.new`, live);
        const second = await until('the renamed file', (c) => c.search?.maxLimit === 200);
        assert.notEqual(second.etag, first.etag, 'a new page has a new ETag');
        // a bad edit in place: logged, and the page keeps the last good config
        await fsp.writeFile(live, '{"search": ');
        const deadline = Date.now() + 5000;
        while (!/ui::config_file: .*keeps the previous config/.test(th.stderr)) {
          assert.ok(Date.now() < deadline, `the bad edit was not reported:\n${th.stderr.slice(-2000)}`);
          await new Promise((res) => setTimeout(res, 100));
        }
        assert.equal((await shown()).cfg.search.maxLimit, 200);
        // fixed in place
        await fsp.writeFile(live, JSON.stringify({ search: { maxLimit: 300 } }));
        await until('the fixed file', (c) => c.search?.maxLimit === 300);
        assert.match(th.stderr, /ui::config_file changed: the page now carries the new config/);
      } finally {
        await th.stopClean();
      }
    });

  test('JS config: UIConfig replaces the hook', async () => {
    const { th, qport } = await startQuery(`    ui:
      assets_path: ${JSON.stringify(path.join(dir, 'ui'))}
      config_file: ${JSON.stringify(path.join(dir, 'ui-config.js'))}`);
    try {
      const r = await request(qport, '/search');
      assert.equal(r.status, 200);
      assert.match(r.text, /function UIConfig\(\) \{\n {2}return \{ fromJs: true, archiveEnabled: false \};\n\}\n/);
      assert.doesNotMatch(r.text, /JAEGER_CONFIG_JS/);
      assert.match(r.text, /const JAEGER_CONFIG = DEFAULT_CONFIG;/);
      assert.match(r.text, /<base href="\/" data-inject-target/);
      await checkInBrowser(`http://127.0.0.1:${qport}/search`, (shown) => {
        assert.deepEqual(shown.config, { fromJs: true, archiveEnabled: false });
      });
    } finally {
      await th.stopClean();
    }
  });

  test('a missing directory, a directory without index.html or a bad config stop the start', async () => {
    let out = await startFails(`    ui:\n      assets_path: ${JSON.stringify(path.join(dir, 'nope'))}`);
    assert.match(out, /ui::assets_path: .*nope/);
    out = await startFails(`    ui:\n      assets_path: ${JSON.stringify(path.join(dir, 'ui', 'static'))}`);
    assert.match(out, /has no index\.html/);
    out = await startFails(`    ui:\n      assets_path: ${JSON.stringify(path.join(dir, 'ui'))}\n      config_file: ${JSON.stringify(path.join(dir, 'bad.json'))}`);
    assert.match(out, /ui::config_file: cannot parse UI config file/);
  });
});

/** Load @p url in headless Chromium and hand what the fixture's main.js shows to @p check. */
async function checkInBrowser(url, check) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('jaeger-ui-root')?.textContent);
    const shown = JSON.parse(await page.textContent('#jaeger-ui-root'));
    assert.deepEqual(errors, []);
    check(shown);
  } finally {
    await browser.close();
  }
}

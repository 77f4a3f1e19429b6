// A stand-in for the binary's UI serving, used only by webui.test.mjs while the binary does
// not serve ui-api/web itself: it serves the UI sources the way the query port will
// ({base}/static/* as files, every other non-API path as index.html) and forwards
// {base}/api/* to a running tracehouse query port. Not shipped.

import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon' };

/**
 * Start the proxy on 127.0.0.1 and an ephemeral port.
 * @param {{webDir: string, basePath: string, apiPort: number}} o basePath '' or '/jaeger'
 * @returns {Promise<{url: string, close: () => Promise<void>}>} url is origin + base path
 */
export async function startDevServer({ webDir, basePath, apiPort }) {
  const base = basePath.replace(/\/+$/, '');
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://x');
    let p = u.pathname;
    if (base) {
      if (p !== base && !p.startsWith(`${base}/`)) {
        res.writeHead(404).end('404 page not found\n');
        return;
      }
      p = p.slice(base.length) || '/';
    }
    if (p.startsWith('/api/')) {
      const up = http.request({ host: '127.0.0.1', port: apiPort, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', (e) => res.writeHead(502).end(String(e)));
      req.pipe(up);
      return;
    }
    try {
      if (p.startsWith('/static/')) {
        const file = path.join(webDir, path.normalize(p).replace(/^(\.\.[/\\])+/, ''));
        if (!file.startsWith(webDir)) throw new Error('outside');
        const body = await fs.readFile(file);
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body);
        return;
      }
      // The binary's substitutions (ui-api/web/README.md): <base href> and the quoted marker.
      const body = (await fs.readFile(path.join(webDir, 'index.html'), 'utf8'))
        .replaceAll('<base href="/"', `<base href="${base}/"`)
        .replace(/(['"])TH_BASE_PATH\1/g, `'${base}'`);
      res.writeHead(200, { 'content-type': TYPES['.html'], 'cache-control': 'no-store' }).end(body);
    } catch {
      res.writeHead(404).end('404 page not found\n');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}${base}`,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

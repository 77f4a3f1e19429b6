#!/usr/bin/env node
// Checks a Grafana dashboard of this directory: that it is well-formed JSON with the shape
// Grafana imports (the ${DS_PROMETHEUS} input, a datasource on every panel, unique panel ids,
// a grid that fits), and, given a running Prometheus, that every PromQL expression in it
// (panel targets and the metric selectors of label_values() variables) is accepted by that
// Prometheus's query API. Grafana's variables are replaced first ($service -> .*,
// $__rate_interval -> 1m), as Grafana would before sending the query.
//
//   node deploy/grafana/check-dashboard.mjs [--prometheus http://127.0.0.1:9090] [dashboard.json]
//
// tests/integration/prometheus.test.mjs imports these functions and runs the check against
// the real Prometheus it starts.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DASHBOARD_PATH = path.join(here, 'tracehouse-dashboard.json');

/** Every panel, rows' nested panels included. */
function allPanels(dashboard) {
  const out = [];
  const walk = (list) => {
    for (const p of list ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/**
 * Structural problems Grafana would trip on, or that break the import as a shared file.
 * @returns {string[]} empty when the dashboard is fine.
 */
export function validateDashboard(d) {
  const problems = [];
  const need = (cond, msg) => { if (!cond) problems.push(msg); };
  need(typeof d.schemaVersion === 'number' && d.schemaVersion >= 36,
    `schemaVersion ${d.schemaVersion}: expected a number >= 36`);
  need(typeof d.title === 'string' && d.title.length > 0, 'no title');
  need(typeof d.uid === 'string' && /^[A-Za-z0-9_-]{1,40}$/.test(d.uid), `bad uid ${d.uid}`);
  need((d.__inputs ?? []).some((i) => i.name === 'DS_PROMETHEUS' && i.type === 'datasource' &&
    i.pluginId === 'prometheus'), 'no DS_PROMETHEUS datasource input');
  const ids = new Set();
  for (const p of allPanels(d)) {
    const name = `panel ${p.id} "${p.title}"`;
    need(Number.isInteger(p.id) && !ids.has(p.id), `${name}: id missing or not unique`);
    ids.add(p.id);
    const g = p.gridPos ?? {};
    need([g.x, g.y, g.w, g.h].every(Number.isInteger) && g.x >= 0 && g.w > 0 &&
      g.x + g.w <= 24 && g.h > 0, `${name}: gridPos ${JSON.stringify(g)} outside the 24 columns`);
    if (p.type === 'row') {
      continue;
    }
    need(p.datasource?.uid === '${DS_PROMETHEUS}', `${name}: datasource is not \${DS_PROMETHEUS}`);
    need(Array.isArray(p.targets) && p.targets.length > 0, `${name}: no targets`);
    const refs = new Set();
    for (const t of p.targets ?? []) {
      need(typeof t.expr === 'string' && t.expr.trim().length > 0, `${name}: target without expr`);
      need(!refs.has(t.refId), `${name}: refId ${t.refId} repeated`);
      refs.add(t.refId);
      need(t.datasource === undefined || t.datasource.uid === '${DS_PROMETHEUS}',
        `${name} ${t.refId}: target datasource is not \${DS_PROMETHEUS}`);
    }
  }
  for (const v of d.templating?.list ?? []) {
    if (v.type === 'query') {
      need(v.datasource?.uid === '${DS_PROMETHEUS}', `variable ${v.name}: datasource`);
    }
  }
  return problems;
}

/** Grafana's variables replaced by values Prometheus accepts: all values, 1m intervals. */
export function expandVariables(expr) {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g, '1m')
    .replace(/\$\{(\w+)(:\w+)?\}|\$(\w+)/g, '.*');
}

/**
 * Every PromQL expression of the dashboard: panel targets, and the series selector inside a
 * query variable's label_values(SELECTOR, label).
 * @returns {{where: string, expr: string}[]} with variables already expanded.
 */
export function dashboardExprs(d) {
  const out = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (typeof t.expr === 'string') {
        out.push({ where: `panel "${p.title}" ${t.refId}`, expr: expandVariables(t.expr) });
      }
    }
  }
  for (const v of d.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = /^\s*label_values\((.*),\s*(\w+)\s*\)\s*$/s.exec(q ?? '');
    if (v.type === 'query') {
      if (!m) {
        out.push({ where: `variable ${v.name}`, expr: `unparsed variable query: ${q}` });
      } else {
        out.push({ where: `variable ${v.name}`, expr: expandVariables(m[1]) });
      }
    }
  }
  return out;
}

/**
 * Runs each expression as an instant query.
 * @param {string} promUrl e.g. http://127.0.0.1:9090
 * @returns {Promise<{where, expr, status, error, series: number}[]>} one per expression;
 *          status 'success' or the API's error.
 */
export async function queryExprs(promUrl, exprs) {
  const results = [];
  for (const { where, expr } of exprs) {
    const url = `${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`;
    let body;
    try {
      const res = await fetch(url);
      body = await res.json();
    } catch (err) {
      body = { status: 'error', error: `request failed: ${err.message}` };
    }
    results.push({ where, expr, status: body.status, error: body.error ?? null,
      series: Array.isArray(body.data?.result) ? body.data.result.length : 0 });
  }
  return results;
}

async function main(argv) {
  let promUrl = null;
  let file = DASHBOARD_PATH;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--prometheus') {
      promUrl = argv[++i];
    } else {
      file = argv[i];
    }
  }
  const d = JSON.parse(fs.readFileSync(file, 'utf8'));
  let failed = 0;
  for (const p of validateDashboard(d)) {
    console.log(`FAIL structure: ${p}`);
    failed++;
  }
  const exprs = dashboardExprs(d);
  if (promUrl) {
    for (const r of await queryExprs(promUrl, exprs)) {
      if (r.status !== 'success') {
        console.log(`FAIL ${r.where}: ${r.error}\n  ${r.expr}`);
        failed++;
      } else {
        console.log(`ok   ${r.where}: ${r.series} series`);
      }
    }
  } else {
    console.log(`${exprs.length} expressions found; pass --prometheus URL to check them`);
  }
  console.log(failed ? `${failed} problems` : 'dashboard ok');
  return failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}

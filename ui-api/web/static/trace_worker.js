// The trace view's worker: fetches one trace's JSON (the URL the page would use, with the
// page's same-origin credentials), parses it and builds the view model (api.js buildTrace) off
// the page's main thread, then posts the model back with its typed arrays moved, not copied.
// Started by api.js getTrace as a module worker, one per trace load; the page terminates it
// when the answer is in or the view is left.
//
// Messages: page → worker {url}; worker → page {type: 'ready'} once loaded (the page falls
// back to its own thread when that never comes), then {type: 'model', model, timings} or
// {type: 'error', status, message} (status 0 when there was no HTTP answer).

import { ApiError, buildTrace, fetchTrace, modelTransfer } from './api.js';

// Epoch milliseconds: the page's clock has another origin, it converts these.
const now = () => performance.timeOrigin + performance.now();

self.onmessage = async (ev) => {
  const { url } = ev.data;
  const fetchStart = now();
  try {
    const raw = await fetchTrace(url);
    const fetchEnd = now();
    const model = buildTrace(raw);
    const timings = { fetchStart, fetchEnd, buildEnd: now() };
    self.postMessage({ type: 'model', model, timings }, modelTransfer(model));
  } catch (e) {
    self.postMessage({ type: 'error', status: e instanceof ApiError ? e.status : 0, message: String(e?.message ?? e) });
  }
};

self.postMessage({ type: 'ready' });

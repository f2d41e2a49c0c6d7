// Baton dashboard: the API key (session storage only), one live stream per tab, JSON actions.
// Pages are server-rendered fragments swapped by htmx; this file only glues them to the key and the feed.
'use strict';
(function () {
  const KEY = 'baton-api-key';
  const body = document.body;
  const main = document.getElementById('main');
  const authRequired = body.dataset.auth === 'required';
  const key = () => sessionStorage.getItem(KEY);
  const authHeaders = () => (key() ? { Authorization: 'Bearer ' + key() } : {});

  htmx.config.historyCacheSize = 0; // no page data in localStorage; a back navigation re-fetches
  htmx.config.refreshOnHistoryMiss = true;
  htmx.config.defaultFocusScroll = false;

  document.addEventListener('htmx:configRequest', (e) => Object.assign(e.detail.headers, authHeaders()));
  document.addEventListener('htmx:responseError', (e) => {
    const xhr = e.detail.xhr;
    if (xhr.status === 401 || xhr.status === 403) return askKey(xhr.status === 403 ? 'That key was refused.' : '');
    const text = errorText(xhr.status, xhr.responseText);
    if (e.detail.target === main) { // a page that cannot be shown says why instead of "Loading…"
      main.replaceChildren(Object.assign(document.createElement('p'), { className: 'error-box', textContent: text }));
    } else toast(text, true);
  });
  document.addEventListener('htmx:sendError', () => toast('The server did not answer.', true));
  // A live refresh must not fold what the reader unfolded: <details> keep their state across swaps.
  document.addEventListener('htmx:beforeSwap', (e) => { e.detail.openDetails = openIds(e.detail.target); });
  document.addEventListener('htmx:afterSwap', (e) => restoreOpen(e.detail.openDetails));

  function openIds(root) {
    const scope = root && root.querySelectorAll ? root : document;
    return new Map([...scope.querySelectorAll('details[id]')].map((d) => [d.id, d.open]));
  }
  function restoreOpen(state) {
    if (!state) return;
    for (const [id, open] of state) { const d = document.getElementById(id); if (d) d.open = open; }
  }

  function errorText(status, text) {
    try { const err = JSON.parse(text).error; return `${err.message} (${err.code}, HTTP ${status})`; } catch (_) { return `HTTP ${status}`; }
  }

  function toast(text, bad) {
    const t = document.createElement('p');
    t.className = 'toast' + (bad ? ' bad' : '');
    t.textContent = text;
    document.getElementById('toasts').append(t);
    setTimeout(() => t.remove(), 6000);
  }

  // ---------------------------------------------------------------- key
  function askKey(message) {
    main.hidden = true;
    document.getElementById('key-form').hidden = false;
    document.getElementById('key-error').textContent = message || '';
    document.getElementById('api-key').focus();
  }
  document.getElementById('key-entry').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById('api-key').value.trim());
    document.getElementById('key-form').hidden = true;
    start();
  });
  document.getElementById('forget-key').addEventListener('click', () => { sessionStorage.removeItem(KEY); location.reload(); });

  function load() {
    main.hidden = false;
    return htmx.ajax('GET', location.pathname + location.search, { target: '#main', swap: 'innerHTML' });
  }

  function start() {
    if (authRequired && !key()) return askKey('');
    document.getElementById('forget-key').hidden = !key();
    load().then(() => { if (!streaming) stream(); });
  }

  // ---------------------------------------------------------------- JSON calls
  async function api(method, url, json, headers) {
    const init = { method, headers: { ...authHeaders(), ...(headers || {}) } };
    if (json !== undefined) { init.body = JSON.stringify(json); init.headers['Content-Type'] = 'application/json'; }
    const resp = await fetch(url, init);
    if (resp.status === 401 || resp.status === 403) { askKey(resp.status === 403 ? 'That key was refused.' : ''); throw new Error('unauthorised'); }
    const text = await resp.text();
    if (!resp.ok) throw new Error(errorText(resp.status, text));
    return text ? JSON.parse(text) : null;
  }

  function parseJson(textarea) {
    const err = document.getElementById(textarea.getAttribute('aria-describedby'));
    try {
      const value = textarea.value.trim() === '' ? null : JSON.parse(textarea.value);
      textarea.removeAttribute('aria-invalid'); if (err) err.textContent = '';
      return { ok: true, value };
    } catch (ex) {
      textarea.setAttribute('aria-invalid', 'true'); if (err) err.textContent = 'Not valid JSON: ' + ex.message;
      return { ok: false };
    }
  }
  // Validate as the operator types, and block the submit button while the JSON is invalid.
  document.addEventListener('input', (e) => {
    if (!e.target.matches('textarea[data-json]')) return;
    e.target.dataset.dirty = 'true'; // a live refresh must not wipe an edit in progress
    const ok = parseJson(e.target).ok;
    e.target.form.querySelector('button[type=submit]').disabled = !ok;
  });

  document.addEventListener('submit', async (e) => {
    const form = e.target;
    if (form.dataset.redrive) {
      e.preventDefault();
      const parsed = parseJson(form.querySelector('textarea'));
      if (!parsed.ok) return;
      await guarded(async () => {
        const r = await api('POST', `/dlq/${form.dataset.redrive}/redrive`, { input: parsed.value });
        toast(`Dead letter #${r.id} redriven: run ${r.run_id.slice(0, 8)} is running again`);
        form.closest('article').remove();
        refresh('dlq');
      });
    } else if (form.dataset.trigger) {
      e.preventDefault();
      const parsed = parseJson(form.querySelector('textarea'));
      if (!parsed.ok) return;
      const idem = form.querySelector('input[name=key]').value.trim();
      await guarded(async () => {
        const r = await api('POST', `/workflow/${encodeURIComponent(form.dataset.trigger)}/trigger`, { input: parsed.value },
          idem ? { 'Idempotency-Key': idem } : {});
        navigate(`/ui/runs/${r.run_id}`);
      });
    }
  });

  document.addEventListener('click', async (e) => {
    const button = e.target.closest('button');
    if (!button) return;
    if (button.dataset.api) {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      const [method, url] = button.dataset.api.split(' ');
      await guarded(async () => { await api(method, url); toast(button.dataset.done || 'Done'); refresh('dlq'); });
    } else if (button.dataset.bulk) {
      await guarded(async () => {
        const r = await api('POST', button.dataset.bulk);
        closeModal();
        const skipped = r.skipped.length ? `, ${r.skipped.length} skipped (changed meanwhile)` : '';
        toast(`Done: ${r.done} of ${r.matched}${skipped}`);
        refresh('dlq'); refresh('any');
      });
    } else if (button.hasAttribute('data-close')) {
      closeModal();
    }
  });
  let opener = null; // the button that opened the confirmation gets the focus back when it closes
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') return closeModal();
    const buttons = [...document.querySelectorAll('#modal button')];
    if (e.key !== 'Tab' || !buttons.length) return;
    const i = buttons.indexOf(document.activeElement); // keep the focus inside the open dialog
    e.preventDefault();
    buttons[(i + (e.shiftKey ? buttons.length - 1 : 1)) % buttons.length].focus();
  });
  document.addEventListener('htmx:beforeRequest', (e) => {
    if (e.detail.target && e.detail.target.id === 'modal') opener = e.detail.elt;
  });
  document.addEventListener('htmx:afterSwap', (e) => {
    if (e.detail.target.id === 'modal') { const f = e.detail.target.querySelector('[autofocus], button'); if (f) f.focus(); }
    // A page swapped in shows what its request read; a change that committed while it was on its way
    // named elements that did not exist yet. Re-read the new page's live elements once it is in place.
    if (e.detail.target.id === 'main' && streaming) refresh('all');
  });

  function closeModal() {
    const modal = document.getElementById('modal');
    if (!modal.firstChild) return;
    modal.replaceChildren();
    if (opener && document.contains(opener)) opener.focus();
  }

  async function guarded(fn) {
    try { await fn(); } catch (ex) { if (ex.message !== 'unauthorised') toast(ex.message, true); }
  }

  function navigate(url) {
    htmx.ajax('GET', url, { target: '#main', swap: 'innerHTML' }).then(() => history.pushState({ htmx: true }, '', url));
  }

  // ---------------------------------------------------------------- live: one stream per tab
  let streaming = false;
  const busy = new Map(); // element id -> whether another change came while it was being re-fetched

  // Re-fetch each live element that a change names: one request at a time per element, and one more
  // if changes came meanwhile, so the last state always lands and an older answer never overwrites it.
  function refresh(selector) {
    const scope = selector === 'all' ? '[data-live]' : `[data-live="${selector}"]`;
    for (const el of document.querySelectorAll(scope)) {
      if (editing(el)) continue;
      schedule(el.id);
    }
  }
  // An operator editing a field inside a live element must never lose it to a refresh: not once typed
  // into (data-dirty), and not while it has the focus (a refresh between focus and the first keystroke
  // would swallow the keystroke).
  function editing(el) {
    const active = document.activeElement;
    return Boolean(el.querySelector('textarea[data-dirty]')) ||
      (active !== null && el.contains(active) && active.matches('textarea, input[type=text], input:not([type])'));
  }
  function schedule(id) {
    if (busy.has(id)) { busy.set(id, true); return; }
    busy.set(id, false);
    const el = document.getElementById(id);
    setTimeout(async () => {
      try { await refetch(id); } catch (_) { /* the next change or reconnect re-reads */ }
      const again = busy.get(id);
      busy.delete(id);
      if (again) schedule(id);
    }, Number((el && el.dataset.every) || 150)); // data-every: the least time between two re-fetches
  }
  async function refetch(id) {
    const el = document.getElementById(id);
    if (!el) return;
    const resp = await fetch(el.dataset.src, { headers: { ...authHeaders(), 'HX-Request': 'true' }, cache: 'no-store' });
    if (!resp.ok) return;
    const tpl = document.createElement('template');
    tpl.innerHTML = await resp.text();
    const fresh = tpl.content.getElementById(id);
    const current = document.getElementById(id);
    if (!fresh || !current || editing(current)) return;
    const open = openIds(current);
    current.replaceWith(fresh);
    restoreOpen(open);
    htmx.process(fresh);
  }

  function onChange(change) {
    refresh(`run:${change.run_id}`);
    if (change.type.startsWith('run_')) refresh('any'); // counts change only when a run starts or ends
    if (change.type === 'run_started') refresh('new');
    if (['step_dead_lettered', 'run_failed', 'run_reopened', 'run_cancelled'].includes(change.type)) refresh('dlq');
    body.dispatchEvent(new CustomEvent('baton:change', { detail: change }));
  }

  function setLive(on) {
    const el = document.getElementById('live');
    el.dataset.state = on ? 'on' : 'off';
    el.textContent = on ? 'live' : 'reconnecting…';
  }

  async function stream() {
    streaming = true;
    let backoff = 500;
    for (;;) {
      try {
        const resp = await fetch('/ui/events', { headers: authHeaders(), cache: 'no-store' });
        if (resp.status === 401 || resp.status === 403) {
          streaming = false; setLive(false);
          return askKey(resp.status === 403 ? 'That key was refused.' : '');
        }
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) { dispatch(buf.slice(0, i)); buf = buf.slice(i + 2); }
          backoff = 500;
        }
      } catch (_) { /* reconnect below */ }
      setLive(false);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  function dispatch(block) {
    let event = 'message'; let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trim();
    }
    if (event === 'ready') { setLive(true); refresh('all'); } // (re)connected: what changed meanwhile is re-read
    else if (event === 'resync') refresh('all');
    else if (event === 'change') onChange(JSON.parse(data));
  }

  start();
})();

// The live job board: the newest jobs the caller may read, kept current by
// Server-Sent Events from /v1/events (no reload, no polling).

import { ApiError, api, enc } from '../api.js';
import { badge, cell, duration, emptyRow, h, heading, isTerminal, number, replace, timeEl } from '../ui.js';

export const title = 'Live board';

const FILTERS = {
  all: () => true,
  active: (job) => !isTerminal(job.state),
  awaiting: (job) => job.state === 'awaiting_approval',
  failed: (job) => job.state === 'failed',
  succeeded: (job) => job.state === 'succeeded',
};

export function render(main, { session, params }) {
  const live = h('span', { class: 'live', 'data-live': 'off', role: 'status' }, 'Connecting…');
  const filter = h('select', { id: 'board-filter' },
    h('option', { value: 'all' }, 'All jobs'),
    h('option', { value: 'active' }, 'Running and waiting'),
    h('option', { value: 'awaiting' }, 'Awaiting approval'),
    h('option', { value: 'failed' }, 'Failed'),
    h('option', { value: 'succeeded' }, 'Succeeded'));
  filter.value = FILTERS[params.get('show')] ? params.get('show') : 'all';
  const announce = h('div', { class: 'visually-hidden', 'aria-live': 'polite', id: 'board-announce' });
  const body = h('tbody', { id: 'board-rows' });
  replace(main,
    heading('Live board', live),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'board-filter' }, 'Show'), filter)),
    announce,
    h('table', { class: 'cards', id: 'board' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Connection'),
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Type'),
        h('th', { scope: 'col' }, 'Requested by'),
        h('th', { scope: 'col' }, 'Started'),
        h('th', { scope: 'col' }, 'Rows'),
        h('th', { scope: 'col' }, 'Duration'))),
      body));

  const jobs = new Map();
  const names = new Map();

  function connectionName(job) {
    const known = names.get(job.connection_id);
    return known ? known.name : job.connection_id;
  }

  function row(job) {
    return h('tr', { dataset: { job: job.id, state: job.state } },
      cell('Connection', h('a', { href: `#/jobs/${enc(job.id)}` }, connectionName(job)),
        h('span', { class: 'sub mono' }, job.id)),
      cell('State', badge(job.state)),
      cell('Type', job.type),
      cell('Requested by', job.requested_by, h('span', { class: 'sub' }, job.channel)),
      cell('Started', timeEl(job.created_at)),
      cell('Rows', number(job.rows_synced)),
      cell('Duration', duration(job.duration)));
  }

  function draw() {
    const shown = [...jobs.values()]
      .filter(FILTERS[filter.value])
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, 100);
    body.replaceChildren(...shown.map(row));
    if (!shown.length) body.append(emptyRow(7, 'No job to show yet. Jobs appear here as soon as they start.'));
  }

  function upsert(job, fromStream) {
    const known = jobs.get(job.id);
    if (known && known.updated_at > job.updated_at) return;
    jobs.set(job.id, job);
    if (!fromStream) return;
    const tr = body.querySelector(`tr[data-job="${CSS.escape(job.id)}"]`);
    if (tr && FILTERS[filter.value](job)) {
      const fresh = row(job);
      fresh.classList.add('flash');
      tr.replaceWith(fresh);
    } else {
      draw();
      const added = body.querySelector(`tr[data-job="${CSS.escape(job.id)}"]`);
      if (added) added.classList.add('flash');
    }
    if (!known || known.state !== job.state) {
      announce.textContent = `${job.type} of ${connectionName(job)} is ${job.state.replace(/_/g, ' ')}.`;
    }
  }

  filter.addEventListener('change', () => {
    history.replaceState(null, '', `#/board?show=${filter.value}`);
    draw();
  });

  // The stream first, so that nothing between the list and the stream is lost.
  const events = new EventSource('/v1/events');
  events.addEventListener('open', () => {
    live.dataset.live = 'on';
    live.textContent = 'Live';
  });
  events.addEventListener('error', () => {
    live.dataset.live = 'off';
    live.textContent = 'Reconnecting…';
  });
  events.addEventListener('job', (message) => upsert(JSON.parse(message.data).job, true));

  const lookups = [api('/v1/jobs?limit=100')];
  if (session.views.includes('connections')) lookups.push(api('/v1/connections').catch(() => ({ data: [] })));
  Promise.all(lookups).then(([page, connections]) => {
    for (const c of (connections && connections.data) || []) names.set(c.id, c);
    for (const job of page.data) upsert(job, false);
    draw();
  }).catch((error) => {
    replace(body, emptyRow(7, error instanceof ApiError ? error.describe() : String(error)));
  });

  return () => events.close();
}

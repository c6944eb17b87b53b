// Connections the caller may read: search, tags, last job (kept current by
// the event stream), Sync where permitted, Reset behind a confirmation
// (which takes a reason for the approver when resets need approval).

import { ApiError, api, enc } from '../api.js';
import { ask, badge, cell, emptyRow, h, heading, replace, timeEl, toast } from '../ui.js';

export const title = 'Connections';

export function render(main, { session, params }) {
  const search = h('input', { id: 'search', type: 'search', autocomplete: 'off', value: params.get('q') || '' });
  const tagSelect = h('select', { id: 'tag' }, h('option', { value: '' }, 'All tags'));
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' }, 'Loading connections…');
  const body = h('tbody');
  const table = h('table', { class: 'cards', 'aria-describedby': 'connections-count' },
    h('caption', { class: 'muted', hidden: true }, 'Connections you may read'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Connection'),
      h('th', { scope: 'col' }, 'Workspace'),
      h('th', { scope: 'col' }, 'Tags'),
      h('th', { scope: 'col' }, 'Last job'),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    body);
  status.id = 'connections-count';
  replace(main,
    heading('Connections'),
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'search' }, 'Search'), search),
      h('div', { class: 'field' }, h('label', { for: 'tag' }, 'Tag'), tagSelect)),
    status,
    table);

  let connections = [];
  const rows = new Map();

  function lastJobCell(connection) {
    const last = connection.last_job;
    if (!last) return [badge(null)];
    return [
      h('a', { href: `#/jobs/${enc(last.id)}`, 'aria-label': `${last.type} ${last.state}, open the job` }, badge(last.state)),
      ' ', h('span', { class: 'sub' }, last.type, ' · ', timeEl(last.finished_at || last.created_at)),
    ];
  }

  function started(connection, job) {
    connection.last_job = { id: job.id, type: job.type, state: job.state, created_at: job.created_at, finished_at: job.finished_at };
    update(connection);
    const open = h('a', { href: `#/jobs/${enc(job.id)}` }, 'Open the job');
    if (job.state === 'awaiting_approval') {
      toast(`The reset of ${connection.name} awaits approval by another person. `, open);
    } else {
      toast(`${job.type === 'sync' ? 'Sync' : 'Reset'} of ${connection.name} is ${job.state.replace(/_/g, ' ')}. `, open);
    }
  }

  // A reset asks first, with a reason for the approver when resets wait
  // for a second person; the API's refusal is shown in the dialog.
  async function reset(connection, button) {
    const job = await ask({
      title: `Reset ${connection.name}?`,
      text: 'A reset clears the data this connection synced to its destination. The next sync loads it again from the start. This is recorded in the audit trail.',
      label: 'Reset the data',
      reasonLabel: 'Reason (optional; shown to the approver when resets need approval)',
      danger: true,
      submit: (reason) => api(`/v1/connections/${enc(connection.slug)}/reset`, {
        method: 'POST',
        body: reason.trim() ? { reason: reason.trim() } : {},
      }),
    });
    if (job) started(connection, job);
    button.focus();
  }

  async function sync(connection, button) {
    button.disabled = true;
    try {
      started(connection, await api(`/v1/connections/${enc(connection.slug)}/sync`, { method: 'POST' }));
    } catch (error) {
      toast(error instanceof ApiError ? error.describe() : String(error));
    } finally {
      button.disabled = false;
    }
  }

  function row(connection) {
    const can = connection.permissions || [];
    const actions = [];
    if (can.includes('jobs:sync')) {
      const b = h('button', { type: 'button', 'aria-label': `Sync ${connection.name}` }, 'Sync');
      b.addEventListener('click', () => sync(connection, b));
      actions.push(b);
    }
    if (can.includes('jobs:reset')) {
      const b = h('button', { type: 'button', class: 'danger quiet', 'aria-label': `Reset ${connection.name}` }, 'Reset…');
      b.addEventListener('click', () => reset(connection, b));
      actions.push(b);
    }
    const tr = h('tr', { dataset: { connection: connection.slug } },
      cell('Connection', h('strong', {}, connection.name), h('span', { class: 'sub mono' }, connection.slug)),
      cell('Workspace', connection.workspace_name),
      cell('Tags', connection.tags.length ? connection.tags.map((t) => h('span', { class: 'tag' }, t)) : h('span', { class: 'muted' }, '—')),
      cell('Last job', h('span', { class: 'last-job' }, lastJobCell(connection))),
      h('td', { class: 'actions', 'data-label': actions.length ? 'Actions' : null }, actions));
    return tr;
  }

  function update(connection) {
    const tr = rows.get(connection.id);
    if (!tr) return;
    const slot = tr.querySelector('.last-job');
    replace(slot, lastJobCell(connection));
    slot.classList.remove('flash');
    void slot.offsetWidth;
    slot.classList.add('flash');
  }

  function draw() {
    const q = search.value.trim().toLowerCase();
    const tag = tagSelect.value;
    const shown = connections.filter((c) =>
      (!tag || c.tags.includes(tag)) &&
      (!q || [c.name, c.slug, c.workspace_name, ...c.tags].some((t) => t.toLowerCase().includes(q))));
    body.replaceChildren();
    rows.clear();
    for (const c of shown) {
      const tr = row(c);
      rows.set(c.id, tr);
      body.append(tr);
    }
    if (!shown.length) body.append(emptyRow(5, connections.length ? 'No connection matches.' : 'No connection is visible to you.'));
    status.textContent = `${shown.length} of ${connections.length} connections`;
  }

  search.addEventListener('input', draw);
  tagSelect.addEventListener('change', draw);

  let events = null;
  api('/v1/connections?include=last_job,permissions').then((page) => {
    connections = page.data;
    const tags = [...new Set(connections.flatMap((c) => c.tags))].sort();
    for (const t of tags) tagSelect.append(h('option', { value: t }, t));
    draw();
    // Last jobs stay current while the view is open.
    if (session.views.includes('board')) {
      events = new EventSource('/v1/events');
      events.addEventListener('job', (message) => {
        const change = JSON.parse(message.data);
        const connection = connections.find((c) => c.id === change.job.connection_id);
        if (!connection) return;
        const job = change.job;
        const last = connection.last_job;
        if (!last || last.id === job.id || job.id > last.id) {
          connection.last_job = { id: job.id, type: job.type, state: job.state, created_at: job.created_at, finished_at: job.finished_at };
          update(connection);
        }
      });
    }
  }).catch((error) => {
    status.textContent = '';
    replace(body, emptyRow(5, error instanceof ApiError ? error.describe() : String(error)));
  });

  return () => { if (events) events.close(); };
}

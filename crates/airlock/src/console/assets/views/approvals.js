// Four-eyes approvals: the inbox of requests the signed-in person may
// decide (pending first) with Approve and Deny, and the requests they made
// with their state. Decisions go to /v1/approvals/{id}/approve|deny; when
// the API refuses one (a denial without a reason, a requester deciding their
// own request), its own words are shown in the dialog.

import { ApiError, all, api, enc } from '../api.js';
import { ask, badge, cell, emptyRow, h, heading, replace, time, timeEl, toast } from '../ui.js';

export const title = 'Approvals';

// Who requested or decided, as people read it.
export function party(who) {
  if (!who) return '—';
  return who.kind === 'service' && who.client_id ? `${who.client_id} (service)` : who.subject;
}

function same(who, session) {
  return who.subject === session.subject && who.issuer === session.issuer;
}

function connectionName(approval) {
  return approval.connection || approval.connection_id;
}

// The connections view, searched for this one.
export function connectionLink(approval) {
  const name = connectionName(approval);
  return h('a', { href: `#/connections?q=${enc(name)}`, class: 'mono' }, name);
}

function reasonText(text) {
  return text ? h('span', { class: 'reason' }, text) : h('span', { class: 'muted' }, 'none given');
}

// The decisions taken on a request: who, approve or deny, why, when.
export function decisionsList(approval) {
  if (!approval.decisions.length) return h('p', { class: 'muted decisions' }, 'No decision yet.');
  return h('ul', { class: 'decisions' }, approval.decisions.map((d) => h('li', { 'data-verdict': d.verdict },
    h('span', { class: d.verdict === 'approve' ? 'decision-approve' : 'decision-deny' },
      d.verdict === 'approve' ? 'Approved' : 'Denied'),
    ' by ', h('strong', {}, party(d.decider)), ' ',
    h('time', { datetime: d.at, title: time(d.at) }, time(d.at)),
    h('span', { class: 'sub' }, `through ${d.channel}`),
    d.reason ? h('p', { class: 'reason' }, d.reason) : null)));
}

// State, how many approved of how many must, and the decisions.
function stateCell(approval) {
  return cell('State', badge(approval.state),
    h('span', { class: 'sub' }, `${approval.approvals} of ${approval.min_approvals} approval${approval.min_approvals === 1 ? '' : 's'}`),
    decisionsList(approval));
}

// What a decision did, in a sentence.
function outcome(approval, what) {
  switch (approval.state) {
    case 'used': return `Approved: ${what} is released; its job joins the queue.`;
    case 'approved': return `Approved: the requester may now run ${what} once.`;
    case 'denied': return `Denied: ${what} will not run.`;
    case 'pending': return `Your approval of ${what} is recorded; ${approval.min_approvals - approval.approvals} more needed.`;
    default: return `${what} is now ${approval.state}.`;
  }
}

function jobLink(approval, text = 'Open the job') {
  return approval.job_id ? h('a', { href: `#/jobs/${enc(approval.job_id)}`, class: 'job-link' }, text) : null;
}

function requestedCell(approval) {
  return cell('Requested', timeEl(approval.requested_at),
    approval.state === 'pending' ? h('span', { class: 'sub' }, `expires ${time(approval.expires_at)}`) : null);
}

export function render(main, { session }) {
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite', id: 'inbox-count' }, 'Loading the requests…');
  const inbox = h('tbody');
  const mineBody = h('tbody');
  const refresh = h('button', { type: 'button', class: 'quiet', id: 'approvals-refresh' }, 'Refresh');
  replace(main,
    heading('Approvals', refresh),
    h('p', { class: 'note' }, 'Some actions wait until another person approves them (four eyes). Nobody decides their own request.'),
    h('section', { class: 'approvals', 'aria-labelledby': 'inbox-title' },
      h('h2', { id: 'inbox-title' }, 'To decide'),
      status,
      h('table', { class: 'cards', id: 'inbox' },
        h('thead', {}, h('tr', {},
          ['Action', 'Connection', 'Requested by', 'Requested', 'Reason', 'State'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Decide')))),
        inbox)),
    h('section', { class: 'approvals', 'aria-labelledby': 'mine-title' },
      h('h2', { id: 'mine-title' }, 'My requests'),
      h('table', { class: 'cards', id: 'mine' },
        h('thead', {}, h('tr', {},
          ['Action', 'Connection', 'Requested', 'Reason', 'State', 'Job'].map((t) => h('th', { scope: 'col' }, t)))),
        mineBody)));

  let requests = [];

  function inboxActions(approval) {
    const td = h('td', { class: 'actions', 'data-label': 'Decide' });
    const what = `the ${approval.type} of ${connectionName(approval)}`;
    if (approval.state !== 'pending') {
      replace(td, jobLink(approval));
    } else if (approval.decisions.some((d) => same(d.decider, session))) {
      replace(td, h('span', { class: 'muted' }, 'You decided; waiting for another approver.'));
    } else {
      const approve = h('button', { type: 'button', 'aria-label': `Approve ${what}` }, 'Approve');
      const deny = h('button', { type: 'button', class: 'danger quiet', 'aria-label': `Deny ${what}` }, 'Deny…');
      approve.addEventListener('click', () => decide(approval, 'approve', approve));
      deny.addEventListener('click', () => decide(approval, 'deny', deny));
      replace(td, approve, deny);
    }
    return td;
  }

  function inboxRow(approval) {
    return h('tr', { dataset: { approval: approval.id, state: approval.state } },
      cell('Action', h('strong', {}, approval.type), h('span', { class: 'sub' }, approval.permission)),
      cell('Connection', connectionLink(approval)),
      cell('Requested by', party(approval.requester), h('span', { class: 'sub' }, `through ${approval.channel}`)),
      requestedCell(approval),
      cell('Reason', reasonText(approval.reason)),
      stateCell(approval),
      inboxActions(approval));
  }

  function mineRow(approval) {
    const waiting = approval.state === 'pending'
      ? h('span', { class: 'sub own' }, 'Waiting for another person: you cannot approve your own request.')
      : null;
    return h('tr', { dataset: { approval: approval.id, state: approval.state } },
      cell('Action', h('strong', {}, approval.type), h('span', { class: 'sub' }, approval.permission)),
      cell('Connection', connectionLink(approval)),
      requestedCell(approval),
      cell('Reason', reasonText(approval.reason)),
      stateCell(approval),
      cell('Job', jobLink(approval) || '—', waiting));
  }

  function draw() {
    const theirs = requests.filter((a) => !same(a.requester, session));
    const own = requests.filter((a) => same(a.requester, session));
    // Pending first; within each group, newest first (the API's order).
    const ordered = [...theirs.filter((a) => a.state === 'pending'), ...theirs.filter((a) => a.state !== 'pending')];
    inbox.replaceChildren(...ordered.map(inboxRow));
    if (!ordered.length) inbox.append(emptyRow(7, 'Nothing waits for your decision.'));
    mineBody.replaceChildren(...own.map(mineRow));
    if (!own.length) mineBody.append(emptyRow(6, 'You have not requested anything that needs approval.'));
    const pending = theirs.filter((a) => a.state === 'pending').length;
    status.textContent = pending === 1 ? '1 request waits for your decision.' : `${pending} requests wait for your decision.`;
  }

  // The row shows the request as the API now has it; focus stays on it.
  function update(decided) {
    requests = requests.map((a) => (a.id === decided.id ? decided : a));
    const tr = inbox.querySelector(`tr[data-approval="${CSS.escape(decided.id)}"]`);
    const fresh = inboxRow(decided);
    fresh.classList.add('flash');
    if (tr) tr.replaceWith(fresh); else draw();
    const pending = requests.filter((a) => !same(a.requester, session) && a.state === 'pending').length;
    status.textContent = pending === 1 ? '1 request waits for your decision.' : `${pending} requests wait for your decision.`;
    const next = fresh.querySelector('.actions a, .actions button');
    if (next) next.focus();
  }

  async function decide(approval, verdict, button) {
    const approving = verdict === 'approve';
    const what = `the ${approval.type} of ${connectionName(approval)}`;
    const decided = await ask({
      title: `${approving ? 'Approve' : 'Deny'} ${what}?`,
      text: approving
        ? `Requested by ${party(approval.requester)}. Once approved, the job joins the queue and runs.`
        : `Requested by ${party(approval.requester)}. The job ends rejected and never reaches Airbyte.`,
      label: approving ? 'Approve' : 'Deny',
      reasonLabel: approving ? 'Reason (optional)' : 'Reason (required)',
      required: !approving,
      danger: !approving,
      submit: (reason) => api(`/v1/approvals/${enc(approval.id)}/${verdict}`, {
        method: 'POST',
        body: reason.trim() ? { reason: reason.trim() } : {},
      }),
    });
    if (!decided) {
      button.focus();
      return;
    }
    update(decided);
    toast(outcome(decided, what), ' ', jobLink(decided));
  }

  async function load() {
    refresh.disabled = true;
    try {
      requests = await all('/v1/approvals?limit=200', 400);
      draw();
    } catch (error) {
      status.textContent = '';
      replace(inbox, emptyRow(7, error instanceof ApiError ? error.describe() : String(error)));
    } finally {
      refresh.disabled = false;
    }
  }

  refresh.addEventListener('click', load);
  load();
  return null;
}

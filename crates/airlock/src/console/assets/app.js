// The console's shell: who is signed in, which views they may open, and a
// router on the URL's fragment (#/connections, #/board, #/jobs/ID,
// #/approvals, #/audit, #/whoami). Views render into <main> and return a
// function that stops whatever they keep running (event streams).

import { api, setCsrf } from './api.js';
import { h, replace, toast } from './ui.js';
import * as login from './views/login.js';
import * as connections from './views/connections.js';
import * as board from './views/board.js';
import * as job from './views/job.js';
import * as approvals from './views/approvals.js';
import * as audit from './views/audit.js';
import * as whoami from './views/whoami.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let session = null;
let stop = null;

const ROUTES = {
  connections: { view: connections, needs: 'connections' },
  board: { view: board, needs: 'board' },
  jobs: { view: job, needs: 'jobs' },
  approvals: { view: approvals, needs: 'approvals' },
  audit: { view: audit, needs: 'audit' },
  whoami: { view: whoami, needs: 'whoami' },
};

function parse(hash) {
  const text = hash.replace(/^#/, '');
  const [path, query = ''] = text.split('?');
  const parts = path.split('/').filter(Boolean);
  return { name: parts[0] || '', arg: parts[1] ? decodeURIComponent(parts[1]) : null, params: new URLSearchParams(query) };
}

async function loadSession() {
  session = await api('/console/session');
  setCsrf(session.csrf_token || null);
  return session;
}

function showShell() {
  const signedIn = session && session.signed_in;
  nav.hidden = !signedIn;
  who.hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById('who-name').textContent = session.display_name || session.subject;
  for (const link of nav.querySelectorAll('a[data-view]')) {
    link.parentElement.hidden = !session.views.includes(link.dataset.view);
  }
}

function markCurrent(name) {
  for (const link of nav.querySelectorAll('a[data-view]')) {
    if (link.dataset.view === name || (name === 'jobs' && link.dataset.view === 'board')) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
}

function home() {
  const first = ['connections', 'board', 'audit', 'whoami'].find((v) => session.views.includes(v));
  return `#/${first || 'whoami'}`;
}

let routed = 0;

async function route() {
  if (location.hash && !location.hash.startsWith('#/')) return; // in-page anchors
  if (stop) {
    stop();
    stop = null;
  }
  const { name, arg, params } = parse(location.hash);
  if (!session || !session.signed_in) {
    markCurrent(null);
    stop = login.render(main, { session, params, returnTo: name && name !== 'login' ? location.hash : '#/connections' });
    focusHeading();
    return;
  }
  const target = ROUTES[name];
  if (!target) {
    location.replace(home());
    return;
  }
  if (!session.views.includes(target.needs)) {
    markCurrent(null);
    replace(main, h('h1', { tabindex: '-1' }, 'Not available'),
      h('p', {}, 'Your grants do not open this view. ', h('a', { href: home() }, 'Go to a view you can open.')));
    focusHeading();
    return;
  }
  markCurrent(name);
  document.title = `${target.view.title} · Airlock`;
  try {
    stop = target.view.render(main, { session, arg, params }) || null;
  } catch (error) {
    replace(main, h('p', { class: 'alert', role: 'alert' }, String(error)));
  }
  focusHeading();
}

// After a change of view (not on the first load, where the skip link must
// come first), focus moves to the new view's heading, so that screen
// readers announce it and Tab continues from there.
function focusHeading() {
  routed += 1;
  if (routed === 1) return;
  const heading = main.querySelector('h1');
  if (heading) heading.focus({ preventScroll: false });
}

async function signOut() {
  const button = document.getElementById('logout');
  button.disabled = true;
  try {
    await api('/console/logout', { method: 'POST' });
  } catch (error) {
    if (error.status !== 401) {
      toast(error.describe ? error.describe() : String(error));
      button.disabled = false;
      return;
    }
  }
  button.disabled = false;
  session = { signed_in: false, issuers: session ? session.issuers : [] };
  setCsrf(null);
  showShell();
  history.replaceState(null, '', '/console#/login?signed_out=1');
  route();
}

window.addEventListener('airlock:signed-out', async () => {
  if (!session || !session.signed_in) return;
  await loadSession().catch(() => null);
  if (!session || !session.signed_in) {
    showShell();
    history.replaceState(null, '', `/console#/login?expired=1`);
    route();
  }
});

async function boot() {
  document.getElementById('logout').addEventListener('click', signOut);
  document.getElementById('skip').addEventListener('click', (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener('hashchange', route);
  try {
    await loadSession();
  } catch (error) {
    replace(main, h('h1', { tabindex: '-1' }, 'The console cannot start'),
      h('p', { class: 'alert', role: 'alert' }, error.describe ? error.describe() : String(error)));
    return;
  }
  showShell();
  if (session.signed_in && (!location.hash || location.hash.startsWith('#/login'))) {
    history.replaceState(null, '', `/console${home()}`);
  }
  route();
}

boot();

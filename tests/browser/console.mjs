// Airlock's web console in a real browser: playwright-core drives the
// machine's Chromium (/usr/bin/chromium; nothing is downloaded) against a
// running Airlock whose console signs people in at a real OpenID provider
// (npm oidc-provider, its own login form).
//
// What it proves, for a runner, a reader and an auditor:
// - sign-in through the provider's login form; the console shows exactly
//   the connections the grants allow;
// - the runner starts a sync and, on the live board open in another tab,
//   watches the new job appear and reach `succeeded` without any reload;
//   then opens the job page (timeline, Airbyte job id, rows);
// - the reader sees no Sync button; forged POSTs without the CSRF token
//   (same page, and a form on another origin) are refused and create no job;
// - the auditor reads and exports the audit trail;
// - logout ends the session (the old cookie no longer opens the API);
// - four eyes: the editor's reset awaits approval, she sees it among her
//   requests without a way to approve it herself; the approver finds it in
//   the Approvals inbox, is refused a denial without a reason, approves it
//   with the keyboard, and the job leaves `awaiting_approval`; the job page
//   shows who asked, why and who approved;
// - every view is checked for labelled controls, focusable headings and no
//   horizontal scrolling at 375 px, and screenshotted.
//
// Environment (set by the Rust test `browser.rs`):
//   AIRLOCK_URL   http://127.0.0.1:PORT of Airlock
//   ISSUER        the provider's issuer URL
//   EXPECT        JSON: { runner: {login, name, connections: [names]}, reader: {..., slug},
//                         auditor: {login}, sync: {slug, name}, editor: {login, name},
//                         approver: {login, name} }
//                 (`[approvals] require = ["jobs:reset"]`; the editor and the
//                 approver are granted the sync's workspace)
//   SCREENSHOTS   folder for the PNGs (docs/screenshots when refreshing them)
//
// Exits 0 when every check passed, 1 otherwise (with the failing step).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium } from 'playwright-core';

const AIRLOCK = required('AIRLOCK_URL');
const ISSUER = required('ISSUER');
const EXPECT = JSON.parse(required('EXPECT'));
const SHOTS = required('SCREENSHOTS');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const STEP_TIMEOUT = 30_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

let step = 'start';
function log(text) {
  step = text;
  console.log(`- ${text}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function sameSet(actual, expected, what) {
  const a = [...actual].sort();
  const e = [...expected].sort();
  check(JSON.stringify(a) === JSON.stringify(e), `${what}: expected ${JSON.stringify(e)}, got ${JSON.stringify(a)}`);
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

// Accessibility basics of the current view: every form control has a
// label, every button a name, the view's heading can take focus, and
// nothing scrolls sideways.
async function accessible(page, view) {
  const problems = await page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('main input:not([type=hidden]), main select, main textarea')) {
      const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()}#${el.id}`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (el.closest('[hidden]') || el.closest('dialog:not([open])')) continue;
      const name = (el.getAttribute('aria-label') || el.textContent || '').trim();
      if (!name && !el.querySelector('img[alt]:not([alt=""])')) out.push(`nameless ${el.tagName.toLowerCase()}`);
    }
    const h1 = document.querySelector('main h1');
    if (!h1) out.push('no h1');
    if (document.documentElement.scrollWidth > window.innerWidth + 1) {
      out.push(`scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
    }
    if (!document.documentElement.lang) out.push('no lang');
    return out;
  });
  check(problems.length === 0, `${view}: ${problems.join('; ')}`);
}

// Through the console's Sign in button and the provider's login form.
async function signIn(context, login) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  if (process.env.DEBUG_BROWSER) {
    page.on('framenavigated', (frame) => console.log(`  navigated: ${frame.url()}`));
    page.on('requestfailed', (r) => console.log(`  failed: ${r.url()} ${r.failure()?.errorText}`));
  }
  await page.goto(`${AIRLOCK}/console`);
  await page.getByRole('heading', { name: 'Sign in to Airlock' }).waitFor();
  await page.getByRole('link', { name: 'Sign in' }).click();
  // The provider's own pages: its login form, then its consent form.
  await page.waitForURL((url) => url.href.startsWith(ISSUER));
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any password');
  await page.locator('button[type=submit]').click();
  const consent = page.getByRole('button', { name: 'Continue' });
  await consent.waitFor();
  await consent.click();
  await page.waitForURL((url) => url.href.startsWith(`${AIRLOCK}/console#/`));
  await page.locator('#who-name').waitFor({ state: 'visible' });
  return page;
}

async function connectionNames(page) {
  // The count, not the "Loading connections…" shown before the list arrives.
  await page.locator('#connections-count').filter({ hasText: /\d+ of \d+ connections/ }).waitFor();
  return page.locator('tr[data-connection] strong').allTextContents();
}

// A POST without the CSRF token from the console's own page.
async function forgedFetch(page, slug) {
  return page.evaluate(async (target) => {
    const response = await fetch(target, { method: 'POST', credentials: 'same-origin' });
    return { status: response.status, body: await response.json() };
  }, `/v1/connections/${slug}/sync`);
}

async function jobIds(page) {
  return page.evaluate(async () => {
    const response = await fetch('/v1/jobs?limit=200', { credentials: 'same-origin' });
    return (await response.json()).data.map((job) => job.id);
  });
}

async function main() {
  log(`launching ${CHROMIUM}`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    await runner(browser);
    await reader(browser);
    await auditor(browser);
    await fourEyes(browser);
    await phone(browser);
  } finally {
    await browser.close();
  }
}

async function runner(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  try {
    log('the console, signed out, offers to sign in');
    const first = await context.newPage();
    first.setDefaultTimeout(STEP_TIMEOUT);
    await first.goto(`${AIRLOCK}/console`);
    await first.getByRole('heading', { name: 'Sign in to Airlock' }).waitFor();
    await accessible(first, 'login');
    await shot(first, 'login');
    await first.close();

    log(`the runner (${EXPECT.runner.login}) signs in through the provider's login form`);
    const page = await signIn(context, EXPECT.runner.login);
    check(page.url().endsWith('#/connections'), `lands on the connections: ${page.url()}`);
    const shown = await page.locator('#who-name').textContent();
    check(shown === EXPECT.runner.name, `the header names the person: ${shown}`);

    log('the runner sees exactly the granted connections, each with a Sync button');
    const names = await connectionNames(page);
    sameSet(names, EXPECT.runner.connections, 'runner connections');
    check(await page.getByRole('button', { name: `Sync ${EXPECT.sync.name}` }).count() === 1, 'a Sync button on the target');
    check(await page.getByRole('button', { name: /^Reset/ }).count() === 0, 'a runner may not reset');
    await accessible(page, 'connections');

    log('search narrows the list');
    await page.getByLabel('Search').fill(EXPECT.sync.name);
    check((await page.locator('tr[data-connection]').count()) >= 1, 'the search finds the connection');
    await page.getByLabel('Search').fill('');
    await shot(page, 'connections');

    log('the live board opens in a second tab');
    const board = await context.newPage();
    board.setDefaultTimeout(STEP_TIMEOUT);
    await board.goto(`${AIRLOCK}/console#/board`);
    await board.locator('.live[data-live="on"]').waitFor();
    await board.locator('#board-rows').waitFor();
    const before = new Set(await board.locator('tr[data-job]').evaluateAll((rows) => rows.map((r) => r.dataset.job)));
    // Proof of no reload: a value set now must survive until the end, and
    // the states each row goes through are recorded as they change.
    let loads = 0;
    board.on('load', () => { loads += 1; });
    await board.evaluate(() => {
      window.__sameDocument = true;
      window.__seen = {};
      const note = () => {
        for (const row of document.querySelectorAll('tr[data-job]')) {
          const list = (window.__seen[row.dataset.job] ||= []);
          if (list[list.length - 1] !== row.dataset.state) list.push(row.dataset.state);
        }
      };
      new MutationObserver(note).observe(document.getElementById('main'), { subtree: true, childList: true, attributes: true });
    });

    log(`the runner starts a sync of ${EXPECT.sync.name}`);
    await page.getByRole('button', { name: `Sync ${EXPECT.sync.name}` }).click();
    await page.locator('#toast p').filter({ hasText: `Sync of ${EXPECT.sync.name}` }).waitFor();
    const jobLink = page.locator('#toast p a').last();
    const jobHref = await jobLink.getAttribute('href');
    const jobId = decodeURIComponent(jobHref.replace('#/jobs/', ''));
    check(!before.has(jobId), 'a new job');

    log(`the board shows job ${jobId} and follows it to succeeded, without reloading`);
    const row = board.locator(`tr[data-job="${jobId}"]`);
    await row.waitFor();
    await board.locator(`tr[data-job="${jobId}"][data-state="succeeded"]`).waitFor({ timeout: 60_000 });
    const seen = await board.evaluate((id) => window.__seen[id] || [], jobId);
    const same = await board.evaluate(() => window.__sameDocument === true);
    check(same && loads === 0, `the board page was reloaded (loads: ${loads})`);
    check(seen[seen.length - 1] === 'succeeded', `states seen: ${seen}`);
    check(seen.length >= 2, `the board saw the job change state live, not only its end: ${seen}`);
    console.log(`  states seen on the board: ${seen.join(' → ')}`);
    check((await board.locator(`tr[data-job="${jobId}"] a`).textContent()).includes(EXPECT.sync.name), 'the row names the connection');
    await accessible(board, 'board');
    await shot(board, 'board');

    log('the job page: timeline, attempts, rows, bytes, duration, the Airbyte job id');
    await board.locator(`tr[data-job="${jobId}"] a`).click();
    await board.waitForURL(`**/console#/jobs/${jobId}`);
    await board.locator('#job-timeline li[data-state="succeeded"]').waitFor();
    const facts = await board.locator('#job-facts').innerText();
    check(/Airbyte job id\s+\d+/.test(facts), `an Airbyte job id: ${facts}`);
    check(/Attempts\s+1 of at most/.test(facts), `attempts: ${facts}`);
    check(/Rows\s+[\d,]+/.test(facts) && /Bytes\s+[\d.]+ [KMGT]?B/.test(facts), `rows and bytes: ${facts}`);
    check(!/Duration\s+—/.test(facts), `a duration: ${facts}`);
    const timeline = await board.locator('#job-timeline li').evaluateAll((items) => items.map((li) => li.dataset.state));
    check(timeline[0] === 'queued' && timeline[timeline.length - 1] === 'succeeded', `timeline: ${timeline}`);
    check(await board.evaluate(() => window.__sameDocument === true), 'still the same document');
    check(await board.getByRole('button', { name: 'Retry' }).count() === 0, 'no retry of a succeeded job');
    await accessible(board, 'job');
    await shot(board, 'job');

    log('who am I');
    await page.getByRole('link', { name: 'Who am I' }).click();
    await page.locator('#whoami-facts').waitFor();
    const me = await page.locator('#whoami-facts').innerText();
    check(me.includes(EXPECT.runner.login) && me.includes('runner'), `whoami: ${me}`);
    await accessible(page, 'whoami');
    await shot(page, 'whoami');

    log('a forged POST without the CSRF token is refused and creates no job');
    const jobsBefore = await jobIds(page);
    const forged = await forgedFetch(page, EXPECT.sync.slug);
    check(forged.status === 403 && forged.body.code === 'csrf_rejected', `forged fetch: ${JSON.stringify(forged)}`);

    log('a form on another origin posting to Airlock is refused too');
    const attacker = await context.newPage();
    attacker.setDefaultTimeout(STEP_TIMEOUT);
    const target = `${AIRLOCK}/v1/connections/${EXPECT.sync.slug}/sync`;
    // A page of another origin (the provider's host and port) that posts a
    // form to Airlock as soon as it loads; the browser sends the cookie.
    await attacker.route(`${ISSUER}/attack`, (route) => route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><form method="post" action="${target}"></form><script>document.forms[0].submit()</script>`,
    }));
    const answer = attacker.waitForResponse((r) => r.url() === target && r.request().method() === 'POST');
    await attacker.goto(`${ISSUER}/attack`);
    const refused = await answer;
    check(refused.status() === 403, `cross-origin form: ${refused.status()}`);
    const refusal = await refused.json();
    check(refusal.code === 'csrf_rejected', `cross-origin form: ${JSON.stringify(refusal)}`);
    await attacker.close();
    const jobsAfter = await jobIds(page);
    sameSet(jobsAfter, jobsBefore, 'jobs after the forged requests');

    log('logout ends the session');
    const cookie = (await context.cookies(AIRLOCK)).find((c) => c.name === 'airlock_session');
    check(cookie && cookie.httpOnly && cookie.sameSite === 'Lax', `the session cookie: ${JSON.stringify(cookie && { ...cookie, value: '…' })}`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out.').waitFor();
    check(!(await context.cookies(AIRLOCK)).some((c) => c.name === 'airlock_session'), 'the cookie is gone');
    const replay = await fetch(`${AIRLOCK}/v1/whoami`, { headers: { cookie: `airlock_session=${cookie.value}` } });
    check(replay.status === 401, `the old cookie after logout: ${replay.status}`);
    await board.reload();
    await board.getByRole('heading', { name: 'Sign in to Airlock' }).waitFor();
  } finally {
    await context.close();
  }
}

async function reader(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    log(`the reader (${EXPECT.reader.login}) signs in`);
    const page = await signIn(context, EXPECT.reader.login);
    const names = await connectionNames(page);
    sameSet(names, EXPECT.reader.connections, 'reader connections');
    log('the reader sees no Sync button');
    check(await page.getByRole('button', { name: /^Sync/ }).count() === 0, 'no Sync button for a reader');
    check(await page.getByRole('link', { name: 'Audit trail' }).isHidden(), 'no audit view for a reader');
    log('the reader\'s forged POST without the CSRF token is refused');
    const forged = await forgedFetch(page, EXPECT.reader.slug);
    check(forged.status === 403 && forged.body.code === 'csrf_rejected', `forged: ${JSON.stringify(forged)}`);
    log('the reader cannot open the audit view by its address');
    await page.goto(`${AIRLOCK}/console#/audit`);
    await page.getByRole('heading', { name: 'Not available' }).waitFor();
  } finally {
    await context.close();
  }
}

async function auditor(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  try {
    log(`the auditor (${EXPECT.auditor.login}) reads the audit trail`);
    const page = await signIn(context, EXPECT.auditor.login);
    await page.getByRole('link', { name: 'Audit trail' }).click();
    await page.locator('#audit tbody tr[data-seq]').first().waitFor();
    log('filters: the runner\'s sync, and who was refused');
    await page.getByLabel('Action').fill('jobs.sync');
    await page.getByLabel('Actor').fill(EXPECT.runner.login);
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('#audit tbody tr[data-seq]').first().waitFor();
    const syncs = await page.locator('#audit tbody tr[data-seq]').allInnerTexts();
    check(syncs.length >= 1 && syncs.every((t) => t.includes('jobs.sync') && t.includes('console')), `sync records: ${syncs}`);
    await page.getByLabel('Action').fill('csrf');
    await page.getByLabel('Actor').fill('');
    await page.getByLabel('Decision').selectOption('deny');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('#audit tbody tr[data-seq]').first().waitFor();
    const refusals = await page.locator('#audit tbody tr[data-seq]').allInnerTexts();
    check(refusals.length >= 2, `the refused forgeries are audited: ${refusals.length}`);
    log('export as JSON Lines');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export JSON Lines' }).click();
    const file = await (await download).path();
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    check(lines.length === refusals.length && lines.every((r) => r.action === 'csrf' && r.decision === 'deny'), `export: ${lines.length} lines`);
    await page.getByLabel('Action').fill('');
    await page.getByLabel('Decision').selectOption('');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('#audit tbody tr[data-seq]').first().waitFor();
    await accessible(page, 'audit');
    await shot(page, 'audit');
  } finally {
    await context.close();
  }
}

// The editor asks for a reset through the console; it waits for approval.
async function requestReset(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    log(`the editor (${EXPECT.editor.login}) resets ${EXPECT.sync.name}, giving a reason`);
    const page = await signIn(context, EXPECT.editor.login);
    await connectionNames(page);
    await page.getByRole('button', { name: `Reset ${EXPECT.sync.name}` }).click();
    await page.locator('#ask[open]').waitFor();
    await page.getByLabel(/^Reason/).fill('Reload after the schema fix');
    await page.locator('#ask-ok').click();
    const toastLine = page.locator('#toast p').filter({ hasText: 'awaits approval' });
    await toastLine.waitFor();
    const jobId = decodeURIComponent((await toastLine.locator('a').getAttribute('href')).replace('#/jobs/', ''));
    const last = page.locator(`tr[data-connection="${EXPECT.sync.slug}"] .last-job [data-state]`);
    check(await last.getAttribute('data-state') === 'awaiting_approval', 'the row shows the reset awaiting approval');

    log('her job page shows the pending request, her name and her reason');
    await page.goto(`${AIRLOCK}/console#/jobs/${jobId}`);
    await page.locator('#job-state [data-state="awaiting_approval"]').waitFor();
    await page.locator('#job-approval [data-state="pending"]').waitFor();
    const approval = await page.locator('#job-approval').innerText();
    check(approval.includes(EXPECT.editor.login) && approval.includes('Reload after the schema fix'), `the approval: ${approval}`);

    log('her Approvals page lists it among her requests, with no way to approve it herself');
    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    const mine = page.locator('#mine tr[data-approval][data-state="pending"]');
    await mine.first().waitFor();
    const id = await mine.first().getAttribute('data-approval');
    check((await mine.first().innerText()).includes('you cannot approve your own request'), 'the four-eyes note');
    check(await page.locator(`#inbox tr[data-approval="${id}"]`).count() === 0, 'not in her own inbox');
    check(await page.getByRole('button', { name: /^Approve/ }).count() === 0, 'no Approve button for the requester');
    await accessible(page, 'approvals (requester)');
    return { jobId, id };
  } finally {
    await context.close();
  }
}

async function approverInbox(page, id) {
  await page.getByRole('link', { name: 'Approvals', exact: true }).click();
  const row = page.locator(`#inbox tr[data-approval="${id}"][data-state="pending"]`);
  await row.waitFor();
  return row;
}

async function fourEyes(browser) {
  const { jobId, id } = await requestReset(browser);
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const phoneContext = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  try {
    log(`the approver (${EXPECT.approver.login}) finds the request in her inbox`);
    const page = await signIn(context, EXPECT.approver.login);
    const row = await approverInbox(page, id);
    const text = await row.innerText();
    for (const part of ['reset', EXPECT.sync.slug, EXPECT.editor.login, 'Reload after the schema fix']) {
      check(text.includes(part), `the row shows ${part}: ${text}`);
    }
    check(/(just now|\d+ s ago|\d+ min ago)/.test(text), `the row shows the request's age: ${text}`);
    check(await row.locator('a', { hasText: EXPECT.sync.slug }).getAttribute('href') === `#/connections?q=${EXPECT.sync.slug}`, 'the connection links to it');
    await accessible(page, 'approvals');
    await shot(page, 'approvals');

    log('on a phone (375 px) the inbox fits the screen');
    const phonePage = await signIn(phoneContext, EXPECT.approver.login);
    await approverInbox(phonePage, id);
    await accessible(phonePage, 'approvals at 375 px');
    await shot(phonePage, 'approvals-phone');

    log('a denial without a reason is refused, in the API\'s words');
    const what = `the reset of ${EXPECT.sync.slug}`;
    await page.getByRole('button', { name: `Deny ${what}` }).click();
    await page.locator('#ask[open]').waitFor();
    await page.locator('#ask-ok').click();
    await page.locator('#ask-error').filter({ hasText: 'reason' }).waitFor();
    await page.keyboard.press('Escape');
    await page.locator('#ask').waitFor({ state: 'hidden' });
    check(await page.evaluate(() => document.activeElement.textContent) === 'Deny…', 'focus returns to the Deny button');
    check(await row.count() === 1, 'still pending');

    log('she approves with the keyboard: Tab to Approve, Enter, a reason, Enter');
    const approve = page.getByRole('button', { name: `Approve ${what}` });
    await page.keyboard.press('Shift+Tab');
    check(await approve.evaluate((b) => b === document.activeElement), 'Shift+Tab reaches Approve');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', `focus is visible on Approve (outline ${outline})`);
    await page.keyboard.press('Enter');
    await page.locator('#ask[open]').waitFor();
    check(await page.evaluate(() => document.activeElement.id === 'ask-reason'), 'the dialog focuses the reason');
    await page.keyboard.type('Checked with the data team');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id === 'ask-ok'), 'Tab reaches the dialog\'s Approve');
    await page.keyboard.press('Enter');
    const decided = page.locator(`#inbox tr[data-approval="${id}"][data-state="used"]`);
    await decided.waitFor();
    const after = await decided.innerText();
    check(after.includes(`Approved by ${EXPECT.approver.login}`) && after.includes('Checked with the data team'), `the row after: ${after}`);

    log(`job ${jobId} leaves awaiting_approval, and its page shows the decision`);
    await decided.getByRole('link', { name: 'Open the job' }).click();
    await page.waitForURL(`**/console#/jobs/${jobId}`);
    await page.locator('#job-state [data-state]:not([data-state="awaiting_approval"])').waitFor();
    const state = await page.locator('#job-state [data-state]').getAttribute('data-state');
    check(['queued', 'starting', 'pending', 'running', 'succeeded'].includes(state), `the job after approval: ${state}`);
    await page.locator('#job-approval [data-state="used"]').waitFor();
    const history = await page.locator('#job-approval').innerText();
    check(history.includes(`Approved by ${EXPECT.approver.login}`) && history.includes('Checked with the data team'), `the history: ${history}`);
    await page.locator('#job-timeline li[data-state="succeeded"]').waitFor({ timeout: 60_000 });
    await accessible(page, 'job with its approval');
    await shot(page, 'job-approval');
  } finally {
    await phoneContext.close();
    await context.close();
  }
}

async function phone(browser) {
  const context = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  try {
    log('on a phone (375 px): the connections and the board fit the screen');
    const page = await signIn(context, EXPECT.runner.login);
    await connectionNames(page);
    await accessible(page, 'connections at 375 px');
    await shot(page, 'connections-phone');
    await page.getByRole('link', { name: 'Live board' }).click();
    await page.locator('.live[data-live="on"]').waitFor();
    await accessible(page, 'board at 375 px');
    log('keyboard: the skip link comes first and moves focus to the content');
    await page.reload();
    await page.locator('.live[data-live="on"]').waitFor();
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id === 'skip'), 'the first Tab reaches the skip link');
    await page.keyboard.press('Enter');
    check(await page.evaluate(() => document.activeElement.id === 'main'), 'the skip link moves focus to the content');
    log('keyboard: the views are reached with Tab and Enter');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    let reached = false;
    for (let i = 0; i < 12 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement.dataset.view === 'whoami');
    }
    check(reached, 'Tab reaches the Who am I link');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', `focus is visible (outline ${outline})`);
    await page.keyboard.press('Enter');
    await page.locator('#whoami-facts').waitFor();
    check(await page.evaluate(() => document.activeElement.tagName === 'H1'), 'the new view\'s heading takes focus');
  } finally {
    await context.close();
  }
}

// However a step hangs, the script ends (and says where).
setTimeout(() => {
  console.error(`FAILED at "${step}": the browser checks took longer than 5 minutes`);
  process.exit(1);
}, 300_000).unref();

main().then(() => {
  console.log('browser checks passed');
  process.exit(0);
}).catch((error) => {
  console.error(`FAILED at "${step}": ${error.stack || error}`);
  process.exit(1);
});

// Calls to Airlock's own API with the session cookie. State-changing calls
// carry the session's CSRF token; a 401 means the session ended.

let csrfToken = null;

export function setCsrf(token) {
  csrfToken = token;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  // A sentence for people, with the request id to quote.
  describe() {
    const id = this.problem && this.problem.request_id;
    const what = {
      401: 'Your session has ended.',
      403: 'You are not allowed to do this.',
      404: 'Not found (or not visible to you).',
      409: this.message,
      429: 'Too many requests at once; try again.',
      503: 'A service Airlock depends on is unavailable; try again.',
    }[this.status] || this.message;
    if (this.problem && this.problem.code === 'csrf_rejected') return `Refused: ${this.message}.`;
    // The four-eyes rule says why in its own words.
    if (this.problem && this.problem.code === 'four_eyes') return id ? `${this.message}. (request ${id})` : `${this.message}.`;
    return id ? `${what} (request ${id})` : what;
  }
}

export async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const sent = { accept: 'application/json', ...headers };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) sent['x-csrf-token'] = csrfToken;
  if (body !== undefined) sent['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent('airlock:signed-out'));
    throw new ApiError(response.status, data);
  }
  return data;
}

// Follows `next_cursor` until `max` items or the last page.
export async function all(path, max) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page = await api(cursor ? `${path}${separator}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items.slice(0, max);
}

export function enc(value) {
  return encodeURIComponent(value);
}

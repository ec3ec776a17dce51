// The API tokens page: a client of tessera's /v1 API, like any other.
//
// The super-admin token it signs in with is kept in this tab's session storage only (never a
// cookie, never local storage) and sent as `Authorization: Bearer`. Every change goes through
// the documented endpoints; every refusal shows the API's own message. The form checks its
// input with the API's rules and messages first (mirrored from src/lifecycle.rs and
// src/permissions.rs), so most mistakes are caught before a request.
//
// No framework and no build step: the file is embedded in the binary as it is. Everything that
// comes from the API is written with textContent, never parsed as HTML.

const TOKEN_KEY = 'tessera.token';
const SOON_DAYS = 7;

// --- The rules of the API, mirrored ------------------------------------------------------------

const NAME_MIN = 3;
const NAME_MAX = 50;
const DESCRIPTION_MAX = 350;
const MAX_GRANTS = 64;
const MAX_PATTERNS = 64;
const MAX_PATTERN_LEN = 253;

/** The resource kinds (docs/permissions.md): role ladders (low to high) and scope fields, in JSON order. */
const RESOURCES = {
  'devtron-app': {
    title: 'Devtron Apps',
    roles: [['view', 'View only'], ['trigger', 'Build and deploy'], ['admin', 'Admin'], ['manager', 'Manager']],
    fields: [
      { key: 'project', label: 'Project', list: false },
      { key: 'environments', label: 'Environments', list: true, initial: '*' },
      { key: 'apps', label: 'Applications', list: true, initial: '*' },
    ],
  },
  'helm-app': {
    title: 'Helm Apps',
    roles: [['view', 'View only'], ['edit', 'View and edit'], ['admin', 'Admin']],
    fields: [
      { key: 'project', label: 'Project', list: false },
      { key: 'environments', label: 'Environments (cluster__namespace)', list: true, initial: '*' },
      { key: 'apps', label: 'Applications', list: true, initial: '*' },
    ],
  },
  kubernetes: {
    title: 'Kubernetes Resources',
    roles: [['view', 'View'], ['edit', 'Edit'], ['admin', 'Admin']],
    fields: [
      { key: 'cluster', label: 'Cluster', list: false },
      { key: 'namespaces', label: 'Namespaces', list: true, initial: '*' },
      { key: 'groups', label: 'API groups', list: true, initial: '*', allowEmpty: true },
      { key: 'kinds', label: 'Kinds', list: true, initial: '*' },
      { key: 'names', label: 'Object names', list: true, initial: '*' },
    ],
  },
  'chart-group': {
    title: 'Chart Groups',
    roles: [['view', 'View'], ['update', 'Update'], ['admin', 'Admin']],
    fields: [{ key: 'groups', label: 'Chart groups', list: true, initial: '*' }],
  },
};

const utf8 = new TextEncoder();
const byteLength = (text) => utf8.encode(text).length;

/** Rust's `shorten`: input echoed into a message, cut to 64 bytes. */
function shorten(text) {
  if (byteLength(text) <= 64) return text;
  let out = '';
  let bytes = 0;
  for (const c of text) {
    const n = byteLength(c);
    if (bytes + n > 64) break;
    out += c;
    bytes += n;
  }
  return `${out}…`;
}

/** A string as Rust's `{:?}` writes it (the API's messages quote input that way). */
function debug(text) {
  let out = '"';
  for (const c of text) {
    const code = c.codePointAt(0);
    if (c === '"') out += '\\"';
    else if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (code === 0) out += '\\0';
    else if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return `${out}"`;
}

/** RFC 3339 in UTC to the second, as the API writes times. */
const formatTime = (date) => `${date.toISOString().slice(0, 19)}Z`;

/** `validate_name` of src/lifecycle.rs. */
function checkName(name) {
  const length = [...name].length;
  const shape = /^[a-z0-9]$/;
  const ok =
    length >= NAME_MIN &&
    length <= NAME_MAX &&
    /^[a-z0-9_-]*$/.test(name) &&
    shape.test(name.slice(0, 1)) &&
    shape.test(name.slice(-1));
  if (ok) return null;
  return `name: ${debug(shorten(name))} is not a valid name: use ${NAME_MIN} to ${NAME_MAX} lowercase letters, digits, '-' and '_', starting and ending with a letter or digit`;
}

/** `validate_description` of src/lifecycle.rs. */
function checkDescription(description) {
  const length = [...description].length;
  if (length > DESCRIPTION_MAX) {
    return `description: ${length} characters is too long: at most ${DESCRIPTION_MAX}`;
  }
  if (/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(description)) {
    return 'description: control characters are not allowed (new lines are)';
  }
  return null;
}

/** An expiry as the API takes it, or the API's message for it (`Expiry::from_str`, `resolve`). */
function checkExpiry(expires, now = new Date()) {
  if (expires.at === undefined) return null;
  if (expires.at === null) {
    return `expires: "" is not an expiry: use 7d, 30d, 60d, 90d, never, or a future RFC 3339 time such as 2027-01-31T00:00:00Z`;
  }
  if (expires.at <= now) return `expires: ${formatTime(expires.at)} is not in the future`;
  return null;
}

/** `Pattern::parse_in` of src/permissions.rs: `null` when `text` is a valid pattern. */
function checkPattern(text, allowEmpty) {
  const bytes = byteLength(text);
  if (bytes > MAX_PATTERN_LEN) return `pattern too long: ${bytes} bytes (at most ${MAX_PATTERN_LEN})`;
  if (text === '*') return null;
  const invalid = (reason) => `invalid pattern ${debug(text)}: ${reason}`;
  const prefix = text.endsWith('*');
  if (!prefix && text === '') {
    return allowEmpty
      ? null
      : invalid('a pattern may not be empty (use "*" to match everything; only kubernetes "groups" may list "", the core API group)');
  }
  const body = prefix ? text.slice(0, -1) : text;
  if (body.includes('*')) return invalid('"*" may only end a pattern');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) return invalid('control characters are not allowed');
  return null;
}

/** One grant, as `Grant::try_from` checks it: fields in order, lists before their patterns. */
function checkGrant(grant) {
  for (const field of RESOURCES[grant.resource].fields) {
    const value = grant[field.key];
    if (!field.list) {
      const error = checkPattern(value, false);
      if (error) return error;
      continue;
    }
    if (value.length === 0) return `"${field.key}" must list at least one pattern`;
    if (value.length > MAX_PATTERNS) {
      return `too many patterns in "${field.key}": ${value.length} (at most ${MAX_PATTERNS})`;
    }
    for (const pattern of value) {
      const error = checkPattern(pattern, Boolean(field.allowEmpty));
      if (error) return error;
    }
  }
  return null;
}

/** `Permissions::validate`: `{index, message}` of the first rule broken, or `null`. */
function checkPermissions(permissions) {
  if (permissions.super_admin) return null;
  const grants = permissions.grants;
  if (grants.length === 0) return { index: null, message: 'permissions: "grants" must list at least one grant' };
  if (grants.length > MAX_GRANTS) {
    return { index: null, message: `permissions: too many grants: ${grants.length} (at most ${MAX_GRANTS})` };
  }
  for (const [index, grant] of grants.entries()) {
    const error = checkGrant(grant);
    if (error) return { index, message: `permissions: grants[${index}]: ${error}` };
  }
  return null;
}

/** Comma-separated patterns; `""` is the empty pattern (the Kubernetes core API group). */
function parseList(text) {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item) => (item === '""' ? '' : item));
}

const writeList = (patterns) => patterns.map((p) => (p === '' ? '""' : p)).join(', ');

/** `Grant`'s one-line form, as the command line prints it. */
function grantSummary(grant) {
  const list = (patterns) => patterns.map((p) => (p === '' ? '""' : p)).join(',');
  const head = `${grant.resource}:${grant.role}`;
  switch (grant.resource) {
    case 'devtron-app':
    case 'helm-app':
      return `${head} project=${grant.project} envs=${list(grant.environments)} apps=${list(grant.apps)}`;
    case 'kubernetes':
      return `${head} cluster=${grant.cluster} namespaces=${list(grant.namespaces)} groups=${list(grant.groups)} kinds=${list(grant.kinds)} names=${list(grant.names)}`;
    default:
      return `${head} groups=${list(grant.groups)}`;
  }
}

// --- The API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A call to the API with the session's token (or `token`); resolves to the JSON body. */
async function api(method, path, { body, revision, token } = {}) {
  const bearer = token ?? sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (revision !== undefined) headers['If-Match'] = `"${revision}"`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    throw new ApiError(0, 'unreachable', `The service could not be reached: ${error.message}`);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json && json.error;
    throw new ApiError(
      response.status,
      (error && error.code) || `http_${response.status}`,
      (error && error.message) || `The service answered ${response.status} ${response.statusText}.`,
    );
  }
  return json;
}

// --- Small DOM helpers --------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** An element with attributes (`class`, `data-*`, `aria-*`, properties) and children. */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key.startsWith('data-') || key.startsWith('aria-') || ['for', 'role', 'spellcheck', 'autocomplete'].includes(key)) {
      element.setAttribute(key, value);
    } else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else element[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const clockFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

/** A time from the API, in the browser's time zone: the day and the time each unbroken. */
function time(iso) {
  const at = new Date(iso);
  return h('time', { dateTime: iso, title: iso },
    h('span', { class: 'nowrap' }, dayFormat.format(at)), ' ',
    h('span', { class: 'nowrap' }, clockFormat.format(at)));
}

let nextId = 0;
const uid = (prefix) => `${prefix}-${++nextId}`;

function showError(element, message) {
  element.textContent = message || '';
  element.hidden = !message;
}

// --- State and views ----------------------------------------------------------------------------

const state = {
  tokens: [],
  sort: { key: 'name', dir: 'asc' },
  editing: null,
  deleting: null,
};

const VIEWS = ['sign-in', 'tokens', 'form', 'audit', 'keys'];

function show(view, { focus = true } = {}) {
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  $('nav').hidden = view === 'sign-in';
  const tab = view === 'form' ? 'tokens' : view;
  for (const button of document.querySelectorAll('#nav .tab')) {
    if (button.dataset.view === tab) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  if (focus) {
    const heading = $(`view-${view}`).querySelector('h1');
    heading.tabIndex = -1;
    heading.focus();
  }
}

function notice(message) {
  $('notice').textContent = message || '';
  $('notice').hidden = !message;
}

/** An API error after sign-in: a refused session token sends the user back to sign in. */
function failed(error, where) {
  if (error.status === 401 || error.status === 403) {
    signOut(`Signed out: ${signInMessage(error)}`);
    return;
  }
  if (where) showError(where, error.message);
  else notice(error.message);
}

// --- Sign in ------------------------------------------------------------------------------------

function signInMessage(error) {
  if (error.status === 401) {
    return `The token was refused (${error.code}): it is not a token of this service, or it has expired, been regenerated or been deleted.`;
  }
  if (error.status === 403) {
    return 'This is not a super-admin token: it is valid, but managing API tokens needs a super-admin token.';
  }
  return error.message;
}

async function signIn(event) {
  event.preventDefault();
  const field = $('sign-in-token');
  const token = field.value.trim();
  const error = $('sign-in-error');
  if (!token) {
    field.setAttribute('aria-invalid', 'true');
    error.textContent = 'Paste a super-admin token to sign in.';
    field.focus();
    return;
  }
  try {
    const list = await api('GET', '/v1/tokens', { token });
    sessionStorage.setItem(TOKEN_KEY, token);
    field.value = '';
    field.removeAttribute('aria-invalid');
    error.textContent = '';
    state.tokens = list.tokens;
    notice('');
    renderTokens();
    show('tokens');
  } catch (e) {
    field.setAttribute('aria-invalid', 'true');
    error.textContent = signInMessage(e);
    field.focus();
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.tokens = [];
  state.editing = null;
  $('tokens-body').replaceChildren();
  $('audit-body').replaceChildren();
  $('keys-list').replaceChildren();
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  notice('');
  $('sign-in-error').textContent = message || '';
  show('sign-in');
  $('sign-in-token').focus();
}

// --- The token list -----------------------------------------------------------------------------

async function loadTokens() {
  try {
    state.tokens = (await api('GET', '/v1/tokens')).tokens;
    renderTokens();
    return true;
  } catch (error) {
    failed(error);
    return false;
  }
}

const SORT_KEYS = {
  name: (t) => t.name,
  expires: (t) => t.expires_at ?? '\uffff',
  last_used: (t) => t.last_used_at ?? '',
  created: (t) => t.created_at,
  updated: (t) => t.updated_at,
};

/** Who did something: a token's name where the id is known, else the actor as written. */
function actorName(actor, names = new Map()) {
  const id = actor.startsWith('token:') ? actor.slice(6) : null;
  if (id === null) return actor;
  const name = state.tokens.find((t) => t.id === id)?.name ?? names.get(id);
  return name ? `${name} (token)` : actor;
}

function permissionsCell(permissions) {
  if (permissions.super_admin) return h('span', { class: 'badge admin' }, 'Super admin');
  return h('ul', { class: 'grants-summary' }, permissions.grants.map((g) => h('li', {}, grantSummary(g))));
}

function expiresCell(token) {
  if (!token.expires_at) return h('span', { class: 'muted' }, 'Never');
  const left = new Date(token.expires_at) - Date.now();
  let badge = null;
  if (token.status === 'expired') badge = h('span', { class: 'badge expired' }, 'Expired');
  else if (left < SOON_DAYS * 86400e3) badge = h('span', { class: 'badge soon' }, 'Expires soon');
  return [time(token.expires_at), badge ? ' ' : null, badge];
}

function renderTokens() {
  const query = $('search').value.trim().toLowerCase();
  const { key, dir } = state.sort;
  const value = SORT_KEYS[key];
  const shown = state.tokens
    .filter((t) => t.name.includes(query))
    .sort((a, b) => {
      const order = value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : a.name < b.name ? -1 : 1;
      return dir === 'asc' ? order : -order;
    });
  const rows = shown.map((token) =>
    h(
      'tr',
      { 'data-name': token.name },
      h('th', { scope: 'row', 'data-label': 'Name' },
        h('button', { type: 'button', class: 'link name', onclick: () => openEdit(token.id) }, token.name)),
      h('td', { 'data-label': 'Description', class: 'description' }, token.description || h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Permissions' }, permissionsCell(token.permissions)),
      h('td', { 'data-label': 'Expires' }, expiresCell(token)),
      h('td', { 'data-label': 'Last used' },
        token.last_used_at
          ? [time(token.last_used_at), token.last_used_from ? h('span', { class: 'muted small' }, ` from ${token.last_used_from}`) : null]
          : h('span', { class: 'muted' }, 'Never used')),
      h('td', { 'data-label': 'Created' }, time(token.created_at),
        h('span', { class: 'muted small block' }, `by ${actorName(token.created_by)}`)),
      h('td', { 'data-label': 'Updated' }, time(token.updated_at)),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => openEdit(token.id), 'aria-label': `Edit token ${token.name}` }, 'Edit'),
        h('button', { type: 'button', class: 'danger', onclick: () => openDelete(token), 'aria-label': `Delete token ${token.name}` }, 'Delete')),
    ),
  );
  if (rows.length === 0) {
    const text = state.tokens.length === 0 ? 'No tokens yet: generate one.' : 'No token matches the search.';
    rows.push(h('tr', {}, h('td', { colSpan: 8, class: 'empty' }, text)));
  }
  $('tokens-body').replaceChildren(...rows);
  $('tokens-count').textContent = `${shown.length} of ${state.tokens.length} tokens shown.`;
  $('sort').value = `${key}:${dir}`;
  for (const th of document.querySelectorAll('#tokens-table th[data-sort]')) {
    if (th.dataset.sort === key) th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function sortBy(key) {
  const defaults = { name: 'asc', expires: 'asc', last_used: 'desc', created: 'desc', updated: 'desc' };
  const dir = state.sort.key === key ? (state.sort.dir === 'asc' ? 'desc' : 'asc') : defaults[key];
  state.sort = { key, dir };
  renderTokens();
}

// --- Expiration fields (the form and the regenerate dialog share them) ---------------------------

/** The chosen expiry: `{value}` for the API, and `at` for a custom date (`null` when none). */
function readExpiry(prefix) {
  const choice = $(`${prefix}-expires`).value;
  if (choice !== 'custom') return { value: choice };
  const date = $(`${prefix}-custom-date`).value;
  if (!date) return { value: '', at: null };
  // The end of the chosen day, in the browser's time zone.
  const [y, m, d] = date.split('-').map(Number);
  const at = new Date(y, m - 1, d, 23, 59, 59);
  return { value: formatTime(at), at };
}

function describeExpiry(prefix) {
  const choice = $(`${prefix}-expires`).value;
  $(`${prefix}-custom`).hidden = choice !== 'custom';
  const note = $(`${prefix}-expires-note`);
  const expiry = readExpiry(prefix);
  if (choice === 'never') {
    note.textContent = 'The token will never expire. Consider an expiry: a leaked token stays useful until deleted.';
  } else if (choice === 'custom') {
    note.textContent = expiry.at ? `The token will expire on ${dateFormat.format(expiry.at)}.` : 'Pick the day the token expires.';
  } else {
    const at = new Date(Date.now() + Number.parseInt(choice, 10) * 86400e3);
    note.textContent = `The token will expire on ${dateFormat.format(at)}.`;
  }
}

function setupExpiry(prefix) {
  const today = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  $(`${prefix}-custom-date`).min = `${today.getFullYear()}-${pad(today.getMonth() + 1)}-${pad(today.getDate())}`;
  $(`${prefix}-expires`).addEventListener('change', () => describeExpiry(prefix));
  $(`${prefix}-custom-date`).addEventListener('input', () => describeExpiry(prefix));
}

// --- Grant rows ---------------------------------------------------------------------------------

function grantRow(resource, grant) {
  const spec = RESOURCES[resource];
  const container = document.querySelector(`#f-grants fieldset[data-resource="${resource}"] .grants`);
  const number = container.children.length + 1;
  const roleId = uid('role');
  const errorId = uid('grant-error');
  const row = h('fieldset', { class: 'grant', 'data-resource': resource },
    h('legend', { class: 'visually-hidden' }, `${spec.title} permission ${number}`));
  row.append(
    h('div', { class: 'field' },
      h('label', { for: roleId }, 'Role'),
      h('select', { id: roleId, class: 'role', 'aria-describedby': errorId },
        spec.roles.map(([value, label]) => h('option', { value, selected: grant?.role === value }, label)))),
  );
  for (const field of spec.fields) {
    const id = uid(field.key);
    const value = grant ? (field.list ? writeList(grant[field.key]) : grant[field.key]) : field.initial ?? '';
    row.append(
      h('div', { class: 'field' },
        h('label', { for: id }, field.list ? `${field.label} (comma-separated)` : field.label),
        h('input', {
          id, value, class: 'scope', 'data-key': field.key, autocomplete: 'off', spellcheck: 'false',
          'aria-describedby': errorId,
        })),
    );
  }
  row.append(
    h('button', {
      type: 'button', class: 'remove link',
      'aria-label': `Remove ${spec.title} permission ${number}`,
      onclick: () => {
        row.remove();
        const add = document.querySelector(`#f-grants fieldset[data-resource="${resource}"] .add`);
        add.focus();
      },
    }, 'Remove'),
    h('p', { id: errorId, class: 'error grant-error' }),
  );
  // Editing a grant withdraws the complaint about it; the next submit checks again.
  row.addEventListener('input', () => {
    row.querySelector('.grant-error').textContent = '';
    for (const field of row.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
  });
  container.append(row);
  return row;
}

/** The permissions the form describes, and the row of each grant (for errors). */
function readPermissions() {
  if ($('f-super').checked) return { permissions: { super_admin: true }, rows: [] };
  const rows = [...document.querySelectorAll('#f-grants fieldset.grant')];
  const grants = rows.map((row) => {
    const resource = row.dataset.resource;
    const grant = { resource, role: row.querySelector('select.role').value };
    for (const field of RESOURCES[resource].fields) {
      const text = row.querySelector(`input[data-key="${field.key}"]`).value;
      grant[field.key] = field.list ? parseList(text) : text.trim();
    }
    return grant;
  });
  return { permissions: { grants }, rows };
}

function togglePermissions() {
  $('f-grants').hidden = $('f-super').checked;
}

// --- Generate and edit --------------------------------------------------------------------------

function resetForm() {
  const form = $('token-form');
  form.reset();
  for (const list of document.querySelectorAll('#f-grants .grants')) list.replaceChildren();
  for (const error of form.querySelectorAll('.error')) error.textContent = '';
  for (const field of form.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
  showError($('form-error'), '');
  $('f-custom').hidden = true;
}

function openGenerate() {
  state.editing = null;
  resetForm();
  $('form-title').textContent = 'Generate new token';
  $('f-name').readOnly = false;
  $('f-expiry-field').hidden = false;
  $('f-version').hidden = true;
  $('form-submit').textContent = 'Generate token';
  $('form-regenerate').hidden = true;
  $('form-delete').hidden = true;
  togglePermissions();
  describeExpiry('f');
  notice('');
  show('form');
  $('f-name').focus();
}

async function openEdit(id) {
  let token;
  try {
    token = await api('GET', `/v1/tokens/${encodeURIComponent(id)}`);
  } catch (error) {
    failed(error);
    if (error.status === 404) await loadTokens();
    return;
  }
  state.editing = token;
  resetForm();
  $('form-title').textContent = `Edit token ${token.name}`;
  $('f-name').value = token.name;
  $('f-name').readOnly = true;
  $('f-description').value = token.description;
  $('f-expiry-field').hidden = true;
  $('f-version').hidden = false;
  $('f-version-text').textContent =
    `Version ${token.version}; ${token.expires_at ? `expires ${dateFormat.format(new Date(token.expires_at))}` : 'never expires'}. ` +
    'To change the expiration, regenerate the token.';
  if (token.permissions.super_admin) {
    $('f-super').checked = true;
  } else {
    $('f-specific').checked = true;
    for (const grant of token.permissions.grants) grantRow(grant.resource, grant);
  }
  togglePermissions();
  $('form-submit').textContent = 'Update token';
  $('form-regenerate').hidden = false;
  $('form-delete').hidden = false;
  notice('');
  show('form');
}

/** Show each message under its field; the first invalid field gets the focus. */
function markErrors(errors) {
  let first = null;
  for (const { field, message, container } of errors) {
    $(container).textContent = message;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      first = first ?? field;
    }
  }
  if (first) first.focus();
}

function clearErrors() {
  const form = $('token-form');
  for (const error of form.querySelectorAll('.error')) error.textContent = '';
  for (const field of form.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
  showError($('form-error'), '');
}

/** The form's checks: the same rules and messages as the API. */
function checkForm() {
  const errors = [];
  const creating = state.editing === null;
  if (creating) {
    const message = checkName($('f-name').value);
    if (message) errors.push({ field: $('f-name'), message, container: 'f-name-error' });
  }
  const description = checkDescription($('f-description').value);
  if (description) errors.push({ field: $('f-description'), message: description, container: 'f-description-error' });
  if (creating) {
    const expiry = readExpiry('f');
    const message = checkExpiry(expiry);
    const field = expiry.at === undefined ? $('f-expires') : $('f-custom-date');
    if (message) errors.push({ field, message, container: 'f-expires-error' });
  }
  const { permissions, rows } = readPermissions();
  const problem = checkPermissions(permissions);
  if (problem) {
    const row = problem.index === null ? null : rows[problem.index];
    errors.push({
      field: row ? row.querySelector('select, input') : $('f-specific'),
      message: problem.message,
      container: row ? row.querySelector('.grant-error').id : 'f-permissions-error',
    });
  }
  return { errors, permissions };
}

/** Where the API's refusal belongs on the form, judged by its code and message. */
function placeApiError(error) {
  const message = error.message;
  const at = (container, field) => markErrors([{ field, message, container }]);
  if (error.code === 'name_taken' || message.startsWith('name:')) at('f-name-error', $('f-name'));
  else if (message.startsWith('description:')) at('f-description-error', $('f-description'));
  else if (message.startsWith('expires:')) at('f-expires-error', $('f-expires'));
  else if (message.includes('permissions') || error.code === 'token_too_large') at('f-permissions-error', null);
  showError($('form-error'), message);
}

async function submitForm(event) {
  event.preventDefault();
  clearErrors();
  const { errors, permissions } = checkForm();
  if (errors.length > 0) {
    markErrors(errors);
    return;
  }
  const button = $('form-submit');
  button.disabled = true;
  try {
    if (state.editing === null) {
      const made = await api('POST', '/v1/tokens', {
        body: {
          name: $('f-name').value,
          description: $('f-description').value,
          expires: readExpiry('f').value,
          permissions,
        },
      });
      showToken(made, `Token ${made.record.name} was generated.`);
    } else {
      const token = state.editing;
      const record = await api('PATCH', `/v1/tokens/${encodeURIComponent(token.id)}`, {
        body: { description: $('f-description').value, permissions },
        revision: token.revision,
      });
      state.editing = null;
      await loadTokens();
      show('tokens');
      notice(`Token ${record.name} was updated. Its token string is unchanged.`);
    }
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else placeApiError(error);
  } finally {
    button.disabled = false;
  }
}

// --- The one-time pop-up ------------------------------------------------------------------------

function showToken(made, what) {
  $('token-dialog-what').textContent = what;
  $('token-value').value = made.token;
  $('token-value').rows = Math.min(14, Math.ceil(made.token.length / 72) + 1);
  $('copy-status').textContent = '';
  $('token-dialog').showModal();
  $('copy-token').focus();
}

async function copyToken() {
  const field = $('token-value');
  const status = $('copy-status');
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(field.value);
      status.textContent = 'Copied to the clipboard.';
      return;
    }
  } catch {
    // Not allowed here (an insecure origin, or no permission): select the text instead.
  }
  field.focus();
  field.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  status.textContent = copied
    ? 'Copied to the clipboard.'
    : 'The token is selected: press Ctrl+C (or ⌘C) to copy it.';
}

async function tokenDialogClosed() {
  // The token string leaves the page with the pop-up.
  $('token-value').value = '';
  $('copy-status').textContent = '';
  state.editing = null;
  await loadTokens();
  show('tokens');
}

// --- Regenerate and delete ----------------------------------------------------------------------

function openRegenerate() {
  $('regenerate-form').reset();
  $('r-expires-error').textContent = '';
  describeExpiry('r');
  $('regenerate-dialog').showModal();
  $('r-expires').focus();
}

async function regenerate(event) {
  event.preventDefault();
  const token = state.editing;
  const expiry = readExpiry('r');
  const message = checkExpiry(expiry);
  if (message) {
    $('r-expires-error').textContent = message;
    (expiry.at === undefined ? $('r-expires') : $('r-custom-date')).focus();
    return;
  }
  try {
    const made = await api('POST', `/v1/tokens/${encodeURIComponent(token.id)}/regenerate`, {
      body: { expires: expiry.value },
      revision: token.revision,
    });
    $('regenerate-dialog').close();
    showToken(
      made,
      `Token ${made.record.name} was regenerated (version ${made.record.version}). The old token no longer works: update every script that used it.`,
    );
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else $('r-expires-error').textContent = error.message;
  }
}

function openDelete(token) {
  state.deleting = token;
  $('delete-what').textContent = `Delete the token ${token.name}?`;
  $('delete-error').textContent = '';
  $('delete-dialog').showModal();
  $('delete-cancel').focus();
}

async function confirmDelete() {
  const token = state.deleting;
  try {
    await api('DELETE', `/v1/tokens/${encodeURIComponent(token.id)}`, { revision: token.revision });
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else $('delete-error').textContent = error.message;
    return;
  }
  $('delete-dialog').close();
  state.deleting = null;
  state.editing = null;
  await loadTokens();
  show('tokens');
  notice(`Token ${token.name} was deleted. Scripts that used it no longer work.`);
}

// --- Audit trail and keys -----------------------------------------------------------------------

const AUDIT_PAGES = 20;
const AUDIT_SHOWN = 500;

async function showAudit() {
  notice('');
  show('audit');
  const entries = [];
  try {
    let after = 0;
    for (let page = 0; page < AUDIT_PAGES; page++) {
      const answer = await api('GET', `/v1/audit?after=${after}&limit=1000`);
      entries.push(...answer.entries);
      if (answer.next_after === null || answer.next_after === undefined) break;
      after = answer.next_after;
    }
  } catch (error) {
    failed(error);
    return;
  }
  const names = new Map(entries.filter((e) => e.target && e.target_name).map((e) => [e.target, e.target_name]));
  const rows = entries
    .reverse()
    .slice(0, AUDIT_SHOWN)
    .map((entry) =>
      h('tr', { 'data-action': entry.action },
        h('td', { 'data-label': 'When' }, time(entry.at)),
        h('td', { 'data-label': 'Action' }, entry.action),
        h('td', { 'data-label': 'Token' }, entry.target_name ?? entry.target ?? '—'),
        h('td', { 'data-label': 'By' }, actorName(entry.actor, names)),
        h('td', { 'data-label': 'From' }, entry.from ?? 'local'),
        h('td', { 'data-label': 'Outcome' },
          h('span', { class: entry.outcome === 'ok' ? 'badge ok' : 'badge expired' }, entry.outcome))),
    );
  if (rows.length === 0) rows.push(h('tr', {}, h('td', { colSpan: 6, class: 'empty' }, 'No actions yet.')));
  $('audit-body').replaceChildren(...rows);
}

async function showKeys() {
  notice('');
  show('keys');
  let keys;
  try {
    keys = (await api('GET', '/v1/keys')).keys;
  } catch (error) {
    failed(error);
    return;
  }
  $('keys-list').replaceChildren(
    ...keys.map((key) =>
      h('section', { class: 'card key', 'aria-label': `Key ${key.kid}` },
        h('dl', {},
          h('dt', {}, 'Key id'), h('dd', {}, h('code', { class: 'kid' }, key.kid)),
          h('dt', {}, 'Status'), h('dd', {}, key.status),
          h('dt', {}, 'Created'), h('dd', {}, time(key.created_at)),
          h('dt', {}, 'Public key (PASERK)'), h('dd', {}, h('code', { class: 'paserk' }, key.public_key))))),
  );
}

// --- Wiring -------------------------------------------------------------------------------------

function start() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  for (const tab of document.querySelectorAll('#nav .tab')) {
    tab.addEventListener('click', async () => {
      const view = tab.dataset.view;
      if (view === 'tokens') {
        notice('');
        show('tokens');
        await loadTokens();
      } else if (view === 'audit') await showAudit();
      else await showKeys();
    });
  }
  $('generate').addEventListener('click', openGenerate);
  // `change` too: clearing a field (Escape, or a script) need not fire `input`.
  $('search').addEventListener('input', renderTokens);
  $('search').addEventListener('change', renderTokens);
  $('sort').addEventListener('change', () => {
    const [key, dir] = $('sort').value.split(':');
    state.sort = { key, dir };
    renderTokens();
  });
  for (const th of document.querySelectorAll('#tokens-table th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => sortBy(th.dataset.sort));
  }

  setupExpiry('f');
  setupExpiry('r');
  $('token-form').addEventListener('submit', submitForm);
  $('f-name').addEventListener('change', () => {
    if (state.editing !== null) return;
    const message = checkName($('f-name').value);
    $('f-name-error').textContent = message ?? '';
    if (message) $('f-name').setAttribute('aria-invalid', 'true');
    else $('f-name').removeAttribute('aria-invalid');
  });
  $('f-description').addEventListener('change', () => {
    const message = checkDescription($('f-description').value);
    $('f-description-error').textContent = message ?? '';
  });
  $('f-super').addEventListener('change', togglePermissions);
  $('f-specific').addEventListener('change', togglePermissions);
  for (const fieldset of document.querySelectorAll('#f-grants fieldset.resource')) {
    fieldset.querySelector('.add').addEventListener('click', () => {
      const row = grantRow(fieldset.dataset.resource, null);
      row.querySelector('select').focus();
    });
  }
  const back = () => {
    state.editing = null;
    show('tokens');
  };
  $('form-back').addEventListener('click', back);
  $('form-cancel').addEventListener('click', back);
  $('form-regenerate').addEventListener('click', openRegenerate);
  $('form-delete').addEventListener('click', () => openDelete(state.editing));

  $('copy-token').addEventListener('click', copyToken);
  $('token-done').addEventListener('click', () => $('token-dialog').close());
  $('token-dialog').addEventListener('close', tokenDialogClosed);
  $('regenerate-form').addEventListener('submit', regenerate);
  $('regenerate-cancel').addEventListener('click', () => $('regenerate-dialog').close());
  $('delete-confirm').addEventListener('click', confirmDelete);
  $('delete-cancel').addEventListener('click', () => $('delete-dialog').close());

  if (sessionStorage.getItem(TOKEN_KEY)) {
    loadTokens().then((ok) => {
      if (ok) show('tokens', { focus: false });
    });
  } else {
    show('sign-in', { focus: false });
  }
}

start();

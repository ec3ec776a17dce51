// rules.js, first of the page's script files (src/server/ui.rs concatenates them into one
// module, /ui/app.js). The API tokens page: a client of tessera's /v1 API, like any other.
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


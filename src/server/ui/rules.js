// rules.js, first of the page's script files (src/server/ui.rs concatenates them into one
// module, /ui/app.js, in the order listed there). The API tokens page: a client of tessera's
// /v1 API, like any other.
//
// The super-admin token it signs in with is kept in this tab's session storage only (never a
// cookie, never local storage) and sent as `Authorization: Bearer`. Every change goes through
// the documented endpoints. The form checks its input with the API's rules first (mirrored
// from src/lifecycle and src/permissions) and says what is wrong in plain words, next to the
// field; what only the server can refuse is translated from the API's field paths
// (`permissions: grants[0]: …`) to the same words (`apiProblem` in form.js).
//
// No framework and no build step: the files are embedded in the binary as they are. Everything
// that comes from the API is written with textContent, never parsed as HTML.

const TOKEN_KEY = 'tessera.token';
const SOON_DAYS = 7;
/** The signed-in token's own expiry is announced in a banner this many days ahead. */
const BANNER_DAYS = 14;

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
  // Tessera itself, for the services around it: no scope, only a role.
  tessera: {
    title: 'Tessera',
    roles: [['introspect', 'Introspect tokens'], ['read-state', 'Read the token state']],
    fields: [],
  },
};

const utf8 = new TextEncoder();
const byteLength = (text) => utf8.encode(text).length;

/** RFC 3339 in UTC to the second, as the API writes times. */
const formatTime = (date) => `${date.toISOString().slice(0, 19)}Z`;

const NAME_RULE = `use ${NAME_MIN} to ${NAME_MAX} lowercase letters, digits, '-' and '_', starting and ending with a letter or digit`;

/** `validate_name` of src/lifecycle, in plain words. */
function checkName(name) {
  if (name === '') return 'Name is required.';
  const length = [...name].length;
  const shape = /^[a-z0-9]$/;
  const ok =
    length >= NAME_MIN &&
    length <= NAME_MAX &&
    /^[a-z0-9_-]*$/.test(name) &&
    shape.test(name.slice(0, 1)) &&
    shape.test(name.slice(-1));
  return ok ? null : `Name is not valid: ${NAME_RULE}.`;
}

/** `validate_description` of src/lifecycle, in plain words. */
function checkDescription(description) {
  const length = [...description].length;
  if (length > DESCRIPTION_MAX) {
    return `Description is too long: ${length} characters (at most ${DESCRIPTION_MAX}).`;
  }
  if (/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(description)) {
    return 'Description may not contain control characters (new lines are fine).';
  }
  return null;
}

/** An expiry as the API takes it: `null` when it will be accepted, else why not. */
function checkExpiry(expires, now = new Date()) {
  if (expires.at === undefined) return null;
  if (expires.at === null) return 'Expiry date is required: pick the day the token expires.';
  if (expires.at <= now) return 'Expiry date must be in the future.';
  return null;
}

/** `Pattern::parse_in` of src/permissions: `null` when `text` is a valid pattern, else why not. */
function checkPattern(text, allowEmpty) {
  const bytes = byteLength(text);
  if (bytes > MAX_PATTERN_LEN) return `a pattern is too long: ${bytes} bytes (at most ${MAX_PATTERN_LEN})`;
  if (text === '*') return null;
  const prefix = text.endsWith('*');
  if (!prefix && text === '') return allowEmpty ? null : PATTERN_REASONS.empty;
  const body = prefix ? text.slice(0, -1) : text;
  if (body.includes('*')) return `"${text}" is not a valid pattern: ${PATTERN_REASONS.star}`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) return `a pattern may not contain control characters`;
  return null;
}

/** The API's reasons for refusing a pattern, in plain words. */
const PATTERN_REASONS = {
  empty: 'a pattern may not be empty (use * to match everything)',
  star: '* may only end a pattern',
};

/** One grant, as `Grant::try_from` checks it: the first problem, in plain words, or `null`. */
function checkGrant(grant) {
  for (const field of RESOURCES[grant.resource].fields) {
    const value = grant[field.key];
    if (!field.list) {
      if (value === '') return `${field.label} is required`;
      const error = checkPattern(value, false);
      if (error) return `${field.label}: ${error}`;
      continue;
    }
    if (value.length === 0) return `${field.label} needs at least one pattern (* for all)`;
    if (value.length > MAX_PATTERNS) {
      return `${field.label} has too many patterns: ${value.length} (at most ${MAX_PATTERNS})`;
    }
    for (const pattern of value) {
      const error = checkPattern(pattern, Boolean(field.allowEmpty));
      if (error) return `${field.label}: ${error}`;
    }
  }
  return null;
}

const NO_GRANTS = 'Add at least one permission, or choose Super admin permission.';

/** `Permissions::validate`: `{index, message}` of the first rule broken, or `null`. */
function checkPermissions(permissions) {
  if (permissions.super_admin) return null;
  const grants = permissions.grants;
  if (grants.length === 0) return { index: null, message: NO_GRANTS };
  if (grants.length > MAX_GRANTS) {
    return { index: null, message: `Too many permissions: ${grants.length} (at most ${MAX_GRANTS}).` };
  }
  for (const [index, grant] of grants.entries()) {
    const error = checkGrant(grant);
    if (error) return { index, message: error };
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
    case 'tessera':
      return head;
    default:
      return `${head} groups=${list(grant.groups)}`;
  }
}


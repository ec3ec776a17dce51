// dom.js: small DOM helpers, the page's state and its views.

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
  regenerating: null,
  /** The signed-in token as `/v1/verify` describes it (`id`, `name`, `expires_at`), or null. */
  self: null,
  /** A notice to show when the next route is shown. */
  arrival: '',
};

/** Whether `token` (a record or an id) is the one this page is signed in with. */
const isSelf = (token) => state.self !== null && (token?.id ?? token) === state.self.id;

const VIEWS = ['sign-in', 'tokens', 'form', 'audit', 'webhooks', 'keys'];

function show(view, { focus = true } = {}) {
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  $('nav').hidden = view === 'sign-in';
  const tab = view === 'form' ? 'tokens' : view;
  for (const link of document.querySelectorAll('#nav .tab')) {
    if (link.dataset.view === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
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


/**
 * A question in the page's own dialog (not `window.confirm`): resolves to the `value` of the
 * choice taken, or to `dismissed` when it is closed with Escape. The last choice, the safe one,
 * has the focus.
 */
function ask({ title, text, choices, dismissed }) {
  return new Promise((resolve) => {
    const dialog = $('ask-dialog');
    let answer = dismissed;
    $('ask-title').textContent = title;
    $('ask-text').textContent = text;
    const buttons = choices.map(({ value, label, kind }) =>
      h('button', {
        type: 'button', class: kind, 'data-choice': value,
        onclick: () => {
          answer = value;
          dialog.close();
        },
      }, label));
    $('ask-actions').replaceChildren(...buttons);
    dialog.addEventListener('close', () => resolve(answer), { once: true });
    dialog.showModal();
    buttons[buttons.length - 1].focus();
  });
}

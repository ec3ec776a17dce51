// form.js: the generate and edit form: expiry fields, grant rows, checks and submit.

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


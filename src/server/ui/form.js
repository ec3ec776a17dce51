// form.js: the generate and edit form: opening it, knowing when it has unsaved changes,
// checking it, submitting it, and saying what the API refused in plain words.

// --- Generate and edit --------------------------------------------------------------------------

function resetForm() {
  const form = $('token-form');
  form.reset();
  for (const list of document.querySelectorAll('#f-grants .grants')) list.replaceChildren();
  clearErrors();
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
  show('form');
  markClean();
  $('f-name').focus();
}

async function openEdit(id) {
  let token;
  try {
    token = await api('GET', `/v1/tokens/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status !== 404) {
      failed(error);
      return;
    }
    history.replaceState(null, '', '#/tokens');
    navigate('#/tokens', 'No token has that id: it may have been deleted.');
    return;
  }
  fillEdit(token);
  show('form');
  markClean();
}

/** The edit form for `token`, as saved. */
function fillEdit(token) {
  state.editing = token;
  resetForm();
  $('form-title').textContent = `Edit token ${token.name}`;
  $('f-name').value = token.name;
  $('f-name').readOnly = true;
  $('f-description').value = token.description;
  $('f-cidrs').value = showCidrs(token.allowed_cidrs);
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
}

// --- Unsaved changes ----------------------------------------------------------------------------

/** Everything the form holds, as one string: what "changed" is measured against. */
function formSnapshot() {
  const fields = [...$('token-form').querySelectorAll('input, select, textarea')];
  return JSON.stringify(fields.map((f) => (f.type === 'radio' || f.type === 'checkbox' ? f.checked : f.value)));
}

let savedForm = null;

/** The form as it stands is what is saved (or what a new form starts with). */
function markClean() {
  savedForm = $('view-form').hidden ? null : formSnapshot();
}

/** Whether the form is shown and holds changes that would be lost. */
const formDirty = () => !$('view-form').hidden && savedForm !== null && formSnapshot() !== savedForm;

/** Ask before discarding the form's changes: true to go on. */
async function confirmDiscard() {
  if (!formDirty()) return true;
  const choice = await ask({
    title: 'Discard your changes?',
    text: 'The form has changes that are not saved. Leaving now loses them.',
    choices: [
      { value: 'discard', label: 'Discard changes', kind: 'danger' },
      { value: 'stay', label: 'Keep editing' },
    ],
    dismissed: 'stay',
  });
  if (choice !== 'discard') return false;
  savedForm = null;
  return true;
}

/** Regenerate from the edit form: unsaved edits are saved or discarded first, never lost. */
async function regenerateFromForm() {
  if (formDirty()) {
    const choice = await ask({
      title: 'Save your changes first?',
      text: 'The form has changes that are not saved. Regenerating does not save them: save them first, or discard them.',
      choices: [
        { value: 'save', label: 'Save changes', kind: 'primary' },
        { value: 'discard', label: 'Discard changes', kind: 'danger' },
        { value: 'stay', label: 'Keep editing' },
      ],
      dismissed: 'stay',
    });
    if (choice === 'stay') return;
    if (choice === 'save' && !(await saveForm({ stay: true }))) return;
    if (choice === 'discard') {
      fillEdit(state.editing);
      markClean();
    }
  }
  openRegenerate(state.editing);
}

// --- Checks -------------------------------------------------------------------------------------

/** Show each message under its field; the first invalid field gets the focus. */
function markErrors(errors) {
  let first = null;
  for (const { field, message, container } of errors) {
    showError($(container), message);
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

/** The form's checks: the API's rules, in plain words, each next to its field. */
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
  const cidrs = readCidrs($('f-cidrs').value);
  const cidrProblem = checkCidrs(cidrs);
  if (cidrProblem) errors.push({ field: $('f-cidrs'), message: cidrProblem, container: 'f-cidrs-error' });
  const { permissions, rows } = readPermissions();
  const problem = checkPermissions(permissions);
  if (problem) errors.push(grantError(problem.index === null ? null : rows[problem.index], problem.message));
  return { errors, permissions, cidrs };
}

/** A token's networks as the field shows them. */
const showCidrs = (cidrs) => (cidrs ?? []).join(', ');

/** The networks a field holds: entries separated by commas or spaces. */
const readCidrs = (text) => text.split(/[\s,]+/).filter((entry) => entry !== '');

/** The count rule; the server checks each entry and names a bad one. */
function checkCidrs(cidrs) {
  return cidrs.length > MAX_CIDRS ? `Too many networks: ${cidrs.length} (at most ${MAX_CIDRS}).` : null;
}

const MAX_CIDRS = 32;

/** An error about one grant row (named as the page names it), or about the permissions. */
function grantError(row, message) {
  if (!row) return { field: $('f-specific'), message, container: 'f-permissions-error' };
  return {
    field: row.querySelector('select, input'),
    message: `${rowTitle(row)}: ${message}`,
    container: row.querySelector('.grant-error').id,
  };
}

/**
 * Where a refusal of the API belongs on the form, and what it means in plain words. Its
 * message names the field at fault by path (`name: …`, `permissions: grants[2]: …`).
 */
function apiProblem(error) {
  const message = error.message;
  const plain = (container, field, text) => ({ container, field, message: text });
  if (error.code === 'name_taken') {
    return plain('f-name-error', $('f-name'), `A live token is already named ${$('f-name').value}: choose another name.`);
  }
  if (error.code === 'last_super_admin') return grantError(null, LAST_SUPER_ADMIN.update);
  if (error.code === 'token_too_large') {
    return grantError(null, 'These permissions make the token too large for a gateway\u2019s header: use fewer or broader patterns.');
  }
  if (error.code === 'conflict') {
    return plain('form-error', null, 'Someone else changed this token since you opened it: reload it and make your changes again.');
  }
  if (message.startsWith('name:')) return plain('f-name-error', $('f-name'), `Name is not valid: ${NAME_RULE}.`);
  if (message.startsWith('allowed_cidrs:')) {
    return plain('f-cidrs-error', $('f-cidrs'), `Allowed networks: ${message.slice('allowed_cidrs:'.length).trim()}`);
  }
  if (message.startsWith('description:')) {
    const problem = checkDescription($('f-description').value) ?? 'Description is not valid.';
    return plain('f-description-error', $('f-description'), problem);
  }
  if (message.startsWith('expires:')) {
    const text = message.includes('not in the future') ? 'Expiry date must be in the future.' : 'The expiration is not valid: pick one of the choices or a later date.';
    return plain('f-expires-error', $('f-expires'), text);
  }
  const grant = /^permissions: grants\[(\d+)\]: (.*)$/s.exec(message);
  if (grant) {
    const row = document.querySelectorAll('#f-grants fieldset.grant')[Number(grant[1])];
    return grantError(row ?? null, plainGrantProblem(grant[2], row));
  }
  if (message.startsWith('permissions: "grants" must list')) return grantError(null, NO_GRANTS);
  if (message.startsWith('permissions: too many grants')) {
    return grantError(null, `Too many permissions: at most ${MAX_GRANTS}.`);
  }
  return plain('form-error', null, message);
}

/** The API's complaint about one grant (`invalid pattern "x*y": …`) in the form's words. */
function plainGrantProblem(text, row) {
  const label = (key) => (row ? RESOURCES[row.dataset.resource].fields.find((f) => f.key === key)?.label : null) ?? key;
  let m = /^invalid pattern "(.*)": (.*)$/s.exec(text);
  if (m) {
    const [, pattern, reason] = m;
    const field = row && [...row.querySelectorAll('input[data-key]')].find((input) =>
      input.value.split(',').map((p) => p.trim()).includes(pattern === '' ? '""' : pattern));
    const where = field ? `${label(field.dataset.key)}: ` : '';
    if (reason.startsWith('a pattern may not be empty')) return `${where}${PATTERN_REASONS.empty}`;
    const why = reason.includes('may only end a pattern') ? PATTERN_REASONS.star : reason;
    return `${where}"${pattern}" is not a valid pattern: ${why}`;
  }
  m = /^"(\w+)" must list at least one pattern$/.exec(text);
  if (m) return `${label(m[1])} needs at least one pattern (* for all)`;
  m = /^too many patterns in "(\w+)": (\d+) \(at most (\d+)\)$/.exec(text);
  if (m) return `${label(m[1])} has too many patterns: ${m[2]} (at most ${m[3]})`;
  m = /^pattern too long: (\d+) bytes \(at most (\d+)\)$/.exec(text);
  if (m) return `a pattern is too long: ${m[1]} bytes (at most ${m[2]})`;
  m = /^unknown role "(.*)"/.exec(text);
  if (m) return `"${m[1]}" is not one of its roles: choose one from the list`;
  m = /^\w[\w-]* grant is missing "(\w+)"$/.exec(text);
  if (m) return `${label(m[1])} is required`;
  return text;
}

/** The server's refusal to leave no live super-admin (409 `last_super_admin`), in plain words. */
const LAST_SUPER_ADMIN = {
  update: 'This is the last live super-admin token, so it must keep super-admin permission: otherwise nobody could manage tokens. Make another super-admin token first.',
  delete: 'This is the last live super-admin token, so it cannot be deleted: nobody could manage tokens afterwards. Make another super-admin token first, or regenerate this one instead.',
};

// --- Submit -------------------------------------------------------------------------------------

async function submitForm(event) {
  event.preventDefault();
  if (state.editing === null) await generate();
  else await saveForm({ stay: false });
}

async function generate() {
  clearErrors();
  const { errors, permissions, cidrs } = checkForm();
  if (errors.length > 0) {
    markErrors(errors);
    return;
  }
  const button = $('form-submit');
  button.disabled = true;
  try {
    const made = await api('POST', '/v1/tokens', {
      body: {
        name: $('f-name').value,
        description: $('f-description').value,
        expires: readExpiry('f').value,
        permissions,
        allowed_cidrs: cidrs,
      },
    });
    markClean();
    showToken(made, `Token ${made.record.name} was generated.`);
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else markErrors([apiProblem(error)]);
  } finally {
    button.disabled = false;
  }
}

/** Save the edit form: back to the list, or (`stay`) on the form with the saved record. */
async function saveForm({ stay }) {
  clearErrors();
  const { errors, permissions, cidrs } = checkForm();
  if (errors.length > 0) {
    markErrors(errors);
    return false;
  }
  const button = $('form-submit');
  button.disabled = true;
  try {
    const token = state.editing;
    const record = await api('PATCH', `/v1/tokens/${encodeURIComponent(token.id)}`, {
      body: { description: $('f-description').value, permissions, allowed_cidrs: cidrs },
      revision: token.revision,
    });
    if (stay) {
      fillEdit(record);
      markClean();
      return true;
    }
    markClean();
    savedForm = null;
    state.editing = null;
    navigate('#/tokens', `Token ${record.name} was updated. Its token string is unchanged.`);
    return true;
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else markErrors([apiProblem(error)]);
    return false;
  } finally {
    button.disabled = false;
  }
}

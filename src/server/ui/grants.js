// grants.js: the form's parts: expiry fields (shared with the regenerate dialog) and grant rows.

// --- Expiration fields (the form and the regenerate dialog share them) ---------------------------

/** The chosen expiry: `{value}` for the API, and `at` for a custom date (`null` when none). */
function readExpiry(prefix) {
  const choice = $(`${prefix}-expires`).value;
  if (choice !== 'custom') return { value: choice };
  const date = $(`${prefix}-custom-date`).value;
  if (!date) return { value: '', at: null };
  // The end of the chosen day in UTC, as the command line reads a date.
  const value = `${date}T23:59:59Z`;
  return { value, at: new Date(value) };
}

function describeExpiry(prefix) {
  const choice = $(`${prefix}-expires`).value;
  $(`${prefix}-custom`).hidden = choice !== 'custom';
  const note = $(`${prefix}-expires-note`);
  const expiry = readExpiry(prefix);
  if (choice === 'never') {
    note.textContent = 'The token will never expire. Consider an expiry: a leaked token stays useful until deleted.';
  } else if (choice === 'custom') {
    note.textContent = expiry.at
      ? `The token will expire at the end of ${expiry.value.slice(0, 10)} UTC (${dateFormat.format(expiry.at)} here).`
      : 'Pick the day the token expires.';
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
        renumber(resource);
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


/** A grant row's name, as errors use it: "Devtron Apps permission 2". */
const rowTitle = (row) => row.querySelector('legend').textContent;

/** Number a resource's grant rows again (after one is removed). */
function renumber(resource) {
  const spec = RESOURCES[resource];
  const rows = document.querySelectorAll(`#f-grants fieldset.grant[data-resource="${resource}"]`);
  for (const [index, row] of [...rows].entries()) {
    row.querySelector('legend').textContent = `${spec.title} permission ${index + 1}`;
    row.querySelector('.remove').setAttribute('aria-label', `Remove ${spec.title} permission ${index + 1}`);
  }
}

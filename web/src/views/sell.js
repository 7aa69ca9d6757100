// Put a lot up: the lot's rules (POST /api/lots), then its photos (multipart `photo`, one request
// each). Problems name the field at fault; they are shown next to it.

import { api, ApiError } from '../api.js';
import { openSignIn } from '../app.js';
import { serverNow } from '../clock.js';
import { h, replace } from '../dom.js';
import { navigate } from '../router.js';
import { session } from '../session.js';
import { parseEth } from '../wei.js';

const MAX_PHOTOS = 10;
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
const PHOTO_TYPES = ['image/jpeg', 'image/png', 'image/webp'];

/** Which form field shows a server problem's `field`. */
const FIELD_OF = {
  title: 'title',
  description: 'description',
  asset: 'form',
  start_price: 'start_price',
  increment: 'increment',
  reserve: 'reserve',
  buy_now: 'buy_now',
  starts_at: 'start',
  ends_at: 'duration',
  snipe_window_secs: 'snipe',
  extension_secs: 'snipe',
  latest_end: 'snipe',
  photo: 'photos',
};

export function sellView(container) {
  const errors = {}; // field -> element
  const error = (name) => (errors[name] = h('p', { class: 'field-error', id: `sell-error-${name}`, 'data-testid': `field-error-${name}`, 'data-field': name, hidden: true }));
  const input = (attrs) => h('input', { autocomplete: 'off', ...attrs });

  const titleInput = input({ id: 'sell-title', name: 'title', type: 'text', maxlength: 200, required: true, 'data-testid': 'sell-title' });
  const description = h('textarea', { id: 'sell-description', name: 'description', rows: 5, maxlength: 10000, 'data-testid': 'sell-description' });
  const startPrice = input({ id: 'sell-start-price', name: 'start_price', type: 'text', inputmode: 'decimal', placeholder: '0.01', required: true, 'data-testid': 'sell-start-price' });
  const incrementKind = h(
    'select',
    { id: 'sell-increment-kind', name: 'increment_kind', 'data-testid': 'sell-increment-kind', 'aria-label': 'Increment kind' },
    h('option', { value: 'absolute' }, 'ETH'),
    h('option', { value: 'percent' }, '% of the price'),
  );
  const increment = input({ id: 'sell-increment', name: 'increment', type: 'text', inputmode: 'decimal', placeholder: '0.005', required: true, 'data-testid': 'sell-increment' });
  const reserve = input({ id: 'sell-reserve', name: 'reserve', type: 'text', inputmode: 'decimal', placeholder: 'optional', 'data-testid': 'sell-reserve' });
  const buyNow = input({ id: 'sell-buy-now', name: 'buy_now', type: 'text', inputmode: 'decimal', placeholder: 'optional', 'data-testid': 'sell-buy-now' });
  const startNow = h('input', { type: 'radio', name: 'start', value: 'now', checked: true, id: 'sell-start-now', 'data-testid': 'sell-start-now' });
  const startLater = h('input', { type: 'radio', name: 'start', value: 'later', id: 'sell-start-later', 'data-testid': 'sell-start-later' });
  const startsAt = input({ id: 'sell-starts-at', name: 'starts_at', type: 'datetime-local', disabled: true, 'aria-label': 'Start time', 'data-testid': 'sell-starts-at' });
  const duration = input({ id: 'sell-duration', name: 'duration', type: 'number', min: 1, step: 1, value: '2', required: true, 'data-testid': 'sell-duration' });
  const durationUnit = h(
    'select',
    { name: 'duration_unit', 'aria-label': 'Duration unit', 'data-testid': 'sell-duration-unit' },
    h('option', { value: '60' }, 'minutes'),
    h('option', { value: '3600', selected: true }, 'hours'),
    h('option', { value: '86400' }, 'days'),
  );
  const snipe = h('input', { type: 'checkbox', id: 'sell-snipe', name: 'snipe', checked: true, 'data-testid': 'sell-snipe' });
  const snipeWindow = input({ id: 'sell-snipe-window', name: 'snipe_window_secs', type: 'number', min: 1, max: 3600, value: '120', 'data-testid': 'sell-snipe-window' });
  const extension = input({ id: 'sell-extension', name: 'extension_secs', type: 'number', min: 1, max: 3600, value: '120', 'data-testid': 'sell-extension' });
  const photos = h('input', { id: 'sell-photos', name: 'photos', type: 'file', multiple: true, accept: PHOTO_TYPES.join(','), 'data-testid': 'sell-photos' });
  const previews = h('div', { class: 'previews' });
  const submit = h('button', { class: 'button button-primary wide', type: 'submit', 'data-testid': 'sell-submit' }, 'Put up for auction');
  const status = h('div', { class: 'sell-status', 'data-testid': 'sell-status', role: 'status', 'aria-live': 'polite' });
  const signInNote = h('p', { class: 'notice' }, 'Sign in to sell: the lot is yours, and the winner pays your wallet. ', h('button', { class: 'link-button', type: 'button', onclick: () => openSignIn('Sign in to put a lot up.') }, 'Sign in'));

  const field = (label, control, name, hint) =>
    h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('p', { class: 'muted small' }, hint) : null, error(name));

  const form = h(
    'form',
    { class: 'sell-form', 'data-testid': 'sell-form', novalidate: true },
    field('Title', titleInput, 'title'),
    field('Description', description, 'description', 'What it is, its condition, what comes with it.'),
    h(
      'div',
      { class: 'grid-2' },
      field('Starting price (ETH)', startPrice, 'start_price'),
      h(
        'div',
        { class: 'field' },
        h('label', { for: increment.id }, 'Bid increment'),
        h('div', { class: 'input-row' }, increment, incrementKind),
        error('increment'),
      ),
      field('Reserve (ETH)', reserve, 'reserve', 'Hidden; below it the lot is not sold.'),
      field('Buy-now price (ETH)', buyNow, 'buy_now', 'A bid at this price ends the auction at once.'),
    ),
    h(
      'fieldset',
      { class: 'field' },
      h('legend', {}, 'Start'),
      h('label', { class: 'inline' }, startNow, ' Now'),
      h('label', { class: 'inline' }, startLater, ' Later: ', startsAt),
      error('start'),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: duration.id }, 'Duration'),
      h('div', { class: 'input-row' }, duration, durationUnit),
      h('p', { class: 'muted small' }, 'From 1 minute to 30 days.'),
      error('duration'),
    ),
    h(
      'fieldset',
      { class: 'field' },
      h('legend', {}, 'Anti-sniping'),
      h('label', { class: 'inline' }, snipe, ' A late bid extends the end'),
      h(
        'div',
        { class: 'grid-2' },
        h('label', { class: 'stacked' }, 'Window (seconds before the end)', snipeWindow),
        h('label', { class: 'stacked' }, 'Extension (seconds)', extension),
      ),
      error('snipe'),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: photos.id }, `Photos (JPEG, PNG or WebP; up to ${MAX_PHOTOS}, 10 MiB each)`),
      photos,
      previews,
      error('photos'),
    ),
    error('form'),
    submit,
    status,
  );

  replace(container, h('section', { class: 'sell-page' }, h('h1', {}, 'Sell a lot'), signInNote, form));

  const syncAuth = () => {
    signInNote.hidden = Boolean(session.current);
    submit.disabled = busy || !session.current;
  };
  let busy = false;

  startNow.addEventListener('change', () => (startsAt.disabled = startNow.checked));
  startLater.addEventListener('change', () => {
    startsAt.disabled = !startLater.checked;
    if (startLater.checked && !startsAt.value) {
      const soon = new Date(serverNow() + 60 * 60 * 1000);
      soon.setSeconds(0, 0);
      startsAt.value = localInputValue(soon);
    }
  });
  snipe.addEventListener('change', () => {
    snipeWindow.disabled = extension.disabled = !snipe.checked;
  });

  let objectUrls = [];
  photos.addEventListener('change', () => {
    for (const url of objectUrls) URL.revokeObjectURL(url);
    objectUrls = [];
    clearError('photos');
    const files = [...photos.files];
    const problems = checkPhotos(files);
    if (problems) showError('photos', problems);
    replace(
      previews,
      files.slice(0, MAX_PHOTOS).map((file) => {
        const url = URL.createObjectURL(file);
        objectUrls.push(url);
        return h('figure', { class: 'preview' }, h('img', { src: url, alt: file.name }), h('figcaption', { class: 'small muted' }, file.name));
      }),
    );
  });

  function checkPhotos(files) {
    if (files.length > MAX_PHOTOS) return `At most ${MAX_PHOTOS} photos.`;
    for (const file of files) {
      if (file.size > MAX_PHOTO_BYTES) return `${file.name} is larger than 10 MiB.`;
      if (file.type && !PHOTO_TYPES.includes(file.type)) return `${file.name} is not a JPEG, PNG or WebP image.`;
    }
    return null;
  }

  function showError(name, message) {
    const element = errors[name] ?? errors.form;
    element.textContent = message;
    element.hidden = false;
    element.setAttribute('role', 'alert');
  }

  /** Focuses the first control of the field that shows `name`'s error. */
  function focusField(name) {
    const holder = (errors[name] ?? errors.form).closest('.field');
    holder?.querySelector('input:not([type=radio]):not(:disabled), textarea, select, input')?.focus();
  }

  function clearError(name) {
    if (errors[name]) {
      errors[name].hidden = true;
      errors[name].textContent = '';
    }
  }

  function clearErrors() {
    for (const name of Object.keys(errors)) clearError(name);
    status.textContent = '';
    status.className = 'sell-status';
  }

  /** Reads the form into the lots API body; throws {field, message} for what is wrong here. */
  function body() {
    const fail = (name, message) => {
      throw Object.assign(new Error(message), { field: name });
    };
    const amount = (control, name, { optional = false } = {}) => {
      if (optional && !control.value.trim()) return null;
      let wei;
      try {
        wei = parseEth(control.value);
      } catch (parseError) {
        fail(name, parseError.message);
      }
      if (wei <= 0n) fail(name, 'Must be more than zero.');
      return wei;
    };
    const title = titleInput.value.trim();
    if (!title) fail('title', 'Give the lot a title.');
    const start = amount(startPrice, 'start_price');
    let incrementBody;
    if (incrementKind.value === 'absolute') {
      incrementBody = { kind: 'absolute', wei: amount(increment, 'increment').toString() };
    } else {
      const match = /^(\d{1,3})(?:[.,](\d{1,2}))?$/.exec(increment.value.trim());
      if (!match) fail('increment', 'A percentage with at most two decimals, like 5 or 2.5.');
      const bps = Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0') || 0);
      if (bps < 1 || bps > 10000) fail('increment', 'Between 0.01 % and 100 %.');
      incrementBody = { kind: 'basis_points', bps };
    }
    const reserveWei = amount(reserve, 'reserve', { optional: true });
    if (reserveWei !== null && reserveWei < start) fail('reserve', 'The reserve cannot be below the starting price.');
    const buyNowWei = amount(buyNow, 'buy_now', { optional: true });
    const floor = reserveWei !== null && reserveWei > start ? reserveWei : start;
    if (buyNowWei !== null && buyNowWei <= floor) fail('buy_now', 'The buy-now price must be above the reserve and the starting price.');

    let starts;
    if (startNow.checked) {
      starts = new Date(serverNow());
    } else {
      starts = new Date(startsAt.value);
      if (!startsAt.value || Number.isNaN(starts.getTime())) fail('start', 'Choose when the auction starts.');
      if (starts.getTime() < serverNow()) fail('start', 'The start is in the past.');
    }
    const count = Number(duration.value);
    if (!Number.isFinite(count) || count <= 0) fail('duration', 'How long the auction lasts.');
    const seconds = Math.round(count * Number(durationUnit.value));
    if (seconds < 60 || seconds > 30 * 86400) fail('duration', 'An auction lasts between 1 minute and 30 days.');
    const ends = new Date(starts.getTime() + seconds * 1000);

    let window = 0;
    let extend = 0;
    if (snipe.checked) {
      window = Number(snipeWindow.value);
      extend = Number(extension.value);
      if (!Number.isInteger(window) || window < 1 || window > 3600 || !Number.isInteger(extend) || extend < 1 || extend > 3600) {
        fail('snipe', 'Window and extension are whole seconds from 1 to 3600.');
      }
    }
    const problems = checkPhotos([...photos.files]);
    if (problems) fail('photos', problems);

    const lot = {
      title,
      description: description.value,
      asset: 'ETH',
      start_price: start.toString(),
      increment: incrementBody,
      starts_at: starts.toISOString(),
      ends_at: ends.toISOString(),
      snipe_window_secs: window,
      extension_secs: extend,
    };
    if (reserveWei !== null) lot.reserve = reserveWei.toString();
    if (buyNowWei !== null) lot.buy_now = buyNowWei.toString();
    return lot;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    if (!session.token) {
      openSignIn('Sign in to put a lot up.');
      return;
    }
    let lotBody;
    try {
      lotBody = body();
    } catch (invalid) {
      showError(invalid.field ?? 'form', invalid.message);
      focusField(invalid.field ?? 'form');
      return;
    }
    busy = true;
    syncAuth();
    status.textContent = 'Creating the lot…';
    let created;
    try {
      created = await api.createLot(lotBody);
    } catch (failure) {
      busy = false;
      syncAuth();
      status.textContent = '';
      reportProblem(failure);
      return;
    }
    const files = [...photos.files];
    const refused = [];
    for (const [index, file] of files.entries()) {
      status.textContent = `Lot created. Uploading photo ${index + 1} of ${files.length}…`;
      try {
        await api.uploadPhoto(created.id, file);
      } catch (failure) {
        refused.push(`${file.name}: ${photoProblem(failure)}`);
      }
    }
    busy = false;
    syncAuth();
    if (refused.length) {
      status.className = 'sell-status error';
      replace(
        status,
        h('p', {}, `The lot is up, but ${refused.length === 1 ? 'a photo was' : `${refused.length} photos were`} refused:`),
        h('ul', {}, refused.map((line) => h('li', {}, line))),
        h('a', { class: 'button', href: `/lots/${created.id}`, 'data-testid': 'sell-go-to-lot' }, 'Go to the lot'),
      );
      return;
    }
    navigate(`/lots/${created.id}`);
  });

  function reportProblem(failure) {
    if (failure instanceof ApiError) {
      if (failure.status === 401) {
        showError('form', 'Your sign-in has expired: sign in again, then submit.');
        session.signOut();
        openSignIn('Your sign-in expired. Sign in again to put the lot up.');
        return;
      }
      if (failure.field) {
        const name = FIELD_OF[failure.field] ?? 'form';
        showError(name, `${failure.detail || failure.title}${FIELD_OF[failure.field] ? '' : ` (${failure.field})`}`);
        focusField(name);
        return;
      }
      showError('form', failure.detail || failure.title || failure.message);
      return;
    }
    showError('form', failure?.message ?? String(failure));
  }

  function photoProblem(failure) {
    if (!(failure instanceof ApiError)) return failure?.message ?? 'failed';
    switch (failure.code) {
      case 'photo_too_large':
        return 'larger than the limit';
      case 'unsupported_image':
        return 'not a JPEG, PNG or WebP image';
      case 'image_too_large':
        return `too many pixels${failure.detail ? ` (${failure.detail})` : ''}`;
      case 'damaged_image':
        return 'the image is damaged';
      case 'too_many_photos':
        return 'the lot has as many photos as it may';
      default:
        return failure.detail || failure.title || failure.message;
    }
  }

  const off = session.on('change', syncAuth);
  syncAuth();
  // For the increment placeholder to fit the kind.
  incrementKind.addEventListener('change', () => {
    increment.placeholder = incrementKind.value === 'absolute' ? '0.005' : '5';
  });
  return () => {
    off();
    for (const url of objectUrls) URL.revokeObjectURL(url);
  };
}

/** A Date as the value of a datetime-local input (local time, minutes). */
function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

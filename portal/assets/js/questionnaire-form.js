// A Questionnaire rendered as an NHS.UK form, and its answers as a
// QuestionnaireResponse. Item types: group, display, boolean, choice and
// open-choice (radios; checkboxes when repeats), string, text, integer,
// decimal, date; required items; enableWhen (=, !=, exists) on earlier
// answers, with enableBehavior all or any.

import { h } from './dom.js';

let seq = 0;

/**
 * questionnaireForm returns {element, validate, response}: validate()
 * lists the problems ([inputId, message]), response(extra) builds the
 * QuestionnaireResponse (status completed) with extra fields merged in.
 */
export function questionnaireForm(q) {
  const prefix = 'q' + (++seq) + '-';
  const controls = []; // {item, read(): answers[], el (the form group), firstId}
  const idOf = (linkId) => prefix + linkId.replace(/[^A-Za-z0-9_-]/g, '_');

  function renderItems(items, level) {
    return (items || []).map((item) => renderItem(item, level));
  }

  function renderItem(item, level) {
    const id = idOf(item.linkId);
    const label = item.text || item.linkId;
    const required = item.required ? '' : ' (optional)';
    let group;
    switch (item.type) {
      case 'group':
        group = h('div', { class: 'nhsuk-form-group' }, h('fieldset', { class: 'nhsuk-fieldset' },
          h('legend', { class: `nhsuk-fieldset__legend nhsuk-fieldset__legend--${level === 0 ? 'm' : 's'}` }, label),
          renderItems(item.item, level + 1)));
        controls.push({ item, el: group, read: () => null, group: true });
        return group;
      case 'display':
        group = h('p', { class: 'nhsuk-body', id }, label);
        controls.push({ item, el: group, read: () => null, group: true });
        return group;
      case 'boolean':
      case 'choice':
      case 'open-choice': {
        const options = item.type === 'boolean'
          ? [{ label: 'Yes', value: { valueBoolean: true } }, { label: 'No', value: { valueBoolean: false } }]
          : (item.answerOption || []).map((o) => ({ label: optionLabel(o), value: optionValue(o) }));
        const multiple = item.repeats && item.type !== 'boolean';
        const kind = multiple ? 'checkboxes' : 'radios';
        const inputs = options.map((o, i) => h('div', { class: `nhsuk-${kind}__item` },
          h('input', { class: `nhsuk-${kind}__input`, id: `${id}-${i}`, name: id, type: multiple ? 'checkbox' : 'radio', value: String(i) }),
          h('label', { class: `nhsuk-label nhsuk-${kind}__label`, for: `${id}-${i}` }, o.label)));
        let other = null;
        if (item.type === 'open-choice') {
          other = h('input', { class: 'nhsuk-input', id: id + '-other', type: 'text' });
          inputs.push(h('div', { class: 'nhsuk-form-group nhsuk-u-margin-top-3' }, h('label', { class: 'nhsuk-label', for: id + '-other' }, 'Something else (optional)'), other));
        }
        const err = h('span', { class: 'nhsuk-error-message', id: id + '-error', hidden: true });
        group = h('div', { class: 'nhsuk-form-group' }, h('fieldset', { class: 'nhsuk-fieldset', 'aria-describedby': id + '-error' },
          h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--s' }, label + required), err,
          h('div', { class: `nhsuk-${kind}`, id }, inputs)));
        controls.push({ item, el: group, firstId: `${id}-0`, read: () => {
          const out = [...group.querySelectorAll(`input[name="${id}"]:checked`)].map((x) => options[Number(x.value)].value);
          if (other && other.value.trim()) out.push({ valueString: other.value.trim() });
          return out;
        } });
        group.addEventListener('change', refresh);
        return group;
      }
      default: {
        const type = { integer: 'text', decimal: 'text', date: 'date', string: 'text' }[item.type] || 'text';
        const input = item.type === 'text'
          ? h('textarea', { class: 'nhsuk-textarea', id, name: id, rows: 4, 'aria-describedby': id + '-error' })
          : h('input', { class: 'nhsuk-input' + (item.type === 'integer' || item.type === 'decimal' ? ' nhsuk-input--width-5' : ''), id, name: id, type,
            inputmode: item.type === 'integer' ? 'numeric' : item.type === 'decimal' ? 'decimal' : null, 'aria-describedby': id + '-error' });
        const err = h('span', { class: 'nhsuk-error-message', id: id + '-error', hidden: true });
        group = h('div', { class: 'nhsuk-form-group' }, h('label', { class: 'nhsuk-label', for: id }, label + required), err, input);
        controls.push({ item, el: group, firstId: id, read: () => {
          const v = input.value.trim();
          if (!v) return [];
          switch (item.type) {
            case 'integer': return /^-?\d+$/.test(v) ? [{ valueInteger: Number(v) }] : [{ invalid: 'Enter a whole number' }];
            case 'decimal': return /^-?\d+(\.\d+)?$/.test(v) ? [{ valueDecimal: Number(v) }] : [{ invalid: 'Enter a number' }];
            case 'date': return /^\d{4}-\d{2}-\d{2}$/.test(v) ? [{ valueDate: v }] : [{ invalid: 'Enter a date' }];
            default: return [{ valueString: v }];
          }
        } });
        input.addEventListener('input', refresh);
        return group;
      }
    }
  }

  function answersOf(linkId) {
    const c = controls.find((x) => x.item.linkId === linkId);
    return c && enabled(c.item) ? (c.read() || []) : [];
  }

  function enabled(item) {
    const conds = item.enableWhen || [];
    if (!conds.length) return true;
    const results = conds.map((w) => {
      const got = answersOf(w.question);
      if (w.operator === 'exists') return (got.length > 0) === (w.answerBoolean !== false);
      const want = optionValue(w);
      const eq = got.some((a) => sameAnswer(a, want));
      return w.operator === '!=' ? !eq : eq;
    });
    return item.enableBehavior === 'any' ? results.some(Boolean) : results.every(Boolean);
  }

  function refresh() {
    for (const c of controls) c.el.hidden = !enabledDeep(c.item);
  }

  function enabledDeep(item) {
    return enabled(item) && parents(item).every(enabled);
  }

  function parents(item) {
    const out = [];
    const walk = (items, chain) => {
      for (const it of items || []) {
        if (it === item) { out.push(...chain); return true; }
        if (walk(it.item, [...chain, it])) return true;
      }
      return false;
    };
    walk(q.item, []);
    return out;
  }

  const element = h('div', { class: 'portal-questionnaire' }, renderItems(q.item, 0));
  refresh();

  function validate() {
    const problems = [];
    for (const c of controls) {
      if (c.group || !enabledDeep(c.item)) continue;
      const ans = c.read();
      const err = c.el.querySelector('.nhsuk-error-message');
      let msg = '';
      const bad = ans.find((a) => a.invalid);
      if (bad) msg = bad.invalid;
      else if (c.item.required && !ans.length) msg = c.item.type === 'boolean' || c.item.type.endsWith('choice') ? 'Select an answer' : 'Enter an answer';
      c.el.classList.toggle('nhsuk-form-group--error', Boolean(msg));
      if (err) {
        err.hidden = !msg;
        err.textContent = msg ? 'Error: ' + msg : '';
      }
      if (msg) problems.push([c.firstId, `${c.item.text || c.item.linkId}: ${msg}`]);
    }
    return problems;
  }

  function responseItems(items) {
    const out = [];
    for (const item of items || []) {
      if (item.type === 'display' || !enabledDeep(item)) continue;
      if (item.type === 'group') {
        const sub = responseItems(item.item);
        if (sub.length) out.push({ linkId: item.linkId, text: item.text, item: sub });
        continue;
      }
      const c = controls.find((x) => x.item === item);
      const ans = c ? c.read().filter((a) => !a.invalid) : [];
      if (ans.length) out.push({ linkId: item.linkId, text: item.text, answer: ans });
    }
    return out;
  }

  function response(extra) {
    return { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: q.url || 'Questionnaire/' + q.id,
      authored: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), ...extra, item: responseItems(q.item) };
  }

  return { element, validate, response };
}

function optionLabel(o) {
  if (o.valueCoding) return o.valueCoding.display || o.valueCoding.code;
  if (o.valueString !== undefined) return o.valueString;
  if (o.valueInteger !== undefined) return String(o.valueInteger);
  if (o.valueDate !== undefined) return o.valueDate;
  return '';
}

function optionValue(o) {
  for (const k of ['valueCoding', 'valueString', 'valueInteger', 'valueDate', 'valueBoolean', 'answerCoding', 'answerString', 'answerInteger', 'answerDate', 'answerBoolean', 'answerDecimal']) {
    if (o[k] !== undefined) return { ['value' + k.replace(/^(value|answer)/, '')]: o[k] };
  }
  return {};
}

function sameAnswer(a, b) {
  const [ka] = Object.keys(a);
  const [kb] = Object.keys(b);
  if (ka !== kb) return false;
  if (ka === 'valueCoding') return a[ka].code === b[kb].code && (!a[ka].system || !b[kb].system || a[ka].system === b[kb].system);
  return a[ka] === b[kb];
}

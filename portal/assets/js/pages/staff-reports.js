// /staff/reports: the commissioner's reports, each a chart (chart.js,
// vendored into /assets/vendor and loaded by this page only) with the same
// figures as a table beside it and a CSV download (a Blob URL): waiting
// times by service ($waiting-times), referrals by practice or specialty
// over the last twelve months ($referral-trends), capacity gaps
// (appointment slot issues by service, $capacity-gaps). The API shows a
// commissioner only the services it commissions.

import { h, formatDate } from '../dom.js';
import { heading } from '../layout.js';
import { operation, valueOf } from '../fhir.js';
import { requireStaff, table, field, select } from './staff-common.js';

let chartLib = null;

// TOP is how many services a bar chart shows (the longest waits, the most
// slot issues); the table has them all.
const TOP = 12;

/** loadChart loads chart.js once (it sets window.Chart). */
function loadChart() {
  if (!chartLib) {
    chartLib = new Promise((resolve, reject) => {
      if (window.Chart) return resolve(window.Chart);
      const s = document.createElement('script');
      s.src = '/assets/vendor/chart.umd.min.js';
      s.onload = () => resolve(window.Chart);
      s.onerror = () => { chartLib = null; reject(new Error('the chart library did not load')); };
      document.head.appendChild(s);
    });
  }
  return chartLib;
}

// rows runs a report and returns its rows as objects (part name → value).
async function rows(name, params = []) {
  const out = await operation('$' + name, params);
  return ((out && out.parameter) || []).filter((p) => p.name === 'row').map((p) => {
    const r = {};
    for (const x of p.part || []) r[x.name] = valueOf(x);
    return r;
  });
}

/** csv is RFC 4180 text of a header and rows. */
export function csv(headers, data) {
  const cell = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  return [headers, ...data].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

// download is a link that saves the figures as a CSV file.
function download(file, label, headers, data) {
  const url = URL.createObjectURL(new Blob([csv(headers, data)], { type: 'text/csv;charset=utf-8' }));
  return h('p', { class: 'nhsuk-body' }, h('a', { href: url, download: file, class: 'staff-csv', id: 'csv-' + file.replace(/\.csv$/, '') }, `Download ${label} (CSV)`));
}

// figure is one report: heading, chart (canvas described for screen
// readers, who read the table), table and CSV link, side by side on wide
// screens.
function figure(id, title, description, canvas, tbl, link, controls) {
  return h('section', { class: 'staff-report', id, 'aria-labelledby': id + '-title' },
    h('h2', { class: 'nhsuk-heading-m', id: id + '-title' }, title),
    h('p', { class: 'nhsuk-body' }, description),
    controls || null,
    h('div', { class: 'nhsuk-grid-row' },
      h('div', { class: 'nhsuk-grid-column-one-half staff-chart' }, canvas),
      h('div', { class: 'nhsuk-grid-column-one-half staff-report__table' },
        // Long tables fold away on narrow screens (open beside the chart on wide ones).
        h('details', { class: 'nhsuk-details', open: window.matchMedia('(min-width: 48.0625em)').matches },
          h('summary', { class: 'nhsuk-details__summary' }, h('span', { class: 'nhsuk-details__summary-text' }, 'The figures as a table')),
          h('div', { class: 'nhsuk-details__text' }, tbl)), link)));
}

const canvasFor = (id, label) => h('canvas', { id: id + '-chart', role: 'img', 'aria-label': label + ' (the table beside it has the figures)' });
const refName = (r) => (r && (r.display || (r.reference || '').split('/')[1])) || '';

export async function render(ctx) {
  requireStaff(ctx, 'commissioner');
  const now = new Date();
  const from = new Date(Date.UTC(now.getUTCFullYear() - 1, now.getUTCMonth() + 1, 1)).toISOString().slice(0, 10);
  const [waits, trends, gaps, Chart] = await Promise.all([rows('waiting-times'), rows('referral-trends', [['from', { valueDate: from }]]), rows('capacity-gaps'), loadChart()]);
  const charts = [];
  ctx.onLeave(() => charts.forEach((c) => c.destroy()));
  const base = { animation: false, responsive: true, plugins: { legend: { position: 'bottom' } } };
  const serviceNames = Object.fromEntries(waits.map((w) => [(w.service || {}).reference, w.name]));

  // Waiting times by service.
  waits.sort((a, b) => (b['waiting-days'] ?? -1) - (a['waiting-days'] ?? -1));
  const wHead = ['Service', 'Specialty', 'Days to next free slot', 'Average wait (days)', 'Appointments', 'Average days from referral to appointment'];
  const wData = waits.map((w) => [w.name, w.specialty || '', w['waiting-days'] ?? '', w['average-days'] ?? '', w.appointments ?? 0, w['average-days-to-appointment'] ?? '']);
  const wCanvas = canvasFor('waits', `Bar chart of days to the next free slot, the ${TOP} services with the longest waits`);
  const waitsFig = figure('waits', 'Waiting times by service', `Calendar days until each service's next free appointment (the chart shows the ${TOP} longest), and the waits referrals had.`,
    wCanvas, table('Waiting times by service', wHead, wData.map((r) => r.map(String))), download('waiting-times.csv', 'waiting times', wHead, wData));

  // Referrals over time, by practice or by specialty.
  const months = [...new Set(trends.map((t) => t.month))].sort();
  const tHead = ['Month', 'Practice', 'Specialty', 'Referrals'];
  const tData = trends.map((t) => [t.month, refName(t.practice), t.specialty || t['specialty-code'] || '', t.referrals ?? 0])
    .sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]) || a[2].localeCompare(b[2]));
  const by = select('trend-by', [['specialty', 'Specialty'], ['practice', 'Practice']]);
  const tCanvas = canvasFor('trends', 'Line chart of referrals each month');
  const trendsFig = figure('trends', 'Referrals by practice and specialty', `Referrals each month since ${formatDate(from)}.`,
    tCanvas, table('Referrals by month, practice and specialty', tHead, tData.map((r) => r.map(String))), download('referral-trends.csv', 'referrals', tHead, tData),
    field('trend-by', 'Show lines by', by));

  // Capacity gaps: slot issues by service.
  gaps.sort((a, b) => (b.deferrals || 0) - (a.deferrals || 0));
  const gHead = ['Service', 'Specialty', 'Slot issues'];
  const gData = gaps.map((g) => [serviceNames[(g.service || {}).reference] || refName(g.service), g.specialty || '', g.deferrals || 0]);
  const gCanvas = canvasFor('gaps', 'Bar chart of appointment slot issues by service');
  const gapsFig = figure('gaps', 'Capacity gaps', 'Referrals for which no appointment could be found (appointment slot issues), by the service the patient wanted.',
    gCanvas, gData.length ? table('Appointment slot issues by service', gHead, gData.map((r) => r.map(String))) : h('p', { class: 'nhsuk-body' }, 'No appointment slot issues have been raised.'),
    download('capacity-gaps.csv', 'capacity gaps', gHead, gData));

  const draw = () => {
    const top = waits.slice(0, TOP);
    charts.push(new Chart(wCanvas, { type: 'bar', data: { labels: top.map((w) => w.name), datasets: [{ label: 'Days to next free slot', data: top.map((w) => w['waiting-days'] ?? null), backgroundColor: '#005eb8' }] },
      options: { ...base, indexAxis: 'y', aspectRatio: 0.8 } }));
    const trendChart = new Chart(tCanvas, { type: 'line', data: trendData(trends, months, by.value), options: { ...base, aspectRatio: 1.2, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    charts.push(trendChart);
    by.addEventListener('change', () => { trendChart.data = trendData(trends, months, by.value); trendChart.update(); });
    charts.push(new Chart(gCanvas, { type: 'bar', data: { labels: gData.slice(0, TOP).map((g) => g[0]), datasets: [{ label: 'Slot issues', data: gData.slice(0, TOP).map((g) => g[2]), backgroundColor: '#d5281b' }] },
      options: { ...base, indexAxis: 'y', aspectRatio: 1.2, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } } }));
  };
  // The canvases must be in the page before chart.js measures them.
  requestAnimationFrame(() => { if (document.body.contains(wCanvas)) draw(); });
  return {
    title: 'Reports',
    body: [heading('Waiting times and capacity', 'Commissioner reports'),
      h('p', { class: 'nhsuk-body' }, 'For the services you commission. Each chart has its figures in a table, and as a CSV file to download.'),
      waitsFig, trendsFig, gapsFig],
  };
}

const palette = ['#005eb8', '#007f3b', '#d5281b', '#ffb81c', '#330072', '#ae2573', '#00a499', '#425563', '#ed8b00', '#41b6e6'];

// trendData sums the referrals by month for each practice or specialty.
function trendData(trends, months, by) {
  const series = new Map();
  for (const t of trends) {
    const key = by === 'practice' ? refName(t.practice) : (t.specialty || t['specialty-code'] || 'Not known');
    if (!series.has(key)) series.set(key, Object.fromEntries(months.map((m) => [m, 0])));
    series.get(key)[t.month] += t.referrals || 0;
  }
  return {
    labels: months,
    datasets: [...series.entries()].map(([label, v], i) => ({ label, data: months.map((m) => v[m]), borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], tension: 0 })),
  };
}

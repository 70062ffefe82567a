// A PAS nobody on Signpost wrote, for adapters/pas/inbound_peer_test.go:
// simple-hl7's message builder composes an ADT^A04 (a new patient) and an
// SIU^S12 (a booking for them) and its TCP client sends both over one MLLP
// connection to Signpost's hl7v2-pas listener, printing one JSON line per
// acknowledgement as simple-hl7 read it: {"msa1", "msa2", "msa3", "raw"}.
//
//   node inbound.mjs PORT NHS PASNO CLINIC START
//
// NHS is the patient's NHS number, PASNO their PAS number, CLINIC the PAS
// clinic code (AIL-3) and START the booking's start (an HL7 timestamp such
// as 20261207090000+0000); the booking lasts 15 minutes.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const hl7 = require('simple-hl7');

const [port, nhs, pasNo, clinic, start] = process.argv.slice(2);
if (!start) {
  console.error('usage: node inbound.mjs PORT NHS PASNO CLINIC START');
  process.exit(2);
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const now = start.slice(0, 12);

// header builds an MSH (MSH-3 to MSH-12) for type^event with control id.
const message = (type, event, control) =>
  new hl7.Message('NPMPAS', 'RH8', 'SIGNPOST', 'RH8', now, '', [type, event], control, 'P', '2.5.1');

const pid = (m) =>
  m.addSegment('PID', '1', [pasNo, '', '', 'RH8', 'PI'], [nhs, '', '', 'NHS', 'NH'], '',
    ['PARKER', 'ROSE', 'ANN', '', 'MS', '', 'L'], '', '19700101', 'F');

const a04 = message('ADT', 'A04', `NPM-A04-${nhs}`);
a04.addSegment('EVN', 'A04', now);
pid(a04);

const s12 = message('SIU', 'S12', `NPM-S12-${nhs}`);
s12.addSegment('SCH', '', [`NPM-${nhs}`, 'NPMPAS'], '', '', '', ['NEW', 'New booking'], '', '', '15', ['MIN'],
  ['', '', '15', start]);
s12.addSegment('NTE', '1', '', 'Booked by the npm PAS');
pid(s12);
s12.addSegment('RGS', '1', 'A');
s12.addSegment('AIS', '1', 'A', ['CARD-NEW', 'New cardiology outpatient'], start, '', '', '15', ['MIN']);
s12.addSegment('AIL', '1', 'A', [clinic], '', '', start, '', '', '15', ['MIN']);

const client = hl7.Server.createTcpClient({ host: '127.0.0.1', port: Number(port), keepalive: true });
const messages = [a04, s12];
const next = (i) => {
  if (i === messages.length) {
    client.close();
    return;
  }
  client.send(messages[i], (err, ack) => {
    if (err) {
      console.error(String(err));
      process.exit(1);
    }
    const msa = ack.getSegment('MSA');
    out({ msa1: msa.getField(1).toString(), msa2: msa.getField(2).toString(), msa3: String(msa.getField(3) ?? ''), raw: ack.toString() });
    setImmediate(() => next(i + 1)); // simple-hl7 clears its busy flag after this callback returns
  });
};
next(0);

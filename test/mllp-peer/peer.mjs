// An MLLP peer nobody on Signpost wrote: simple-hl7's TCP client and server,
// driven by adapters/mllp/peer_test.go. Each line it prints on stdout is one
// JSON object.
//
//   node peer.mjs send PORT FILE...  sends each file (an ER7 message, \r
//                                    between segments) to 127.0.0.1:PORT over
//                                    one connection, printing for each ACK
//                                    what simple-hl7 read in it:
//                                    {"msa1", "msa2", "raw"}
//   node peer.mjs serve              listens on 127.0.0.1 (a free port),
//                                    prints {"port"}, then for each message
//                                    {"type", "event", "raw", "control",
//                                    "sch1", "sch25", "pid3", "pid3type"},
//                                    answering with simple-hl7's own ACK
//                                    (MSA AA + MSH-10)
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const require = createRequire(import.meta.url);
const hl7 = require('simple-hl7');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const [mode, ...args] = process.argv.slice(2);

if (mode === 'send') {
  const [port, ...files] = args;
  const client = hl7.Server.createTcpClient({ host: '127.0.0.1', port: Number(port), keepalive: true });
  const next = (i) => {
    if (i === files.length) {
      client.close();
      return;
    }
    client.send(readFileSync(files[i], 'utf8'), (err, ack) => {
      if (err) {
        console.error(String(err));
        process.exit(1);
      }
      const msa = ack.getSegment('MSA');
      out({ msa1: msa.getField(1).toString(), msa2: msa.getField(2).toString(), raw: ack.toString() });
      setImmediate(() => next(i + 1)); // simple-hl7 clears its busy flag after this callback returns
    });
  };
  next(0);
} else if (mode === 'serve') {
  // simple-hl7's start(port) listens on every interface; the test must bind
  // loopback only, so its one listen call is given the host.
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (port) {
    return listen.call(this, port, '127.0.0.1');
  };
  const server = hl7.Server.createTcpServer((err, req, res) => {
    if (err) {
      console.error(String(err));
      return;
    }
    // What simple-hl7 itself reads of a scheduling message: the control
    // id (MSH-10), the placer appointment id (SCH-1.1), the filler status
    // (SCH-25.1) and the first patient identifier with its type (PID-3[1]).
    const sch = req.msg.getSegment('SCH');
    const pid = req.msg.getSegment('PID');
    const cx = pid ? pid.getField(3, 1).split('^') : []; // PID-3's first repetition
    out({
      type: req.type, event: req.event, raw: req.raw,
      control: req.msg.header.getField(8).toString(),
      sch1: sch ? sch.getComponent(1, 1).toString() : '',
      sch25: sch ? sch.getComponent(25, 1).toString() : '',
      pid3: cx[0] || '',
      pid3type: cx[4] || '',
    });
    res.end();
  });
  server.start(0);
  server.server.on('listening', () => out({ port: server.server.address().port }));
  process.stdin.on('end', () => process.exit(0)); // the test closes stdin to stop the peer
  process.stdin.resume();
} else {
  console.error('usage: node peer.mjs send PORT FILE... | serve');
  process.exit(2);
}

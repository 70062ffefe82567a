// An SMTP server for adapters/notify/smtp_peer_test.go, built on
// nodemailer's smtp-server (an implementation nobody on Signpost wrote)
// and parsed with mailparser. It offers STARTTLS with the certificate in
// $SMTP_PEER_CERT / $SMTP_PEER_KEY, requires AUTH (over TLS only) as
// $SMTP_PEER_USER / $SMTP_PEER_PASS, refuses recipients at
// refused.example with 550, and prints one JSON line per event on stdout:
// {"listening": port} once, then one per message received.
import fs from 'node:fs';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
};
const user = env('SMTP_PEER_USER');
const pass = env('SMTP_PEER_PASS');

const server = new SMTPServer({
  key: fs.readFileSync(env('SMTP_PEER_KEY')),
  cert: fs.readFileSync(env('SMTP_PEER_CERT')),
  authMethods: ['PLAIN', 'LOGIN'],
  disableReverseLookup: true,
  logger: false,
  onAuth(auth, session, callback) {
    if (auth.username === user && auth.password === pass) {
      callback(null, { user: auth.username });
      return;
    }
    callback(new Error('Invalid username or password'));
  },
  onRcptTo(address, session, callback) {
    if (address.address.endsWith('@refused.example')) {
      const err = new Error('No such user here');
      err.responseCode = 550;
      callback(err);
      return;
    }
    callback();
  },
  onData(stream, session, callback) {
    simpleParser(stream)
      .then((mail) => {
        console.log(JSON.stringify({
          envelopeFrom: session.envelope.mailFrom.address,
          envelopeTo: session.envelope.rcptTo.map((r) => r.address),
          secure: session.secure,
          user: session.user,
          from: mail.from ? mail.from.text : '',
          to: mail.to ? mail.to.text : '',
          subject: mail.subject,
          text: mail.text,
          messageId: mail.messageId,
          contentType: mail.headers.get('content-type') ? mail.headers.get('content-type').value : '',
          autoSubmitted: mail.headers.get('auto-submitted') || '',
        }));
        callback();
      })
      .catch(callback);
  },
});
server.on('error', (err) => console.error(err.message));
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.server.address().port }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

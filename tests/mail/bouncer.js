// A mail server that refuses some recipients for good, as a real one
// refuses a mailbox that does not exist: `550 5.1.1` to RCPT TO for every
// address whose local part starts with "bounce". Everything else is
// accepted (and discarded), and its recipients are printed, one line per
// message. Built on smtp-server (Nodemailer's SMTP server library, which
// MailDev is built on and brings along under target/maildev).
//
//   node tests/mail/bouncer.js <port> <node_modules directory>
'use strict';
const path = require('path');
const { SMTPServer } = require(path.join(process.argv[3], 'smtp-server'));

const port = Number(process.argv[2]);
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onRcptTo(address, session, callback) {
    if (address.address.toLowerCase().startsWith('bounce')) {
      const refusal = new Error(`5.1.1 <${address.address}>: Recipient address rejected: User unknown`);
      refusal.responseCode = 550;
      return callback(refusal);
    }
    return callback();
  },
  onData(stream, session, callback) {
    stream.resume();
    stream.on('end', () => {
      console.log(`accepted ${session.envelope.rcptTo.map((r) => r.address).join(',')}`);
      callback();
    });
  },
});
server.on('error', (e) => console.error(e));
server.listen(port, '127.0.0.1');

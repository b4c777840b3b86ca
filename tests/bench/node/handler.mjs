// The webhook handler a team would write instead of the plugin, at the same
// durability as `serve`: stripe-node verifies and parses the event
// (constructEvent), and one better-sqlite3 transaction (WAL,
// synchronous=FULL) records the event id (dedupe) and marks the invoice paid.
// Answers 200 only after the commit.
//
//   node handler.mjs PORT DB_PATH WEBHOOK_SECRET
import http from 'node:http';
import Stripe from 'stripe';
import Database from 'better-sqlite3';

const [port, dbPath, secret] = process.argv.slice(2);
const stripe = new Stripe('sk_test_bench');
const db = new Database(dbPath);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(`CREATE TABLE IF NOT EXISTS seen_events (id TEXT PRIMARY KEY, type TEXT NOT NULL, received_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS invoices (id TEXT PRIMARY KEY, status TEXT NOT NULL, amount_paid INTEGER NOT NULL, paid_ms INTEGER);
         INSERT OR IGNORE INTO invoices VALUES ('inv_bench', 'FINAL', 0, NULL);`);
const seen = db.prepare('INSERT OR IGNORE INTO seen_events VALUES (?, ?, ?)');
const paid = db.prepare(`UPDATE invoices SET status = 'PAID', amount_paid = ?, paid_ms = ? WHERE id = ? AND status <> 'PAID'`);
const apply = db.transaction((event) => {
  if (seen.run(event.id, event.type, Date.now()).changes === 0) return;
  if (event.type === 'payment_intent.succeeded') {
    const pi = event.data.object;
    paid.run(pi.amount_received, Date.now(), pi.metadata.invoice_id);
  }
});

http
  .createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let event;
      try {
        event = stripe.webhooks.constructEvent(Buffer.concat(chunks), req.headers['stripe-signature'], secret);
      } catch (e) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(e.message);
        return;
      }
      apply(event);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
    });
  })
  .listen(Number(port), '127.0.0.1');

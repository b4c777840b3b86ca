//! A pooled PostgreSQL connection that keeps the statements it has prepared.
//! rust-postgres's `query("SQL", …)` prepares the statement anew on every
//! call: a round trip to parse it, then one to run it. Measured on a webhook
//! (statement log of `bench-serve --postgres`): about 19 statements each,
//! so 38 round trips. Prepared once per connection and kept, each statement
//! is one round trip. Prepared statements belong to the connection, not to a
//! transaction, so one prepared outside a transaction serves inside one too.

use postgres::types::ToSql;
use postgres::{Client, Error, GenericClient, Row, Statement};
use r2d2_postgres::PostgresConnectionManager;
use std::collections::HashMap;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection and its prepared statements, by their SQL.
pub struct Session {
    client: Client,
    prepared: HashMap<String, Statement>,
}

/// Looks `sql` up among `prepared`, preparing it on `on` the first time.
fn statement(
    on: &mut impl GenericClient,
    prepared: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, Error> {
    if let Some(s) = prepared.get(sql) {
        return Ok(s.clone());
    }
    let s = on.prepare(sql)?;
    prepared.insert(sql.to_string(), s.clone());
    Ok(s)
}

impl Session {
    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let s = statement(&mut self.client, &mut self.prepared, sql)?;
        self.client.execute(&s, params)
    }

    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let s = statement(&mut self.client, &mut self.prepared, sql)?;
        self.client.query(&s, params)
    }

    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        let s = statement(&mut self.client, &mut self.prepared, sql)?;
        self.client.query_opt(&s, params)
    }

    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let s = statement(&mut self.client, &mut self.prepared, sql)?;
        self.client.query_one(&s, params)
    }

    pub fn transaction(&mut self) -> Result<SessionTx<'_>, Error> {
        Ok(SessionTx {
            tx: self.client.transaction()?,
            prepared: &mut self.prepared,
        })
    }
}

/// A transaction on a session, with the session's prepared statements.
pub struct SessionTx<'a> {
    tx: postgres::Transaction<'a>,
    prepared: &'a mut HashMap<String, Statement>,
}

impl SessionTx<'_> {
    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let s = statement(&mut self.tx, self.prepared, sql)?;
        self.tx.execute(&s, params)
    }

    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        let s = statement(&mut self.tx, self.prepared, sql)?;
        self.tx.query_opt(&s, params)
    }

    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let s = statement(&mut self.tx, self.prepared, sql)?;
        self.tx.query(&s, params)
    }

    /// Unprepared statements (DDL in migrations), run as they are.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        self.tx.batch_execute(sql)
    }

    pub fn commit(self) -> Result<(), Error> {
        self.tx.commit()
    }
}

/// r2d2's manager for sessions: rust-postgres connections underneath.
pub struct SessionManager(pub PostgresConnectionManager<tokio_postgres_rustls::MakeRustlsConnect>);

impl r2d2::ManageConnection for SessionManager {
    type Connection = Session;
    type Error = Error;

    fn connect(&self) -> Result<Session, Error> {
        Ok(Session {
            client: self.0.connect()?,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, s: &mut Session) -> Result<(), Error> {
        self.0.is_valid(&mut s.client)
    }

    fn has_broken(&self, s: &mut Session) -> bool {
        self.0.has_broken(&mut s.client)
    }
}

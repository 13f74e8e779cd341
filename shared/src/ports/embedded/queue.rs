//! [`Queue`] on the embedded SQLite file. A run is a row from enqueue until ack; the
//! rows still there when the process starts (queued, or interrupted mid-run) are
//! delivered again. In between, deliveries travel through an in-process channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use tokio::sync::{Mutex, mpsc};

use super::db::Database;
use crate::model::RunMessage;
use crate::ports::{Delivery, Queue, QueueError};

pub struct EmbeddedQueue {
    db: Arc<Database>,
    sender: mpsc::UnboundedSender<Delivery>,
    receiver: Mutex<mpsc::UnboundedReceiver<Delivery>>,
}

impl EmbeddedQueue {
    /// Opens the queue and schedules every run left over from an earlier process.
    pub async fn open(db: Arc<Database>) -> Result<Self, QueueError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let leftovers = db
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT id, body, attempts FROM queue ORDER BY id")?;
                let rows = stmt.query_map([], |r| {
                    Ok(Delivery {
                        receipt: r.get(0)?,
                        body: r.get(1)?,
                        attempt: r.get::<_, u32>(2)? + 1,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(QueueError::Backend)?;
        for delivery in leftovers {
            let _ = sender.send(delivery);
        }
        Ok(Self {
            db,
            sender,
            receiver: Mutex::new(receiver),
        })
    }

    /// How many runs wait (or run) right now.
    pub async fn depth(&self) -> Result<usize, QueueError> {
        self.db
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(QueueError::Backend)
    }

    fn deliver(&self, delivery: Delivery) {
        // The receiver lives as long as the queue; a send can only fail at shutdown,
        // and the row stays for the next start.
        let _ = self.sender.send(delivery);
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(run).map_err(|e| QueueError::Backend(e.to_string()))?;
        let id = run.execution_id.clone();
        let row_body = body.clone();
        let row_id = id.clone();
        self.db
            .write(Box::new(move |conn| {
                conn.prepare_cached("INSERT OR IGNORE INTO queue (id, body) VALUES (?1, ?2)")?
                    .execute(params![row_id, row_body])?;
                Ok(true)
            }))
            .await
            .map_err(QueueError::Backend)?;
        self.deliver(Delivery {
            receipt: id,
            body,
            attempt: 1,
        });
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let mut receiver = self.receiver.lock().await;
        let mut out = Vec::new();
        match tokio::time::timeout(wait, receiver.recv()).await {
            Ok(Some(first)) => out.push(first),
            Ok(None) | Err(_) => return Ok(out),
        }
        while out.len() < max {
            match receiver.try_recv() {
                Ok(d) => out.push(d),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let id = delivery.receipt.clone();
        self.db
            .write(Box::new(move |conn| {
                conn.prepare_cached("DELETE FROM queue WHERE id = ?1")?
                    .execute([id])?;
                Ok(true)
            }))
            .await
            .map(drop)
            .map_err(QueueError::Backend)
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let id = delivery.receipt.clone();
        self.db
            .write(Box::new(move |conn| {
                conn.prepare_cached("UPDATE queue SET attempts = attempts + 1 WHERE id = ?1")?
                    .execute([id])?;
                Ok(true)
            }))
            .await
            .map_err(QueueError::Backend)?;
        let again = Delivery {
            attempt: delivery.attempt + 1,
            ..delivery.clone()
        };
        let sender = self.sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = sender.send(again);
        });
        Ok(())
    }
}

//! The data plane: a mailbox of messages addressed to this worker's ranks, and the path to peers (local
//! ranks get the message directly, remote ones over the peer's `Deliver` call).
//!
//! A message can arrive before its receiver asks for it (it waits in the mailbox) or after (the receiver
//! waits). The mailbox is bounded, so a flood of messages is refused instead of exhausting memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rpc::net::{Security, WorkerClient};
use rpc::types::{Channel, DataMessage};
use tokio::sync::oneshot;

use crate::WorkerError;
use crate::faults::FaultState;
use crate::job::Job;

/// Messages a worker buffers at most before refusing more.
pub const MAILBOX_LIMIT: usize = 1 << 16;

/// Where a message goes: (step, destination rank, source rank, channel, key, ring step).
pub type MailKey = (u32, u32, u32, Channel, u64, u32);

#[derive(Debug)]
enum Slot {
    Ready(u64),
    Waiting(oneshot::Sender<u64>),
}

/// Messages addressed to local ranks.
#[derive(Debug, Default)]
pub struct Mailbox {
    slots: Mutex<BTreeMap<MailKey, Slot>>,
}

impl Mailbox {
    /// Stores a message or hands it to its waiting receiver.
    pub fn deliver(&self, key: MailKey, value: u64) -> Result<(), WorkerError> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.remove(&key) {
            Some(Slot::Waiting(tx)) => {
                // A receiver that gave up (cancelled step) drops the message.
                let _ = tx.send(value);
                Ok(())
            }
            Some(Slot::Ready(old)) => {
                slots.insert(key, Slot::Ready(old));
                Err(WorkerError::DataPlane(format!("duplicate message {key:?}")))
            }
            None if slots.len() >= MAILBOX_LIMIT => {
                Err(WorkerError::DataPlane(format!("mailbox full ({MAILBOX_LIMIT} messages)")))
            }
            None => {
                slots.insert(key, Slot::Ready(value));
                Ok(())
            }
        }
    }

    /// Waits for the message with `key`.
    pub async fn take(&self, key: MailKey) -> Result<u64, WorkerError> {
        let rx = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.remove(&key) {
                Some(Slot::Ready(v)) => return Ok(v),
                Some(Slot::Waiting(_)) => {
                    return Err(WorkerError::DataPlane(format!("two receivers for {key:?}")));
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(key, Slot::Waiting(tx));
                    rx
                }
            }
        };
        rx.await.map_err(|_| WorkerError::DataPlane(format!("message {key:?} abandoned")))
    }

    /// Drops everything older than `step` (left over from a cancelled step).
    pub fn drop_before(&self, step: u32) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|k, _| k.0 >= step);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Messages buffered or awaited.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is buffered or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The mailbox plus connections to peer workers.
#[derive(Debug)]
pub struct DataPlane {
    /// Messages for local ranks.
    pub mailbox: Mailbox,
    security: Security,
    faults: std::sync::Arc<FaultState>,
    peers: tokio::sync::Mutex<BTreeMap<String, WorkerClient>>,
}

impl DataPlane {
    /// An empty data plane dialling peers with `security`; an injected partition cuts peers off.
    pub fn new(security: Security, faults: std::sync::Arc<FaultState>) -> DataPlane {
        DataPlane {
            mailbox: Mailbox::default(),
            security,
            faults,
            peers: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Sends a message to its destination rank, wherever it lives.
    pub async fn send(&self, job: &Job, msg: DataMessage) -> Result<(), WorkerError> {
        if job.is_local(msg.dst_rank) {
            let key = (msg.step, msg.dst_rank, msg.src_rank, msg.channel, msg.key, msg.seq);
            return self.mailbox.deliver(key, msg.value);
        }
        let address = job
            .address_of(msg.dst_rank)
            .ok_or_else(|| WorkerError::DataPlane(format!("rank {} has no address", msg.dst_rank)))?
            .to_string();
        if self.faults.cut_off_from(&address) {
            return Err(WorkerError::DataPlane(format!("{address} is across a network partition")));
        }
        let mut client = self.client(&address).await?;
        client
            .deliver(rpc::pb::DataMessage::from(msg))
            .await
            .map_err(|s| WorkerError::DataPlane(format!("delivering to {address}: {}", s.message())))?;
        Ok(())
    }

    async fn client(&self, address: &str) -> Result<WorkerClient, WorkerError> {
        let mut peers = self.peers.lock().await;
        if let Some(c) = peers.get(address) {
            return Ok(c.clone());
        }
        let channel = rpc::net::connect(address, &self.security, Duration::from_secs(10)).await?;
        let client = rpc::net::worker_client(channel, &self.security)?;
        peers.insert(address.to_string(), client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_reaches_its_receiver_whether_it_comes_first_or_second() {
        let mb = Mailbox::default();
        let key = (0, 1, 0, Channel::P2p, 7, 0);
        mb.deliver(key, 42).unwrap();
        assert_eq!(mb.take(key).await.unwrap(), 42);
        let key2 = (0, 1, 0, Channel::P2p, 8, 0);
        let (r, ()) = tokio::join!(mb.take(key2), async {
            tokio::task::yield_now().await;
            mb.deliver(key2, 43).unwrap();
        });
        assert_eq!(r.unwrap(), 43);
        assert!(mb.is_empty());
    }

    #[test]
    fn duplicates_and_floods_are_refused() {
        let mb = Mailbox::default();
        let key = (0, 1, 0, Channel::Collective, 3, 0);
        mb.deliver(key, 1).unwrap();
        assert!(mb.deliver(key, 1).is_err());
        for i in 1..MAILBOX_LIMIT as u64 {
            mb.deliver((0, 1, 0, Channel::Collective, 3, 0).clone_with_key(i), 1).unwrap();
        }
        assert!(mb.deliver((0, 1, 0, Channel::P2p, 0, 0), 1).is_err());
        mb.drop_before(1);
        assert!(mb.is_empty());
    }

    trait WithKey {
        fn clone_with_key(self, k: u64) -> Self;
    }
    impl WithKey for MailKey {
        fn clone_with_key(self, k: u64) -> Self {
            (self.0, self.1, self.2, self.3, self.4 + k, self.5)
        }
    }
}

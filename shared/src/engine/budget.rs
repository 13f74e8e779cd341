//! One budget for a run and every subflow run under it, at any depth: node runs,
//! executions started and time at work (see [`super::Limits`]).
//!
//! Subflow runs that work in their caller's process share the caller's budget. One
//! that pauses goes on later by itself, maybe in another process: it takes half of
//! what is left along (kept in its record), and what it leaves unspent goes back
//! to its caller when the caller reads how it ended. A share is always taken out
//! of the budget it came from, so all the runs one delivery started never spend
//! more, together, than that first run's budget: a workflow that calls itself ends.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::instance::Limits;
use crate::model::Allowance;

#[derive(Debug)]
pub struct Budget {
    nodes: Counter,
    executions: Counter,
    deadline: Instant,
    busy: Duration,
    /// A subflow run's share of its caller's budget: its messages say so.
    share: bool,
    /// The first limit passed: every later spend is refused with its message, so
    /// the whole tree of runs stops for the reason the first one did.
    spent: OnceLock<String>,
}

#[derive(Debug)]
struct Counter {
    cap: usize,
    used: AtomicUsize,
}

impl Counter {
    fn new(cap: usize, used: usize) -> Self {
        Self {
            cap,
            used: AtomicUsize::new(used),
        }
    }

    fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes one; `false` once all are taken.
    fn take(&self) -> bool {
        self.used.fetch_add(1, Ordering::Relaxed) < self.cap
    }

    /// Takes half of what is left, and says how much.
    fn take_half(&self) -> usize {
        let mut half = 0;
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                half = self.cap.saturating_sub(used) / 2;
                Some(used + half)
            });
        half
    }

    fn give_back(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

impl Budget {
    /// The budget of a run a delivery (or a replay, or a failure) started: the
    /// run itself is its first execution.
    pub fn new(limits: &Limits) -> Self {
        Self::from_allowance(
            Allowance {
                nodes: limits.max_node_runs,
                nodes_used: 0,
                executions: limits.max_executions,
                executions_used: 1,
            },
            limits,
            false,
        )
    }

    /// A budget as a paused run's record kept it; `share` for a subflow run's.
    /// Its time starts again: only work without a pause is bounded.
    pub fn from_allowance(allowance: Allowance, limits: &Limits, share: bool) -> Self {
        Self {
            nodes: Counter::new(allowance.nodes, allowance.nodes_used),
            executions: Counter::new(allowance.executions, allowance.executions_used),
            deadline: Instant::now() + limits.max_busy,
            busy: limits.max_busy,
            share,
            spent: OnceLock::new(),
        }
    }

    /// Node runs counted before the budget was (a record from before budgets).
    pub(super) fn add_nodes_used(&self, n: usize) {
        self.nodes.used.fetch_add(n, Ordering::Relaxed);
    }

    /// As a record keeps it.
    pub fn allowance(&self) -> Allowance {
        Allowance {
            nodes: self.nodes.cap,
            nodes_used: self.nodes.used().min(self.nodes.cap),
            executions: self.executions.cap,
            executions_used: self.executions.used().min(self.executions.cap),
        }
    }

    /// The message of the limit that was passed, once one was.
    pub fn spent(&self) -> Option<&str> {
        self.spent.get().map(String::as_str)
    }

    /// Counts one node run.
    pub fn take_node(&self) -> Result<(), String> {
        if let Some(message) = self.spent() {
            return Err(message.to_string());
        }
        if Instant::now() > self.deadline {
            let seconds = self.busy.as_secs();
            return Err(self.spend(format!("worked more than {seconds} s without pausing")));
        }
        if !self.nodes.take() {
            let cap = self.nodes.cap;
            return Err(self.spend(format!("executed more than {cap} nodes")));
        }
        Ok(())
    }

    /// Counts one execution a `subflow` node starts.
    pub fn take_execution(&self) -> Result<(), String> {
        if let Some(message) = self.spent() {
            return Err(message.to_string());
        }
        if !self.executions.take() {
            let cap = self.executions.cap;
            return Err(self.spend(format!("started more than {cap} executions")));
        }
        Ok(())
    }

    /// Half of what is left, taken out for a subflow run that paused.
    pub fn take_share(&self) -> Allowance {
        Allowance {
            nodes: self.nodes.take_half(),
            nodes_used: 0,
            executions: self.executions.take_half(),
            executions_used: 0,
        }
    }

    /// What a subflow run left of its share, once it ended.
    pub fn give_back(&self, share: &Allowance) {
        let (nodes, executions) = share.unspent();
        self.nodes.give_back(nodes);
        self.executions.give_back(executions);
    }

    fn spend(&self, what: String) -> String {
        let message = if self.share {
            format!(
                "the run and its subflows {what}: the share of its caller's budget it took along when it paused"
            )
        } else {
            format!("the run and its subflows {what}, and were stopped")
        };
        self.spent.get_or_init(|| message).clone()
    }
}

/// A byte count as a budget's message names it: `32 MiB`, `300 KiB`, `12 bytes`.
pub(super) fn in_units(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(nodes: usize, executions: usize) -> Limits {
        Limits {
            max_node_runs: nodes,
            max_executions: executions,
            ..Limits::default()
        }
    }

    #[test]
    fn every_share_comes_out_of_the_budget_it_was_taken_from() {
        let limits = limits(100, 9);
        let root = Budget::new(&limits);
        // Shares of shares, never given back: together never more than the root's.
        let mut nodes = 0;
        let mut executions = 1;
        let mut budgets = vec![root];
        for _ in 0..20 {
            let share = budgets.last().unwrap().take_share();
            let child = Budget::from_allowance(share, &limits, true);
            while child.take_node().is_ok() {
                nodes += 1;
            }
            budgets.push(child);
        }
        for b in &budgets {
            while b.take_node().is_ok() {
                nodes += 1;
            }
            while b.take_execution().is_ok() {
                executions += 1;
            }
        }
        assert!(nodes <= 100, "{nodes}");
        assert!(executions <= 9, "{executions}");
        assert_eq!(
            budgets[0].take_node(),
            Err("the run and its subflows executed more than 100 nodes, and were stopped".into())
        );
    }

    #[test]
    fn a_share_left_unspent_goes_back() {
        let limits = limits(100, 10);
        let root = Budget::new(&limits);
        let share = root.take_share();
        assert_eq!((share.nodes, share.executions), (50, 4));
        let child = Budget::from_allowance(share, &limits, true);
        for _ in 0..10 {
            child.take_node().unwrap();
        }
        root.give_back(&child.allowance());
        assert_eq!(root.allowance().nodes_used, 10);
        assert_eq!(root.allowance().executions_used, 1);
        // Once a limit is passed, everything is refused with its message.
        let tiny = Budget::new(&Limits {
            max_executions: 1,
            ..limits
        });
        assert_eq!(
            tiny.take_execution(),
            Err("the run and its subflows started more than 1 executions, and were stopped".into())
        );
        assert!(
            tiny.take_node()
                .unwrap_err()
                .contains("started more than 1")
        );
    }

    #[test]
    fn work_without_a_pause_is_bounded_in_time() {
        let limits = Limits {
            max_busy: Duration::ZERO,
            ..Limits::default()
        };
        let budget = Budget::new(&limits);
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            budget
                .take_node()
                .unwrap_err()
                .contains("worked more than 0 s without pausing")
        );
    }
}
